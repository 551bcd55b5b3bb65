import assert from "node:assert/strict";
import { test } from "node:test";

import "../vae_space/web/preprocess.js";

const P = globalThis.VAEPreprocess;

// RGBA pixels of a w × h canvas, black ink where ink(x, y) is true, transparent elsewhere (as the pad paints)
function canvas(w, h, ink) {
  const d = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (ink(x, y)) d[4 * (y * w + x) + 3] = 255;
  return d;
}

test("a stroke becomes an MNIST-style 28×28 input: in [0, 1], inside the 20×20 box, centred by mass", () => {
  const w = 280, h = 280;
  const x = P.toMnist(canvas(w, h, (px, py) => Math.abs(px - 140) < 12 && py > 40 && py < 240), w, h);  // a "1"
  assert.equal(x.length, 784);
  assert.ok(x.every((v) => v >= 0 && v <= 1));
  let m = 0, cy = 0, cx = 0, rows = new Set();
  for (let i = 0; i < 784; i++) if (x[i] > 0) { m += x[i]; cy += x[i] * Math.floor(i / 28); cx += x[i] * (i % 28); rows.add(Math.floor(i / 28)); }
  assert.ok(Math.abs(cy / m - 14) < 1 && Math.abs(cx / m - 14) < 1, `centre (${cy / m}, ${cx / m})`);
  assert.ok(rows.size >= 19 && rows.size <= 21, "the tall side fills the 20-pixel box");
});

test("what is not one digit is refused with the Python messages", () => {
  assert.throws(() => P.toMnist(canvas(100, 100, () => false), 100, 100), (e) => e instanceof P.DrawingError && /empty/.test(e.message));
  assert.throws(() => P.toMnist(canvas(100, 100, () => true), 100, 100), (e) => e instanceof P.DrawingError && /all ink/.test(e.message));
});
