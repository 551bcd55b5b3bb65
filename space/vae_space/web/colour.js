// The Generate view's colour section: what each variable of a coloured-MNIST model's code controls. One of the
// test digits of Gradio's /color_codes (the same seed shows the same digit, in the same colour) comes with its code
// (the host ran the model's encoder over the 64 digits: browser.colour_codes_url); each continuous dimension is
// swept and each categorical variable set to each of its values around that code, all decoded in the page in one
// batch; each sweep is measured as the server measures it (numbers.colourShapeChange) and the table says what it
// controls, with the measures explained beside it, not in a hover.
//
// Nothing is downloaded until the section comes into view or is used: a model's decoder (about 0.8 MB), its codes
// and the test digits (a few kB, 50 kB) are not part of a first visit, nor of opening Generate for its samples.

import { loadSafetensors } from "./data.js";
import { colourShapeChange, controls, klPerDim } from "./numbers.js";
import { INK, Surface, drawColourDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { el, modelSelect } from "./ui.js";

const P = 784, GAP = 3, MIN_TILE = 30, MAX_TILE = 64;
const fmt = (v) => v.toFixed(3);
const minus = (v) => String(v).replace("-", "−");

// n tiles across a width w: one row when each gets MIN_TILE, else as few balanced rows as keep them that big.
export function tileLayout(n, w, maxTile = MAX_TILE) {
  let cols = n;
  if ((w - GAP * (n - 1)) / n < MIN_TILE) {
    const rows = Math.ceil(n / Math.max(1, Math.floor((w + GAP) / (MIN_TILE + GAP))));
    cols = Math.ceil(n / rows);
  }
  const tile = Math.max(8, Math.min(maxTile, Math.floor((w - GAP * (cols - 1)) / cols)));
  return { cols, tile, height: Math.ceil(n / cols) * (tile + GAP) - GAP };
}

// n coloured digits (3 × 784 each, from offset) painted as tiles across a canvas, at most maxTile CSS px each
function tiles(canvas, images, offset, n, maxTile = MAX_TILE) {
  const surface = new Surface(canvas, (g, w) => {
    const L = tileLayout(n, w, maxTile);
    for (let i = 0; i < n; i++) {
      const x = (i % L.cols) * (L.tile + GAP), y = Math.floor(i / L.cols) * (L.tile + GAP);
      g.fillStyle = INK;
      g.fillRect(x, y, L.tile, L.tile);
      drawColourDigit(g, images, x, y, L.tile, offset + i * 3 * P);
    }
  }, (w) => tileLayout(n, w, maxTile).height);
  surface.paint();
  return surface;
}

// The code the sweeps start from (the posterior's mode, as the server's post.mode): the continuous means, then
// each categorical variable one-hot at its most likely value.
export function modeCode(spec, enc) {
  const z = new Float32Array(spec.latent_size);
  if (spec.z_dim) z.set(enc.mean.subarray(0, spec.z_dim));
  for (let v = 0; v < spec.n_cat; v++) {
    let best = 0;
    for (let k = 1; k < spec.k_cat; k++) if (enc.logits[v * spec.k_cat + k] > enc.logits[v * spec.k_cat + best]) best = k;
    z[spec.z_dim + v * spec.k_cat + best] = 1;
  }
  return z;
}

// The variables swept around code z, as /color_codes sweeps them: the top_dims continuous dimensions with the most
// KL for this digit, each from −range to range; each categorical variable set to each of spec.values.
export function sweeps(spec, sweep, z, mean, logSigma) {
  const rows = [], L = spec.latent_size;
  if (spec.z_dim) {
    const kl = klPerDim(mean, logSigma);
    const dims = kl.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, sweep.top_dims);
    for (const [v, dim] of dims) {
      const S = sweep.steps, codes = new Float32Array(S * L);
      for (let s = 0; s < S; s++) {
        codes.set(z, s * L);
        codes[s * L + dim] = -sweep.range + (2 * sweep.range * s) / (S - 1);
      }
      rows.push({ name: `z${dim + 1}`, kind: `continuous (KL ${v.toFixed(1)})`, continuous: true, codes, S,
        range: `from ${minus(-sweep.range)} to ${sweep.range}` });
    }
  }
  for (let v = 0; v < spec.n_cat; v++) {
    const S = spec.values.length, codes = new Float32Array(S * L), start = spec.z_dim + v * spec.k_cat;
    spec.values.forEach((k, s) => {
      codes.set(z, s * L);
      codes.fill(0, s * L + start, s * L + start + spec.k_cat);
      codes[s * L + start + k] = 1;
    });
    const own = Array.from(z.subarray(start, start + spec.k_cat)).indexOf(1);
    rows.push({ name: `c${v + 1}`, kind: `categorical, ${S} of ${spec.k_cat} values`, continuous: false, codes, S,
      range: `set to ${S === spec.k_cat ? "each value" : `${S} of its ${spec.k_cat} values`}, ${spec.values[0]}, ${spec.values[1]}, … ${spec.values[S - 1]} (this digit's code: ${own})` });
  }
  return rows;
}

export class ColourSection {
  constructor(manifest) {
    const c = manifest.colour || { models: {} };
    this.c = c;
    this.models = Object.fromEntries(Object.entries(c.models).filter(([, s]) => s.ready));
    this.model = c.default in this.models ? c.default : Object.keys(this.models)[0];
    this.seed = 0;
    this.backend = undefined;  // undefined: not yet known; null: this browser cannot run the models
    this.wanted = false;
    this.loop = new Latest(() => this.run(), (err) => { this.note.textContent = `Could not sweep the codes: ${err.message || err}`; });
    this.state = window.vaeColour = { ready: false, runs: 0, model: null, seed: null, rows: [], app: this };
    this.element = this.build();
  }

  get busy() { return this.loop.busy; }

  build() {
    const t = this.c.thresholds || { colour: 0, shape: 0 };
    const head = el("h3", { class: "vg-h vk-title" }, "Colour: what do the codes control?");
    const intro = el("p", { class: "vh-note vk-intro" }, "The coloured-MNIST models were trained on digits in random colours "
      + "and never told which part of the code should hold the colour. Around one test digit's code, each variable is "
      + "moved on its own and decoded; the table measures how much each sweep changes the stroke's colour and the "
      + "digit's shape.");
    if (!this.model) return el("section", { class: "vk" }, head, intro, el("p", { class: "vh-note", text: "No colour model is available here." }));
    const choice = modelSelect(this.models, this.model, "Colour model");
    this.select = choice.select;
    this.select.addEventListener("change", () => { this.model = this.select.value; this.want(); });
    const n = this.c.n_digits;
    this.seedInput = el("input", { type: "number", min: "0", max: String(n - 1), step: "1", value: "0", class: "vg-seed",
      "aria-label": "Test digit (seed)" });
    this.seedInput.addEventListener("change", () => {
      this.seed = Math.min(n - 1, Math.max(0, Math.floor(+this.seedInput.value) || 0));
      this.seedInput.value = String(this.seed);
      this.want();
    });
    const again = el("button", { type: "button", class: "vd-btn", "data-action": "colour-digit", text: "Another digit" });
    again.addEventListener("click", () => {
      this.seed = (this.seed + 1 + Math.floor(Math.random() * (n - 1))) % n;  // never the same one again
      this.seedInput.value = String(this.seed);
      this.want();
    });
    this.note = el("div", { class: "vd-notice", role: "status", text: "The sweeps are computed in your browser when this section is in view." });
    this.headCaption = el("figcaption");
    this.reconNote = el("p", { class: "vk-model-note vk-recon" });
    this.headCanvas = el("canvas", { class: "vk-tiles vk-head", role: "img", "aria-label": "The test digit and its reconstruction" });
    this.rowsBox = el("div", { class: "vk-rows" });
    this.table = el("table", { class: "vk-table" },
      el("caption", { text: "What each variable controls" }),
      el("thead", {}, el("tr", {}, ...["variable", "controls", "colour change", "shape change"].map((h) => el("th", { scope: "col", text: h })))),
      this.tbody = el("tbody"));
    this.modelNote = el("p", { class: "vk-model-note" });
    const about = el("div", { class: "vk-about" },
      el("p", {}, el("b", { text: "Colour change" }), ": how far the stroke's colour moves over the sweep. Each picture's "
        + "colour with its brightness divided out (the mean colour of its ink, scaled so its brightest channel is 1), as "
        + "the mean distance from the sweep's average colour. 0: one colour throughout; a stroke in red, green, blue and "
        + "yellow: about 0.7. ", el("b", { text: `Above ${t.colour}` }), ", the variable controls colour."),
      el("p", {}, el("b", { text: "Shape change" }), ": how much the stroke itself moves. Each picture's stroke whatever "
        + "its colour, scaled to the same peak brightness (a dimmer stroke is not a new shape); its standard deviation over "
        + "the sweep, averaged over the pixels that are ink in some picture. 0: the same stroke throughout; a 7 and a 1 in "
        + "turn: about 0.4. ", el("b", { text: `Above ${t.shape}` }), ", the variable controls shape."),
      el("p", {}, el("b", { text: "little" }), ": neither measure above its threshold: for this digit, the decoder "
        + "(nearly) ignores the variable."),
      this.modelNote);
    this.body = el("div", { class: "vk-body" },
      el("div", { class: "vk-side" }, this.table, about),
      el("div", { class: "vk-sweeps" }, el("figure", { class: "vd-fig vk-fig" }, this.headCanvas, this.headCaption),
        this.reconNote, this.rowsBox));
    this.body.hidden = true;
    const section = el("section", { class: "vk", "aria-label": "Colour: what do the codes control?" }, head, intro,
      el("div", { class: "vd-row" }, choice.box, el("label", {}, "Test digit (seed) ", this.seedInput), again), this.note, this.body);
    return section;
  }

  // The view's backend once the runtime is loaded and the view's samples are painted (null: this browser cannot
  // run it). Only then is "in view" watched: before the samples above it have their height, the section is in view.
  attach(backend) {
    this.backend = backend;
    if (!backend && this.note) this.note.textContent = "The colour sweeps run in your browser, which cannot run them.";
    if (!backend || !this.model) return;
    if (typeof IntersectionObserver !== "function") { this.want(); return; }
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { seen.disconnect(); this.want(); }
    });
    seen.observe(this.element);
    if (this.wanted) this.want();
  }

  want() {
    this.wanted = true;
    if (this.backend && this.model) this.loop.request();
  }

  async digit(spec, seed) {
    const t = await loadSafetensors(spec.digits, -1);
    const img = t.images.data, col = t.colours.data, x = new Float32Array(3 * P), f = Math.fround;
    // grey / 255 × colour in float32, as the server's TestDigits.colored: the same input, bit for bit
    for (let c = 0; c < 3; c++) for (let p = 0; p < P; p++) x[c * P + p] = f(f(img[seed * P + p] / 255) * col[seed * 3 + c]);
    return { x, label: t.labels.data[seed], digit: t.digit.data[seed] };
  }

  // The digit's encoding (the manifest's codes: its encoder's outputs for every digit of the pool, made by the host)
  async codes(spec, seed) {
    const t = await loadSafetensors(spec.codes, -1), row = (name) => {
      if (!t[name]) return null;
      const w = t[name].data.length / t[name].shape[0];
      return t[name].data.subarray(seed * w, (seed + 1) * w);
    };
    return { mean: row("mean"), logSigma: row("log_sigma"), logits: row("logits") };
  }

  async run() {
    const model = this.model, seed = this.seed, spec = this.models[model], b = this.backend;
    this.note.textContent = `Sweeping ${model}'s codes…`;
    const d = await this.digit(spec, seed);
    const enc = await this.codes(spec, seed);
    const z = modeCode(spec, enc);
    const rows = sweeps(spec, this.c.sweep, z, enc.mean, enc.logSigma);
    const n = rows.reduce((s, r) => s + r.S, 0), L = spec.latent_size, all = new Float32Array((n + 1) * L);
    let at = 0;
    for (const r of rows) { all.set(r.codes, at * L); r.at = at; at += r.S; }
    all.set(z, n * L);  // the reconstruction: the code itself, last
    const images = await b.decodeColour(spec, all, n + 1);
    if (model !== this.model || seed !== this.seed) return;  // a newer choice is queued: paint that one
    for (const r of rows) {
      Object.assign(r, colourShapeChange(images.subarray(r.at * 3 * P, (r.at + r.S) * 3 * P), r.S));
      r.controls = controls(r, this.c.thresholds);
    }
    this.paint(spec, d, rows, images, n);
    this.state.runs += 1;
    Object.assign(this.state, { model, seed, label: d.label, digit: d.digit,
      rows: rows.map(({ name, kind, colour, shape, controls: c }) => ({ name, kind, colour, shape, controls: c })) });
    this.note.textContent = "";
    this.state.ready = true;
    this.element.dataset.ready = "1";
  }

  paint(spec, d, rows, images, n) {
    const t = this.c.thresholds;
    const pair = new Float32Array(6 * P);
    pair.set(d.x);
    pair.set(images.subarray(n * 3 * P), 3 * P);
    this.headCaption.textContent = `Test digit ${this.seed}: a ${d.label} (left) and ${this.model}'s reconstruction (right). `
      + "Below, each variable moved on its own around this digit's code.";
    this.body.hidden = false;
    this.headSurface = tiles(this.headCanvas, pair, 0, 2, 88);
    this.reconNote.replaceChildren(...this.reconstruction(spec, colourShapeChange(pair, 2)));
    this.rowsBox.replaceChildren(...rows.map((r) => {
      const canvas = el("canvas", { class: "vk-tiles", role: "img", "aria-label": `${r.name} ${r.range}: ${r.controls}` });
      const fig = el("figure", { class: "vd-fig vk-fig" },
        el("figcaption", { class: "vk-cap" }, el("b", { text: r.name }), " · ", el("b", { class: `vk-${r.controls.replaceAll(" ", "-")}`, text: r.controls }),
          ` · ${r.range}`), canvas);
      r.canvas = canvas;
      return fig;
    }));
    for (const r of rows) tiles(r.canvas, images, r.at * 3 * P, r.S);
    const num = (v, over) => el("td", { class: over ? "vk-num vk-over" : "vk-num", text: fmt(v) });
    this.tbody.replaceChildren(...rows.map((r) => el("tr", {},
      el("th", { scope: "row" }, el("span", { class: "vk-var", text: r.name }), el("span", { class: "vk-kind", text: r.kind })),
      el("td", { class: "vk-verdict", text: r.controls }),
      num(r.colour, r.colour > t.colour), num(r.shape, r.shape > t.shape))));
    this.modelNote.replaceChildren(...this.notes(spec, rows));
  }

  // When the reconstruction is not the digit, say so: the sweeps start from the code, so they show the
  // reconstruction's colour and shape, not the digit's. Another colour, or twice the shape threshold: between two
  // pictures a blurrier stroke alone (every reconstruction) gives about one threshold.
  reconstruction(spec, m) {
    const t = this.c.thresholds, colour = m.colour > t.colour, shape = m.shape > 2 * t.shape;
    if (!colour && !shape) return [];
    const diff = colour && shape ? "colour and shape" : colour ? "colour" : "shape";
    const why = spec.z_dim ? "" : ` A code of ${spec.n_cat} variables of ${spec.k_cat} values is a choice among the `
      + "combinations the decoder learnt, each with its own colour and style: the nearest may be another colour, even "
      + "another digit.";
    return [el("span", { text: `${this.model}'s reconstruction differs from the digit in ${diff} (colour change `
      + `${fmt(m.colour)}, shape change ${fmt(m.shape)} between the two): its code does not hold this digit exactly, `
      + `and the sweeps start from the code, so they show the reconstruction's colour and shape.${why}` })];
  }

  // What to read into this model's sweeps: how its variables were swept, and what its categorical values do.
  notes(spec, rows) {
    const out = [];
    if (spec.z_dim) {
      out.push(el("span", { text: `Continuous dimensions (z): each moved alone from ${minus(-this.c.sweep.range)} to `
        + `${this.c.sweep.range}, the rest of the code kept at this digit's; shown, the ${Math.min(this.c.sweep.top_dims, spec.z_dim)} `
        + `of ${spec.z_dim} with the most KL for this digit (the ones its code uses most). ` }));
    }
    if (spec.n_cat) {
      out.push(el("span", { text: `Categorical variables (c): ${spec.n_cat}, of ${spec.k_cat} values each. A value is a whole `
        + "code word, not a dial: set to another value, a variable may change the digit itself, not just its colour (a green "
        + "3 may become a purple 5); the model was never told which is which. " }));
      const cats = rows.filter((r) => !r.continuous);
      if (spec.z_dim && cats.every((r) => r.controls === "little")) {
        out.push(el("span", { text: `Here none of ${this.model}'s categorical variables changes much: its decoder takes `
          + "colour and shape from the continuous code and (nearly) ignores the categorical one." }));
      }
    }
    return out;
  }
}
