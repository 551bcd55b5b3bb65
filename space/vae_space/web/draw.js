// Draw & encode, live in the visitor's browser.
//
// On every pointer move (coalesced to animation frames) the pad's drawing becomes an MNIST-style 28×28 input
// (preprocess.js: the rules of vae_hub/data/preprocess.py), goes through the chosen model (backend.js) and the page
// paints the input, the reconstruction, the posterior per dimension, the drawing on the 2-D latent map (with a
// zoomed inset where its 1σ and 2σ ellipses are visible), the nearest test digits and where its ELBO falls among
// the test digits'. Until onnxruntime-web and the model are in (the first seconds of a first visit), the Gradio
// host's server answers, one request in flight, and the page switches to its own loop the moment they are ready;
// the numbers are the same either way.
//
// Downloads, in the order the visitor needs them: the pad's model and the runtime, the map's codes and encoder,
// then the test digits' pictures for the neighbour tiles.
//
// mount(element, manifest, server) is called by the host (server: the Gradio host's server functions, or null);
// window.vaeDraw exposes the state that tests and the benchmarks read.

import { setDrawing } from "./drawing.js";
import { PageBackend, ServerBackend, loadOrt } from "./backend.js";
import { absolute, fetchBytes, loadCodes, loadSafetensors } from "./data.js";
import { testPictures } from "./sources.js";
import { normals } from "./numbers.js";
import { Pad } from "./pad.js";
import { BLUE, CLASS_RGB, INK, LIGHT_BLUE, LatentMap, MUTED, RED, SIDE, Surface, drawDigit, font, putDigit, rgb } from "./paint.js";
import { addModel, el, modelSelect, term } from "./ui.js";

class DrawView {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.server = server;
    this.root = root;
    this.model = manifest.default_model;
    this.dirty = false;
    this.busy = false;
    this.scheduled = false;
    this.pending = null;  // timestamp of the oldest pointer event not yet painted
    this.labels = null;  // the test digits' labels and indices in the MNIST test split
    this.images = null;  // and their pictures (the neighbour tiles), fetched last, a class at a time
    this.classes = new Set();  // the classes whose pictures are in
    this.maps = {};  // map model -> LatentMap, drawn from its test codes
    this.last = null;
    this.state = window.vaeDraw = {
      ready: false, live: false, runtime: null, model: this.model, updates: 0, strokeUpdates: 0, paints: [],
      serverRequests: 0, last: null, error: null, app: this, measures: 0, handwriting: null, inStroke: false,
    };
    this.measureSeq = 0;  // the latest handwriting request: older answers are dropped
    this.measuring = 0;  // handwriting requests in flight
    this.build();
  }

  // ---------------------------------------------------------------- layout
  build() {
    const r = this.root;
    r.innerHTML = "";
    this.pad = new Pad({ side: this.m.pad, pen: this.m.pen, id: "draw-pad",
      onChange: (t) => { this.state.inStroke = this.pad.inStroke; this.request(t); },
      onClear: () => { this.state.inStroke = false; this.reset(); } });
    this.choice = modelSelect(this.m.models, this.model);
    this.select = this.choice.select;
    this.example = el("select", { "aria-label": "Start from an example", class: "vd-select" });
    this.example.append(el("option", { value: "", text: "example…" }));
    for (const d of Object.keys(this.m.strokes)) this.example.append(el("option", { value: d, text: `a ${d}` }));
    this.notice = el("div", { class: "vd-notice", role: "status" });

    const digit = (label) => el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": label });
    this.inputCanvas = digit("Input, 28×28");
    this.reconCanvas = digit("Reconstruction");
    const fig = (canvas, id, caption, placeholder) => el("figure", { id, class: "vd-fig" },
      el("div", { class: "vd-frame" }, canvas, el("div", { class: "vd-placeholder", text: placeholder })),
      el("figcaption", { text: caption }));
    const pair = el("div", { class: "vd-pair" },
      fig(this.inputCanvas, "encode-input", "Input (28×28)", "Draw a digit on the pad"),
      fig(this.reconCanvas, "encode-recon", "Reconstruction", "…and its reconstruction appears here"));
    this.summary = el("div", { id: "encode-summary", class: "vd-summary" });
    const canvas = (label, cls) => el("canvas", { class: cls, role: "img", "aria-label": label });
    this.postCanvas = canvas("Posterior mean and σ per dimension", "vd-chart");
    this.mapCanvas = canvas("The 2-D latent map with your drawing's posterior", "vd-map");
    this.nnCanvas = canvas("Nearest test digits in latent space", "vd-nn");
    this.json = el("pre", { class: "vd-json" });
    this.hand = el("div", { id: "encode-handwriting", class: "vd-hand", role: "status" });

    const left = el("div", { class: "vd-col vd-left" }, this.pad.element,
      el("div", { class: "vd-row" }, this.choice.box, el("label", {}, "Or start from ", this.example)), this.notice);
    const mid = el("div", { class: "vd-col" }, pair,
      el("figure", { id: "encode-posterior", class: "vd-fig" }, el("div", { class: "vd-box" }, this.postCanvas),
        el("figcaption", {}, "The code q(z|x): mean (dot), ±1σ and ±2σ (bars) per dimension; grey: the prior's ±1. ",
          term("What is σ?", "The encoder does not give one point but a small cloud of plausible codes, N(μ, σ²): "
            + "σ is how unsure it is about each dimension. A dimension whose bar covers the grey band carries no "
            + "information about your drawing: the model does not use it."))),
      this.hand, this.summary);
    const right = el("div", { class: "vd-col" },
      el("figure", { id: "encode-map", class: "vd-fig" }, el("div", { class: "vd-box" }, this.mapCanvas),
        el("figcaption", { text: "Your drawing among the test digits on the 2-D model's map; the inset zooms in on "
          + "its 1σ and 2σ ellipses (where the encoder puts it, and how sure it is)." })),
      el("figure", { id: "encode-neighbours", class: "vd-fig" }, el("div", { class: "vd-box" }, this.nnCanvas),
        el("figcaption", { text: "The nearest test digits in the chosen model's code space (digit · distance)" })));
    const details = el("details", { class: "vd-details" },
      el("summary", { text: "All the numbers, as JSON (what the /encode API answers)" }), this.json);
    r.append(el("div", { class: "vd-grid" }, left, mid, right), this.buildFlow(), details);

    this.postChart = new Surface(this.postCanvas, (g, w, h) => this.paintPosterior(g, w, h),
      () => this.chartGeometry(this.zDim()).height);
    this.mapSurface = new Surface(this.mapCanvas, (g, w, h) => this.paintMap(g, w, h), (w) => Math.round(w * 1.03));
    this.nnSurface = new Surface(this.nnCanvas, (g, w, h) => this.paintNeighbours(g, w, h), (w) => this.nnHeight(w));
    this.select.addEventListener("change", () => this.setModel(this.select.value));
    this.example.addEventListener("change", () => {
      if (this.example.value) this.pad.setStrokes(this.m.strokes[this.example.value]);
      this.example.value = "";
    });
    this.reset();
  }

  // x → encoder → (μ, σ) → z = μ + σ·ε → decoder → x̂, with the drawing's own numbers
  buildFlow() {
    const thumb = (label) => el("canvas", { width: SIDE, height: SIDE, class: "vd-digit vf-thumb", role: "img", "aria-label": label });
    this.flowX = thumb("x: the input");
    this.flowXs = thumb("x̂: decoded from the sampled z");
    this.flowMu = el("div", { class: "vf-nums" });
    this.flowZ = el("div", { class: "vf-nums" });
    const resample = el("button", { type: "button", class: "vd-btn", "data-action": "resample", text: "↻ resample ε" });
    resample.addEventListener("click", () => { this.eps = null; this.request(performance.now()); });
    const box = (title, explanation, ...c) => el("div", { class: "vf-box" }, term(title, explanation), ...c);
    const arrow = () => el("div", { class: "vf-arrow", "aria-hidden": "true", text: "→" });
    return el("div", { class: "vf-flow", "aria-label": "How the drawing goes through the VAE" },
      box("x", "The 28×28 input the model sees", el("div", { class: "vd-frame" }, this.flowX)), arrow(),
      box("encoder", "A neural network: x → the parameters of q(z|x)"), arrow(),
      box("μ, σ", "q(z|x) = N(μ, σ²): the code is a distribution, not a point. σ is how unsure the encoder is.", this.flowMu), arrow(),
      box("z = μ + σ·ε", "A sample of the code: ε ~ N(0, I) is noise, scaled by σ and shifted by μ. Training "
        + "samples this way (the reparameterisation trick) so that gradients flow through μ and σ.", this.flowZ, resample), arrow(),
      box("decoder", "A neural network: z → the probability of ink at each of the 784 pixels"), arrow(),
      box("x̂", "The picture decoded from this sample of z: press resample to see another", el("div", { class: "vd-frame" }, this.flowXs)));
  }

  // ---------------------------------------------------------------- the loop
  request(t) {
    if (this.pending === null) this.pending = t;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.update(); });
  }

  async update() {
    // the first update once the pad is live, or once the page can compute (the static site), picks the drawing up
    if (!this.state.live) return;
    if (!this.backend) { if (this.pad.strokes.length && !this.state.ready) this.hint(WAITING); return; }
    if (this.busy) { this.dirty = true; return; }
    const t0 = this.pending, inStroke = this.pad.inStroke;
    this.pending = null;
    this.busy = true;
    try {
      await this.encodeAndPaint(t0, inStroke);
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy = false;
      if (this.dirty) { this.dirty = false; this.request(performance.now()); }
    }
  }

  async encodeAndPaint(t0, inStroke) {
    if (!this.pad.strokes.length) return this.reset();
    let x;
    try {
      x = this.pad.pixels();
    } catch (err) {
      if (err instanceof globalThis.VAEPreprocess.DrawingError) { this.clearHandwriting(); return this.hint(err.message); }
      throw err;
    }
    const model = this.model, backend = this.backend;
    const res = await backend.analyse(model, x);
    this.state.serverRequests = this.serverBackend ? this.serverBackend.requests : 0;
    if (!res || model !== this.model) return;  // the model changed meanwhile: the next update paints
    this.paint(x, res, backend);
    // a partial answer (the model's test codes or the map's encoder on their way): analysed again once they are in
    // (backend.extras is one promise per model; the requests it releases coalesce into one update)
    if (res.partial) backend.extras(model).then(() => this.request(performance.now()), (err) => this.fail(err));
    if (!inStroke) this.loadImages(res.neighbours);  // mid-stroke neighbours come and go: their pictures wait
    this.state.firstRuntime ??= backend.kind;
    if (!inStroke) this.measureLater(x);
    const t1 = performance.now();
    this.state.updates += 1;
    if (inStroke) this.state.strokeUpdates += 1;
    if (t0 !== null) this.state.paints.push({ t_event: t0, t_painted: t1, in_stroke: inStroke });
    await this.flowTask;  // one graph run at a time: the diagram's decode finishes before the next update
  }

  // The drawing's thickness and slant come from the Gradio host (vae_hub.evaluation.morpho) once a stroke ends; never waited for.
  measureLater(x) {
    if (!this.server?.handwriting) return;
    if (this.measuredX && this.measuredX.every((v, i) => v === x[i])) return;  // same drawing, new model
    this.measuredX = Float32Array.from(x);
    const seq = ++this.measureSeq;
    this.state.measures += 1;
    this.measuring += 1;
    this.server.handwriting({ x: Array.from(x) }).then((r) => {
      if (seq !== this.measureSeq) return;
      this.state.handwriting = r && r.thickness !== undefined ? r : null;
      this.paintHandwriting(this.state.handwriting);
    }).catch((err) => console.warn("vae-hub draw: handwriting", err)).finally(() => { this.measuring -= 1; });
  }

  clearHandwriting() {
    this.measureSeq += 1;  // a late answer for the old drawing stays unseen
    this.measuredX = null;
    this.state.handwriting = null;
    this.paintHandwriting(null);
  }

  paintHandwriting(h) {
    if (!this.server?.handwriting) {  // the static site: vae_hub.evaluation.morpho (scikit-image) runs on the Gradio Space only
      this.hand.textContent = "Stroke thickness and slant (vae_hub.evaluation.morpho) are measured by the Gradio Space, not in this page.";
      return;
    }
    this.hand.textContent = h ? `Your handwriting, measured at 28×28: stroke ${h.thickness.toFixed(1)} px thick, `
      + `slant ${Math.abs(h.slant) < 0.5 ? "0" : (h.slant > 0 ? "+" : "−") + Math.abs(h.slant).toFixed(0)}° (+: the top leans right)` : "";
  }

  addModel = addModel;  // a model loaded from the Hub after the view opened (ui.addModel)

  async setModel(name) {
    if (!this.m.models[name]) return;
    this.model = this.state.model = name;
    this.select.value = name;
    this.state.modelReady = null;
    this.postChart.paint();
    this.loadMap(this.mapName(name));
    if (this.page) {
      try {
        await this.spec(name);
        // fetch and compile its graphs and extras now, not on the next stroke
        await Promise.all([this.page.prepare(name), this.page.extras(name)]);
        await this.warmUp(this.page, name);
      } catch (err) { return this.fail(err); }
    }
    if (this.model !== name) return;  // another choice came meanwhile
    this.state.modelReady = name;
    this.request(performance.now());
  }

  // A model the Gradio host was still exporting when the manifest was made: ask again, waiting for it.
  async spec(model) {
    if (this.m.models[model]?.ready || !this.server?.live_manifest) return this.m.models[model];
    this.hint(`Preparing ${model}…`);
    const m = absolute(await this.server.live_manifest({ wait: model }));
    Object.assign(this.m.models, m.models);
    if (!this.m.models[model].ready) throw new Error(this.m.models[model].error || `${model} is not ready yet`);
    return this.m.models[model];
  }

  // ---------------------------------------------------------------- painting
  zDim() { return this.m.models[this.model]?.z_dim || 20; }

  reset() {
    for (const c of [this.inputCanvas, this.reconCanvas]) {
      c.getContext("2d").clearRect(0, 0, SIDE, SIDE);
      c.parentElement.classList.add("vd-empty");
    }
    this.last = this.state.last = null;
    setDrawing(null);
    this.summary.textContent = "Draw a digit: its code, reconstruction and place among the test digits appear as you draw.";
    this.json.textContent = "";
    for (const c of [this.flowX, this.flowXs]) c.getContext("2d").clearRect(0, 0, SIDE, SIDE);
    this.flowMu.textContent = this.flowZ.textContent = "";
    this.clearHandwriting();
    for (const s of [this.postChart, this.mapSurface, this.nnSurface]) s?.paint();
    this.hint("");
  }

  hint(text) {
    if (this.runtimeNote) text = text ? `${text} · ${this.runtimeNote}` : this.runtimeNote;
    this.notice.textContent = text;
  }

  fail(err) {
    console.warn("vae-hub draw:", err);
    this.state.error = String(err?.message || err);
    this.hint(`Could not encode this drawing: ${this.state.error}`);
  }

  paint(x, r, backend) {
    this.last = r;
    this.flowTask = this.paintFlow(x, r, backend).catch((err) => console.warn("vae-hub draw: flow", err));
    for (const [c, v] of [[this.inputCanvas, x], [this.reconCanvas, r.recon]]) {
      putDigit(c, v);
      c.parentElement.classList.remove("vd-empty");
    }
    this.postChart.paint();
    this.mapSurface.paint();
    this.nnSurface.paint();
    this.paintSummary(r);
    const labels = r.neighbours.map((n) => n.label).filter((v) => v !== null && v !== undefined);
    const data = {
      model: r.model, mean: r.mean.map((v) => +v.toFixed(4)), sigma: r.sigma.map((v) => +v.toFixed(4)),
      recon_nll: +r.recon_nll.toFixed(3), kl: +r.kl.toFixed(3), elbo: +r.elbo.toFixed(3),
      elbo_percentile: r.elbo_percentile === null ? null : +r.elbo_percentile.toFixed(2), knn_label: labels.length ? vote(labels)[0] : null,
      neighbours: r.neighbours.map((n) => ({ test_index: n.test_index ?? null, label: n.label, distance: +n.distance.toFixed(4) })),
      map_model: r.map ? r.map.model : null, runtime: backend.kind,
    };
    this.json.textContent = JSON.stringify(data, null, 1);
    this.state.last = { ...data, x: Array.from(x), recon: Array.from(r.recon), mean: r.mean, sigma: r.sigma,
      recon_nll: r.recon_nll, kl: r.kl, elbo: r.elbo, elbo_percentile: r.elbo_percentile, map: r.map };
    setDrawing(x);  // offered to the page's other views as "my drawing"
    this.hint("");
  }

  paintSummary(r) {
    const pct = r.elbo_percentile;
    const labels = r.neighbours.map((n) => n.label).filter((v) => v !== null && v !== undefined);
    const [top, votes] = labels.length ? vote(labels) : [null, 0];
    const nats = () => term("nats", "Information measured with natural logarithms: 1 nat ≈ 1.44 bits.");
    const s = this.summary;
    s.innerHTML = "";
    s.append(el("b", { text: r.model }), " reconstructs it with ",
      term("−log p(x|z)", "How surprised the decoder is by your input, given the code: lower is a better reconstruction."),
      ` = ${r.recon_nll.toFixed(1)} `, nats(), ", ",
      term("KL", "KL(q(z|x) ‖ p(z)): how far the code's distribution is from the prior, the price of the information the code carries."),
      ` = ${r.kl.toFixed(1)} `, nats(), ".", el("br"),
      el("b", { text: "Likelihood score: " }), "its ",
      term("ELBO", "Evidence lower bound = −(reconstruction + KL): a lower bound on log p(x), how likely the model finds the input."),
      ` of ${r.elbo.toFixed(1)} `, nats(), ...(pct === null ? [" (how it compares with the test digits' is on its way). "]
        : [" is higher than ", el("b", { text: `${pct.toFixed(0)}%` }),
          ` of the ${r.n_test.toLocaleString("en")} test digits' (median ${r.elbo_median.toFixed(1)}). `]),
      term("Not a digit detector", "A high score does not mean \"a good digit\": likelihood models rate simple images "
        + "highly (Nalisnick et al., 2019), and the preprocessing scales any mark to fill a 20×20 box, so a dot becomes a "
        + "filled disc and a straight line scores like a crisp 1. Use it to compare drawings, not to judge one."),
      el("br"));
    if (top !== null) s.append(el("b", { text: "Nearest test digits" }), ` in ${r.model}'s code space: ${votes} of ${labels.length} are a `,
      el("b", { text: String(top) }), ".");
  }

  async paintFlow(x, r, backend) {
    const k = r.mean.length, show = Math.min(3, k);
    // ε ~ N(0, I), fixed until "resample ε" so the picture does not flicker while drawing
    if (!this.eps || this.eps.length !== k) this.eps = Float32Array.from(normals(Math.random, k));
    const z = r.mean.map((m, i) => m + r.sigma[i] * this.eps[i]);
    const fmt = (a) => Array.from(a).slice(0, show).map((v) => v.toFixed(2)).join(", ") + (k > show ? ", …" : "");
    this.flowMu.innerHTML = "";
    this.flowMu.append(`μ = (${fmt(r.mean)})`, el("br"), `σ = (${fmt(r.sigma)})`);
    this.flowZ.innerHTML = "";
    this.flowZ.append(`ε = (${fmt(this.eps)})`, el("br"), `z = (${fmt(z)})`);
    putDigit(this.flowX, x);
    // the server answers with the decoding of μ only; the page decodes the sample itself
    putDigit(this.flowXs, backend.kind === "browser" ? await backend.decode(r.model, z) : r.recon);
  }

  chartGeometry(n) {
    const row = Math.max(14, Math.min(24, Math.floor(300 / n)));
    return { row, top: 8, left: 40, right: 12, span: 3, height: 8 + n * row + 24 };
  }

  paintPosterior(g, w) {
    const r = this.last, n = r ? r.mean.length : this.zDim(), G = this.chartGeometry(n);
    g.fillStyle = "#fff";
    g.fillRect(0, 0, w, G.height);
    const x0 = G.left, x1 = w - G.right;
    const sx = (v) => x0 + (Math.min(Math.max(v, -G.span), G.span) + G.span) / (2 * G.span) * (x1 - x0);
    g.fillStyle = "rgb(226, 232, 240)";
    g.fillRect(sx(-1), G.top, sx(1) - sx(-1), n * G.row);
    g.strokeStyle = "rgb(180, 184, 190)";
    g.beginPath(); g.moveTo(sx(0), G.top); g.lineTo(sx(0), G.top + n * G.row); g.stroke();
    g.fillStyle = MUTED; g.font = font();
    g.textAlign = "right"; g.textBaseline = "middle";
    for (let i = 0; i < n; i++) g.fillText(`z${i + 1}`, x0 - 5, G.top + i * G.row + G.row / 2);
    g.textAlign = "center"; g.textBaseline = "top";
    for (let v = -G.span; v <= G.span; v++) g.fillText(String(v), sx(v), G.top + n * G.row + 5);
    if (!r) return;
    for (let i = 0; i < n; i++) {
      const y = G.top + i * G.row + G.row / 2, m = r.mean[i], s = r.sigma[i];
      const h2 = Math.max(3, G.row / 3), h1 = Math.max(5, G.row / 2);
      g.fillStyle = LIGHT_BLUE; g.fillRect(sx(m - 2 * s), y - h2 / 2, sx(m + 2 * s) - sx(m - 2 * s), h2);
      g.fillStyle = BLUE; g.fillRect(sx(m - s), y - h1 / 2, sx(m + s) - sx(m - s), h1);
      g.fillStyle = INK; g.beginPath(); g.arc(sx(m), y, Math.max(3, G.row * 0.2), 0, 2 * Math.PI); g.fill();
    }
  }

  mapName(model) { return this.m.models[model]?.z_dim === 2 ? model : this.m.map_model; }

  // The 2-D map of a map model, drawn from its test codes (32 kB) once they and the labels are in.
  async loadMap(name) {
    const spec = this.m.models[name];
    if (!spec?.ready || this.maps[name] !== undefined) return;
    this.maps[name] = null;
    try {
      const [codes] = await Promise.all([loadCodes(spec.codes, 0), this.labelsTask]);
      this.maps[name] = new LatentMap(codes.mu, this.labels.labels, `${name}: ${codes.n.toLocaleString("en")} test digits`);
      this.mapSurface.paint();
    } catch (err) {
      delete this.maps[name];
      console.warn("vae-hub draw: map", err);
    }
  }

  paintMap(g, w, h) {
    const r = this.last, name = r?.map ? r.map.model : this.mapName(this.model), map = this.maps[name];
    if (!map) {
      g.fillStyle = MUTED; g.font = font(13); g.textAlign = "center";
      g.fillText(this.m.models[name] ? "Loading the map…" : "No 2-D model here to draw a map with.", w / 2, h / 2);
      return;
    }
    const L = map.paint(g, w, h);
    if (!r?.map) return;
    const p = r.map, [cx, cy] = map.toPx(L, p.mean), scale = (L.x1 - L.x0) / (2 * map.lim);
    const ellipses = (gg, ox, oy, k) => {  // 2σ filled, 1σ outlined, at k pixels per latent unit
      for (const [m, width, fill] of [[2, 1.6, "rgba(220, 38, 38, 0.12)"], [1, 2.6, null]]) {
        gg.beginPath();
        gg.ellipse(ox, oy, Math.max(1.5, m * p.sigma[0] * k), Math.max(1.5, m * p.sigma[1] * k), 0, 0, 2 * Math.PI);
        if (fill) { gg.fillStyle = fill; gg.fill(); }
        gg.lineWidth = width; gg.strokeStyle = RED; gg.stroke();
      }
    };
    g.save(); g.beginPath(); g.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); g.clip();
    ellipses(g, cx, cy, scale);
    g.restore();
    const qx = Math.min(Math.max(cx, L.x0), L.x1), qy = Math.min(Math.max(cy, L.y0), L.y1);
    // the inset: a window of ±3 (largest σ) around the mean, enlarged to a fixed size
    const half = Math.max(3 * Math.max(p.sigma[0], p.sigma[1]), 0.02), size = Math.min(130, (L.x1 - L.x0) * 0.36);
    const k = size / (2 * half), ix = L.x1 - size - 6, iy = L.y0 + 6;
    g.fillStyle = "#fff"; g.fillRect(ix, iy, size, size);
    g.save(); g.beginPath(); g.rect(ix, iy, size, size); g.clip();
    for (let i = 0; i < map.labels.length; i++) {  // the test digits inside the window
      const dx = map.mu[2 * i] - p.mean[0], dy = map.mu[2 * i + 1] - p.mean[1];
      if (Math.abs(dx) > half || Math.abs(dy) > half) continue;
      g.fillStyle = rgb(CLASS_RGB[map.labels[i]]);
      g.beginPath(); g.arc(ix + size / 2 + dx * k, iy + size / 2 - dy * k, 3, 0, 2 * Math.PI); g.fill();
    }
    ellipses(g, ix + size / 2, iy + size / 2, k);
    g.restore();
    g.lineWidth = 1.5; g.strokeStyle = RED; g.strokeRect(ix, iy, size, size);
    g.beginPath(); g.moveTo(qx, qy); g.lineTo(ix, iy + size); g.strokeStyle = "rgba(220, 38, 38, 0.5)"; g.stroke();
    g.fillStyle = RED; g.font = font(12, "600"); g.textAlign = "right"; g.textBaseline = "top";
    g.fillText(`×${Math.round(k / scale)}`, ix + size - 4, iy + size + 3);
    for (const [lw, c] of [[5, "#fff"], [2.2, RED]]) {
      g.lineWidth = lw; g.strokeStyle = c;
      g.beginPath(); g.moveTo(qx - 6, qy); g.lineTo(qx + 6, qy); g.moveTo(qx, qy - 6); g.lineTo(qx, qy + 6); g.stroke();
    }
    if (p.model !== this.model) {
      g.fillStyle = RED; g.font = font(12); g.textAlign = "left"; g.textBaseline = "top";
      g.fillText(`your drawing under ${p.model}`, L.x0 + 6, L.y0 + 4);
    }
  }

  nnHeight(w) {
    const cols = w < 420 ? 4 : 8, tile = Math.min(64, (w - (cols + 1) * 6) / cols);
    return Math.ceil(8 / cols) * (tile + 26) + 4;
  }

  paintNeighbours(g, w, h) {
    g.fillStyle = "#fff";
    g.fillRect(0, 0, w, h);
    const list = this.last ? this.last.neighbours : [];
    const cols = w < 420 ? 4 : 8, gap = 6, tile = Math.min(64, (w - (cols + 1) * gap) / cols);
    const left = (w - cols * tile - (cols - 1) * gap) / 2;  // centred in the width it gets
    list.forEach((n, j) => {
      const x = left + (j % cols) * (tile + gap), y = 4 + Math.floor(j / cols) * (tile + 26);
      if (this.images && this.classes.has(n.label)) drawDigit(g, this.images, x, y, tile, n.i * SIDE * SIDE, 255);
      else { g.fillStyle = "rgb(226, 232, 240)"; g.fillRect(x, y, tile, tile); }  // the pictures are on their way
      g.fillStyle = n.label !== null && n.label !== undefined ? rgb(CLASS_RGB[n.label]) : INK;
      g.font = font(12, "700"); g.textAlign = "center"; g.textBaseline = "top";
      g.fillText(`${n.label ?? "?"} · ${n.distance.toFixed(2)}`, x + tile / 2, y + tile + 5);
    });
  }

  // ---------------------------------------------------------------- start-up
  async start() {
    // live at once: through the server where there is one, in the page as soon as the runtime and the model are in
    // a model loaded from the Hub runs in the page only: the host's server does not have it
    this.serverBackend = this.server?.encode_array && !this.m.models[this.model]?.hub ? new ServerBackend(this.server, this.m) : null;
    this.backend = this.serverBackend;
    this.labelsTask = loadSafetensors(this.m.test.labels, -1).then((t) => { this.labels = { labels: t.labels.data, index: t.index.data }; });
    this.labelsTask.catch((err) => console.warn("vae-hub draw: labels", err));
    this.loadMap(this.mapName(this.model));
    // no server (the static site): the pad takes strokes at once, answered as soon as the runtime is in
    if (this.backend || this.canCompute()) this.goLive();
    const page = await this.preparePage();
    if (page) {
      this.page = this.backend = page;
      this.goLive();
    } else if (!this.backend) {
      this.state.live = false;  // nothing will answer: the pad still draws, and the note says why
      delete this.pad.element.dataset.live;
      this.hint("");
    }
    this.state.runtime = this.pad.element.dataset.runtime = this.backend ? this.backend.kind : "none";
    this.state.ready = true;
    this.state.modelReady = this.model;
    this.pad.element.dataset.ready = "1";
    this.state.readyAt = performance.now();
  }

  canCompute() { return !this.m.force_server && typeof WebAssembly === "object"; }

  goLive() {
    this.state.runtime = this.pad.element.dataset.runtime = this.backend ? this.backend.kind : "loading";
    if (this.state.live) { if (this.pad.strokes.length) this.request(performance.now()); return; }
    this.state.live = true;
    this.state.liveAt = performance.now();
    this.pad.element.dataset.live = "1";
    if (this.pad.strokes.length) this.request(performance.now());
  }

  // onnxruntime-web and the current model, ready to run (graphs compiled, codes in, first runs done); null when the
  // page cannot run them, with a line saying why.
  async preparePage() {
    const why = (m) => {
      this.runtimeNote = this.serverBackend ? `Running on the server: ${m}.` : `This page cannot compute: ${m}.`;
      this.hint("");
    };
    if (this.m.force_server) { why("the in-browser runtime is switched off here"); return null; }
    if (typeof WebAssembly !== "object") { why("this browser has no WebAssembly"); return null; }
    try {
      const ort = loadOrt(this.m);  // the runtime's binary first: the longest download
      this.prefetch(this.model);
      const page = new PageBackend(await ort, this.m);
      this.labelsTask.then(() => { page.labels = this.labels; });
      for (let model = null; model !== this.model;) {  // the visitor may pick another model meanwhile
        model = this.model;
        await this.spec(model);
        await page.prepare(model);  // its two graphs: all a reconstruction needs
        // no server answering meanwhile (the static site): the page answers now, and the percentile, neighbours
        // and map follow once its extras are in; on the Gradio host the server answers until then
        if (!this.backend) { this.page = this.backend = page; this.goLive(); }
        await Promise.all([page.extras(model), this.labelsTask]);
        page.labels = this.labels;
        await this.warmUp(page, model);
      }
      return page;
    } catch (err) {
      console.warn("vae-hub draw: onnxruntime-web unavailable", err);
      why("the in-browser runtime could not load");
      return null;
    }
  }

  prefetch(model) {
    const spec = this.m.models[model];
    if (spec?.ready) for (const [u, rank] of [[spec.encoder, 0], [spec.decoder, 0], [spec.codes, 1]]) fetchBytes(u, rank).catch(() => {});
  }

  // The first runs of the preprocessing and of each graph are compiled on first use (50-100 ms): do them now, on
  // an example digit drawn off screen, so the visitor's next stroke is as fast as the rest.
  async warmUp(page, model) {
    try {
      await page.analyse(model, this.pad.examplePixels(this.m.strokes["7"]));
    } catch (err) {
      console.warn("vae-hub draw: warm-up failed", err);
    }
  }

  // The neighbours' pictures: the classes they belong to (about 55 kB each), after everything the numbers need.
  async loadImages(neighbours) {
    const want = [...new Set(neighbours.map((n) => n.label))].filter((c) => c !== null && c !== undefined && !this.classes.has(c));
    if (!want.length) return;
    try {
      const set = await testPictures(this.m, want, 3);
      for (const c of want) this.classes.add(c);
      this.images = set.images;
      this.nnSurface.paint();
    } catch (err) {
      console.warn("vae-hub draw: test digits", err);
    }
  }
}

const WAITING = "Your drawing is encoded as soon as the in-browser runtime is in (a one-time download)…";

// The most common label and how many times it appears (ties: the smaller digit, as the server's argmax).
function vote(labels) {
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l] += 1;
  const top = counts.indexOf(Math.max(...counts));
  return [top, counts[top]];
}

export async function mount(element, manifest, server = null) {
  absolute(manifest);
  const view = new DrawView(element, manifest, server);
  try {
    await view.start();
  } catch (err) {
    view.fail(err);
  }
  return view;
}
