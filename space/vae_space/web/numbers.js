// The numbers the page reports for one input, computed as the server computes them (vae_hub's VAE.recon_nll and
// VAE.kl, the Space's percentile and neighbour search), so the two runtimes agree to float precision.
// No DOM: unit-tested with node --test (test/numbers.test.js).

export const sigmoid = (v) => 1 / (1 + Math.exp(-v));  // decoder logits -> pixel intensities
export const softplus = (v) => (v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v)));

// −log p(x|z): Bernoulli per pixel intensity, summed, from the decoder's logits (BCE with logits).
export function reconNll(x, logits) {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += softplus(logits[i]) - x[i] * logits[i];
  return s;
}

// KL(q(z_i|x) ‖ N(0, 1)) of each dimension of N(μ, diag σ²)
export function klPerDim(mean, logSigma) {
  return Array.from(mean, (m, i) => 0.5 * (m * m + Math.exp(2 * logSigma[i]) - 1 - 2 * logSigma[i]));
}

// KL(N(μ, diag σ²) ‖ prior), exact: to N(0, I) when prior is null, else to N(0, Σ) given Σ⁻¹ (inv) and log|Σ|.
export function klGaussian(mean, logSigma, prior = null) {
  const k = mean.length;
  if (!prior) return klPerDim(mean, logSigma).reduce((a, b) => a + b, 0);
  let tr = 0, quad = 0, logdetQ = 0;
  for (let i = 0; i < k; i++) {
    tr += prior.inv[i][i] * Math.exp(2 * logSigma[i]);
    logdetQ += 2 * logSigma[i];
    for (let j = 0; j < k; j++) quad += mean[i] * prior.inv[i][j] * mean[j];
  }
  return 0.5 * (tr + quad - k + prior.logdet - logdetQ);
}

// The ELBO of one input at the posterior mean (the deterministic ELBO the Space ranks test digits by).
export function elboParts(x, logits, mean, logSigma, prior = null) {
  const recon = reconNll(x, logits), kl = klGaussian(mean, logSigma, prior);
  return { recon_nll: recon, kl, elbo: -(recon + kl) };
}

// How many of the sorted values are below v (numpy's searchsorted, side="left").
export function searchsorted(sorted, v) {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// The count nearest codes to z (rows of mu, n × k, row-major) by Euclidean distance, closest first; ties keep
// the lower index first, as a stable sort of the distances does.
export function nearest(mu, n, z, count = 8) {
  const k = z.length, best = [];  // [d2, i], sorted
  for (let i = 0; i < n; i++) {
    let d2 = 0;
    for (let j = 0; j < k; j++) { const d = mu[i * k + j] - z[j]; d2 += d * d; }
    if (best.length < count || d2 < best[best.length - 1][0]) {
      let at = best.length;
      while (at > 0 && best[at - 1][0] > d2) at--;
      best.splice(at, 0, [d2, i]);
      if (best.length > count) best.pop();
    }
  }
  return best.map(([d2, i]) => ({ i, distance: Math.sqrt(d2) }));
}

// A seeded uniform generator (mulberry32): the same draws for the same seed, in every browser and in node.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// n standard normal draws (Box–Muller) from a uniform generator
export function normals(u, n) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u())), t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

// The lower Cholesky factor L (L·Lᵀ = A, row-major) of a d × d symmetric positive-definite matrix.
export function cholesky(a, d) {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = i === j ? Math.sqrt(Math.max(s, 0)) : s / l[j * d + j];
    }
  }
  return l;
}

// n draws of N(0, I) in d dimensions, or of N(0, L·Lᵀ) given the Cholesky factor L: n × d, row-major.
export function gaussianDraws(n, d, u, chol = null) {
  const eps = normals(u, n * d);
  if (!chol) return eps;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < d; r++) {
      let s = 0;
      for (let c = 0; c <= r; c++) s += chol[r * d + c] * eps[i * d + c];
      out[i * d + r] = s;
    }
  }
  return out;
}

// n draws from a Gaussian mixture in d dimensions, given flat {weights (K), means (K·d), covs (K·d·d)} (as
// density.safetensors holds them): pick a component by its weight, then mean + L·ε with L the Cholesky factor of
// its covariance. Returns n × d, row-major.
export function sampleMixture(mix, n, d, u) {
  const cum = [];
  Array.from(mix.weights).reduce((s, w, k) => (cum[k] = s + w), 0);
  const chols = cum.map((_, k) => cholesky(Array.prototype.slice.call(mix.covs, k * d * d, (k + 1) * d * d), d));
  const eps = normals(u, d * n), out = new Float64Array(d * n);
  for (let i = 0; i < n; i++) {
    const r = u() * cum[cum.length - 1];
    let k = cum.findIndex((c) => r < c);
    if (k < 0) k = cum.length - 1;
    const l = chols[k];
    for (let a = 0; a < d; a++) {
      let s = mix.means[k * d + a];
      for (let b = 0; b <= a; b++) s += l[a * d + b] * eps[i * d + b];
      out[i * d + a] = s;
    }
  }
  return out;
}

// n draws from a 2-D Gaussian mixture {weights, means: [[x, y]], covs: [[[a, b], [b, c]]]} (the manifest's form).
// Returns [x0, y0, x1, y1, ...].
export function sampleMixture2d(mix, n, u) {
  return sampleMixture({ weights: mix.weights, means: mix.means.flat(), covs: mix.covs.flat(2) }, n, 2, u);
}

// The log-density of a 2-D Gaussian mixture (as sampleMixture2d takes it) at (x, y)
export function mixtureLogPdf2d(mix, x, y) {
  let p = 0;
  mix.weights.forEach((w, k) => {
    const [[a, b], [, c]] = mix.covs[k], det = a * c - b * b, dx = x - mix.means[k][0], dy = y - mix.means[k][1];
    p += w * Math.exp(-0.5 * (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det) / (2 * Math.PI * Math.sqrt(det));
  });
  return Math.log(p);
}

// ------------------------------------------------------------------ paths between codes
export function lerp(a, b, t) { return Array.from(a, (v, i) => (1 - t) * v + t * b[i]); }

// As vae_space's slerp: exactly a at t = 0 and b at t = 1; linear when the codes are (anti)parallel or one is ~0.
export function slerp(a, b, t) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  na = Math.sqrt(na); nb = Math.sqrt(nb);
  const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.max(na * nb, 1e-12))));
  const so = Math.sin(omega);
  if (so < 1e-6 || na < 1e-6 || nb < 1e-6) return lerp(a, b, t);
  const wa = Math.sin((1 - t) * omega) / so, wb = Math.sin(t * omega) / so;
  return Array.from(a, (v, i) => wa * v + wb * b[i]);
}

// ------------------------------------------------------------------ picking test digits
export const STYLE_SHARE = 0.15;  // "thick"/"thin": from the 15% of the class with the most/least ink (as the server)

// The index of a test digit for a source ("random test digit", "test digit 7", "thick test digit 7", "thin test
// digit 2"), drawn with a seed; slot separates two picks with the same seed. images: n × 784 bytes; labels: n.
export function pickTestDigit(images, labels, source, seed, slot = 0) {
  const n = labels.length, m = /^(thick |thin )?test digit (\d)$/.exec(source);
  if (source !== "random test digit" && !m) throw new Error(`unknown source ${source}`);
  let pool = [];
  for (let i = 0; i < n; i++) if (!m || labels[i] === +m[2]) pool.push(i);
  if (m && m[1]) {
    const ink = new Map(pool.map((i) => { let s = 0; for (let p = i * 784; p < (i + 1) * 784; p++) s += images[p]; return [i, s]; }));
    pool.sort((p, q) => ink.get(p) - ink.get(q) || p - q);
    const k = Math.max(1, Math.floor(pool.length * STYLE_SHARE));
    pool = m[1] === "thick " ? pool.slice(-k) : pool.slice(0, k);
  }
  const u = rng((seed >>> 0) ^ Math.imul(slot + 1, 0x9e3779b1));  // slots apart for every seed (not seed·2 + slot)
  return pool[Math.floor(u() * pool.length)];
}

// ------------------------------------------------------------------ colour sweeps
// What a sweep of a colour model's variable changes, as vae_space.tabs.generate.color_shape_change measures it
// (the Python/JS parity is tests/test_colour_parity.py). imgs: S frames of 3 × 784 intensities (planar RGB,
// row-major), S ≥ 2. Returns { colour, shape }:
// - shape: each frame's stroke whatever its colour (its brightest channel) scaled to peak 1, so brightness does
//   not count; its standard deviation over the frames (n − 1, as torch.std), averaged over the pixels that are ink
//   (> 0.3) in some frame;
// - colour: each frame's chromaticity (its intensity²-weighted mean colour over its brightest channel), and the
//   mean distance of the frames' chromaticities from their average.
// The scaled strokes are rounded to float32 as torch computes them, so a pixel at the ink threshold counts alike.
export function colourShapeChange(imgs, S) {
  const P = 784, f = Math.fround;
  const norm = new Float32Array(S * P), chroma = new Float64Array(S * 3);
  for (let s = 0; s < S; s++) {
    const o = s * 3 * P, inten = new Float32Array(P);
    let peak = 0;
    for (let p = 0; p < P; p++) {
      inten[p] = Math.max(imgs[o + p], imgs[o + P + p], imgs[o + 2 * P + p]);
      peak = Math.max(peak, inten[p]);
    }
    peak = Math.max(peak, f(1e-3));
    const rgb = [0, 0, 0];
    let wsum = 0;
    for (let p = 0; p < P; p++) {
      norm[s * P + p] = f(inten[p] / peak);
      const w = inten[p] * inten[p];  // bright stroke pixels, not the faint background
      wsum += w;
      for (let c = 0; c < 3; c++) rgb[c] += imgs[o + c * P + p] * w;
    }
    for (let c = 0; c < 3; c++) rgb[c] /= Math.max(wsum, 1e-6);
    const top = Math.max(...rgb, 1e-3);
    for (let c = 0; c < 3; c++) chroma[s * 3 + c] = rgb[c] / top;
  }
  let spread = 0, inked = 0;
  for (let p = 0; p < P; p++) {
    let ink = false, mean = 0;
    for (let s = 0; s < S; s++) { ink ||= norm[s * P + p] > 0.3; mean += norm[s * P + p]; }
    if (!ink) continue;
    mean /= S;
    let v = 0;
    for (let s = 0; s < S; s++) v += (norm[s * P + p] - mean) ** 2;
    spread += Math.sqrt(v / (S - 1));
    inked += 1;
  }
  const avg = [0, 1, 2].map((c) => { let m = 0; for (let s = 0; s < S; s++) m += chroma[s * 3 + c]; return m / S; });
  let colour = 0;
  for (let s = 0; s < S; s++) colour += Math.hypot(...[0, 1, 2].map((c) => chroma[s * 3 + c] - avg[c]));
  return { colour: colour / S, shape: inked ? spread / inked : 0 };
}

// The "controls" verdict of a sweep's measures (thresholds: { colour, shape }, the manifest's).
export function controls({ colour, shape }, thresholds) {
  const c = colour > thresholds.colour, s = shape > thresholds.shape;
  return c && s ? "colour and shape" : c ? "colour" : s ? "shape" : "little";
}
