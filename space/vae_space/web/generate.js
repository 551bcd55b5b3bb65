// Generate, in the browser: n codes drawn with a seed from the model's prior (N(0, I), or N(0, Σ) through Σ's
// Cholesky factor) and, side by side, from the density of its training digits' codes (the Gaussian mixture of
// density.safetensors), each decoded in one batch with the model's ONNX decoder. The same seed gives the same
// pictures in every browser (numbers.rng); the prior's holes show as blurs on the left that the right avoids.
// Below, the class-conditional model's digits on demand, and the colour models' codes swept (colour.js).

import { readyModels, startView } from "./backend.js";
import { ColourSection } from "./colour.js";
import { absolute, loadSafetensors } from "./data.js";
import { cholesky, gaussianDraws, rng, sampleMixture } from "./numbers.js";
import { INK, SIDE, Surface, drawDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { addModel, el, modelSelect, seedControl, term } from "./ui.js";

const GAP = 2;

// n decoded digits (n × 784) as a grid filling the width: ceil(√n) columns, square tiles.
function gridHeight(n, w) {
  const cols = Math.ceil(Math.sqrt(n)), tile = Math.floor((w - GAP * (cols - 1)) / cols);
  return Math.ceil(n / cols) * (tile + GAP) - GAP;
}

function paintGrid(g, w, images, n) {
  const cols = Math.ceil(Math.sqrt(n)), tile = Math.floor((w - GAP * (cols - 1)) / cols);
  g.fillStyle = INK;
  g.fillRect(0, 0, w, gridHeight(n, w));
  for (let i = 0; i < n; i++) {
    drawDigit(g, images, (i % cols) * (tile + GAP), Math.floor(i / cols) * (tile + GAP), tile, i * SIDE * SIDE);
  }
}

class GenerateView {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.root = root;
    this.server = server;
    Object.assign(this, readyModels(manifest));
    this.n = 36;
    this.seed = 1;
    this.images = { prior: null, density: null };
    this.densities = new Map();  // density URL -> parsed mixture
    this.loop = new Latest(() => this.run(), (err) => { this.note.textContent = `Could not sample: ${err.message || err}`; });
    this.state = window.vaeGenerate = { ready: false, decodes: 0, seed: null, model: null, z: null, app: this };
    this.build();
  }

  get busy() { return this.loop.busy; }

  addModel = addModel;  // a model loaded from the Hub after the view opened (ui.addModel)

  build() {
    const choice = this.choice = modelSelect(this.models, this.model);
    this.select = choice.select;
    this.count = el("input", { type: "range", min: "4", max: "100", step: "1", value: String(this.n), "aria-label": "Samples" });
    this.countLabel = el("span", { class: "vx-mono", text: String(this.n) });
    const seed = seedControl(this.seed, (v) => { this.seed = v; this.refresh(); });
    this.note = el("div", { class: "vd-notice", role: "status" });
    const fig = (source, title, about) => {
      const canvas = el("canvas", { class: "vg-grid", role: "img", "aria-label": `Samples ${title}` });
      const caption = el("figcaption");
      const surface = new Surface(canvas, (g, w) => {
        if (this.images[source]) paintGrid(g, w, this.images[source], this.shown);
      }, (w) => gridHeight(this.shown || this.n, w));
      const f = el("figure", { class: "vd-fig vg-fig" }, el("h3", { class: "vg-h" }, `${title} `, term("?", about)), canvas, caption);
      return { f, canvas, caption, surface };
    };
    this.figs = {
      prior: fig("prior", "from the prior", "Codes drawn from the prior p(z) the model was trained with (N(0, I), or N(0, Σ) for the "
        + "correlated prior), then decoded. The prior is larger than where the training digits' codes lie: draws that land in "
        + "a hole decode to blurs or to shapes between digits."),
      density: fig("density", "from where the data lives", "Codes drawn from a Gaussian mixture fitted to the training digits' "
        + "codes (posterior means), then decoded by the same decoder: an ex-post density (Ghosh et al. 2020). Its number "
        + "of components was chosen on held-out codes."),
    };
    this.count.addEventListener("input", () => { this.n = +this.count.value; this.countLabel.textContent = String(this.n); this.refresh(); });
    this.select.addEventListener("change", () => { this.model = this.select.value; this.refresh(); });
    this.colour = new ColourSection(this.m);  // downloads nothing until it is in view
    this.root.innerHTML = "";
    this.root.append(
      el("div", { class: "vd-row" }, choice.box, el("label", {}, "Samples ", this.count, " ", this.countLabel),
        ...seed),
      el("div", { class: "vg-pair" }, this.figs.prior.f, this.figs.density.f), this.note, this.buildConditional(),
      this.colour.element);
  }

  // The class-conditional model: the same styles (codes from the prior, the seed's) decoded as each digit asked for
  buildConditional() {
    const [name, spec] = Object.entries(this.m.conditional || {}).find(([, s]) => s.ready) || [];
    if (!name) return null;
    this.cond = { name, spec, digit: "all", styles: 8, images: null, rows: 0 };
    const digit = el("select", { "aria-label": "Digit", class: "vd-select" });
    for (const d of ["all", ...Array.from({ length: spec.n_classes }, (_, i) => String(i))]) digit.append(el("option", { value: d, text: d }));
    const styles = el("input", { type: "range", min: "1", max: "12", step: "1", value: "8", "aria-label": "Styles" });
    const canvas = el("canvas", { class: "vg-grid", role: "img", "aria-label": `${name}: digits in the same styles` });
    this.cond.caption = el("figcaption");
    this.cond.surface = new Surface(canvas, (g, w) => this.paintConditional(g, w), (w) => this.conditionalHeight(w));
    digit.addEventListener("change", () => { this.cond.digit = digit.value; this.refresh(); });
    styles.addEventListener("input", () => { this.cond.styles = +styles.value; this.refresh(); });
    return el("figure", { class: "vd-fig vg-cond" },
      el("h3", { class: "vg-h" }, `Digits on demand: ${name} `, term("?", `${spec.description} The label goes into the decoder, `
        + "so the code holds only the style: each column is one code from the prior, decoded as every digit asked for.")),
      el("div", { class: "vd-row" }, el("label", {}, "Digit ", digit), el("label", {}, "Styles ", styles)), canvas, this.cond.caption);
  }

  conditionalHeight(w) {
    const c = this.cond, tile = Math.floor((w - GAP * (c.styles - 1)) / c.styles);
    return Math.max(1, c.rows) * (tile + GAP);
  }

  paintConditional(g, w) {
    const c = this.cond;
    if (!c.images) return;
    const tile = Math.floor((w - GAP * (c.shown - 1)) / c.shown);
    g.fillStyle = INK;
    g.fillRect(0, 0, w, c.rows * (tile + GAP));
    for (let i = 0; i < c.rows * c.shown; i++) {
      drawDigit(g, c.images, (i % c.shown) * (tile + GAP), Math.floor(i / c.shown) * (tile + GAP), tile, i * SIDE * SIDE);
    }
  }

  async runConditional(seed) {
    const c = this.cond;
    if (!c) return;
    const digits = c.digit === "all" ? Array.from({ length: c.spec.n_classes }, (_, i) => i) : [+c.digit];
    const z = gaussianDraws(c.styles, c.spec.z_dim, rng(seed));  // the same styles in every row
    const codes = new Float32Array(digits.length * c.styles * c.spec.z_dim), labels = [];
    digits.forEach((d, r) => { codes.set(z, r * z.length); for (let i = 0; i < c.styles; i++) labels.push(d); });
    c.images = await this.backend.decodeLabelled(c.spec, codes, labels, labels.length);
    Object.assign(c, { rows: digits.length, shown: c.styles });
    this.state.conditional = { digits, styles: c.styles, z: Array.from(z), images: Array.from(c.images) };
    c.caption.textContent = `${c.styles} styles z ~ N(0, I), seed ${seed}, decoded as ${c.digit === "all" ? "each digit" : `a ${c.digit}`}.`;
    c.surface.paint();
  }

  refresh() { this.loop.request(); }

  async mixture(spec) {
    if (!this.densities.has(spec.density_url)) {
      this.densities.set(spec.density_url, loadSafetensors(spec.density_url, -1).then((t) => ({
        weights: t.weights.data, means: t.means.data, covs: t.covariances.data })));
    }
    return this.densities.get(spec.density_url);
  }

  async run() {
    const spec = this.models[this.model], d = spec.z_dim, n = this.n, seed = this.seed, model = this.model;
    const chol = spec.prior?.cov ? cholesky(spec.prior.cov.flat(), d) : null;
    const z = { prior: gaussianDraws(n, d, rng(seed), chol), density: null };
    const mix = spec.density_url ? await this.mixture(spec) : null;
    if (mix) z.density = sampleMixture(mix, n, d, rng(seed));
    const [prior, density] = await Promise.all([this.backend.decode(model, Float32Array.from(z.prior), n),
      z.density ? this.backend.decode(model, Float32Array.from(z.density), n) : null]);
    this.images = { prior, density };
    this.shown = n;
    this.state.decodes += 1;
    Object.assign(this.state, { seed, model, z: { prior: Array.from(z.prior), density: z.density && Array.from(z.density) } });
    const p = spec.prior?.cov ? "N(0, Σ)" : "N(0, I)";
    this.figs.prior.caption.textContent = `${n} codes z ~ ${p}, seed ${seed}.`;
    this.figs.density.caption.textContent = z.density
      ? `${n} codes from the ${mix.weights.length}-component mixture of the training codes, seed ${seed}.`
      : `${model} has no density of its training codes in its folder.`;
    for (const f of Object.values(this.figs)) f.surface.paint();
    await this.runConditional(seed);
    this.note.textContent = "";
  }

  async start() {
    await startView(this, () => { this.refresh(); return this.loop.idle; });
    this.colour.attach(this.backend || null);
  }
}

export async function mount(element, manifest, server = null) {
  absolute(manifest);
  const view = new GenerateView(element, manifest, server);
  if (!Object.keys(view.models).length) { element.textContent = "No model is available here."; return view; }
  await view.start();
  return view;
}
