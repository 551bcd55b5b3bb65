// Interpolate, in the page: two endpoints (test digits picked by class, by stroke weight or at random with a seed,
// or the drawing made on the Draw tab), encoded by the model; the linear and the spherical path between their
// codes decoded as a strip; both paths on one 2-D map, zoomed to the path when it is short (for models with more
// dimensions, the 2-D model's encoding of the decoded points); and a scrubber that decodes the point at t.

import { readyModels, startView } from "./backend.js";
import { absolute, loadCodes } from "./data.js";
import { lerp, slerp } from "./numbers.js";
import { INK, LatentMap, MUTED, SIDE, Surface, drawDigit, font, putDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { SOURCES, loadTestDigits, pickInput, sourceSelect } from "./sources.js";
import { addModel, el, modelSelect, seedControl, term } from "./ui.js";

const BLUE = "rgb(37, 99, 235)";
const ORANGE = "rgb(234, 88, 12)";
const PATH_POINTS = 25;
const LABEL_W = 92;  // the strip's row labels ("spherical" at 13 px bold)

class InterpolateView {
  constructor(root, manifest) {
    this.m = manifest;
    this.root = root;
    Object.assign(this, readyModels(manifest));
    this.seed = 0;
    this.frames = 10;
    this.t = 0.5;
    this.path = null;  // {model, z: [za, zb], strip, paths, map}
    this.loop = new Latest(() => this.run(), (err) => { this.note.textContent = `Could not interpolate: ${err.message || err}`; });
    this.scrub = new Latest(() => this.paintT(), (err) => { this.note.textContent = `Could not decode: ${err.message || err}`; });
    this.state = window.vaeInterpolate = { ready: false, decodes: 0, model: null, z: null, picks: null, t: null, app: this };
    this.build();
  }

  get busy() { return this.loop.busy || this.scrub.busy; }

  addModel = addModel;  // a model loaded from the Hub after the view opened (ui.addModel)

  build() {
    const choice = this.choice = modelSelect(this.models, this.model);
    this.select = choice.select;
    this.srcA = sourceSelect("Endpoint A", "test digit 3", () => this.loop.request());
    this.srcB = sourceSelect("Endpoint B", "test digit 8", () => this.loop.request());
    // the model and the seed feed both the paths and the arithmetic below: set first, then both run again
    const both = () => { this.loop.request(); this.more.request(); };
    const seed = seedControl(this.seed, (v) => { this.seed = v; both(); }, "New picks", "pick");
    this.frameIn = el("input", { type: "range", min: "3", max: "24", step: "1", value: String(this.frames), "aria-label": "Frames" });
    this.frameLabel = el("span", { class: "vx-mono", text: String(this.frames) });
    this.slider = el("input", { type: "range", min: "0", max: "1", step: "0.01", value: String(this.t), "aria-label": "t: from A (0) to B (1)", class: "vi-slider" });
    this.tLabel = el("span", { class: "vx-mono" });
    const digit = (label) => el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": label });
    this.ends = [digit("Endpoint A"), digit("Endpoint B")];
    this.endCaps = [el("figcaption"), el("figcaption")];
    this.lin = digit("Linear path at t");
    this.sph = digit("Spherical path at t");
    this.stripCanvas = el("canvas", { class: "vi-strip", role: "img", "aria-label": "The two paths, frame by frame" });
    this.strip = new Surface(this.stripCanvas, (g, w) => this.paintStrip(g, w), (w) => this.stripHeight(w));
    this.mapCanvas = el("canvas", { class: "vx-map", role: "img", "aria-label": "The two paths on the 2-D latent map" });
    this.map = new Surface(this.mapCanvas, (g, w, h) => this.paintMap(g, w, h), (w) => Math.round(w * 1.03));
    this.mapCaption = el("figcaption");
    this.note = el("div", { class: "vd-notice", role: "status" });
    const fig = (c, caption) => el("figure", { class: "vd-fig vi-digit" }, el("div", { class: "vd-frame" }, c), caption);
    const more = this.m.more?.find((t) => t.label === "Interpolate");
    this.root.innerHTML = "";
    this.root.append(
      el("div", { class: "vd-row" }, choice.box, el("label", {}, "A ", this.srcA), el("label", {}, "B ", this.srcB),
        ...seed, el("label", {}, "Frames ", this.frameIn, " ", this.frameLabel)),
      el("div", { class: "vi-ends" }, fig(this.ends[0], this.endCaps[0]), fig(this.ends[1], this.endCaps[1]),
        el("p", { class: "vh-note" }, "Two ways from A's code to B's: ", term("linear", "(1 − t)·z_A + t·z_B: a straight line "
          + "between the codes. Its middle passes closer to the origin than either end, where a Gaussian prior puts "
          + "codes of small norm"), " and ", term("spherical", "slerp: along the arc between the codes, keeping their "
          + "norm; in high dimensions most of a Gaussian's mass lies near a shell, which the arc stays on"), ".")),
      el("figure", { class: "vd-fig" }, this.stripCanvas, el("figcaption", { text: "Top: linear; bottom: spherical; A on the left, B on the right." })),
      el("div", { class: "vi-panel" },
        el("div", { class: "vd-col" },
          el("label", { class: "vi-row" }, "A ", this.slider, " B ", this.tLabel),
          el("div", { class: "vd-pair" }, fig(this.lin, el("figcaption", { text: "linear at t" })),
            fig(this.sph, el("figcaption", { text: "spherical at t" }))),
          this.note,
          more ? el("p", { class: "vh-note" }, "The strip as a picture and an animated GIF to download: ",
            el("a", { href: more.href, text: "on Gradio's page" }), ".") : null),
        el("figure", { class: "vd-fig" }, this.mapCanvas, this.mapCaption)),
      this.buildMore());
    const rerun = () => this.loop.request();
    for (const s of [this.srcA, this.srcB]) s.addEventListener("change", rerun);
    this.select.addEventListener("change", () => { this.model = this.select.value; both(); });
    this.frameIn.addEventListener("input", () => { this.frames = +this.frameIn.value; this.frameLabel.textContent = String(this.frames); rerun(); });
    this.slider.addEventListener("input", () => { this.t = +this.slider.value; this.scrub.request(); });
  }

  // Latent arithmetic (z(A) − z(B) + z(C), with the chosen model) and style transfer with the class-conditional model
  buildMore() {
    const rerun = () => this.more.request();
    this.more = new Latest(() => this.runMore(), (err) => { this.moreNote.textContent = `Could not compute: ${err.message || err}`; });
    this.arith = [["A", "thick test digit 7"], ["B", "thin test digit 7"], ["C", "thin test digit 2"]]
      .map(([slot, v]) => sourceSelect(`Arithmetic ${slot}`, v, rerun));
    this.arithRow = el("div", { class: "vi-arith" });
    const style = Object.entries(this.m.conditional || {}).find(([, s]) => s.ready);
    this.styleSpec = style ? { name: style[0], ...style[1] } : null;
    // the label comes with a test digit of a chosen class: not "my drawing", not a random one
    this.styleSrc = el("select", { "aria-label": "Style input", class: "vd-select" });
    for (const v of SOURCES.filter((v) => v !== "random test digit")) this.styleSrc.append(el("option", { value: v, text: v }));
    this.styleSrc.value = "thick test digit 7";
    this.styleRow = el("div", { class: "vi-style" });
    this.moreNote = el("div", { class: "vd-notice", role: "status" });
    for (const s of this.arith) s.addEventListener("change", rerun);
    this.styleSrc.addEventListener("change", rerun);
    return el("div", { class: "vi-more" },
      el("h3", { class: "vg-h" }, "Latent arithmetic: decode z(A) − z(B) + z(C) ", term("?", "A thick 7 minus a thin 7 is "
        + "roughly \"thickness\"; added to a thin 2 it should give a bold 2. Unconditional models do not hold style apart "
        + "from the digit's identity, so the 7's shape often comes along: compare with the style transfer below.")),
      el("div", { class: "vd-row" }, ...this.arith.map((s, i) => el("label", {}, `${"ABC"[i]} `, s))), this.arithRow,
      this.styleSpec ? el("h3", { class: "vg-h" }, `Style transfer with ${this.styleSpec.name} `, term("?", "The class-conditional "
        + "model is given the label, so its code holds only the style. Encode a test digit with its own label, then decode "
        + "the same code with every label: stroke weight and slant carry over.")) : null,
      this.styleSpec ? el("div", { class: "vd-row" }, el("label", {}, "Input ", this.styleSrc)) : null,
      this.styleSpec ? this.styleRow : null, this.moreNote);
  }

  async runMore() {
    const model = this.model, k = this.models[model].z_dim;
    const picks = this.arith.map((s, i) => pickInput(this.digits, s.value, this.seed, 2 + i));
    const x = new Float32Array(3 * 784);
    picks.forEach((p, i) => x.set(p.x, i * 784));
    const { mean } = await this.backend.encode(model, x, 3);
    const z = [0, 1, 2].map((i) => Array.from(mean.subarray(i * k, (i + 1) * k)));
    const result = z[0].map((v, j) => v - z[1][j] + z[2][j]);
    const imgs = await this.backend.decode(model, Float32Array.from([...z.flat(), ...result]), 4);
    const tile = (v, off, label) => {
      const c = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": label });
      putDigit(c, v, off);
      return el("figure", { class: "vd-fig vi-tile" }, el("div", { class: "vd-frame" }, c), el("figcaption", { text: label }));
    };
    this.arithRow.replaceChildren(tile(imgs, 0, "A"), el("span", { class: "vi-op", text: "−" }), tile(imgs, 784, "B"),
      el("span", { class: "vi-op", text: "+" }), tile(imgs, 1568, "C"), el("span", { class: "vi-op", text: "=" }),
      tile(imgs, 2352, "A − B + C"));
    this.state.arithmetic = { model, z, result, image: Array.from(imgs.subarray(2352)) };
    if (!this.styleSpec) return;
    const p = pickInput(this.digits, this.styleSrc.value, this.seed, 5), label = this.digits.labels[p.i];
    const code = await this.backend.encodeLabelled(this.styleSpec, p.x, [label], 1);
    const n = this.styleSpec.n_classes, codes = new Float32Array(n * code.length);
    for (let d = 0; d < n; d++) codes.set(code, d * code.length);
    const out = await this.backend.decodeLabelled(this.styleSpec, codes, Array.from({ length: n }, (_, d) => d), n);
    this.styleRow.replaceChildren(tile(p.x, 0, `input (a ${label})`),
      ...Array.from({ length: n }, (_, d) => tile(out, d * 784, `as a ${d}`)));
    this.state.style = { index: p.i, label, code: Array.from(code), images: Array.from(out) };
  }

  // ---------------------------------------------------------------- computing
  async run() {
    const model = this.model, k = this.models[model].z_dim, f = this.frames;
    const a = pickInput(this.digits, this.srcA.value, this.seed, 0), b = pickInput(this.digits, this.srcB.value, this.seed, 1);
    const x = new Float32Array(2 * 784);
    x.set(a.x); x.set(b.x, 784);
    const { mean } = await this.backend.encode(model, x, 2);
    const za = Array.from(mean.subarray(0, k)), zb = Array.from(mean.subarray(k, 2 * k));
    const ts = Array.from({ length: f }, (_, i) => i / (f - 1));
    const codes = [...ts.map((t) => lerp(za, zb, t)), ...ts.map((t) => slerp(za, zb, t))].flat();
    const strip = await this.backend.decode(model, Float32Array.from(codes), 2 * f);
    const mapName = k === 2 ? model : this.m.map_model;
    const paths = await this.mapPaths(model, mapName, za, zb);
    this.path = { model, z: [za, zb], strip, frames: f, mapName, paths, map: await this.mapFor(mapName, paths) };
    this.state.decodes += 1;
    Object.assign(this.state, { model, z: { a: za, b: zb }, picks: [a.i ?? null, b.i ?? null], strip: Array.from(strip) });
    putDigit(this.ends[0], a.x);
    putDigit(this.ends[1], b.x);
    this.endCaps[0].textContent = `A: ${a.what}`;
    this.endCaps[1].textContent = `B: ${b.what}`;
    this.mapCaption.textContent = mapName === model
      ? `${model}'s map of the test digits: blue the linear path, orange the spherical one.`
      : `${mapName}'s map: where ${mapName} encodes the decoded points of ${model}'s paths (blue linear, orange spherical).`;
    this.strip.paint();
    await this.paintT();
  }

  // the two paths as points on the map model's plane, PATH_POINTS each
  async mapPaths(model, mapName, za, zb) {
    const n = PATH_POINTS, ts = Array.from({ length: n }, (_, i) => i / (n - 1));
    const lin = ts.map((t) => lerp(za, zb, t)), sph = ts.map((t) => slerp(za, zb, t));
    if (mapName === model) return [lin, sph];
    const pts = await this.onMap(model, [...lin, ...sph].flat(), 2 * n);
    return [pts.slice(0, n), pts.slice(n)];
  }

  async onMap(model, codes, n) {
    const imgs = await this.backend.decode(model, Float32Array.from(codes), n);
    const { mean } = await this.backend.encode(this.m.map_model, imgs, n);
    return Array.from({ length: n }, (_, i) => [mean[2 * i], mean[2 * i + 1]]);
  }

  // the map model's test codes, zoomed so a short path is not hidden under its end markers
  async mapFor(mapName, paths) {
    const codes = await loadCodes(this.m.models[mapName].codes, 1);
    const full = new LatentMap(codes.mu, this.digits.labels, `${mapName}: ${codes.n.toLocaleString("en")} test digits`);
    const pts = paths.flat(), xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
    if (span > full.lim * 0.8) return full;
    const lim = Math.max(span * 0.8, 0.5), center = [(Math.max(...xs) + Math.min(...xs)) / 2, (Math.max(...ys) + Math.min(...ys)) / 2];
    return new LatentMap(codes.mu, this.digits.labels, `${mapName}, zoomed to the path`, lim, center);
  }

  async paintT() {
    const p = this.path;
    if (!p) return;
    const t = this.t, zl = lerp(p.z[0], p.z[1], t), zs = slerp(p.z[0], p.z[1], t);
    const imgs = await this.backend.decode(p.model, Float32Array.from([...zl, ...zs]), 2);
    putDigit(this.lin, imgs.subarray(0, SIDE * SIDE));
    putDigit(this.sph, imgs.subarray(SIDE * SIDE));
    this.marks = p.mapName === p.model ? [zl, zs] : await this.onMap(p.model, [...zl, ...zs], 2);
    this.map.paint();
    this.tLabel.textContent = `t = ${t.toFixed(2)}`;
    Object.assign(this.state, { t, at: { linear: zl, spherical: zs, images: Array.from(imgs) } });
  }

  // ---------------------------------------------------------------- painting
  // the strip's layout: row labels beside the rows on a wide screen, above them on a phone (the tiles get the width)
  stripLayout(w) {
    const f = this.path?.frames || this.frames, above = w < 560;
    const label = above ? 0 : LABEL_W, head = above ? 20 : 0, tile = Math.floor((w - label) / f);
    return { f, label, head, tile, row: head + tile + 6 };
  }

  stripHeight(w) { return 2 * this.stripLayout(w).row; }

  paintStrip(g, w) {
    const p = this.path;
    if (!p) return;
    const L = this.stripLayout(w);
    g.font = font(13, "600"); g.fillStyle = MUTED;
    ["linear", "spherical"].forEach((name, row) => {
      const y = row * L.row;
      if (L.head) { g.textAlign = "left"; g.textBaseline = "top"; g.fillText(name, 0, y + 2); }
      else { g.textAlign = "right"; g.textBaseline = "middle"; g.fillText(name, L.label - 8, y + L.tile / 2); }
      for (let i = 0; i < p.frames; i++) {
        drawDigit(g, p.strip, L.label + i * L.tile, y + L.head, L.tile - 2, (row * p.frames + i) * SIDE * SIDE);
      }
    });
  }

  paintMap(g, w, h) {
    const p = this.path;
    if (!p) return;
    const L = p.map.paint(g, w, h);
    g.save();
    g.beginPath(); g.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); g.clip();
    [BLUE, ORANGE].forEach((color, j) => {
      g.strokeStyle = color; g.lineWidth = 3;
      g.beginPath();
      p.paths[j].forEach((z, i) => (i ? g.lineTo(...p.map.toPx(L, z)) : g.moveTo(...p.map.toPx(L, z))));
      g.stroke();
    });
    g.font = font(15, "700"); g.fillStyle = INK;
    [p.paths[0][0], p.paths[0][p.paths[0].length - 1]].forEach((z, i) => {
      const [x, y] = p.map.toPx(L, z);
      g.beginPath(); g.arc(x, y, 5, 0, 2 * Math.PI); g.fill();
      g.lineWidth = 3; g.strokeStyle = "#fff"; g.strokeText("AB"[i], x + 9, y - 8); g.fillText("AB"[i], x + 9, y - 8);
    });
    (this.marks || []).forEach((z, j) => {
      const [x, y] = p.map.toPx(L, z);
      g.beginPath(); g.arc(x, y, 7, 0, 2 * Math.PI);
      g.fillStyle = "#fff"; g.fill();
      g.lineWidth = 3; g.strokeStyle = j ? ORANGE : BLUE; g.stroke();
    });
    g.restore();
  }

  async start() {
    this.digits = await loadTestDigits(this.m);
    await startView(this, () => Promise.all([this.loop.request(), this.more.request()]));
  }
}

export async function mount(element, manifest) {
  absolute(manifest);
  const view = new InterpolateView(element, manifest);
  if (!Object.keys(view.models).length) { element.textContent = "No model is available here."; return view; }
  await view.start();
  return view;
}
