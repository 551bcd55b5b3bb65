// Painting: canvases drawn at the device's pixel ratio and laid out for the width they get, digits, and the 2-D
// latent map drawn from the test digits' codes (no pictures to download, crisp at any size). Text is never
// smaller than TEXT_PX CSS pixels.

export const CLASS_RGB = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];
export const RED = "rgb(220, 38, 38)";
export const BLUE = "rgb(37, 99, 235)";
export const LIGHT_BLUE = "rgb(147, 197, 253)";
export const INK = "rgb(30, 34, 42)";
export const MUTED = "rgb(90, 98, 112)";
export const GRID = "rgb(226, 232, 240)";
export const SIDE = 28;
export const TEXT_PX = 12;  // the smallest text on any canvas (the page's body text is 15-16 px)
export const font = (px = TEXT_PX, weight = "") => `${weight} ${Math.max(px, TEXT_PX)}px system-ui, -apple-system, "Segoe UI", sans-serif`;
export const rgb = (c) => `rgb(${c.join(",")})`;

// A canvas that fills its container's width at a given aspect (or a height computed from the width) and is
// redrawn at the device's pixel ratio whenever its size changes: draw(g, width, height) in CSS pixels.
export class Surface {
  constructor(canvas, draw, heightFor = (w) => w) {
    this.canvas = canvas;
    this.draw = draw;
    this.heightFor = heightFor;
    this.width = 0;
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.paint()).observe(canvas.parentElement || canvas);
    }
  }

  paint() {
    const c = this.canvas, box = c.parentElement || c;
    const w = Math.round(box.clientWidth || c.clientWidth || 320);
    if (!w) return;
    const h = Math.round(this.heightFor(w)), dpr = Math.min(3, window.devicePixelRatio || 1);
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
      c.style.height = `${h}px`;
    }
    this.width = w;
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    this.draw(g, w, h);
  }
}

// 784 values in [0, 1] (row-major 28×28) as grey pixels on a 28×28 canvas (shown enlarged, pixelated, by CSS).
export function putDigit(canvas, v, offset = 0) {
  const g = canvas.getContext("2d"), im = g.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const x = Math.round(255 * Math.min(1, Math.max(0, v[offset + i])));
    im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = x;
    im.data[4 * i + 3] = 255;
  }
  g.putImageData(im, 0, 0);
}

// A digit (values in [0, 1], or bytes 0-255 with scale 255) drawn as a size × size tile at (x, y), pixelated.
const scratch = typeof document === "object" ? document.createElement("canvas") : null;
export function drawDigit(g, v, x, y, size, offset = 0, scale = 1) {
  scratch.width = scratch.height = SIDE;
  const sg = scratch.getContext("2d"), im = sg.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const p = Math.round(255 * Math.min(1, Math.max(0, v[offset + i] / scale)));
    im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = p;
    im.data[4 * i + 3] = 255;
  }
  sg.putImageData(im, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, x, y, size, size);
}

// A coloured digit (3 × 784 values in [0, 1], planar RGB, from offset) drawn as a size × size tile at (x, y), pixelated.
export function drawColourDigit(g, v, x, y, size, offset = 0) {
  scratch.width = scratch.height = SIDE;
  const sg = scratch.getContext("2d"), im = sg.createImageData(SIDE, SIDE), P = SIDE * SIDE;
  for (let i = 0; i < P; i++) {
    for (let c = 0; c < 3; c++) im.data[4 * i + c] = Math.round(255 * Math.min(1, Math.max(0, v[offset + c * P + i])));
    im.data[4 * i + 3] = 255;
  }
  sg.putImageData(im, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, x, y, size, size);
}

export function cross(g, x, y, color = RED, r = 7) {
  for (const [w, c] of [[5, "#fff"], [2.2, color]]) {
    g.lineWidth = w; g.strokeStyle = c;
    g.beginPath(); g.moveTo(x - r, y); g.lineTo(x + r, y); g.moveTo(x, y - r); g.lineTo(x, y + r); g.stroke();
  }
}

// ------------------------------------------------------------------ the 2-D latent map
// The test digits' codes (posterior means, n × 2) coloured by digit, with axes and each digit's label at the
// median of its codes. The background is drawn once per size and kept; overlays are drawn on top.
export class LatentMap {
  // lim: the map's half-width in latent units (default: the codes' 99.5th percentile of |z| plus a margin);
  // center: the latent point at the map's centre (a zoomed view)
  constructor(mu, labels, title = "", lim = null, center = [0, 0]) {
    this.mu = mu;
    this.labels = labels;
    this.title = title;
    this.center = center;
    const abs = Array.from(mu, Math.abs).sort((a, b) => a - b);
    this.lim = lim ?? Math.max(3, Math.ceil(((abs[Math.floor(0.995 * (abs.length - 1))] ?? 0) + 0.4) * 2) / 2);
    this.bg = null;
  }

  layout(w, h) {
    const left = 40, bottom = 34, top = this.title ? 26 : 8, right = 8;
    const side = Math.max(40, Math.min(w - left - right, h - top - bottom));
    return { x0: left, y0: top, x1: left + side, y1: top + side, w, h };
  }

  // latent -> canvas (CSS px) and back
  toPx(L, z) {
    const [cx, cy] = this.center;
    return [L.x0 + (z[0] - cx + this.lim) / (2 * this.lim) * (L.x1 - L.x0), L.y1 - (z[1] - cy + this.lim) / (2 * this.lim) * (L.y1 - L.y0)];
  }

  toZ(L, x, y) {
    if (x < L.x0 || x > L.x1 || y < L.y0 || y > L.y1) return null;
    const [cx, cy] = this.center;
    return [cx - this.lim + (x - L.x0) / (L.x1 - L.x0) * 2 * this.lim, cy - this.lim + (L.y1 - y) / (L.y1 - L.y0) * 2 * this.lim];
  }

  // draw the background (cached per size) and return the layout for overlays
  paint(g, w, h) {
    const L = this.layout(w, h), dpr = g.getTransform().a;
    const key = `${w}x${h}@${dpr}`;
    if (!this.bg || this.bgKey !== key) {
      this.bg = document.createElement("canvas");
      this.bg.width = Math.round(w * dpr);
      this.bg.height = Math.round(h * dpr);
      const b = this.bg.getContext("2d");
      b.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.paintBackground(b, L);
      this.bgKey = key;
    }
    g.save();
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.drawImage(this.bg, 0, 0);
    g.restore();
    return L;
  }

  paintBackground(g, L) {
    g.fillStyle = "#fff";
    g.fillRect(0, 0, L.w, L.h);
    g.strokeStyle = GRID;
    g.lineWidth = 1;
    const step = this.lim > 4 ? 2 : this.lim > 1.5 ? 1 : this.lim > 0.6 ? 0.5 : 0.2;
    g.font = font(); g.fillStyle = MUTED;
    const label = (v) => String(+v.toFixed(1));
    this.center.forEach((c, axis) => {
      for (let v = Math.ceil((c - this.lim) / step) * step; v <= c + this.lim + 1e-9; v += step) {
        const [px, py] = this.toPx(L, [v, v]);
        g.beginPath();
        if (axis === 0) {
          g.moveTo(px, L.y0); g.lineTo(px, L.y1); g.stroke();
          g.textAlign = "center"; g.textBaseline = "top"; g.fillText(label(v), px, L.y1 + 4);
        } else {
          g.moveTo(L.x0, py); g.lineTo(L.x1, py); g.stroke();
          g.textAlign = "right"; g.textBaseline = "middle"; g.fillText(label(v), L.x0 - 5, py);
        }
      }
    });
    g.textAlign = "center"; g.textBaseline = "top";
    g.fillText("z₁", (L.x0 + L.x1) / 2, L.y1 + 18);
    g.save(); g.translate(10, (L.y0 + L.y1) / 2); g.rotate(-Math.PI / 2); g.textBaseline = "middle"; g.fillText("z₂", 0, 0); g.restore();
    if (this.title) { g.font = font(13, "600"); g.fillStyle = INK; g.textAlign = "left"; g.fillText(this.title, L.x0, 6); }
    g.save();
    g.beginPath(); g.rect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0); g.clip();
    const n = this.labels.length, r = Math.max(1.2, (L.x1 - L.x0) / 260);
    g.globalAlpha = 0.55;
    for (let i = 0; i < n; i++) {
      const [x, y] = this.toPx(L, [this.mu[2 * i], this.mu[2 * i + 1]]);
      g.fillStyle = rgb(CLASS_RGB[this.labels[i]] || [0, 0, 0]);
      g.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
    g.globalAlpha = 1;
    // each digit's label at the median of its codes
    g.font = font(17, "700"); g.textAlign = "center"; g.textBaseline = "middle";
    for (let d = 0; d < 10; d++) {
      const xs = [], ys = [];
      for (let i = 0; i < n; i++) if (this.labels[i] === d) { xs.push(this.mu[2 * i]); ys.push(this.mu[2 * i + 1]); }
      if (!xs.length) continue;
      const med = (a) => a.sort((p, q) => p - q)[a.length >> 1];
      const [x, y] = this.toPx(L, [med(xs), med(ys)]);
      g.lineWidth = 3; g.strokeStyle = "rgba(255,255,255,0.9)"; g.strokeText(String(d), x, y);
      g.fillStyle = rgb(CLASS_RGB[d]); g.fillText(String(d), x, y);
    }
    g.restore();
    g.strokeStyle = "rgb(148, 163, 184)"; g.strokeRect(L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0);
  }
}
