import assert from "node:assert/strict";
import { test } from "node:test";

import { SafetensorsError, halfToFloat, parseSafetensors } from "../vae_space/web/safetensors.js";

// A safetensors file made here: {name: [dtype, shape, bytes]} -> ArrayBuffer
function file(tensors, headerPatch = {}) {
  const header = {}, parts = [];
  let at = 0;
  for (const [name, [dtype, shape, bytes]] of Object.entries(tensors)) {
    header[name] = { dtype, shape, data_offsets: [at, at + bytes.byteLength] };
    parts.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    at += bytes.byteLength;
  }
  Object.assign(header, headerPatch);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out.buffer;
}

test("reads float32, uint8, int32 and float16 tensors with their shapes", () => {
  const half = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00]);  // 1, -2, ~1/3, smallest subnormal, inf
  const t = parseSafetensors(file({
    mu: ["F32", [2, 2], new Float32Array([1, 2, 3, 4])],
    labels: ["U8", [3], new Uint8Array([7, 1, 9])],
    index: ["I32", [2], new Int32Array([-5, 123456])],
    w: ["F16", [5], half],
  }, { __metadata__: { format: "pt" } }));
  assert.deepEqual(Array.from(t.mu.data), [1, 2, 3, 4]);
  assert.deepEqual(t.mu.shape, [2, 2]);
  assert.deepEqual(Array.from(t.labels.data), [7, 1, 9]);
  assert.deepEqual(Array.from(t.index.data), [-5, 123456]);
  assert.equal(t.w.data[0], 1);
  assert.equal(t.w.data[1], -2);
  assert.ok(Math.abs(t.w.data[2] - 1 / 3) < 1e-3);
  assert.equal(t.w.data[3], 2 ** -24);
  assert.equal(t.w.data[4], Infinity);
  assert.deepEqual(t.__metadata__, { format: "pt" });
});

test("halfToFloat is exact for every one of the 65,536 half-precision values", () => {
  // reference: the same value built as float32 bits (exponent rebiased 15 -> 127, mantissa shifted 10 -> 23)
  const ref = new Float32Array(1), refBits = new Uint32Array(ref.buffer);
  const all = new Uint16Array(65536).map((_, i) => i);
  const got = halfToFloat(all);
  for (let h = 0; h < 65536; h++) {
    const s = (h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e === 0) ref[0] = (s ? -1 : 1) * m * 2 ** -24;  // zero and subnormals: exact in float32
    else refBits[0] = s | (e === 31 ? 0xff << 23 : (e - 15 + 127) << 23) | (m << 13);
    assert.ok(Object.is(got[h], ref[0]) || (Number.isNaN(got[h]) && Number.isNaN(ref[0])), `0x${h.toString(16)}`);
  }
});

test("a damaged file is refused with a reason, before any tensor is made", () => {
  const good = file({ a: ["F32", [4], new Float32Array(4)] });
  assert.throws(() => parseSafetensors(good.slice(0, good.byteLength - 2)), /bytes 0-16/);
  assert.throws(() => parseSafetensors(new ArrayBuffer(4)), SafetensorsError);
  const huge = new ArrayBuffer(16);
  new DataView(huge).setBigUint64(0, 1000n, true);
  assert.throws(() => parseSafetensors(huge, "codes"), /codes: header length 1000/);
  assert.throws(() => parseSafetensors(file({ a: ["F64", [1], new Float64Array(1)] })), /unsupported dtype F64/);
  assert.throws(() => parseSafetensors(file({ a: ["F32", [3], new Float32Array(4)] })), /shape \[3\]/);
});
