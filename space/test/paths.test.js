import assert from "node:assert/strict";
import { test } from "node:test";

import { lerp, pickTestDigit, slerp } from "../vae_space/web/numbers.js";

test("both paths start at A and end at B", () => {
  const a = [1, 2, -0.5], b = [-1, 0.3, 2];
  for (const f of [lerp, slerp]) {
    f(a, b, 0).forEach((v, i) => assert.ok(Math.abs(v - a[i]) < 1e-12));
    f(a, b, 1).forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-12));
  }
});

test("slerp keeps the norm between two codes of equal length, and is linear for parallel codes", () => {
  const a = [3, 0], b = [0, 3], mid = slerp(a, b, 0.5);
  assert.ok(Math.abs(Math.hypot(...mid) - 3) < 1e-12 && Math.abs(mid[0] - mid[1]) < 1e-12);
  assert.deepEqual(slerp([1, 1], [2, 2], 0.25), lerp([1, 1], [2, 2], 0.25));
});

test("test digits are picked by class, by ink within the class, and by seed", () => {
  // 40 digits: labels 0..3 in turn, ink growing with the index
  const n = 40, labels = Uint8Array.from({ length: n }, (_, i) => i % 4), images = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) images.fill(1, i * 784, i * 784 + i + 1);
  for (let s = 0; s < 20; s++) {
    assert.equal(labels[pickTestDigit(images, labels, "test digit 2", s)], 2);
    assert.equal(pickTestDigit(images, labels, "thick test digit 3", s), 39, "the most ink of the 3s");
    assert.equal(pickTestDigit(images, labels, "thin test digit 1", s), 1, "the least ink of the 1s");
  }
  assert.equal(pickTestDigit(images, labels, "random test digit", 7), pickTestDigit(images, labels, "random test digit", 7));
  const picks = new Set(Array.from({ length: 20 }, (_, s) => pickTestDigit(images, labels, "random test digit", s)));
  assert.ok(picks.size > 5, "seeds pick different digits");
  assert.throws(() => pickTestDigit(images, labels, "test digit 12", 0), /unknown source/);
});
