import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { colourShapeChange, controls } from "../vae_space/web/numbers.js";

// Python's color_shape_change on these frames, written by tests/test_colour_parity.py
const fixture = JSON.parse(readFileSync(new URL("./colour_measure.json", import.meta.url), "utf8"));
const frames = (c) => Float32Array.from(Buffer.from(c.bytes, "base64"), (v) => v / 255);

test("the colour and shape change of each sweep are Python's", () => {
  for (const c of fixture.cases) {
    const m = colourShapeChange(frames(c), c.frames);
    assert.ok(Math.abs(m.colour - c.colour) < 1e-6, `${c.name}: colour ${m.colour} vs ${c.colour}`);
    assert.ok(Math.abs(m.shape - c.shape) < 1e-6, `${c.name}: shape ${m.shape} vs ${c.shape}`);
  }
});

test("the verdicts: colour alone, shape alone, both, and neither", () => {
  const t = fixture.thresholds, verdict = (name) => controls(colourShapeChange(frames(fixture.cases.find((c) => c.name === name)),
    fixture.cases.find((c) => c.name === name).frames), t);
  assert.equal(verdict("a 7 in four hues"), "colour");
  assert.equal(verdict("grey 7s and 1s"), "shape");
  assert.equal(verdict("color-vae z1"), "colour and shape");
  assert.equal(verdict("no ink"), "little");
  assert.equal(verdict("a dim 3 brightening"), "little");  // brightness is neither colour nor shape
  assert.equal(controls({ colour: t.colour, shape: t.shape }, t), "little");  // above the thresholds, not at them
});
