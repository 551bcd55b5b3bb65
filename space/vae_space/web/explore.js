// Latent explorer, live in the browser. Hover or drag over the latent map or the decoded grid and the point under
// the cursor is decoded at once; one marker shows the current z on both. The 3-D model has one z₃ control: it
// moves the grid's plane, and the map then shows the test digits whose z₃ is near that plane. Below, the two 2-D
// models' maps side by side with their priors' 1σ and 2σ contours: the correlated prior tilts the cloud of codes.
//
// Maps are drawn from the test digits' codes (paint.js), the grid and points by the backend (the page's
// onnxruntime-web; the Gradio host's server while it loads or where it cannot run).

import { PageBackend, ServerBackend, loadOrt } from "./backend.js";
import { absolute, loadCodes, loadSafetensors } from "./data.js";
import { mixtureLogPdf2d, normals, rng, sampleMixture2d } from "./numbers.js";
import { INK, LatentMap, MUTED, RED, SIDE, Surface, cross, drawDigit, font, putDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { el, modelSelect, term } from "./ui.js";

const MODELS = ["vae-z2", "vae-z2-corr", "vae-z3"];
const HOLE_DRAWS = 150;  // draws from each source on the "holes" map
const NEAR = 0.25;  // how close to the z₃ plane a test digit must be to be shown on vae-z3's map

class ExploreView {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.server = server;
    this.root = root;
    this.models = MODELS.filter((n) => manifest.models[n]);
    this.model = this.models[0];
    this.z = [0, 0, 0];
    this.n = 15;
    this.span = 2.5;
    this.maps = {};  // model -> {map: LatentMap, codes}
    this.loop = new Latest(() => this.run(), (err) => { this.notice.textContent = `Could not decode: ${err.message || err}`; });
    this.job = { regrid: true, t: 0 };
    this.state = window.vaeExplore = { ready: false, runtime: null, decodes: 0, z: null, app: this };
    this.build();
  }

  get busy() { return this.loop.busy; }
  get queued() { return this.loop.queued; }

  build() {
    const r = this.root;
    r.innerHTML = "";
    const models = Object.fromEntries(this.models.map((n) => [n, this.m.models[n]]));
    this.choice = modelSelect(models, this.model);
    this.select = this.choice.select;
    this.z3 = el("input", { type: "range", min: "-3", max: "3", step: "0.05", value: "0", "aria-label": "z₃" });
    this.z3label = el("span", { class: "vx-mono", text: "0.00" });
    this.z3row = el("label", { class: "vx-z3" }, "z₃ ", this.z3, this.z3label);
    this.size = el("input", { type: "range", min: "5", max: "25", step: "1", value: String(this.n), "aria-label": "Grid size" });
    this.spanIn = el("input", { type: "range", min: "1", max: "4", step: "0.25", value: String(this.span), "aria-label": "Span" });
    this.mapCanvas = el("canvas", { class: "vx-map", role: "img", "aria-label": "Latent map: hover to decode" });
    this.point = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit vx-point", role: "img", "aria-label": "The decoded point" });
    this.readout = el("div", { class: "vx-mono vx-readout" });
    this.gridCanvas = el("canvas", { class: "vx-grid", role: "img", "aria-label": "Decoded grid: hover to decode" });
    this.notice = el("div", { class: "vd-notice", role: "status" });
    this.mapCaption = el("figcaption");
    const controls = el("div", { class: "vd-row" }, this.choice.box, this.z3row,
      el("label", {}, "Grid ", this.size), el("label", {}, "Span ± ", this.spanIn));
    this.corrIso = el("canvas", { class: "vx-prior", role: "img", "aria-label": "vae-z2's test codes and its prior" });
    this.corrCor = el("canvas", { class: "vx-prior", role: "img", "aria-label": "vae-z2-corr's test codes and its prior" });
    this.corrNote = el("p", { class: "vh-note" });
    r.append(controls,
      el("div", { class: "vx-grid3" },
        el("figure", { class: "vd-fig" }, el("div", { class: "vd-box" }, this.mapCanvas), this.mapCaption),
        el("div", { class: "vd-col" }, el("div", { class: "vd-frame" }, this.point), this.readout, this.notice),
        el("figure", { class: "vd-fig" }, el("div", { class: "vd-box" }, this.gridCanvas),
          el("figcaption", { text: "What the decoder makes of a grid of codes (z₂ up). Hover or drag to decode a point." }))),
      el("h3", { class: "vh-h3", text: "A correlated prior tilts the map" }),
      el("p", { class: "vh-note" }, "vae-z2-corr is trained with the exact KL to N(0, Σ), Σ = [[1, 0.4], [0.4, 0.5]]; ",
        term("why the codes follow the prior", "Each code is pulled towards the prior by the KL term of the ELBO, so the "
          + "cloud of the test digits' codes takes the prior's shape: round for N(0, I), tilted for N(0, Σ)."),
        ". The rings are each prior's 1σ and 2σ contours."),
      el("div", { class: "vx-pair" },
        el("figure", { class: "vd-fig" }, el("div", { class: "vd-box" }, this.corrIso), el("figcaption", { text: "vae-z2: prior N(0, I)" })),
        el("figure", { class: "vd-fig" }, el("div", { class: "vd-box" }, this.corrCor), el("figcaption", { text: "vae-z2-corr: prior N(0, Σ)" }))),
      this.corrNote);
    this.buildHoles(r);

    this.mapSurface = new Surface(this.mapCanvas, (g, w, h) => this.paintMap(g, w, h), (w) => Math.round(w * 1.03));
    this.gridSurface = new Surface(this.gridCanvas, (g, w, h) => this.paintGrid(g, w, h), (w) => w);
    this.corr = [new Surface(this.corrIso, (g, w, h) => this.paintPrior(g, w, h, "vae-z2"), (w) => Math.round(w * 1.03)),
      new Surface(this.corrCor, (g, w, h) => this.paintPrior(g, w, h, "vae-z2-corr"), (w) => Math.round(w * 1.03))];
    this.select.addEventListener("change", () => this.setModel(this.select.value));
    this.z3.addEventListener("input", () => { this.z[2] = +this.z3.value; this.z3label.textContent = this.z[2].toFixed(2); this.refresh(true); });
    this.size.addEventListener("input", () => { this.n = +this.size.value; this.refresh(true); });
    this.spanIn.addEventListener("input", () => { this.span = +this.spanIn.value; this.refresh(true); });
    this.bindHover(this.mapCanvas, (x, y) => this.mapToZ(x, y));
    this.bindHover(this.gridCanvas, (x, y) => this.gridToZ(x, y));
  }

  bindHover(canvas, toZ) {
    canvas.style.touchAction = "none";
    const at = (e) => {
      const b = canvas.getBoundingClientRect();
      const z = toZ(e.clientX - b.left, e.clientY - b.top);
      if (z) { this.z[0] = z[0]; this.z[1] = z[1]; this.refresh(false, e.timeStamp); }
    };
    canvas.addEventListener("pointermove", (e) => { if (e.pointerType === "mouse" || e.buttons) at(e); });
    canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture?.(e.pointerId); at(e); });
  }

  k() { return this.m.models[this.model].z_dim; }

  // ---------------------------------------------------------------- geometry
  mapToZ(x, y) {
    const m = this.maps[this.model];
    return m && this.mapLayout ? m.map.toZ(this.mapLayout, x, y) : null;
  }

  // the grid: axes on the left and at the bottom, n × n tiles; tile centres sit at linspace(-span, span, n)
  gridBox(w) { const l = 44, side = w - l - 8; return { l, t: 6, side, tile: side / this.n }; }

  gridToZ(x, y) {
    const G = this.gridBox(this.gridSurface.width);
    if (x < G.l || x > G.l + G.side || y < G.t || y > G.t + G.side) return null;
    const u = (x - G.l) / G.side, v = (y - G.t) / G.side, step = 2 * this.span / (this.n - 1);
    return [-this.span - step / 2 + u * (2 * this.span + step), this.span + step / 2 - v * (2 * this.span + step)];
  }

  // ---------------------------------------------------------------- the loop
  refresh(regrid, t = performance.now()) {
    this.job = { regrid: regrid || this.job.regrid, t };
    this.loop.request();
  }

  async run() {
    const job = this.job;
    this.job = { regrid: false, t: 0 };
    if (job.regrid) await this.decodeGrid();
    const k = this.k(), z = this.z.slice(0, k);
    putDigit(this.point, await this.backend.decode(this.model, Float32Array.from(z)));
    this.state.decodes += 1;
    this.readout.textContent = `z = (${z.map((v) => v.toFixed(2)).join(", ")})`;
    this.state.z = z;
    this.mapSurface.paint();
    this.gridSurface.paint();
    this.state.last = { t_event: job.t, t_painted: performance.now() };
  }

  async decodeGrid() {
    const k = this.k(), n = this.n, codes = new Float32Array(n * n * k);
    const t = Array.from({ length: n }, (_, i) => -this.span + 2 * this.span * i / (n - 1));
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
      const o = (r * n + c) * k;
      codes[o] = t[c]; codes[o + 1] = -t[r];
      if (k === 3) codes[o + 2] = this.z[2];
    }
    this.gridImages = await this.backend.decode(this.model, codes, n * n);
    this.gridN = n;
    this.state.decodes += 1;
  }

  // ---------------------------------------------------------------- painting
  paintMap(g, w, h) {
    const m = this.maps[this.model];
    if (!m) { g.fillStyle = MUTED; g.font = font(13); g.textAlign = "center"; g.fillText("Loading the map…", w / 2, h / 2); return; }
    let map = m.map;
    if (this.k() === 3) map = this.sliceMap(m);
    const L = this.mapLayout = map.paint(g, w, h);
    const [x, y] = map.toPx(L, this.z);
    cross(g, Math.min(Math.max(x, L.x0), L.x1), Math.min(Math.max(y, L.y0), L.y1), RED, 8);
  }

  // vae-z3: the (z₁, z₂) of the test digits whose z₃ is within NEAR of the plane (redrawn when z₃ moves)
  sliceMap(m) {
    const key = this.z[2].toFixed(2);
    if (m.sliceKey !== key) {
      const mu = [], labels = [];
      for (let i = 0; i < m.codes.n; i++) {
        if (Math.abs(m.codes.mu[3 * i + 2] - this.z[2]) < NEAR) { mu.push(m.codes.mu[3 * i], m.codes.mu[3 * i + 1]); labels.push(this.labels[i]); }
      }
      m.slice = new LatentMap(Float32Array.from(mu), labels, `vae-z3: ${labels.length} test digits with |z₃ − ${key}| < ${NEAR}`, m.map.lim);
      m.sliceKey = key;
    }
    return m.slice;
  }

  paintGrid(g, w) {
    const G = this.gridBox(w), n = this.gridN || this.n;
    g.fillStyle = "#fff"; g.fillRect(0, 0, w, w);
    const tile = G.side / n;
    if (this.gridImages) for (let j = 0; j < n * n; j++) drawDigit(g, this.gridImages, G.l + (j % n) * tile, G.t + Math.floor(j / n) * tile, tile + 0.5, j * SIDE * SIDE);
    g.fillStyle = MUTED; g.font = font();
    const pos = (v) => (v + this.span) / (2 * this.span) * (n - 1) * tile + tile / 2;
    const ticks = [-this.span, 0, this.span];
    g.textAlign = "center"; g.textBaseline = "top";
    for (const v of ticks) g.fillText(v.toFixed(1), G.l + pos(v), G.t + G.side + 4);
    g.textAlign = "right"; g.textBaseline = "middle";
    for (const v of ticks) g.fillText(v.toFixed(1), G.l - 5, G.t + G.side - pos(v));
    g.textAlign = "center";
    g.fillText("z₁", G.l + G.side / 2 + 24, G.t + G.side + 12);
    g.save(); g.translate(10, G.t + G.side / 2); g.rotate(-Math.PI / 2); g.fillText("z₂", 0, 0); g.restore();
    const x = G.l + pos(this.z[0]), y = G.t + G.side - pos(this.z[1]);
    if (x >= G.l && x <= G.l + G.side && y >= G.t && y <= G.t + G.side) cross(g, x, y, RED, 8);
  }

  // a 2-D model's codes with its prior's 1σ and 2σ contours (the correlated one tilted)
  paintPrior(g, w, h, name) {
    const m = this.maps[name];
    if (!m) { g.fillStyle = MUTED; g.font = font(13); g.textAlign = "center"; g.fillText(this.m.models[name] ? "Loading…" : `${name} is not available here`, w / 2, h / 2); return; }
    const L = m.map.paint(g, w, h);
    const inv = this.m.models[name].prior?.inv;
    const det = inv ? inv[0][0] * inv[1][1] - inv[0][1] * inv[1][0] : 1;
    const cov = inv ? [[inv[1][1] / det, -inv[0][1] / det], [-inv[1][0] / det, inv[0][0] / det]] : [[1, 0], [0, 1]];
    // the contour's axes: eigenvectors of Σ, half-lengths k·sqrt(eigenvalues)
    const [a, b, c] = [cov[0][0], cov[0][1], cov[1][1]], tr = a + c, d = Math.sqrt(((a - c) / 2) ** 2 + b * b);
    const l1 = tr / 2 + d, l2 = tr / 2 - d, angle = Math.atan2(l1 - a, b || 1e-12) * (b ? 1 : 0);
    const [cx, cy] = m.map.toPx(L, [0, 0]), scale = (L.x1 - L.x0) / (2 * m.map.lim);
    g.save(); g.beginPath(); g.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); g.clip();
    for (const k of [1, 2]) {
      g.beginPath();
      g.ellipse(cx, cy, k * Math.sqrt(l1) * scale, k * Math.sqrt(l2) * scale, -angle, 0, 2 * Math.PI);
      g.lineWidth = 2.2; g.strokeStyle = INK; g.setLineDash(k === 2 ? [6, 4] : []); g.stroke();
    }
    g.restore();
    if (name === "vae-z2-corr") {
      let sxx = 0, syy = 0, sxy = 0;
      for (let i = 0; i < m.codes.n; i++) { const x = m.codes.mu[2 * i], y = m.codes.mu[2 * i + 1]; sxx += x * x; syy += y * y; sxy += x * y; }
      this.corrNote.textContent = `The test codes' correlation: ${(sxy / Math.sqrt(sxx * syy)).toFixed(2)} for vae-z2-corr `
        + `(its prior's: ${(b / Math.sqrt(a * c)).toFixed(2)})` + (this.isoCorr !== undefined ? `, ${this.isoCorr.toFixed(2)} for vae-z2.` : ".");
    } else {
      let sxx = 0, syy = 0, sxy = 0;
      for (let i = 0; i < m.codes.n; i++) { const x = m.codes.mu[2 * i], y = m.codes.mu[2 * i + 1]; sxx += x * x; syy += y * y; sxy += x * y; }
      this.isoCorr = sxy / Math.sqrt(sxx * syy);
    }
  }

  // ---------------------------------------------------------------- the prior's holes (vae-z2)
  buildHoles(r) {
    if (!this.m.models["vae-z2"]?.density) return;
    this.holesCanvas = el("canvas", { class: "vx-prior", role: "img", "aria-label": "Draws from the prior and from the training codes' density on vae-z2's map" });
    this.holesNote = el("p", { class: "vh-note", role: "status" });
    const again = el("button", { type: "button", class: "vd-btn", text: "↻ new draws" });
    again.addEventListener("click", () => { this.holeSeed += 1; this.drawHoles(); });
    r.append(el("h3", { class: "vh-h3", text: "Does the prior have holes?" }),
      el("p", { class: "vh-note" }, `${HOLE_DRAWS} codes drawn from vae-z2's prior N(0, I) (open circles) and ${HOLE_DRAWS} from a `
        + "Gaussian mixture fitted to the codes of the 60,000 training digits (filled dots), over the test digits' codes. ",
        term("Why ask?", "The KL term pulls every code towards the prior, but the reconstruction term keeps different "
          + "digits apart, so the codes need not fill N(0, I). A prior draw that lands where no digit's code lies decodes "
          + "to a blur; a draw from where the codes are does not. The Generate tab shows both sources for every model, "
          + "and the evaluation (docs/evaluation.md) compares them by FD."),
        " ", again),
      el("figure", { class: "vd-fig vx-holes" }, el("div", { class: "vd-box" }, this.holesCanvas), this.holesNote));
    this.holeSeed = 0;
    this.holesSurface = new Surface(this.holesCanvas, (g, w, h) => this.paintHoles(g, w, h), (w) => Math.round(w * 1.03));
  }

  // the draws, and how many of each land in a hole: where the training codes' density is lower than at 95% of the
  // test digits' codes (so about 5% of the density's own draws land there)
  drawHoles() {
    const m = this.maps["vae-z2"], mix = this.m.models["vae-z2"]?.density;
    if (!m || !mix || !this.holesSurface) return;
    if (this.holeFloor === undefined) {
      const at = Array.from({ length: m.codes.n }, (_, i) => mixtureLogPdf2d(mix, m.codes.mu[2 * i], m.codes.mu[2 * i + 1]));
      this.holeFloor = at.sort((a, b) => a - b)[Math.floor(0.05 * at.length)];
    }
    const u = rng(1000 + this.holeSeed);
    this.holes = { prior: normals(u, 2 * HOLE_DRAWS), density: sampleMixture2d(mix, HOLE_DRAWS, u) };
    const inHole = (z) => { let k = 0; for (let i = 0; i < z.length; i += 2) if (mixtureLogPdf2d(mix, z[i], z[i + 1]) < this.holeFloor) k += 1; return k; };
    const hp = inHole(this.holes.prior), hd = inHole(this.holes.density);
    this.state.holes = { prior: hp, density: hd, draws: HOLE_DRAWS };
    this.holesNote.textContent = `${hp} of the ${HOLE_DRAWS} prior draws and ${hd} of the ${HOLE_DRAWS} draws from the `
      + "density land in a hole: where the training codes' density is lower than at 95% of the test digits' codes. "
      + (hp > 2 * hd + 3 ? "The prior sends more draws there than the density does."
        : "Here the KL term has packed the codes into N(0, I) closely: the prior sends about as many draws there as the density does.")
      + ` The mixture has ${mix.weights.length} components.`;
    this.holesSurface.paint();
  }

  paintHoles(g, w, h) {
    const m = this.maps["vae-z2"];
    if (!m || !this.holes) { g.fillStyle = MUTED; g.font = font(13); g.textAlign = "center"; g.fillText("Loading…", w / 2, h / 2); return; }
    const L = m.map.paint(g, w, h);
    const [cx, cy] = m.map.toPx(L, [0, 0]), scale = (L.x1 - L.x0) / (2 * m.map.lim);
    g.save(); g.beginPath(); g.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); g.clip();
    for (const k of [1, 2]) {  // the prior's 1σ and 2σ circles
      g.beginPath(); g.arc(cx, cy, k * scale, 0, 2 * Math.PI);
      g.lineWidth = 2; g.strokeStyle = INK; g.setLineDash(k === 2 ? [6, 4] : []); g.stroke();
    }
    g.setLineDash([]);
    const z = this.holes;
    for (let i = 0; i < z.prior.length; i += 2) {
      const [x, y] = m.map.toPx(L, [z.prior[i], z.prior[i + 1]]);
      g.beginPath(); g.arc(x, y, 3.5, 0, 2 * Math.PI); g.lineWidth = 1.6; g.strokeStyle = INK; g.stroke();
    }
    g.fillStyle = INK;
    for (let i = 0; i < z.density.length; i += 2) {
      const [x, y] = m.map.toPx(L, [z.density[i], z.density[i + 1]]);
      g.beginPath(); g.arc(x, y, 2.6, 0, 2 * Math.PI); g.fill();
    }
    g.restore();
  }

  // ---------------------------------------------------------------- start-up
  async loadMap(name) {
    const spec = this.m.models[name];
    if (!spec?.ready || this.maps[name]) return;
    const codes = await loadCodes(spec.codes, spec.z_dim === 3 ? 1 : 0);
    const mu2 = spec.z_dim === 2 ? codes.mu : Float32Array.from({ length: codes.n * 2 }, (_, j) => codes.mu[3 * (j >> 1) + (j & 1)]);
    this.maps[name] = { codes, map: new LatentMap(mu2, this.labels, `${name}: ${codes.n.toLocaleString("en")} test digits`) };
  }

  async setModel(name) {
    this.model = name;
    this.z3row.style.display = this.k() === 3 ? "" : "none";
    this.mapCaption.textContent = this.k() === 3
      ? "vae-z3 has one dimension more than a map shows: the map shows the test digits near the grid's z₃ plane."
      : "The test digits' codes (posterior means), coloured by digit. Hover or drag to decode a point.";
    await this.loadMap(name).catch((err) => console.warn("vae-hub explore: map", err));
    if (this.page) await this.page.session(this.m.models[name].decoder);
    this.refresh(true);
    await this.loop.idle;
  }

  async start() {
    const t = await loadSafetensors(this.m.test.labels, -1);
    this.labels = t.labels.data;
    const server = this.server?.decode_points ? new ServerBackend(this.server, this.m) : null;
    try {
      this.page = new PageBackend(await loadOrt(this.m), this.m);
      await this.page.session(this.m.models[this.model].decoder);
      this.backend = this.page;
    } catch (err) {
      this.backend = server;
      this.notice.textContent = server ? `Decoding on the server: ${err.message || err}.` : `This page cannot decode: ${err.message || err}.`;
    }
    this.state.runtime = this.root.dataset.runtime = this.backend ? this.backend.kind : "none";
    if (this.backend) await this.setModel(this.model);
    await Promise.all(["vae-z2", "vae-z2-corr"].map((n) => this.loadMap(n).catch(() => {})));
    for (const s of this.corr) s.paint();
    this.drawHoles();
    this.state.ready = true;
    this.root.dataset.ready = "1";
  }
}

export async function mount(element, manifest, server = null) {
  absolute(manifest);
  const view = new ExploreView(element, manifest, server);
  if (!view.models.length) { element.textContent = "No 2-D or 3-D model is available here."; return view; }
  await view.start();
  return view;
}
