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

// The test digits' pictures, fetched a class at a time (the manifest's shards: the digits labelled c, in the
// file's order) into one n × 784 array: the Draw view's neighbour tiles need a class or two, not all ten.
const pictures = new Map();  // labels URL -> {images, labels, index, classes: Map(c -> Promise)}
async function testSet(m) {
  if (!pictures.has(m.test.labels)) {
    const job = loadSafetensors(m.test.labels, -1).then((t) => ({ labels: t.labels.data, index: t.index.data,
      images: new Uint8Array(t.labels.data.length * 784), classes: new Map() }));
    job.catch(() => pictures.delete(m.test.labels));
    pictures.set(m.test.labels, job);
  }
  return pictures.get(m.test.labels);
}

// The test set with the pictures of ``classes`` in (default: all ten); rank: their place among the downloads.
export async function testPictures(m, classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], rank = 0) {
  const set = await testSet(m);
  await Promise.all([...new Set(classes)].map((c) => {
    if (!set.classes.has(c)) {
      const job = loadSafetensors(m.test.shards[c], rank).then((t) => {
        const src = t.images.data;
        let r = 0;
        set.labels.forEach((l, i) => { if (l === c) { set.images.set(src.subarray(r * 784, (r + 1) * 784), i * 784); r += 1; } });
      });
      job.catch(() => set.classes.delete(c));
      set.classes.set(c, job);
    }
    return set.classes.get(c);
  }));
  return set;
}

// The test digits (images n × 784 bytes, labels, MNIST indices), fetched once per page.
export async function loadTestDigits(m) {
  const { images, labels, index } = await testPictures(m);
  return { images, labels, index };
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
