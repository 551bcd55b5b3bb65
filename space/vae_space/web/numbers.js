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

// KL(N(μ, diag σ²) ‖ prior), exact: to N(0, I) when prior is null, else to N(0, Σ) given Σ⁻¹ (inv) and log|Σ|.
export function klGaussian(mean, logSigma, prior = null) {
  const k = mean.length;
  if (!prior) {
    let kl = 0;
    for (let i = 0; i < k; i++) kl += 0.5 * (mean[i] ** 2 + Math.exp(2 * logSigma[i]) - 1 - 2 * logSigma[i]);
    return kl;
  }
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
