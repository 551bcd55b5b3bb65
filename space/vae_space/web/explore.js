// Latent explorer, live in the browser: hover or drag over the 2-D latent map or the decoded grid and the
// point under the cursor is decoded at once with the model's ONNX decoder (onnxruntime-web); a marker shows
// the current z on both. The 3-D model gets a z₃ slider that re-decodes its grid as it moves. Without
// WebAssembly the same views ask the server to decode (/decode_points), one request in flight.

import { CLASS_RGB, RED, SIDE, absolute, el, loadMapImages, loadOrt, putDigit, sigmoid } from "./runtime.js";


class ExploreApp {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.server = server;
    this.root = root;
    this.models = ["vae-z2", "vae-z2-corr", "vae-z3"].filter((n) => manifest.models[n]);
    this.model = this.models[0];
    this.z = [0, 0, 0];
    this.n = 15;
    this.span = 2.5;
    this.busy = false;
    this.queued = null;
    this.state = window.vaeExplore = { ready: false, runtime: null, decodes: 0, z: null, app: this };
    this.build();
  }

  build() {
    const r = this.root;
    r.innerHTML = "";
    this.select = el("select", { "aria-label": "Model", class: "vd-select" });
    for (const n of this.models) this.select.append(el("option", { value: n, text: n }));
    this.z3 = el("input", { type: "range", min: "-3", max: "3", step: "0.05", value: "0", "aria-label": "z₃" });
    this.z3label = el("span", { class: "vx-mono" });
    this.z3row = el("label", { class: "vx-z3" }, "z₃ ", this.z3, this.z3label);
    this.size = el("input", { type: "range", min: "5", max: "25", step: "1", value: String(this.n), "aria-label": "Grid size" });
    this.spanIn = el("input", { type: "range", min: "1", max: "4", step: "0.25", value: String(this.span), "aria-label": "Span" });
    this.mapCanvas = el("canvas", { width: 440, height: 454, class: "vx-map", role: "img", "aria-label": "Latent map: hover to decode" });
    this.point = el("canvas", { width: SIDE, height: SIDE, class: "vd-digit vx-point", role: "img", "aria-label": "The decoded point" });
    this.readout = el("div", { class: "vx-mono vx-readout" });
    this.grid = el("canvas", { width: 460, height: 460, class: "vx-grid", role: "img", "aria-label": "Decoded grid: hover to decode" });
    this.notice = el("div", { class: "vd-notice", role: "status" });
    const legend = el("div", { class: "vx-legend" }, ...CLASS_RGB.map((c, d) => el("span", { style: `color: rgb(${c.join(",")})`, text: `■ ${d}` })));
    this.mapMsg = el("div", { class: "vd-notice vx-mapmsg" });
    this.mapBox = el("figure", { class: "vd-fig" }, this.mapCanvas, this.mapMsg, legend,
      el("figcaption", { text: "Test digits' codes (posterior means), coloured by digit. Hover or drag to decode a point." }));
    const controls = el("div", { class: "vd-row" }, el("label", {}, "Model ", this.select), this.z3row,
      el("label", {}, "Grid ", this.size), el("label", {}, "Span ± ", this.spanIn));
    r.append(controls, el("div", { class: "vx-grid3" }, this.mapBox,
      el("div", { class: "vd-col" }, el("div", { class: "vd-frame" }, this.point), this.readout, this.notice),
      el("figure", { class: "vd-fig" }, this.grid, el("figcaption", { text: "The decoder over a grid of z (z₂ up). Hover to decode a point." }))));

    this.select.addEventListener("change", () => this.setModel(this.select.value));
    this.z3.addEventListener("input", () => { this.z[2] = +this.z3.value; this.refresh(true); });
    this.size.addEventListener("input", () => { this.n = +this.size.value; this.refresh(true); });
    this.spanIn.addEventListener("input", () => { this.span = +this.spanIn.value; this.refresh(true); });
    this.bindHover(this.mapCanvas, (x, y) => this.mapToZ(x, y));
    this.bindHover(this.grid, (x, y) => this.gridToZ(x, y));
  }

  bindHover(canvas, toZ) {
    canvas.style.touchAction = "none";
    const at = (e) => {
      const b = canvas.getBoundingClientRect();
      const z = toZ((e.clientX - b.left) * canvas.width / b.width, (e.clientY - b.top) * canvas.height / b.height);
      if (z) { this.z[0] = z[0]; this.z[1] = z[1]; this.refresh(false, e.timeStamp); }
    };
    canvas.addEventListener("pointermove", (e) => { if (e.pointerType === "mouse" || e.buttons) at(e); });
    canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture?.(e.pointerId); at(e); });
  }

  mapSpec() { return this.m.maps[this.model]; }

  mapToZ(x, y) {
    const s = this.mapSpec();
    if (!s) return null;
    const [x0, y0, x1, y1] = s.box;
    if (x < x0 || x > x1 || y < y0 || y > y1) return null;
    return [-s.lim + (x - x0) / (x1 - x0) * 2 * s.lim, -s.lim + (y1 - y) / (y1 - y0) * 2 * s.lim];
  }

  // the grid's geometry: axes on the left and at the bottom, n × n tiles of side t
  gridBox() { const l = 44, side = this.grid.width - l - 6; return { l, t: 6, side, tile: side / this.n }; }

  gridToZ(x, y) {
    const g = this.gridBox();
    if (x < g.l || x > g.l + g.side || y < g.t || y > g.t + g.side) return null;
    const u = (x - g.l) / g.side, v = (y - g.t) / g.side;
    // tile centres sit at linspace(-span, span, n): map the continuous position the same way
    const step = 2 * this.span / (this.n - 1);
    return [-this.span - step / 2 + u * (2 * this.span + step), this.span + step / 2 - v * (2 * this.span + step)];
  }

  async decode(codes, k) {
    const spec = this.m.models[this.model];
    const n = codes.length / k;
    this.state.decodes += 1;
    if (this.runtime.kind === "browser") return Float32Array.from(await this.runtime.decodeMany(spec, codes, n), sigmoid);
    const r = await this.server.decode_points({ model: this.model, z: Array.from(codes), k });
    if (r.error) throw new Error(r.error);
    return Float32Array.from(r.images);
  }

  // coalesce: while a decode runs, keep only the newest request
  refresh(regrid, t = performance.now()) {
    this.queued = { regrid: regrid || this.queued?.regrid, t };
    if (!this.busy) this.run();
  }

  async run() {
    this.busy = true;
    try {
      while (this.queued) {
        const job = this.queued;
        this.queued = null;
        if (job.regrid) await this.paintGrid();
        await this.paintPoint();
        this.state.last = { t_event: job.t, t_painted: performance.now() };
      }
    } catch (err) {
      this.notice.textContent = `Could not decode: ${err.message || err}`;
      console.warn("vae-hub explore:", err);
    } finally {
      this.busy = false;
    }
  }

  k() { return this.m.models[this.model].z_dim; }

  async paintPoint() {
    const k = this.k(), z = this.z.slice(0, k);
    putDigit(this.point, await this.decode(Float32Array.from(z), k));
    this.readout.textContent = `z = (${z.map((v) => v.toFixed(2)).join(", ")})`;
    this.state.z = z;
    this.paintMap();
    this.paintGridMarker();
  }

  async paintGrid() {
    const k = this.k(), n = this.n, codes = new Float32Array(n * n * k);
    const t = Array.from({ length: n }, (_, i) => -this.span + 2 * this.span * i / (n - 1));
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
      const o = (r * n + c) * k;
      codes[o] = t[c]; codes[o + 1] = -t[r];
      if (k === 3) codes[o + 2] = this.z[2];
    }
    this.gridImages = await this.decode(codes, k);
    this.z3label.textContent = this.z[2].toFixed(2);
    this.paintGridMarker();
  }

  paintGridMarker() {
    const c = this.grid, g = c.getContext("2d"), G = this.gridBox(), n = this.n;
    g.fillStyle = "#fff";
    g.fillRect(0, 0, c.width, c.height);
    if (this.gridImages) {
      const tile = this.tile || (this.tile = el("canvas", { width: SIDE, height: SIDE }));
      const tg = tile.getContext("2d"), im = tg.createImageData(SIDE, SIDE);
      g.imageSmoothingEnabled = false;
      for (let j = 0; j < n * n; j++) {
        for (let i = 0; i < SIDE * SIDE; i++) {
          const v = Math.round(255 * this.gridImages[j * SIDE * SIDE + i]);
          im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = v;
          im.data[4 * i + 3] = 255;
        }
        tg.putImageData(im, 0, 0);
        g.drawImage(tile, G.l + (j % n) * G.tile, G.t + Math.floor(j / n) * G.tile, G.tile + 0.5, G.tile + 0.5);
      }
    }
    // axes: ticks at the tile centres' values
    g.fillStyle = "rgb(110, 116, 128)"; g.font = "10px sans-serif";
    const ticks = [-this.span, -this.span / 2, 0, this.span / 2, this.span];
    const pos = (v) => (v + this.span) / (2 * this.span) * (n - 1) * G.tile + G.tile / 2;
    g.textAlign = "center"; g.textBaseline = "top";
    for (const v of ticks) g.fillText(v.toFixed(1), G.l + pos(v), G.t + G.side + 4);
    g.fillText("z₁", G.l + G.side / 2, G.t + G.side + 14);
    g.textAlign = "right"; g.textBaseline = "middle";
    for (const v of ticks) g.fillText(v.toFixed(1), G.l - 4, G.t + G.side - pos(v));
    g.save(); g.translate(8, G.t + G.side / 2); g.rotate(-Math.PI / 2); g.textAlign = "center"; g.fillText("z₂", 0, 0); g.restore();
    // the current z
    const x = G.l + pos(this.z[0]), y = G.t + G.side - pos(this.z[1]);
    if (x >= G.l && x <= G.l + G.side && y >= G.t && y <= G.t + G.side) this.cross(g, x, y);
  }

  cross(g, x, y) {
    for (const [w, c] of [[5, "#fff"], [2.2, RED]]) {
      g.lineWidth = w; g.strokeStyle = c;
      g.beginPath(); g.moveTo(x - 8, y); g.lineTo(x + 8, y); g.moveTo(x, y - 8); g.lineTo(x, y + 8); g.stroke();
    }
  }

  paintMap() {
    const s = this.mapSpec(), g = this.mapCanvas.getContext("2d");
    this.mapCanvas.style.display = s ? "" : "none";
    this.mapMsg.textContent = s ? "" : `${this.model} has ${this.k()} latent dimensions, too many for one map: the grid `
      + "shows the plane at the chosen z₃, and the section below shows which test digits lie near it.";
    if (!s || !this.images[s.png]) return;
    if (this.mapCanvas.width !== s.width) { this.mapCanvas.width = s.width; this.mapCanvas.height = s.height; }
    g.drawImage(this.images[s.png], 0, 0);
    const [x0, y0, x1, y1] = s.box;
    const x = x0 + (this.z[0] + s.lim) / (2 * s.lim) * (x1 - x0), y = y1 - (this.z[1] + s.lim) / (2 * s.lim) * (y1 - y0);
    this.cross(g, Math.min(Math.max(x, x0), x1), Math.min(Math.max(y, y0), y1));
  }

  async setModel(name) {
    this.model = name;
    this.z3row.style.display = this.k() === 3 ? "" : "none";
    this.refresh(true);
  }

  async start() {
    this.images = await loadMapImages(this.m.maps);
    try {
      this.runtime = await loadOrt(this.m);
      await this.runtime.session(this.m.models[this.model].decoder);
    } catch (err) {
      this.runtime = { kind: "server" };
      this.notice.textContent = `Decoding on the server: ${err.message || err}.`;
    }
    this.state.runtime = this.runtime.kind;
    this.root.dataset.runtime = this.runtime.kind;
    await this.setModel(this.model);
    while (this.busy || this.queued) await new Promise((r) => setTimeout(r, 20));
    this.state.ready = true;
    this.root.dataset.ready = "1";
  }
}

export async function mount(element, manifest, server) {
  absolute(manifest);
  const app = new ExploreApp(element, manifest, server);
  if (!app.models.length) { element.textContent = "No 2-D or 3-D model is available here; the footer says why."; return app; }
  await app.start();
  return app;
}
