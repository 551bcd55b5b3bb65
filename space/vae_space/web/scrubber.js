// Interpolate on Gradio's page, scrubbed in the browser: once the server has encoded the endpoints (the strip and the GIF stay
// the downloadable results), a slider walks t from A to B and each point of the linear and the spherical path
// is decoded at once with the model's ONNX decoder; the point moves along both paths on the 2-D map (for
// models with more dimensions, the 2-D model's encoding of the decoded frames, as the server draws it).

import { PageBackend, loadOrt } from "./backend.js";
import { absolute, loadImage } from "./data.js";
import { lerp, slerp } from "./numbers.js";
import { SIDE, putDigit } from "./paint.js";
import { Latest } from "./schedule.js";
import { el } from "./ui.js";

const BLUE = "rgb(37, 99, 235)";
const ORANGE = "rgb(234, 88, 12)";

class InterpApp {
  constructor(root, manifest, server) {
    this.m = manifest;
    this.server = server;
    this.root = root;
    this.info = null;
    this.t = 0.5;
    this.latest = new Latest(() => this.paint(), (err) => { this.note.textContent = `Could not decode: ${err.message || err}`; });
    this.state = window.vaeInterp = { ready: false, runtime: null, decodes: 0, t: null, app: this, set: (i) => this.set(i) };
    this.slider = el("input", { type: "range", min: "0", max: "1", step: "0.01", value: "0.5", "aria-label": "t: from A (0) to B (1)", class: "vi-slider" });
    this.tLabel = el("span", { class: "vx-mono" });
    const digit = (label) => el("canvas", { width: SIDE, height: SIDE, class: "vd-digit", role: "img", "aria-label": label });
    this.lin = digit("Linear path at t");
    this.sph = digit("Spherical path at t");
    this.map = el("canvas", { width: 440, height: 454, class: "vx-map", role: "img", "aria-label": "The paths on the 2-D latent map" });
    this.note = el("div", { class: "vd-notice" });
    const fig = (c, caption) => el("figure", { class: "vd-fig vi-digit" }, el("div", { class: "vd-frame" }, c), el("figcaption", { text: caption }));
    this.panel = el("div", { class: "vi-panel" },
      el("div", { class: "vd-col" },
        el("label", { class: "vi-row" }, "A ", this.slider, " B ", this.tLabel),
        el("div", { class: "vd-pair" }, fig(this.lin, "linear: (1 − t)·z_A + t·z_B"), fig(this.sph, "spherical (slerp): along the arc")),
        this.note),
      el("figure", { class: "vd-fig" }, this.map, el("figcaption", { text: "Blue: the linear path, orange: the spherical one; the dots are t." })));
    root.innerHTML = "";
    root.append(el("div", { class: "vd-notice", text: "Press Interpolate: then drag the slider to walk the path, decoded in your browser." }), this.panel);
    this.panel.style.display = "none";
    this.slider.addEventListener("input", () => { this.t = +this.slider.value; this.refresh(); });
  }

  async start() {
    this.images = {};
    await Promise.all(Object.values(this.m.maps).map(async (s) => { this.images[s.png] = await loadImage(s.png); }));
    try {
      this.runtime = new PageBackend(await loadOrt(this.m), this.m);
    } catch {
      this.runtime = null;  // the strip and the GIF still show the path
    }
    this.state.runtime = this.runtime ? "browser" : "none";
    this.state.ready = true;
    this.root.dataset.ready = "1";
    const early = this.pendingInfo || window.vaeInterpPending;  // a result that came while this loaded
    window.vaeInterpPending = null;
    if (early) await this.set(early);
  }

  async decode(model, codes, n) {
    this.state.decodes += 1;
    return this.runtime.decode(model, Float32Array.from(codes), n);
  }

  async encode2d(images, n) {
    // the 2-D map model's posterior means of decoded frames: where the server's map puts them too
    const { mean } = await this.runtime.encode(this.m.map_model, images, n);
    return Array.from({ length: n }, (_, i) => [mean[2 * i], mean[2 * i + 1]]);
  }

  async set(info) {
    if (!info || !Array.isArray(info.z_a) || !this.m.models[info.model]) return;
    if (!this.state.ready) { this.pendingInfo = info; return; }
    if (!this.runtime) { this.note.textContent = "The in-browser runtime could not load: the strip and the GIF show the path."; return; }
    if (!this.m.models[info.model].ready) {  // still being exported when the page loaded
      const m = absolute(await this.server.live_manifest({ wait: info.model }));
      this.m.models = m.models;
      if (!this.m.models[info.model].ready) return;
    }
    this.info = info;
    this.panel.style.display = "";
    this.mapName = this.m.models[info.model].z_dim === 2 && this.m.maps[info.model] ? info.model : this.m.map_model;
    // the two paths on the map, 25 points each
    const n = 25, ts = Array.from({ length: n }, (_, i) => i / (n - 1));
    const lin = ts.map((t) => lerp(info.z_a, info.z_b, t)), sph = ts.map((t) => slerp(info.z_a, info.z_b, t));
    if (this.mapName === info.model) {
      this.paths = [lin, sph];
    } else {
      const imgs = await this.decode(info.model, [...lin, ...sph].flat(), 2 * n);
      const pts = await this.encode2d(imgs, 2 * n);
      this.paths = [pts.slice(0, n), pts.slice(n)];
    }
    this.note.textContent = this.mapName === info.model ? "" : `The map is ${this.mapName}'s view of the decoded frames.`;
    this.refresh();
  }

  refresh() { this.latest.request(); }

  get busy() { return this.latest.busy; }

  async paint() {
    const info = this.info, t = this.t;
    if (!info) return;
    const zl = lerp(info.z_a, info.z_b, t), zs = slerp(info.z_a, info.z_b, t);
    const imgs = await this.decode(info.model, [...zl, ...zs], 2);
    putDigit(this.lin, imgs.subarray(0, SIDE * SIDE));
    putDigit(this.sph, imgs.subarray(SIDE * SIDE));
    const pts = this.mapName === info.model ? [zl, zs] : await this.encode2d(imgs, 2);
    this.paintMap(pts);
    this.tLabel.textContent = `t = ${t.toFixed(2)}`;
    this.state.t = t;
    this.state.z = { linear: zl, spherical: zs };
  }

  paintMap(points) {
    const s = this.m.maps[this.mapName], g = this.map.getContext("2d");
    if (!s || !this.images[s.png]) return;
    if (this.map.width !== s.width) { this.map.width = s.width; this.map.height = s.height; }
    g.drawImage(this.images[s.png], 0, 0);
    const [x0, y0, x1, y1] = s.box;
    const px = (z) => [Math.min(Math.max(x0 + (z[0] + s.lim) / (2 * s.lim) * (x1 - x0), x0), x1),
      Math.min(Math.max(y1 - (z[1] + s.lim) / (2 * s.lim) * (y1 - y0), y0), y1)];
    [BLUE, ORANGE].forEach((color, j) => {
      g.strokeStyle = color; g.lineWidth = 2.4;
      g.beginPath();
      this.paths[j].forEach((z, i) => (i ? g.lineTo(...px(z)) : g.moveTo(...px(z))));
      g.stroke();
    });
    const ends = [this.paths[0][0], this.paths[0][this.paths[0].length - 1]];
    g.font = "bold 14px sans-serif"; g.fillStyle = "rgb(30, 34, 42)";
    ends.forEach((z, i) => { const [x, y] = px(z); g.beginPath(); g.arc(x, y, 5, 0, 2 * Math.PI); g.fill(); g.fillText("AB"[i], x + 8, y - 6); });
    points.forEach((z, j) => {
      const [x, y] = px(z);
      g.beginPath(); g.arc(x, y, 7, 0, 2 * Math.PI);
      g.fillStyle = "#fff"; g.fill();
      g.lineWidth = 3; g.strokeStyle = j ? ORANGE : BLUE; g.stroke();
    });
  }
}

export async function mount(element, manifest, server) {
  absolute(manifest);
  const app = new InterpApp(element, manifest, server);
  await app.start();
  return app;
}
