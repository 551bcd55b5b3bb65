// The visitor's latest drawing, shared by the views of one page: the Draw view sets it (the 28×28 input its model
// sees, 784 values in [0, 1]), the others offer it as an input ("my drawing") and hear when it changes.

let current = null;
const listeners = new Set();

export function setDrawing(x) {
  current = x ? Float32Array.from(x) : null;
  for (const fn of listeners) fn(current);
}

export function getDrawing() { return current; }

export function onDrawing(fn) { listeners.add(fn); return () => listeners.delete(fn); }
