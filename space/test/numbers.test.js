import assert from "node:assert/strict";
import { test } from "node:test";

import { elboParts, klGaussian, nearest, reconNll, searchsorted, sigmoid, softplus } from "../vae_space/web/numbers.js";

const close = (a, b, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test("reconstruction term is the Bernoulli BCE with logits", () => {
  close(reconNll(new Float32Array(784), new Float32Array(784)), 784 * Math.log(2));
  // softplus is stable at both ends and matches log(1 + e^v)
  close(softplus(0), Math.log(2));
  close(softplus(-800), 0);
  close(softplus(800), 800);
  close(softplus(2.5), Math.log1p(Math.exp(2.5)));
  close(sigmoid(0), 0.5);
  const x = [1, 0, 0.25], logits = [2, -1, 0.5];
  const want = x.reduce((s, xi, i) => s - (xi * Math.log(sigmoid(logits[i])) + (1 - xi) * Math.log(1 - sigmoid(logits[i]))), 0);
  close(reconNll(x, logits), want, 1e-12);
});

test("KL to N(0, I) in closed form, and to N(0, Σ) with Σ = I the same", () => {
  const mean = [0.5, -1, 2], logSigma = [-0.5, 0, 0.3];
  const want = mean.reduce((s, m, i) => s + 0.5 * (m * m + Math.exp(2 * logSigma[i]) - 1 - 2 * logSigma[i]), 0);
  close(klGaussian(mean, logSigma), want, 1e-12);
  const eye = { inv: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], logdet: 0 };
  close(klGaussian(mean, logSigma, eye), want, 1e-12);
  assert.equal(klGaussian([0, 0], [0, 0]), 0);
  // a correlated prior: KL(N(0, Σ) ‖ N(0, Σ)) is 0 only when q is Σ itself; with q = N(0, I) and Σ = diag(2, 0.5):
  const prior = { inv: [[0.5, 0], [0, 2]], logdet: Math.log(2 * 0.5) };
  close(klGaussian([0, 0], [0, 0], prior), 0.5 * (0.5 + 2 - 2 + 0 - 0), 1e-12);
  const p = elboParts([0.5], [0], [0], [0]);
  close(p.elbo, -(Math.log(2) + 0));
});

test("searchsorted counts the values below, as numpy's side='left'", () => {
  const s = Float32Array.from([-3, -1, -1, 0, 2]);
  assert.deepEqual([-4, -3, -1, -0.5, 0, 2, 5].map((v) => searchsorted(s, v)), [0, 0, 1, 3, 3, 4, 5]);
});

test("nearest codes, closest first, ties in index order", () => {
  const mu = Float32Array.from([0, 0, 1, 0, 0, 1, 5, 5, -1, 0]);  // five 2-D codes
  const got = nearest(mu, 5, [0, 0], 4);
  assert.deepEqual(got.map((g) => g.i), [0, 1, 2, 4]);
  assert.deepEqual(got.map((g) => g.distance), [0, 1, 1, 1]);
  assert.equal(nearest(mu, 5, [5, 5], 1)[0].i, 3);
});
