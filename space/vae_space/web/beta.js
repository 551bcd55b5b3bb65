// β comparison, in the page: one input (a test digit, or the drawing made on the Draw tab) through the five β-VAEs
// side by side, computed in the browser: each model's reconstruction, the KL of every latent dimension for this
// input (sorted: which dimensions each β keeps alive), the three most-used dimensions swept −2.5 … 2.5 and named by
// the handwriting factor they carry (ρ from the model's evaluation), a |ρ| heat map with its numbers, and a live
// sweep that starts at the input's own code (shift 0: each picture is the model's reconstruction).

import { startView } from "./backend.js";
import { absolute, fetchBytes } from "./data.js";
import { klPerDim } from "./numbers.js";
import { INK, MUTED, SIDE, Surface, drawDigit, font, putDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { loadTestDigits, pickInput, sourceSelect } from "./sources.js";
import { el, seedControl, term } from "./ui.js";

const STEPS = Array.from({ length: 7 }, (_, i) => -2.5 + (5 * i) / 6);
const SHORT = { thickness: "thick" };

class BetaView {
  constructor(root, manifest, info) {
    this.m = manifest;
    this.root = root;
    this.info = info;  // betas.json: each model's β, test metrics and factor correlations
    this.names = Object.keys(info.models).filter((n) => manifest.models[n]?.ready);
    this.seed = 0;
    this.result = null;
    this.loop = new Latest(() => this.run(), (err) => { this.note.textContent = `Could not compare: ${err.message || err}`; });
    this.sweepLoop = new Latest(() => this.sweep(), (err) => { this.note.textContent = `Could not decode: ${err.message || err}`; });
    this.state = window.vaeBetaPage = { ready: false, decodes: 0, value: 0, results: null, app: this };
    this.build();
  }

  get busy() { return this.loop.busy || this.sweepLoop.busy; }

  build() {
    this.src = sourceSelect("Input", "test digit 7", () => this.loop.request());
    const seed = seedControl(this.seed, (v) => { this.seed = v; this.loop.request(); }, "New pick", "pick");
    this.inputCanvas = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": "The input" });
    this.inputCap = el("figcaption");
    this.rank = el("select", { "aria-label": "Which dimension", class: "vd-select" });
    ["most used", "2nd most used", "3rd most used"].forEach((t, i) => this.rank.append(el("option", { value: String(i), text: t })));
    this.slider = el("input", { type: "range", min: "-3", max: "3", step: "0.05", value: "0",
      "aria-label": "Shift of the dimension from the input's own value", class: "vi-slider" });
    this.value = el("span", { class: "vx-mono" });
    this.rows = el("div", { class: "vb-rows" });
    this.trav = el("canvas", { class: "vb-wide", role: "img", "aria-label": "Traversals of each model's three most-used dimensions" });
    this.travSurface = new Surface(this.trav, (g, w) => this.paintTraversals(g, w), (w) => this.travHeight(w));
    this.heat = el("canvas", { class: "vb-wide", role: "img", "aria-label": "|ρ| between each dimension and the handwriting factors" });
    this.heatSurface = new Surface(this.heat, (g, w) => this.paintHeat(g, w), (w) => this.heatHeight(w));
    this.heatCap = el("figcaption");
    this.note = el("div", { class: "vd-notice", role: "status" });
    this.root.innerHTML = "";
    this.root.append(
      el("div", { class: "vd-row" }, el("label", {}, "Input ", this.src), ...seed),
      el("div", { class: "vb-top" }, el("figure", { class: "vd-fig vi-digit" }, el("div", { class: "vd-frame" }, this.inputCanvas), this.inputCap),
        el("div", {},
          el("p", { class: "vh-note" }, "The same input through five ", term("β-VAEs", "One architecture (10-D code), trained with "
            + "loss = reconstruction + β·KL. A larger β pays more for every nat of KL, so the model keeps fewer dimensions "
            + "alive and reconstructs less detail; β = 1 is the plain VAE."), ". Sweep each model's own dimension from the "
            + "input's code: at shift 0 every picture is that model's reconstruction."),
          el("div", { class: "vd-row" }, el("label", {}, "Sweep each model's ", this.rank, " dimension"),
            el("label", { class: "vi-row" }, "shift −3 ", this.slider, " +3 ", this.value)))),
      this.rows,
      el("figure", { class: "vd-fig" }, el("h3", { class: "vg-h", text: "The three most-used dimensions of each model, swept −2.5 … 2.5" }), this.trav),
      el("figure", { class: "vd-fig" }, el("h3", { class: "vg-h", text: "|ρ| between each dimension and the handwriting factors" }), this.heat, this.heatCap),
      this.note);
    const rerun = () => this.loop.request();
    this.src.addEventListener("change", rerun);
    this.rank.addEventListener("change", () => this.sweepLoop.request());
    this.slider.addEventListener("input", () => this.sweepLoop.request());
  }

  async run() {
    const inp = pickInput(this.digits, this.src.value, this.seed, 0);
    const results = {};
    await Promise.all(this.names.map(async (name) => {
      const { mean, logSigma } = await this.backend.encode(name, inp.x, 1);
      const kl = klPerDim(mean, logSigma), order = kl.map((_, i) => i).sort((a, b) => kl[b] - kl[a] || a - b);
      const top = order.slice(0, 3), codes = [Array.from(mean)];
      for (const d of top) for (const s of STEPS) { const z = Array.from(mean); z[d] = s; codes.push(z); }
      const imgs = await this.backend.decode(name, Float32Array.from(codes.flat()), codes.length);
      results[name] = { mean: Array.from(mean), kl, order, top, recon: imgs.subarray(0, 784), trav: imgs.subarray(784) };
    }));
    this.result = { input: inp, results, vmax: Math.max(...Object.values(results).map((r) => r.kl[r.order[0]])) };
    this.state.decodes += 1;
    this.state.results = Object.fromEntries(Object.entries(results).map(([n, r]) => [n, { mean: r.mean, kl: r.kl, order: r.order,
      recon: Array.from(r.recon) }]));
    this.state.picked = inp.i ?? null;
    putDigit(this.inputCanvas, inp.x);
    this.inputCap.textContent = inp.what;
    this.paintRows();
    this.travSurface.paint();
    this.heatSurface.paint();
    this.slider.value = "0";  // a new input starts at rest: its own code
    await this.sweep();
  }

  paintRows() {
    const { results, vmax } = this.result;
    this.rows.replaceChildren();
    this.cells = {};
    for (const name of this.names) {
      const r = results[name], info = this.info.models[name], used = r.kl.filter((v) => v > this.info.used).length;
      const recon = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": `${name}: reconstruction` });
      putDigit(recon, r.recon);
      const swept = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": `${name} swept` });
      const cap = el("figcaption");
      const bars = el("canvas", { class: "vb-bars", role: "img", "aria-label": `${name}: KL per dimension` });
      const surface = new Surface(bars, (g, w, h) => this.paintBars(g, w, h, r, vmax), () => 96);
      const met = info.metrics || {};
      this.rows.append(el("div", { class: "vb-model" },
        el("div", { class: "vb-label" }, el("strong", { text: `β = ${info.beta}` }),
          el("span", { text: `this input: KL ${r.kl.reduce((a, b) => a + b, 0).toFixed(1)} nats, ${used} of ${r.kl.length} dims used` }),
          el("span", { class: "vh-note", text: `test loss ${met.test_loss ?? "–"} · KL ${met.test_kl ?? "–"}` })),
        el("figure", { class: "vd-fig vb-cell" }, el("div", { class: "vd-frame" }, recon), el("figcaption", { text: "reconstruction" })),
        el("figure", { class: "vd-fig vb-barfig" }, bars, el("figcaption", { text: "KL per dimension, sorted (nats; one scale for all β)" })),
        el("figure", { class: "vd-fig vb-cell" }, el("div", { class: "vd-frame" }, swept), cap)));
      this.cells[name] = { swept, cap };
      surface.paint();
    }
  }

  paintBars(g, w, h, r, vmax) {
    const n = r.order.length, bw = (w - 8) / n, base = h - 18;
    g.font = font(12); g.textAlign = "center"; g.textBaseline = "top";
    r.order.forEach((d, j) => {
      const v = r.kl[d], bh = (base - 4) * Math.min(1, v / Math.max(vmax, 1e-6));
      g.fillStyle = v > this.info.used ? "rgb(79, 70, 229)" : "rgb(203, 213, 225)";
      g.fillRect(4 + j * bw + 2, base - bh, bw - 4, bh);
      g.fillStyle = MUTED;
      if (bw >= 22 || j % 2 === 0) g.fillText(`z${d + 1}`, 4 + j * bw + bw / 2, base + 3);
    });
  }

  dimName(name, d) {
    const f = this.info.models[name].dominant_factor?.[d];
    return f && f.factor ? `z${d + 1} ≈ ${f.factor} (ρ ${f.rho >= 0 ? "+" : "−"}${Math.abs(f.rho).toFixed(2)})` : `z${d + 1}`;
  }

  // the models' traversals in columns (three on a wide screen, one on a phone), each block 3 rows of 7 tiles
  travLayout(w) {
    const cols = w >= 1100 ? 3 : w >= 720 ? 2 : 1, gap = 20, bw = (w - gap * (cols - 1)) / cols;
    const label = Math.min(170, Math.max(110, bw * 0.32)), tile = Math.max(20, Math.min(56, Math.floor((bw - label) / 7) - 2));
    return { cols, gap, bw, label, tile, row: tile + 4, block: 3 * (tile + 4) + 26 };
  }

  travHeight(w) { const L = this.travLayout(w); return Math.ceil(this.names.length / L.cols) * (L.block + 8); }

  paintTraversals(g, w) {
    if (!this.result) return;
    const L = this.travLayout(w);
    this.names.forEach((name, k) => {
      const r = this.result.results[name], x0 = (k % L.cols) * (L.bw + L.gap), y0 = Math.floor(k / L.cols) * (L.block + 8);
      g.font = font(14, "600"); g.fillStyle = INK; g.textAlign = "left"; g.textBaseline = "top";
      g.fillText(`β = ${this.info.models[name].beta}`, x0, y0 + 2);
      r.top.forEach((d, j) => {
        const y = y0 + 24 + j * L.row;
        g.font = font(12); g.fillStyle = MUTED; g.textBaseline = "middle";
        wrapText(g, this.dimName(name, d), x0, y + L.tile / 2, L.label - 8);
        for (let s = 0; s < STEPS.length; s++) drawDigit(g, r.trav, x0 + L.label + s * (L.tile + 2), y, L.tile, (j * STEPS.length + s) * 784);
      });
    });
  }

  heatLayout(w) {
    const perRow = w >= 1100 ? 3 : w >= 560 ? 2 : 1, gap = 18, boxW = Math.min(480, (w - gap * (perRow - 1)) / perRow);
    const f = Object.values(this.info.models).find((m) => m.factors)?.factors || [];
    const rowLabel = 34, cellW = (boxW - rowLabel) / Math.max(1, f.length), cellH = 22;
    return { perRow, gap, boxW, rowLabel, cellW, cellH, factors: f, boxH: 40 + 10 * cellH + 6 };
  }

  heatHeight(w) {
    const L = this.heatLayout(w);
    return L.factors.length ? Math.ceil(this.names.length / L.perRow) * (L.boxH + L.gap) : 30;
  }

  paintHeat(g, w) {
    const L = this.heatLayout(w);
    if (!L.factors.length) { g.font = font(13); g.fillStyle = MUTED; g.fillText("No factor correlations are available here.", 0, 16); return; }
    this.names.forEach((name, k) => {
      const info = this.info.models[name], x0 = (k % L.perRow) * (L.boxW + L.gap), y0 = Math.floor(k / L.perRow) * (L.boxH + L.gap);
      g.font = font(14, "600"); g.fillStyle = INK; g.textAlign = "left"; g.textBaseline = "top";
      g.fillText(`β = ${info.beta}`, x0, y0);
      g.font = font(12); g.fillStyle = MUTED; g.textAlign = "center";
      L.factors.forEach((f, j) => g.fillText(SHORT[f] || f, x0 + L.rowLabel + (j + 0.5) * L.cellW, y0 + 20));
      (info.factor_rho || []).forEach((row, d) => {
        const y = y0 + 38 + d * L.cellH;
        g.textAlign = "right"; g.textBaseline = "middle"; g.fillStyle = MUTED;
        g.fillText(`z${d + 1}`, x0 + L.rowLabel - 4, y + L.cellH / 2);
        row.forEach((rho, j) => {
          const a = Math.min(1, Math.abs(rho)), x = x0 + L.rowLabel + j * L.cellW;
          g.fillStyle = `rgba(79, 70, 229, ${a.toFixed(3)})`;
          g.fillRect(x + 1, y + 1, L.cellW - 2, L.cellH - 2);
          g.fillStyle = a > 0.5 ? "#fff" : INK; g.textAlign = "center";
          if (L.cellW >= 26) g.fillText(a.toFixed(2).replace(/^0/, ""), x + L.cellW / 2, y + L.cellH / 2);
        });
      });
    });
    const src = Object.values(this.info.models).find((m) => m.factor_source)?.factor_source;
    this.heatCap.textContent = `Pearson |ρ| of each dimension's posterior mean with the Morpho-MNIST factors (${src || "test digits"}). `
      + `A dimension is named after a factor from |ρ| ≥ ${this.info.min_rho}.`;
  }

  async sweep() {
    if (!this.result) return;
    const v = +this.slider.value, rank = +this.rank.value;
    this.value.textContent = v === 0 ? "0 (the input)" : `${v > 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
    await Promise.all(this.names.map(async (name) => {
      const r = this.result.results[name], d = r.order[rank], z = Float32Array.from(r.mean);
      z[d] += v;
      putDigit(this.cells[name].swept, await this.backend.decode(name, z));
      this.cells[name].cap.textContent = `${this.dimName(name, d)} = ${z[d].toFixed(2)}`;
    }));
    this.state.value = v;
  }

  async start() {
    this.digits = await loadTestDigits(this.m);
    await startView(this, () => this.loop.request());
  }
}

// text in at most two lines of maxWidth, centred on y
function wrapText(g, text, x, y, maxWidth) {
  if (g.measureText(text).width <= maxWidth) { g.fillText(text, x, y); return; }
  const cut = text.lastIndexOf(" (");
  const [a, b] = cut > 0 ? [text.slice(0, cut), text.slice(cut + 1)] : [text, ""];
  g.fillText(a, x, y - 8, maxWidth);
  g.fillText(b, x, y + 8, maxWidth);
}

export async function mount(element, manifest) {
  absolute(manifest);
  if (!manifest.betas) { element.textContent = "The β-VAEs are not part of this page."; return null; }
  const info = JSON.parse(new TextDecoder().decode(await fetchBytes(new URL(manifest.betas, document.baseURI).href, -1)));
  const view = new BetaView(element, manifest, info);
  if (!view.names.length) { element.textContent = "No β-VAE is available here."; return view; }
  await view.start();
  return view;
}
