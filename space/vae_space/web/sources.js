// Where a view's input comes from: a test digit (by class, by stroke weight within the class, or at random, with a
// seed), or the drawing made on the Draw tab; one <select> of them, and the pick itself.

import { loadSafetensors } from "./data.js";
import { getDrawing, onDrawing } from "./drawing.js";
import { pickTestDigit } from "./numbers.js";
import { el } from "./ui.js";

export const MY_DRAWING = "my drawing";
export const SOURCES = ["random test digit", ...Array.from({ length: 10 }, (_, d) => `test digit ${d}`),
  ...["thick", "thin"].flatMap((w) => Array.from({ length: 10 }, (_, d) => `${w} test digit ${d}`))];

// A <select> of the sources ("my drawing" enabled once a drawing exists); onDrawn runs when the drawing changes
// while it is chosen.
export function sourceSelect(label, value, onDrawn) {
  const s = el("select", { "aria-label": label, class: "vd-select" });
  for (const v of [MY_DRAWING, ...SOURCES]) s.append(el("option", { value: v, text: v }));
  s.value = value;
  const offer = () => { s.options[0].disabled = !getDrawing(); return !s.options[0].disabled; };
  offer();
  onDrawing(() => { if (offer() && s.value === MY_DRAWING) onDrawn(); });
  return s;
}

// The test digits (images n × 784 bytes, labels, MNIST indices), fetched once per page.
export async function loadTestDigits(m) {
  const t = await loadSafetensors(m.test.url, 0);
  return { images: t.images.data, labels: t.labels.data, index: t.index.data };
}

// One input: {x: 784 values in [0, 1], what: its description, i: its test-digit index (none for a drawing)}
export function pickInput(digits, source, seed, slot = 0) {
  if (source === MY_DRAWING) {
    const x = getDrawing();
    if (!x) throw new Error("draw a digit on the Draw & encode tab first");
    return { x, what: "your drawing" };
  }
  const { images, labels, index } = digits;
  const i = pickTestDigit(images, labels, source, seed, slot);
  return { x: Float32Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => v / 255), what: `test digit #${index[i]} (a ${labels[i]})`, i };
}
