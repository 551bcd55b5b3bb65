// β comparison, swept in the browser: for the input just compared, a slider moves one latent dimension of
// every β-VAE at once (each model's most-used, second or third most-used dimension for this input, by KL)
// and decodes all five side by side with their ONNX decoders. The slider is a shift from the input's own code:
// at rest (0, marked) each picture is that model's reconstruction of the input.

import { PageBackend, loadOrt } from "./backend.js";
import { absolute } from "./data.js";
import { SIDE, putDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { el } from "./ui.js";


class BetaApp {
  constructor(root, manifest) {
    this.m = manifest;
    this.root = root;
    this.data = null;
    this.latest = new Latest(() => this.paint(), (err) => { this.note.textContent = `Could not decode: ${err.message || err}`; });
    this.state = window.vaeBeta = { ready: false, decodes: 0, value: null, app: this, set: (d) => this.set(d) };
    this.rank = el("select", { "aria-label": "Which dimension", class: "vd-select" });
    ["most used", "2nd most used", "3rd most used"].forEach((t, i) => this.rank.append(el("option", { value: String(i), text: t })));
    this.slider = el("input", { type: "range", min: "-3", max: "3", step: "0.05", value: "0", list: "vb-rest",
      "aria-label": "Shift of the dimension from the input's own value", class: "vi-slider" });
    const rest = el("datalist", { id: "vb-rest" }, el("option", { value: "0", label: "the input" }));
    this.value = el("span", { class: "vx-mono" });
    this.row = el("div", { class: "vb-row" });
    this.note = el("div", { class: "vd-notice", text: "Press Compare: then sweep a dimension of all five models at once." });
    root.innerHTML = "";
    root.append(el("div", { class: "vd-row" }, el("label", {}, "Sweep each model's ", this.rank, " dimension"),
      el("label", { class: "vi-row" }, "shift −3 ", this.slider, " +3 ", this.value, rest)), this.row, this.note);
    this.rank.addEventListener("change", () => this.refresh());
    this.slider.addEventListener("input", () => this.refresh());
  }

  async start() {
    try {
      this.runtime = new PageBackend(await loadOrt(this.m), this.m);
    } catch {
      this.runtime = null;
      this.note.textContent = "The in-browser runtime could not load: the figure above shows three fixed traversals.";
    }
    this.state.ready = true;
    this.root.dataset.ready = "1";
    const early = window.vaeBetaPending;
    window.vaeBetaPending = null;
    if (early) this.set(early);
  }

  set(data) {
    if (!data || !data.models || !this.runtime) return;
    this.data = data;
    this.row.innerHTML = "";
    this.cells = {};
    for (const [name, r] of Object.entries(data.models)) {
      if (!this.m.models[name] || !Array.isArray(r.mean)) continue;
      const c = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": `${name} swept` });
      const cap = el("figcaption");
      this.cells[name] = { c, cap };
      this.row.append(el("figure", { class: "vd-fig vb-cell" }, el("div", { class: "vd-frame" }, c), cap));
    }
    this.note.textContent = `Input: ${data.input}. Each model's own dimension, ranked by its KL for this input; `
      + "at shift 0 each picture is the model's reconstruction of the input.";
    this.slider.value = "0";  // a new input starts at rest: its own code
    this.refresh();
  }

  refresh() { this.latest.request(); }

  get busy() { return this.latest.busy; }

  async paint() {
    if (!this.data) return;
    const v = +this.slider.value, rank = +this.rank.value;
    this.value.textContent = v === 0 ? "0 (the input)" : `${v > 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
    await Promise.all(Object.entries(this.cells).map(async ([name, cell]) => {
      const r = this.data.models[name];
      const dim = r.order[rank];
      const z = Float32Array.from(r.mean);
      z[dim] += v;
      putDigit(cell.c, await this.runtime.decode(name, z));
      const f = r.dominant_factor && r.dominant_factor[dim];  // the handwriting factor it carries most, if any
      cell.cap.textContent = `β = ${r.beta} · z${dim + 1}${f && f.factor ? ` ≈ ${f.factor}` : ""} = ${z[dim].toFixed(2)} `
        + `(KL ${r.kl_per_dim[dim].toFixed(2)})`;
    }));
    this.state.decodes += 1;
    this.state.value = v;
  }
}

export async function mount(element, manifest) {
  absolute(manifest);
  const app = new BetaApp(element, manifest);
  await app.start();
  return app;
}
