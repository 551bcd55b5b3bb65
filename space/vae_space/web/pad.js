// The drawing pad: one canvas with a pen, an eraser, undo and clear, for mouse, pen and touch (pointer events,
// coalesced samples kept). Every view that asks for a drawing uses this pad, and the last drawing made on any of
// them is kept in `drawings`, so another view can offer it ("my drawing").
//
// The pad turns its pixels into the MNIST-style 28×28 input with preprocess.js (the rules of vae_hub/data/preprocess.py).

import "./preprocess.js";
import { el } from "./ui.js";

// The last drawing made on any pad of the page, and who wants to hear of a new one.
export const drawings = {
  strokes: null,  // [{tool, width, points: [[x, y] in pad pixels]}], or null
  side: 0,
  listeners: new Set(),
  set(strokes, side) {
    this.strokes = strokes && strokes.length ? strokes.map((s) => ({ ...s, points: s.points.map((p) => [...p]) })) : null;
    this.side = side;
    for (const f of this.listeners) f(this.strokes);
  },
};

export class Pad {
  // side: drawing surface in pixels; pen: pen width on it; onChange(t, final): the drawing changed (t: the oldest
  // pointer event's timeStamp; final: a stroke ended or the drawing was replaced); onClear(): it was cleared.
  constructor({ side, pen, id = null, onChange = () => {}, onClear = () => {} }) {
    this.side = side;
    this.pen = pen;
    this.onChange = onChange;
    this.onClear = onClear;
    this.strokes = [];
    this.tool = "pen";
    this.inStroke = false;
    this.canvas = el("canvas", { width: side, height: side, class: "vd-canvas", "aria-label": "Drawing pad: draw one digit" });
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    const tool = (name, label, title) => el("button", { type: "button", "data-tool": name, class: "vd-btn", title, text: label });
    const action = (name, label, title) => el("button", { type: "button", "data-action": name, class: "vd-btn", title, text: label });
    this.buttons = [tool("pen", "✎ Pen", "Draw"), tool("eraser", "⌫ Eraser", "Erase"),
      action("undo", "↶ Undo", "Undo the last stroke"), action("clear", "✕ Clear", "Clear the pad")];
    this.element = el("div", { id, class: "vd-pad" }, el("div", { class: "vd-toolbar" }, ...this.buttons),
      el("div", { class: "vd-paper" }, this.canvas));
    for (const b of this.buttons) b.addEventListener("click", () => this.onButton(b));
    this.bindPointer();
    this.setTool("pen");
  }

  setTool(name) {
    this.tool = name;
    for (const b of this.buttons) if (b.dataset.tool) b.classList.toggle("vd-on", b.dataset.tool === name);
  }

  onButton(b) {
    if (b.dataset.tool) return this.setTool(b.dataset.tool);
    if (b.dataset.action === "undo") { this.strokes.pop(); this.redraw(); this.changed(performance.now(), true); }
    if (b.dataset.action === "clear") this.clear();
  }

  clear() {
    this.strokes = [];
    this.redraw();
    drawings.set(null, this.side);
    this.onClear();
  }

  changed(t, final) {
    if (final) drawings.set(this.strokes, this.side);
    if (!this.strokes.length) return this.onClear();
    this.onChange(t, final);
  }

  bindPointer() {
    const c = this.canvas;
    c.style.touchAction = "none";  // a finger draws instead of scrolling the page
    const pos = (e) => {
      const b = c.getBoundingClientRect();
      return [(e.clientX - b.left) * (c.width / b.width), (e.clientY - b.top) * (c.height / b.height)];
    };
    let active = null;
    c.addEventListener("pointerdown", (e) => {
      if (e.button !== undefined && e.button > 0) return;
      e.preventDefault();
      c.setPointerCapture?.(e.pointerId);
      const eraser = this.tool === "eraser" || e.button === 5;  // the pen's eraser end
      active = { tool: eraser ? "eraser" : "pen", width: eraser ? this.pen * 2.5 : this.pen, points: [pos(e)] };
      this.strokes.push(active);
      this.inStroke = true;
      this.paintStroke(active, 0);
      this.changed(e.timeStamp, false);
    });
    c.addEventListener("pointermove", (e) => {
      if (!active) return;
      e.preventDefault();
      const evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      const from = active.points.length - 1;
      for (const ev of (evs.length ? evs : [e])) active.points.push(pos(ev));
      this.paintStroke(active, from);
      this.changed(e.timeStamp, false);
    });
    const end = (e) => {
      if (!active) return;
      active = null;
      this.inStroke = false;
      this.changed(e.timeStamp, true);
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }

  paintStroke(s, from, g = this.ctx) {
    g.save();
    g.globalCompositeOperation = s.tool === "eraser" ? "destination-out" : "source-over";
    g.strokeStyle = g.fillStyle = "#000";
    g.lineWidth = s.width;
    g.lineCap = g.lineJoin = "round";
    const p = s.points;
    if (p.length === 1 || from >= p.length - 1) {
      const [x, y] = p[p.length - 1];
      g.beginPath();
      g.arc(x, y, s.width / 2, 0, 2 * Math.PI);
      g.fill();
    } else {
      g.beginPath();
      g.moveTo(...p[Math.max(0, from)]);
      for (let i = Math.max(0, from) + 1; i < p.length; i++) g.lineTo(...p[i]);
      g.stroke();
    }
    g.restore();
  }

  redraw() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    for (const s of this.strokes) this.paintStroke(s, 0);
  }

  // Replace the drawing: strokes in unit coordinates (an example digit), or another pad's strokes in its pixels.
  setStrokes(strokes, side = 1) {
    const k = this.side / side;
    this.strokes = strokes.map((s) => ({ tool: s.tool || "pen", width: s.width ? s.width * k : this.pen,
      points: (s.points || s).map(([x, y]) => [x * k, y * k]) }));
    this.redraw();
    this.changed(performance.now(), true);
  }

  // The drawing as the model sees it: 784 values in [0, 1]; throws VAEPreprocess.DrawingError for what is not one digit.
  pixels(g = this.ctx) {
    const img = g.getImageData(0, 0, this.side, this.side);
    return globalThis.VAEPreprocess.toMnist(img.data, img.width, img.height);
  }

  // An example digit drawn off screen, as the model would see it (warm-up runs).
  examplePixels(strokes) {
    const c = el("canvas", { width: this.side, height: this.side });
    const g = c.getContext("2d", { willReadFrequently: true });
    for (const pts of strokes) this.paintStroke({ tool: "pen", width: this.pen, points: pts.map(([x, y]) => [x * this.side, y * this.side]) }, 0, g);
    return this.pixels(g);
  }
}
