// Drawing -> MNIST-style 28×28, in the browser: a line-by-line port of vae_hub/data/preprocess.py
// (ink_map for canvas pixels, then ink_to_mnist). The rules, and the arithmetic a port copies to agree
// to float precision, are specified once, in that module's docstring: read them there, change them
// there and here together. tests/test_preprocess_parity.py runs both on the same canvas pixels.
//
// A classic script (no exports, no DOM): load it with <script>, with `import "./preprocess.js"` from a
// module (for its side effect), or inject it. It sets globalThis.VAEPreprocess = {
//   inkFromRGBA(data, width, height) -> Float32Array(width·height), ink in [0, 1]: ink_map of canvas
//       getImageData() pixels (RGBA, row-major; at most WORK_SIDE px a side, the size Python reads as is),
//   inkToMnist(ink, width, height) -> Float32Array(784), row-major 28×28 in [0, 1], white digit on black,
//   toMnist(data, width, height) = inkToMnist(inkFromRGBA(data, width, height), width, height),
//   DrawingError: thrown, with the same user-facing message as Python's, for what is not one digit }.
// Names below follow the Python; f32 marks where numpy rounds to float32.

(function () {
  "use strict";

  const MAX_PIXELS = 4096 * 4096;
  const WORK_SIDE = 300;
  const FIT = 20;
  const SIDE = 28;
  const CENTRE = 14.0;
  const MID = 80;
  const TARGET_WIDTH = 2.7 * MID / FIT;
  const f32 = Math.fround;

  const EMPTY = "Draw a digit first: the canvas is empty.";
  const ALL_INK = "The canvas is nearly all ink: clear it and draw one digit.";
  const DOT = "That is only a dot: draw a whole digit, filling most of the pad.";
  const PHOTO = "This looks like a photo, not a drawing: draw a digit, or send a digit on a plain background.";

  class DrawingError extends Error {
    constructor(message) {
      super(message);
      this.name = "DrawingError";
    }
  }

  // Python's round(): halves to even.
  function round(x) {
    const r = Math.round(x);
    return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  const clip01 = (x) => (x < 0 ? 0 : x > 1 ? 1 : x);

  // The k-th smallest of v (0-based), with every later element ≥ it: the order statistic sorting
  // would give, in linear time (quickselect, Hoare partition). Reorders v.
  function select(v, k) {
    let lo = 0, hi = v.length - 1;
    while (lo < hi) {
      const pivot = v[(lo + hi) >> 1];
      let i = lo, j = hi;
      while (i <= j) {
        while (v[i] < pivot) i++;
        while (v[j] > pivot) j--;
        if (i <= j) { const t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
      }
      if (k <= j) hi = j;
      else if (k >= i) lo = i;
      else break;  // j < k < i: v[k] equals the pivot, as do all between
    }
    return v[k];
  }

  // v[k] and v[k + 1] of v sorted; reorders v.
  function twoOrderStats(v, k) {
    const a = select(v, k);
    let b = Infinity;
    for (let i = k + 1; i < v.length; i++) if (v[i] < b) b = v[i];
    return [a, b];
  }

  // numpy.percentile(v, q), default "linear" method, float32 values; reorders v.
  function percentile(v, q) {
    const n = v.length;
    const i = (n - 1) * (q / 100);
    if (i >= n - 1) return select(v, n - 1);
    const j = Math.floor(i);
    const g = i - j;
    const [a, b] = twoOrderStats(v, j);
    const d = f32(b - a);
    return g >= 0.5 ? f32(b - f32(d * f32(1 - g))) : f32(a + f32(d * f32(g)));
  }

  // numpy.median of float32 values; reorders v.
  function median(v) {
    const h = v.length >> 1;
    if (v.length % 2) return select(v, h);
    const [a, b] = twoOrderStats(v, h - 1);
    return f32(f32(a + b) / 2);
  }

  // ink_map for an RGBA canvas (as_array's float conversion, then the alpha branch).
  function inkFromRGBA(data, width, height) {
    if (!(width > 0 && height > 0) || data.length !== width * height * 4) {
      throw new TypeError(`inkFromRGBA: expected ${width}×${height}×4 RGBA bytes, got ${data.length}`);
    }
    if (width * height > MAX_PIXELS) throw new DrawingError(`Image too large (${width}×${height}); the limit is 4096×4096.`);
    if (Math.min(width, height) < 8) {
      throw new DrawingError(`Image too small (${width}×${height}); draw on the pad or send at least 8×8.`);
    }
    if (Math.max(width, height) > WORK_SIDE) {  // Python box-reduces such images first (PIL's reduce), not ported
      throw new RangeError(`inkFromRGBA: at most ${WORK_SIDE} px a side, got ${width}×${height}`);
    }
    const h = height, w = width, n = w * h;
    const lum = new Float32Array(n);
    const alpha = new Float32Array(n);
    const C0 = f32(0.299), C1 = f32(0.587), C2 = f32(0.114);
    let alphaMax = 0;
    for (let i = 0; i < n; i++) {
      const p = 4 * i;
      lum[i] = f32(f32(f32(data[p] * C0) + f32(data[p + 1] * C1)) + f32(data[p + 2] * C2));
      alpha[i] = f32(data[p + 3] / 255);
      if (alpha[i] > alphaMax) alphaMax = alpha[i];
    }
    if (alphaMax < f32(0.1)) throw new DrawingError(EMPTY);
    // The stroke colour and the all-ink test only choose a branch: float64 here (see the docstring).
    let inkSum = 0, alphaSum = 0, nOpaque = 0, opaqueSum = 0;
    for (let i = 0; i < n; i++) {
      inkSum += f32(lum[i] * alpha[i]);
      alphaSum += alpha[i];
      if (alpha[i] > 0.5) { nOpaque++; opaqueSum += lum[i]; }
    }
    const strokeLum = inkSum / alphaSum;
    if (nOpaque / n > 0.5) {
      const mean = opaqueSum / nOpaque;
      let ss = 0;
      for (let i = 0; i < n; i++) if (alpha[i] > 0.5) ss += (lum[i] - mean) ** 2;
      if (Math.sqrt(ss / nOpaque) < 20 && mean < 128) throw new DrawingError(ALL_INK);
    }
    const bgValue = strokeLum < 128 ? 255 : 0;
    for (let i = 0; i < n; i++) lum[i] = f32(f32(lum[i] * alpha[i]) + f32(bgValue * f32(1 - alpha[i])));
    // the border ring: its median is the background; a busy border is a photo
    const ring = Math.max(1, round(0.03 * Math.min(h, w)));
    const border = new Float32Array(2 * ring * (w + h));
    let k = 0;
    for (let y = 0; y < ring; y++) for (let x = 0; x < w; x++) border[k++] = lum[y * w + x];
    for (let y = h - ring; y < h; y++) for (let x = 0; x < w; x++) border[k++] = lum[y * w + x];
    for (let y = 0; y < h; y++) for (let x = 0; x < ring; x++) border[k++] = lum[y * w + x];
    for (let y = 0; y < h; y++) for (let x = w - ring; x < w; x++) border[k++] = lum[y * w + x];
    const bg = median(border.slice());
    let busy = 0;
    for (let i = 0; i < border.length; i++) if (Math.abs(f32(border[i] - bg)) > 25) busy++;
    if (busy / border.length > 0.25) throw new DrawingError(PHOTO);
    // ink = distance from the background over the stroke contrast
    const diff = new Float32Array(n);
    let diffMax = -Infinity;
    for (let i = 0; i < n; i++) {
      diff[i] = bg >= 128 ? f32(bg - lum[i]) : f32(lum[i] - bg);
      if (diff[i] > diffMax) diffMax = diff[i];
    }
    let sub = diff;
    if (n > 40000) {  // diff[::2, ::2]
      sub = new Float32Array(Math.ceil(h / 2) * Math.ceil(w / 2));
      k = 0;
      for (let y = 0; y < h; y += 2) for (let x = 0; x < w; x += 2) sub[k++] = diff[y * w + x];
    }
    let contrast = sub.length > 400 ? percentile(sub === diff ? diff.slice() : sub, 99.5) : diffMax;
    contrast = Math.max(contrast, diffMax * 0.5);
    if (contrast < 30) throw new DrawingError(EMPTY);
    const c = f32(contrast), low = f32(0.1), span = f32(0.9);
    const ink = new Float32Array(n);
    for (let i = 0; i < n; i++) ink[i] = clip01(f32(f32(clip01(f32(diff[i] / c)) - low) / span));
    return ink;
  }

  // _area_weights: tap k of output pixel i reads input index[k·nOut + i] with weight[k·nOut + i].
  function areaWeights(nIn, nOut) {
    let taps = 0;
    for (let i = 0; i < nOut; i++) taps = Math.max(taps, Math.ceil((i + 1) * nIn / nOut) - Math.floor(i * nIn / nOut));
    const index = new Int32Array(taps * nOut);
    const weight = new Float64Array(taps * nOut);
    for (let i = 0; i < nOut; i++) {
      const lo = i * nIn / nOut, hi = (i + 1) * nIn / nOut;
      const first = Math.floor(lo);
      for (let k = 0; k < taps; k++) {
        const j = first + k;
        index[k * nOut + i] = Math.min(j, nIn - 1);
        weight[k * nOut + i] = Math.max(Math.min(hi, j + 1) - Math.max(lo, j), 0) / (hi - lo);
      }
    }
    return { taps, index, weight };
  }

  // _resize: (h0, w0) -> (h, w) by area resampling, float64, horizontal pass then vertical, to float32.
  function resize(a, w0, h0, w, h) {
    const X = areaWeights(w0, w), Y = areaWeights(h0, h);
    const rows = new Float64Array(h0 * w);
    for (let y = 0; y < h0; y++) {
      for (let i = 0; i < w; i++) {
        let s = 0;
        for (let k = 0; k < X.taps; k++) s += a[y * w0 + X.index[k * w + i]] * X.weight[k * w + i];
        rows[y * w + i] = s;
      }
    }
    const out = new Float32Array(h * w);
    for (let i = 0; i < h; i++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let k = 0; k < Y.taps; k++) s += rows[Y.index[k * h + i] * w + x] * Y.weight[k * h + i];
        out[i * w + x] = s;
      }
    }
    return out;
  }

  // _stroke_width: 2 · area / perimeter of a mask (perimeter: mask pixels with a 4-neighbour outside it).
  function strokeWidth(mask, w, h) {
    const at = (y, x) => y >= 0 && y < h && x >= 0 && x < w && mask[y * w + x];
    let area = 0, perimeter = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        area++;
        if (!(at(y - 1, x) && at(y + 1, x) && at(y, x - 1) && at(y, x + 1))) perimeter++;
      }
    }
    return 2.0 * area / Math.max(perimeter, 1);
  }

  // _dilate: grey dilation with a size×size square (max over the window, clipped to the image).
  function dilate(a, w, h, size) {
    const r = size >> 1;
    const rows = new Float32Array(w * h), out = new Float32Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let m = a[y * w + x];
        for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) m = Math.max(m, a[yy * w + x]);
        rows[y * w + x] = m;
      }
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let m = rows[y * w + x];
        for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) m = Math.max(m, rows[y * w + xx]);
        out[y * w + x] = m;
      }
    }
    return out;
  }

  // The bounding box [y0, y1) × [x0, x1) of the pixels above t, and how many there are.
  function bbox(a, w, h, t) {
    let count = 0, y0 = h, y1 = 0, x0 = w, x1 = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!(a[y * w + x] > t)) continue;
        count++;
        if (y < y0) y0 = y;
        if (y + 1 > y1) y1 = y + 1;
        if (x < x0) x0 = x;
        if (x + 1 > x1) x1 = x + 1;
      }
    }
    return { count, y0, y1, x0, x1 };
  }

  function crop(a, w, b) {
    const cw = b.x1 - b.x0, ch = b.y1 - b.y0;
    const out = new Float32Array(cw * ch);
    for (let y = 0; y < ch; y++) out.set(a.subarray((b.y0 + y) * w + b.x0, (b.y0 + y) * w + b.x1), y * cw);
    return out;
  }

  // _mass_centre: float64 running sums in index order.
  function massCentre(a, w, h) {
    const rows = new Float64Array(h), cols = new Float64Array(w);
    for (let y = 0; y < h; y++) {
      let s = 0;
      for (let x = 0; x < w; x++) s += a[y * w + x];
      rows[y] = s;
    }
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let y = 0; y < h; y++) s += a[y * w + x];
      cols[x] = s;
    }
    let total = 0, my = 0, mx = 0;
    for (let y = 0; y < h; y++) total += rows[y];
    for (let y = 0; y < h; y++) my += rows[y] * y;
    for (let x = 0; x < w; x++) mx += cols[x] * x;
    return [my / total, mx / total];
  }

  // ink_to_mnist: steps 5-10 of vae_hub/data/preprocess.py's docstring.
  function inkToMnist(ink, width, height) {
    if (ink.length !== width * height) throw new TypeError(`inkToMnist: expected ${width}×${height} values, got ${ink.length}`);
    if (!(ink instanceof Float32Array)) ink = Float32Array.from(ink);
    const box = bbox(ink, width, height, 0.25);
    if (!box.count) throw new DrawingError(EMPTY);
    if (box.count / (width * height) > 0.5) throw new DrawingError(ALL_INK);
    const longSide = Math.max(box.y1 - box.y0, box.x1 - box.x0);
    if (longSide < Math.max(4, 0.08 * Math.max(height, width))) throw new DrawingError(DOT);
    // 6. bounding box -> long side MID, aspect kept
    const scale = MID / longSide;
    let mh = Math.max(1, round((box.y1 - box.y0) * scale)), mw = Math.max(1, round((box.x1 - box.x0) * scale));
    let mid = resize(crop(ink, width, box), box.x1 - box.x0, box.y1 - box.y0, mw, mh);
    // 7. stretch so that most of the stroke is saturated
    const t05 = f32(0.05);
    const strokes = mid.filter((v) => v > t05);
    if (strokes.length) {
      const d = f32(Math.max(percentile(strokes, 75), 0.05));
      for (let i = 0; i < mid.length; i++) mid[i] = clip01(f32(mid[i] / d));
    }
    // 8. thicken thin pens to MNIST's stroke width
    const grow = round(TARGET_WIDTH - strokeWidth(mid.map((v) => (v > 0.5 ? 1 : 0)), mw, mh));
    if (grow >= 2) {
      const size = grow % 2 === 0 ? grow + 1 : grow;
      const pw = mw + 2 * size, ph = mh + 2 * size;
      const padded = new Float32Array(pw * ph);
      for (let y = 0; y < mh; y++) padded.set(mid.subarray(y * mw, (y + 1) * mw), (y + size) * pw + size);
      const grown = dilate(padded, pw, ph, size);
      const b = bbox(grown, pw, ph, f32(0.02));
      if (!b.count) throw new DrawingError(EMPTY);  // cannot happen: the stretched strokes reach 1
      mid = crop(grown, pw, b);
      mw = b.x1 - b.x0;
      mh = b.y1 - b.y0;
    }
    // 9. anti-aliased fit into 20×20, peak ink at 1
    const fit = FIT / Math.max(mh, mw);
    const w = Math.max(1, round(mw * fit)), h = Math.max(1, round(mh * fit));
    const small = resize(mid, mw, mh, w, h);
    let peak = -Infinity;
    for (let i = 0; i < small.length; i++) if (small[i] > peak) peak = small[i];
    if (peak <= 0) throw new DrawingError(EMPTY);
    for (let i = 0; i < small.length; i++) small[i] = clip01(f32(small[i] / peak));
    // 10. centre of mass to (14, 14), kept inside the field
    const [cy, cx] = massCentre(small, w, h);
    const top = Math.min(Math.max(round(CENTRE - cy), 0), SIDE - h);
    const left = Math.min(Math.max(round(CENTRE - cx), 0), SIDE - w);
    const out = new Float32Array(SIDE * SIDE);
    for (let y = 0; y < h; y++) out.set(small.subarray(y * w, (y + 1) * w), (top + y) * SIDE + left);
    return out;
  }

  function toMnist(data, width, height) {
    return inkToMnist(inkFromRGBA(data, width, height), width, height);
  }

  globalThis.VAEPreprocess = { inkFromRGBA, inkToMnist, toMnist, DrawingError };
})();
