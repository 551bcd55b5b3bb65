// safetensors in the page: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data. Read as the Python loader does: the header is checked
// against the buffer before any tensor is made, so a truncated or damaged file is refused with a reason.
// No DOM: unit-tested with node --test (test/safetensors.test.js).

const TYPES = { F32: [Float32Array, 4], F16: [null, 2], U8: [Uint8Array, 1], I32: [Int32Array, 4] };

export class SafetensorsError extends Error {
  constructor(message) { super(message); this.name = "SafetensorsError"; }
}

// float16 bits -> float32 values (IEEE 754 half: 1 sign, 5 exponent, 10 mantissa bits)
export function halfToFloat(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

// An ArrayBuffer -> { name: { shape, data } } (float16 tensors come as Float32Array), and __metadata__ if any.
export function parseSafetensors(buffer, what = "file") {
  const fail = (why) => { throw new SafetensorsError(`${what}: ${why}`); };
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 8) fail("not a safetensors file (too short)");
  const n = Number(new DataView(buffer).getBigUint64(0, true));
  if (n < 2 || 8 + n > buffer.byteLength) fail(`header length ${n} does not fit in ${buffer.byteLength} bytes`);
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
  } catch {
    fail("the header is not JSON");
  }
  const body = buffer.byteLength - 8 - n, out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") { out.__metadata__ = t; continue; }
    const type = TYPES[t && t.dtype];
    if (!type) fail(`unsupported dtype ${t && t.dtype} for ${name}`);
    const [s, e] = t.data_offsets || [];
    const count = (t.shape || []).reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s <= e && e <= body) || (e - s) !== count * type[1]) {
      fail(`${name}: bytes ${s}-${e} do not hold a ${t.dtype} tensor of shape [${t.shape}] in ${body} bytes`);
    }
    const bytes = buffer.slice(8 + n + s, 8 + n + e);
    out[name] = { shape: t.shape, dtype: t.dtype, data: type[0] ? new type[0](bytes) : halfToFloat(new Uint16Array(bytes)) };
  }
  return out;
}

// { name: { dtype: "F32" | "U8" | "I32", shape, data } } -> the bytes of a safetensors file (tensors in the order
// given, each aligned to 8 bytes by the header's padding, as the Python writer does). The page writes the codes of a
// model it encoded itself (hubmodel.js) in the same format as the host's.
export function writeSafetensors(tensors) {
  const header = {}, parts = [];
  let at = 0;
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    const type = TYPES[dtype];
    if (!type || !type[0] || !(data instanceof type[0])) throw new SafetensorsError(`${name}: cannot write ${dtype} from ${data?.constructor?.name}`);
    if (shape.reduce((a, b) => a * b, 1) !== data.length) throw new SafetensorsError(`${name}: shape [${shape}] does not hold ${data.length} values`);
    header[name] = { dtype, shape, data_offsets: [at, at + data.byteLength] };
    parts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    at += data.byteLength;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(raw.length + (8 - (raw.length % 8)) % 8).fill(0x20);  // spaces: the data starts 8-byte aligned
  head.set(raw);
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let o = 8 + head.length;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
