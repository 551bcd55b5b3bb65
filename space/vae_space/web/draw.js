// Draw & encode, live in the visitor's browser.
//
// The pad is a <canvas>; on every pointer move (coalesced to animation frames) the drawing is turned
// into an MNIST-style 28×28 input by preprocess.js (the same rules as vae_hub/preprocess.py), the
// chosen model's encoder and decoder run with onnxruntime-web on ONNX exports of the served weights,
// and the input, reconstruction, posterior, 2-D latent map, nearest test digits and typicality are
// painted. Nothing goes to the server while drawing once the runtime is up. Until then (the first seconds of a
// first visit over a slow link) the same loop asks the server, one request in flight, and it switches to the page
// the moment the runtime, the model's graphs and codes are ready; the numbers are the same either way. If the
// runtime cannot load at all (no WebAssembly, the script blocked), the server keeps answering and a line says so.
//
// Downloads, in the order the visitor needs them: the pad's model (graphs, codes, labels), the runtime beside it,
// the 2-D map's picture and encoder, then the test digits' pictures for the neighbour tiles.
//
// mount(element, manifest, server) is called by the tab's js_on_load; window.vaeDraw exposes the
// state that tests and bench/browser_latency.py read (updates, paint latencies, the last numbers).

import "./preprocess.js";
import { BLUE, CLASS_RGB, INK, LIGHT_BLUE, RED, SIDE, absolute, el, fetchBytes, loadMapImages, loadOrt, loadSafetensors, putDigit, sigmoid } from "./runtime.js";

const N_NEIGHBOURS = 8;

const softplus = (v) => (v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v)));

// -------------------------------------------------------------- the numbers, as the server computes them
// recon: Bernoulli −log p(x|z) summed over pixels; KL: exact, to N(0, I) or to N(0, Σ) (Σ⁻¹ and log|Σ| given).
function numbers(x, logits, mean, logSigma, prior) {
  let recon = 0;
  for (let i = 0; i < x.length; i++) recon += softplus(logits[i]) - x[i] * logits[i];
  const k = mean.length;
  let kl = 0;
  if (!prior) {
    for (let i = 0; i < k; i++) kl += 0.5 * (mean[i] ** 2 + Math.exp(2 * logSigma[i]) - 1 - 2 * logSigma[i]);
  } else {
    let tr = 0, quad = 0, logdetQ = 0;
    for (let i = 0; i < k; i++) {
      tr += prior.inv[i][i] * Math.exp(2 * logSigma[i]);
      logdetQ += 2 * logSigma[i];
      for (let j = 0; j < k; j++) quad += mean[i] * prior.inv[i][j] * mean[j];
    }
    kl = 0.5 * (tr + quad - k + prior.logdet - logdetQ);
  }
  return { recon_nll: recon, kl, elbo: -(recon + kl) };
}

// ------------------------------------------------------------------ the app
class DrawApp {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.server = server;
    this.root = root;
    this.model = manifest.default_model;
    this.strokes = [];  // [{tool, width, points: [[x, y], ...]}]: redrawn on undo
    this.tool = "pen";
    this.dirty = false;
    this.busy = false;
    this.pending = null;  // timestamp of the oldest pointer event not yet painted
    this.codes = {};  // model -> {mu, elbo sorted, z}
    this.labels = null;  // the test digits' labels and indices in the MNIST test split
    this.images = null;  // and their pictures (the neighbour tiles), fetched last
    this.mapImages = {};
    this.state = window.vaeDraw = {
      ready: false, live: false, runtime: null, model: this.model, updates: 0, strokeUpdates: 0, paints: [],
      serverRequests: 0, last: null, error: null, app: this, measures: 0, handwriting: null,
    };
    this.measureSeq = 0;  // the latest handwriting request: older answers are dropped
    this.measuring = 0;  // handwriting requests in flight
    this.build();
  }

  // ---------------------------------------------------------------- layout
  build() {
    const r = this.root;
    r.innerHTML = "";
    const models = Object.keys(this.m.models);
    this.select = el("select", { "aria-label": "Model", class: "vd-select" });
    for (const name of models) this.select.append(el("option", { value: name, text: name }));
    this.select.value = this.model;
    this.example = el("select", { "aria-label": "Start from an example", class: "vd-select" });
    this.example.append(el("option", { value: "", text: "example…" }));
    for (const d of Object.keys(this.m.strokes)) this.example.append(el("option", { value: d, text: `a ${d}` }));

    this.canvas = el("canvas", { width: this.m.pad, height: this.m.pad, class: "vd-canvas", "aria-label": "Drawing pad: draw one digit" });
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    const tool = (name, label, title) => el("button", { type: "button", "data-tool": name, class: "vd-btn", title, text: label });
    const action = (name, label, title) => el("button", { type: "button", "data-action": name, class: "vd-btn", title, text: label });
    this.buttons = [tool("pen", "✎ Pen", "Draw"), tool("eraser", "⌫ Eraser", "Erase"),
      action("undo", "↶ Undo", "Undo the last stroke"), action("clear", "✕ Clear", "Clear the pad")];
    const toolbar = el("div", { class: "vd-toolbar" }, ...this.buttons);
    this.pad = el("div", { id: "draw-pad", class: "vd-pad" }, toolbar, el("div", { class: "vd-paper" }, this.canvas));
    this.notice = el("div", { class: "vd-notice", role: "status" });

    this.inputCanvas = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": "Input, 28×28" });
    this.reconCanvas = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": "Reconstruction" });
    const fig = (canvas, id, caption, placeholder) => {
      const ph = el("div", { class: "vd-placeholder", text: placeholder });
      return el("figure", { id, class: "vd-fig" }, el("div", { class: "vd-frame" }, canvas, ph), el("figcaption", { text: caption }));
    };
    const pair = el("div", { class: "vd-pair" },
      fig(this.inputCanvas, "encode-input", "Input (28×28)", "Draw a digit on the pad"),
      fig(this.reconCanvas, "encode-recon", "Reconstruction", "…and its reconstruction appears here"));
    this.summary = el("div", { id: "encode-summary", class: "vd-summary" });
    this.postCanvas = el("canvas", { width: 400, height: 200, class: "vd-chart", role: "img", "aria-label": "Posterior mean and σ per dimension" });
    this.mapCanvas = el("canvas", { width: 440, height: 454, class: "vd-map", role: "img", "aria-label": "The 2-D latent map with your drawing's posterior" });
    this.nnCanvas = el("canvas", { width: 8 * 60, height: 80, class: "vd-nn", role: "img", "aria-label": "Nearest test digits in latent space" });
    this.json = el("pre", { class: "vd-json" });

    const left = el("div", { class: "vd-col vd-left" }, this.pad,
      el("div", { class: "vd-row" }, el("label", {}, "Model ", this.select), el("label", {}, "Or start from ", this.example)),
      this.notice);
    const mid = el("div", { class: "vd-col" }, pair,
      el("figure", { id: "encode-posterior", class: "vd-fig" }, this.postCanvas,
        el("figcaption", { text: "Posterior q(z|x): mean (dot), ±1σ and ±2σ (bars) per dimension; grey: the prior's ±1" }),
        this.hand = el("div", { id: "encode-handwriting", class: "vd-hand", role: "status" })),
      this.summary);
    const right = el("div", { class: "vd-col" },
      el("figure", { id: "encode-map", class: "vd-fig" }, this.mapCanvas,
        el("figcaption", { text: "Your drawing on the 2-D model's latent map: 1σ and 2σ ellipses of q(z|x)" })),
      el("figure", { id: "encode-neighbours", class: "vd-fig" }, this.nnCanvas,
        el("figcaption", { text: "Nearest test digits in the chosen model's latent space (label · distance)" })));
    const details = el("details", { class: "vd-details" }, el("summary", { text: "Numbers (what the /encode API returns)" }), this.json);
    r.append(el("div", { class: "vd-grid" }, left, mid, right), this.buildFlow(), details);

    this.bindPointer();
    for (const b of this.buttons) b.addEventListener("click", () => this.onButton(b));
    this.select.addEventListener("change", () => this.setModel(this.select.value));
    this.example.addEventListener("change", () => { if (this.example.value) this.drawExample(this.example.value); this.example.value = ""; });
    this.setTool("pen");
    this.reset();
  }

  // x → encoder → (μ, σ) → z = μ + σ·ε → decoder → x̂, with the drawing's own numbers
  buildFlow() {
    const thumb = () => el("canvas", { width: SIDE, height: SIDE, class: "vd-digit vf-thumb", role: "img" });
    this.flowX = thumb();
    this.flowX.setAttribute("aria-label", "x: the input");
    this.flowXs = thumb();
    this.flowXs.setAttribute("aria-label", "x̂: decoded from the sampled z");
    this.flowMu = el("div", { class: "vf-nums" });
    this.flowZ = el("div", { class: "vf-nums" });
    const resample = el("button", { type: "button", class: "vd-btn", "data-action": "resample", text: "↻ resample ε",
      title: "Draw a new ε ~ N(0, I): the same drawing gives another z and another x̂" });
    resample.addEventListener("click", () => { this.eps = null; this.request(performance.now(), true); });
    const box = (title, tip, ...c) => el("div", { class: "vf-box", title: tip }, el("div", { class: "vf-title", text: title }), ...c);
    const arrow = () => el("div", { class: "vf-arrow", text: "→" });
    this.flow = el("div", { class: "vf-flow", "aria-label": "How the drawing goes through the VAE" },
      box("x", "The 28×28 input the model sees", el("div", { class: "vd-frame" }, this.flowX)), arrow(),
      box("encoder", "A neural network: x → the parameters of q(z|x)"), arrow(),
      box("μ, σ", "q(z|x) = N(μ, σ²): the code is a distribution, not a point. σ is how unsure the encoder is.", this.flowMu), arrow(),
      box("z = μ + σ·ε", "A sample of the code: ε ~ N(0, I) is noise, scaled by σ and shifted by μ (the reparameterisation trick)",
        this.flowZ, resample), arrow(),
      box("decoder", "A neural network: z → the probability of ink at each pixel"), arrow(),
      box("x̂", "The picture decoded from this sampled z (the reconstruction above uses z = μ)", el("div", { class: "vd-frame" }, this.flowXs)));
    return this.flow;
  }

  randn(k) {
    // Box-Muller: ε ~ N(0, I), fixed until "resample ε" so the picture does not flicker while drawing
    const e = new Float32Array(k);
    for (let i = 0; i < k; i++) e[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    return e;
  }

  async paintFlow(x, r) {
    const k = r.mean.length, show = Math.min(3, k);
    if (!this.eps || this.eps.length !== k) this.eps = this.randn(k);
    const z = r.mean.map((m, i) => m + r.sigma[i] * this.eps[i]);
    const fmt = (a) => a.slice(0, show).map((v) => v.toFixed(2)).join(", ") + (k > show ? ", …" : "");
    this.flowMu.innerHTML = `μ = (${fmt(r.mean)})<br>σ = (${fmt(r.sigma)})`;
    this.flowZ.innerHTML = `ε = (${fmt(Array.from(this.eps))})<br>z = (${fmt(z)})`;
    this.paintDigit(this.flowX, x);
    if (this.runtime.kind === "browser") {
      const logits = await this.runtime.decode(this.m.models[r.model], z);
      this.paintDigit(this.flowXs, Float32Array.from(logits, sigmoid));
    } else {
      this.paintDigit(this.flowXs, r.recon);  // the server returns the decoding of μ only
    }
  }

  setTool(name) {
    this.tool = name;
    for (const b of this.buttons) if (b.dataset.tool) b.classList.toggle("vd-on", b.dataset.tool === name);
  }

  onButton(b) {
    if (b.dataset.tool) return this.setTool(b.dataset.tool);
    if (b.dataset.action === "undo") { this.strokes.pop(); this.redraw(); this.request(performance.now()); }
    if (b.dataset.action === "clear") { this.strokes = []; this.redraw(); this.reset(); }
  }

  // ---------------------------------------------------------------- drawing
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
      active = { tool: eraser ? "eraser" : "pen", width: eraser ? this.m.pen * 2.5 : this.m.pen, points: [pos(e)] };
      this.strokes.push(active);
      this.state.inStroke = true;
      this.paintStroke(active, 0);
      this.request(e.timeStamp);
    });
    c.addEventListener("pointermove", (e) => {
      if (!active) return;
      e.preventDefault();
      const evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      const from = active.points.length - 1;
      for (const ev of (evs.length ? evs : [e])) active.points.push(pos(ev));
      this.paintStroke(active, from);
      this.request(e.timeStamp);
    });
    const end = (e) => {
      if (!active) return;
      active = null;
      this.state.inStroke = false;
      this.request(e.timeStamp, true);
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

  drawExample(digit) {
    const side = this.canvas.width;
    this.strokes = this.m.strokes[digit].map((pts) => ({ tool: "pen", width: this.m.pen,
      points: pts.map(([x, y]) => [x * side, y * side]) }));
    this.redraw();
    this.request(performance.now(), true);
  }

  // ---------------------------------------------------------------- the loop
  request(t, final = false) {
    if (this.pending === null) this.pending = t;
    this.final = this.final || final;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.update(); });
  }

  async update() {
    if (!this.state.live) return;  // the first update once the pad is live picks the drawing up
    if (this.busy) { this.dirty = true; return; }
    const t0 = this.pending;
    const inStroke = this.state.inStroke;
    this.pending = null;
    this.final = false;
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
    if (!this.strokes.length) return this.reset();
    const img = this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
    let x;
    try {
      x = globalThis.VAEPreprocess.toMnist(img.data, img.width, img.height);
    } catch (err) {
      if (err instanceof globalThis.VAEPreprocess.DrawingError) { this.clearHandwriting(); return this.hint(err.message); }
      throw err;
    }
    const model = this.model, kind = this.runtime.kind;
    const res = kind === "browser" ? await this.computeLocal(model, x) : await this.computeServer(model, x);
    if (!res || model !== this.model) return;  // the model changed meanwhile: the next update paints
    this.paint(x, res);
    this.state.firstRuntime ??= kind;
    if (!inStroke) this.measureLater(x);
    const t1 = performance.now();
    this.state.updates += 1;
    if (inStroke) this.state.strokeUpdates += 1;
    if (t0 !== null) this.state.paints.push({ t_event: t0, t_painted: t1, in_stroke: inStroke });
    await this.flowTask;  // one graph run at a time: the diagram's decode finishes before the next update
  }

  async computeLocal(model, x, rt = this.runtime) {
    const spec = await this.spec(model);
    const { mean, logSigma } = await rt.encode(spec, x);
    const logits = await rt.decode(spec, mean);
    const n = numbers(x, logits, mean, logSigma, spec.prior);
    const codes = await this.loadCodes(model);
    const sorted = codes.elboSorted;
    let below = 0;
    while (below < sorted.length && sorted[below] < n.elbo) below++;  // searchsorted, side="left"
    const neighbours = this.nearest(codes, mean);
    const mapName = this.mapName(model);
    let map = null;
    if (this.m.maps[mapName]) {
      const ms = mapName === model ? { mean, logSigma } : await rt.encode(await this.spec(mapName), x);
      map = { model: mapName, mean: Array.from(ms.mean), sigma: Array.from(ms.logSigma, Math.exp) };
    }
    return {
      model, mean: Array.from(mean), sigma: Array.from(logSigma, Math.exp), recon: Float32Array.from(logits, sigmoid),
      recon_nll: n.recon_nll, kl: n.kl, elbo: n.elbo, elbo_percentile: 100 * below / sorted.length,
      elbo_median: sorted[Math.floor(sorted.length / 2)], n_test: sorted.length, neighbours, map,
    };
  }

  // The drawing's thickness and slant come from the server (vae_hub.morpho) once a stroke ends. Not awaited:
  // the live loop never waits for it.
  measureLater(x) {
    const same = this.measuredX && this.measuredX.every((v, i) => v === x[i]);
    if (same) return;  // a new model, the same drawing: its handwriting is already shown
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
    this.hand.textContent = h ? `Your handwriting, measured at 28×28: stroke ${h.thickness.toFixed(1)} px thick, ` +
      `slant ${h.slant >= 0 ? "+" : "−"}${Math.abs(h.slant).toFixed(0)}° (+: the top leans right)` : "";
  }

  async computeServer(model, x) {
    this.state.serverRequests += 1;
    const r = await this.server.encode_array({ x: Array.from(x), model });
    if (r.error) throw new Error(r.error);
    return { ...r, recon: Float32Array.from(r.recon8, (v) => v / 255) };  // as painted: 256 grey levels
  }

  nearest(codes, z) {
    const k = z.length, n = codes.n, mu = codes.mu;
    const best = [];  // [d2, i], sorted, at most N_NEIGHBOURS
    for (let i = 0; i < n; i++) {
      let d2 = 0;
      for (let j = 0; j < k; j++) { const d = mu[i * k + j] - z[j]; d2 += d * d; }
      if (best.length < N_NEIGHBOURS || d2 < best[best.length - 1][0]) {
        best.push([d2, i]);
        best.sort((a, b) => a[0] - b[0]);
        if (best.length > N_NEIGHBOURS) best.pop();
      }
    }
    return best.map(([d2, i]) => ({ i, label: this.labels ? this.labels.labels[i] : null, distance: Math.sqrt(d2) }));
  }

  async spec(model) {
    let s = this.m.models[model];
    if (!s.ready) {  // still being exported on the server: ask again
      this.hint(`Preparing ${model}…`);
      const m = absolute(await this.server.live_manifest({ wait: model }));
      this.m.models = m.models;
      s = this.m.models[model];
      if (!s.ready) throw new Error(s.error || `${model} is not ready yet`);
    }
    return s;
  }

  async loadCodes(model) {
    if (!this.codes[model]) {
      this.codes[model] = loadSafetensors((await this.spec(model)).codes).then((t) => ({
        mu: t.mu.data, n: t.mu.shape[0], elboSorted: Float32Array.from(t.elbo.data).sort(),
      }));
    }
    return this.codes[model];
  }

  async setModel(name) {
    if (!this.m.models[name]) return;
    this.model = this.state.model = name;
    this.select.value = name;
    this.state.modelReady = null;
    this.loadMap(this.mapName(name));
    if (this.runtime?.kind === "browser") {
      // fetch and compile the model's graphs and codes now, not on the next stroke
      try {
        await this.prepareModel(this.runtime, name);
      } catch (err) { return this.fail(err); }
    }
    if (this.model !== name) return;  // another choice came meanwhile
    this.state.modelReady = name;
    this.request(performance.now(), true);
  }

  // ---------------------------------------------------------------- painting
  reset() {
    for (const c of [this.inputCanvas, this.reconCanvas]) {
      c.getContext("2d").clearRect(0, 0, SIDE, SIDE);
      c.parentElement.classList.add("vd-empty");
    }
    this.postCanvas.getContext("2d").clearRect(0, 0, this.postCanvas.width, this.postCanvas.height);
    this.paintChartFrame(this.m.models[this.model]?.z_dim || 20);
    this.nnCanvas.getContext("2d").clearRect(0, 0, this.nnCanvas.width, this.nnCanvas.height);
    this.summary.innerHTML = "Draw a digit: its code, reconstruction and place among the test digits appear as you draw.";
    this.json.textContent = "";
    for (const c of [this.flowX, this.flowXs]) c.getContext("2d").clearRect(0, 0, SIDE, SIDE);
    this.flowMu.textContent = this.flowZ.textContent = "";
    this.state.last = null;
    this.clearHandwriting();
    this.paintMap(null);
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

  paint(x, r) {
    this.flowTask = this.paintFlow(x, r).catch((err) => console.warn("vae-hub draw: flow", err));
    this.paintDigit(this.inputCanvas, x);
    this.paintDigit(this.reconCanvas, r.recon);
    this.paintPosterior(r.mean, r.sigma);
    this.paintMap(r.map);
    this.paintNeighbours(r.neighbours);
    const pct = r.elbo_percentile;
    const verdict = pct >= 10 ? "typical" : pct >= 1 ? "unusual" : "very unlike the test digits";
    const labels = r.neighbours.map((n) => n.label).filter((v) => v !== null && v !== undefined);
    const counts = new Array(10).fill(0);
    for (const l of labels) counts[l] += 1;
    const vote = counts.indexOf(Math.max(...counts));
    const t = (word, tip) => `<abbr title="${tip}">${word}</abbr>`;
    const nats = t("nats", "Information measured with natural logarithms: 1 nat ≈ 1.44 bits");
    this.summary.innerHTML =
      `<b>${r.model}</b> reconstructs it with ${t("−log p(x|z)", "How surprised the decoder is by your input, given the code: lower is a better reconstruction")} ` +
      `= ${r.recon_nll.toFixed(1)} ${nats}, ${t("KL", "KL(q(z|x) ‖ p(z)): how far the code's distribution is from the prior, the price of the information the code carries")} ` +
      `= ${r.kl.toFixed(1)} ${nats}.<br>` +
      `<b>Typicality:</b> ${t("ELBO", "Evidence lower bound = −(reconstruction + KL): a lower bound on log p(x), how likely the model finds the input")} ` +
      `${r.elbo.toFixed(1)} ${nats} is at the <b>${t(pct.toFixed(0) + "th percentile", "The share of the test digits whose ELBO is lower than your drawing's")}</b> of ` +
      `${r.n_test.toLocaleString("en")} test digits (median ${r.elbo_median.toFixed(1)}): <i>${verdict}</i>.<br>` +
      (labels.length ? `<b>Nearest test digits</b> in ${r.model}'s latent space: ${counts[vote]} of ${labels.length} are a <b>${vote}</b>.` : "");
    const data = {
      model: r.model, mean: r.mean.map((v) => +v.toFixed(4)), sigma: r.sigma.map((v) => +v.toFixed(4)),
      recon_nll: +r.recon_nll.toFixed(3), kl: +r.kl.toFixed(3), elbo: +r.elbo.toFixed(3),
      elbo_percentile: +pct.toFixed(2), knn_label: labels.length ? vote : null,
      neighbours: r.neighbours.map((n) => ({ test_index: this.labels ? this.labels.index[n.i] : null, label: n.label, distance: +n.distance.toFixed(4) })),
      map_model: r.map ? r.map.model : null, runtime: this.runtime.kind,
    };
    this.json.textContent = JSON.stringify(data, null, 1);
    this.state.last = { ...data, x: Array.from(x), recon: Array.from(r.recon), mean: r.mean, sigma: r.sigma,
      recon_nll: r.recon_nll, kl: r.kl, elbo: r.elbo, elbo_percentile: pct, map: r.map, rawNeighbours: r.neighbours };
    this.hint("");
  }

  paintDigit(canvas, v) {
    putDigit(canvas, v);
    canvas.parentElement.classList.remove("vd-empty");
  }

  chartGeometry(n) {
    const row = Math.max(9, Math.min(22, Math.floor(260 / n)));
    return { row, top: 8, left: 34, right: 12, bottom: 22, span: 3, height: 8 + n * row + 22 };
  }

  paintChartFrame(n) {
    const c = this.postCanvas, G = this.chartGeometry(n);
    if (c.height !== G.height) c.height = G.height;
    const g = c.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, c.width, c.height);
    const x0 = G.left, x1 = c.width - G.right;
    const sx = (v) => x0 + (Math.min(Math.max(v, -G.span), G.span) + G.span) / (2 * G.span) * (x1 - x0);
    g.fillStyle = "rgb(226, 232, 240)";
    g.fillRect(sx(-1), G.top, sx(1) - sx(-1), n * G.row);
    g.strokeStyle = "rgb(180, 184, 190)";
    g.beginPath(); g.moveTo(sx(0), G.top); g.lineTo(sx(0), G.top + n * G.row); g.stroke();
    g.fillStyle = "rgb(110, 116, 128)";
    g.font = "10px sans-serif";
    g.textAlign = "right"; g.textBaseline = "middle";
    for (let i = 0; i < n; i++) if (n <= 24 || i % 2 === 0) g.fillText(`z${i + 1}`, x0 - 4, G.top + i * G.row + G.row / 2);
    g.textAlign = "center"; g.textBaseline = "top";
    for (let v = -G.span; v <= G.span; v++) g.fillText(String(v), sx(v), G.top + n * G.row + 4);
    return { g, G, sx };
  }

  paintPosterior(mu, sigma) {
    const n = mu.length;
    const { g, G, sx } = this.paintChartFrame(n);
    for (let i = 0; i < n; i++) {
      const y = G.top + i * G.row + G.row / 2, m = mu[i], s = sigma[i];
      g.fillStyle = LIGHT_BLUE;
      const h2 = Math.max(2, G.row / 3), h1 = Math.max(3, G.row / 2);
      g.fillRect(sx(m - 2 * s), y - h2 / 2, sx(m + 2 * s) - sx(m - 2 * s), h2);
      g.fillStyle = BLUE;
      g.fillRect(sx(m - s), y - h1 / 2, sx(m + s) - sx(m - s), h1);
      g.fillStyle = INK;
      g.beginPath(); g.arc(sx(m), y, Math.max(2.5, G.row * 0.22), 0, 2 * Math.PI); g.fill();
    }
  }

  mapSpec(name) { return this.m.maps[name || this.m.map_model]; }

  paintMap(p) {
    const spec = this.mapSpec(p ? p.model : null);
    const g = this.mapCanvas.getContext("2d");
    if (!spec) return;
    const bg = this.mapImages?.[spec.png];
    if (!bg) return;  // painted once the background has loaded
    if (this.mapCanvas.width !== spec.width) { this.mapCanvas.width = spec.width; this.mapCanvas.height = spec.height; }
    g.drawImage(bg, 0, 0);
    if (!p) return;
    const [x0, y0, x1, y1] = spec.box, lim = spec.lim;
    const px = (z) => [x0 + (z[0] + lim) / (2 * lim) * (x1 - x0), y1 - (z[1] + lim) / (2 * lim) * (y1 - y0)];
    const scale = (x1 - x0) / (2 * lim);
    const clamp = (v, a, b) => Math.min(Math.max(v, a), b);
    const [cx, cy] = px(p.mean);
    g.save();
    g.beginPath(); g.rect(x0, y0, x1 - x0, y1 - y0); g.clip();
    const ell = (k, width, fill) => {
      g.beginPath();
      g.ellipse(cx, cy, Math.max(2, k * p.sigma[0] * scale), Math.max(2, k * p.sigma[1] * scale), 0, 0, 2 * Math.PI);
      if (fill) { g.fillStyle = fill; g.fill(); }
      g.lineWidth = width; g.strokeStyle = RED; g.stroke();
    };
    ell(2, 1.6, "rgba(220, 38, 38, 0.11)");
    ell(1, 2.6, null);
    g.restore();
    const qx = clamp(cx, x0, x1), qy = clamp(cy, y0, y1);
    for (const [w, c] of [[5, "#fff"], [2.2, RED]]) {
      g.lineWidth = w; g.strokeStyle = c;
      g.beginPath(); g.moveTo(qx - 6, qy); g.lineTo(qx + 6, qy); g.moveTo(qx, qy - 6); g.lineTo(qx, qy + 6); g.stroke();
    }
    g.font = "12px sans-serif"; g.fillStyle = RED; g.textAlign = "left"; g.textBaseline = "top";
    const under = p.model === this.model ? "" : ` under ${p.model}`;
    g.fillText(`your drawing: 1σ and 2σ of q(z|x)${under}`, x0 + 6, y0 + 4);
  }

  paintNeighbours(list) {
    const c = this.nnCanvas, g = c.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, c.width, c.height);
    const k = 2, tile = SIDE * k, gap = (c.width - list.length * tile) / (list.length + 1);
    const im = g.createImageData(SIDE, SIDE);
    const tmp = this.tmpCanvas || (this.tmpCanvas = el("canvas", { width: SIDE, height: SIDE }));
    list.forEach((n, j) => {
      const x = gap + j * (tile + gap);
      if (this.images) {
        const off = n.i * SIDE * SIDE;
        for (let p = 0; p < SIDE * SIDE; p++) {
          const v = this.images[off + p];
          im.data[4 * p] = im.data[4 * p + 1] = im.data[4 * p + 2] = v;
          im.data[4 * p + 3] = 255;
        }
        tmp.getContext("2d").putImageData(im, 0, 0);
        g.imageSmoothingEnabled = false;
        g.drawImage(tmp, x, 4, tile, tile);
      } else {  // the pictures are still on their way: a grey tile
        g.fillStyle = "rgb(226, 232, 240)";
        g.fillRect(x, 4, tile, tile);
      }
      const rgb = CLASS_RGB[n.label] || [0, 0, 0];
      g.fillStyle = `rgb(${rgb.join(",")})`;
      g.font = "bold 12px sans-serif"; g.textAlign = "center"; g.textBaseline = "top";
      g.fillText(`${n.label} · ${n.distance.toFixed(2)}`, x + tile / 2, tile + 8);
    });
  }

  // ---------------------------------------------------------------- start-up
  async start() {
    // Live at once, through the server; in the page as soon as the runtime and the model are ready.
    this.useRuntime({ kind: "server" });
    this.state.live = true;
    this.state.liveAt = performance.now();
    this.pad.dataset.live = "1";
    this.labelsTask = loadSafetensors(this.m.test.labels, -1).then((t) => { this.labels = { labels: t.labels.data, index: t.index.data }; });
    this.labelsTask.catch((err) => console.warn("vae-hub draw: labels", err));
    this.loadMap(this.mapName(this.model));
    if (this.strokes.length) this.request(performance.now(), true);
    const rt = await this.prepareBrowser();
    if (rt) this.useRuntime(rt);
    this.state.ready = true;
    this.state.modelReady = this.model;
    this.pad.dataset.ready = "1";
    this.state.readyAt = performance.now();
    this.loadImages();
  }

  useRuntime(rt) {
    this.runtime = rt;
    this.state.runtime = rt.kind;
    this.pad.dataset.runtime = rt.kind;
  }

  // onnxruntime-web and the current model, ready to run (graphs compiled, codes in, first runs done); null when the
  // page has to stay on the server, with a line saying why.
  async prepareBrowser() {
    const why = (m) => { this.runtimeNote = `Running on the server: ${m}.`; this.hint(""); };
    if (this.m.force_server) { why("the in-browser runtime is switched off here"); return null; }
    if (typeof WebAssembly !== "object") { why("this browser has no WebAssembly"); return null; }
    try {
      const ort = loadOrt(this.m);  // the runtime's binary first: the longest download
      this.prefetch(this.model);  // the model's files beside it, not after it
      const rt = await ort;
      for (let model = null; model !== this.model;) {  // the visitor may pick another model meanwhile
        model = this.model;
        await this.prepareModel(rt, model);
      }
      return rt;
    } catch (err) {
      console.warn("vae-hub draw: onnxruntime-web unavailable, using the server", err);
      why("the in-browser runtime could not load");
      return null;
    }
  }

  prefetch(model) {
    const spec = this.m.models[model], map = this.m.models[this.mapName(model)];
    if (spec?.ready) { fetchBytes(spec.encoder, 0); fetchBytes(spec.decoder, 0); fetchBytes(spec.codes, 0); }
    if (map?.ready) fetchBytes(map.encoder, 1);
  }

  async prepareModel(rt, model) {
    const spec = await this.spec(model);
    const mapName = this.mapName(model), mapSpec = this.m.maps[mapName] && this.m.models[mapName];
    await Promise.all([rt.session(spec.encoder), rt.session(spec.decoder), this.loadCodes(model), this.labelsTask,
      mapSpec?.ready ? rt.session(mapSpec.encoder) : null]);
    await this.warmUp(rt, model);
  }

  async warmUp(rt, model) {
    // The first runs of the preprocessing and of each graph are JIT-compiled (50-100 ms): do them now, on an
    // example digit drawn off screen, so the visitor's next stroke is as fast as the rest.
    const c = el("canvas", { width: this.canvas.width, height: this.canvas.height });
    const g = c.getContext("2d", { willReadFrequently: true });
    for (const pts of this.m.strokes["7"]) this.paintStroke({ tool: "pen", width: this.m.pen, points: pts.map(([x, y]) => [x * c.width, y * c.height]) }, 0, g);
    try {
      const img = g.getImageData(0, 0, c.width, c.height);
      const x = globalThis.VAEPreprocess.toMnist(img.data, img.width, img.height);
      await this.computeLocal(model, x, rt);
    } catch (err) {
      console.warn("vae-hub draw: warm-up failed", err);
    }
  }

  mapName(model) { return this.m.models[model]?.z_dim === 2 ? model : this.m.map_model; }

  // The picture behind the map, for one map model (each is a download: the others wait until asked for).
  async loadMap(name) {
    const spec = this.m.maps[name];
    if (!spec || this.mapImages[spec.png]) return;
    Object.assign(this.mapImages, await loadMapImages({ [name]: spec }));
    this.paintMap(this.state.last ? this.state.last.map : null);
  }

  async loadImages() {
    try {
      const t = await loadSafetensors(this.m.test.url, 3);
      this.images = t.images.data;
      if (this.state.last) this.paintNeighbours(this.state.last.rawNeighbours);
    } catch (err) {
      console.warn("vae-hub draw: test digits", err);
    }
  }
}

export async function mount(element, manifest, server) {
  absolute(manifest);
  const app = new DrawApp(element, manifest, server);
  try {
    await app.start();
  } catch (err) {
    app.fail(err);
  }
  return app;
}
