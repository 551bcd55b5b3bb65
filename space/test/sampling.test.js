import assert from "node:assert/strict";
import { test } from "node:test";

import { cholesky, gaussianDraws, mixtureLogPdf2d, normals, rng, sampleMixture, sampleMixture2d } from "../vae_space/web/numbers.js";

test("a seed gives the same draws, another seed others", () => {
  const a = normals(rng(7), 5), b = normals(rng(7), 5), c = normals(rng(8), 5);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test("normal draws have mean 0 and variance 1", () => {
  const x = normals(rng(1), 20000);
  const m = x.reduce((s, v) => s + v, 0) / x.length, v = x.reduce((s, y) => s + (y - m) ** 2, 0) / x.length;
  assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.04, `${m} ${v}`);
});

test("mixture draws follow the weights, means and covariances", () => {
  const mix = { weights: [0.25, 0.75], means: [[-5, 0], [5, 1]], covs: [[[1, 0], [0, 1]], [[2, 0.8], [0.8, 0.5]]] };
  const z = sampleMixture2d(mix, 20000, rng(3));
  const right = [];
  for (let i = 0; i < z.length; i += 2) if (z[i] > 0) right.push([z[i], z[i + 1]]);
  assert.ok(Math.abs(right.length / 20000 - 0.75) < 0.015, `${right.length}`);
  const mx = right.reduce((s, p) => s + p[0], 0) / right.length, my = right.reduce((s, p) => s + p[1], 0) / right.length;
  const cxy = right.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / right.length;
  assert.ok(Math.abs(mx - 5) < 0.05 && Math.abs(my - 1) < 0.03 && Math.abs(cxy - 0.8) < 0.05, `${mx} ${my} ${cxy}`);
});

test("the mixture's log-density is a standard normal's for one unit component", () => {
  const mix = { weights: [1], means: [[0, 0]], covs: [[[1, 0], [0, 1]]] };
  assert.ok(Math.abs(mixtureLogPdf2d(mix, 1, 2) - (-Math.log(2 * Math.PI) - 2.5)) < 1e-12);
  // two identical components weigh as one
  const two = { weights: [0.5, 0.5], means: [[1, 0], [1, 0]], covs: [[[1, 0.3], [0.3, 2]], [[1, 0.3], [0.3, 2]]] };
  const one = { weights: [1], means: [[1, 0]], covs: [[[1, 0.3], [0.3, 2]]] };
  assert.ok(Math.abs(mixtureLogPdf2d(two, 0.2, -0.4) - mixtureLogPdf2d(one, 0.2, -0.4)) < 1e-12);
});

test("the Cholesky factor reproduces its matrix", () => {
  const a = [4, 2, 0.4, 2, 5, 1, 0.4, 1, 3];
  const l = cholesky(a, 3);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += l[i * 3 + k] * l[j * 3 + k];
      assert.ok(Math.abs(s - a[i * 3 + j]) < 1e-12, `${i} ${j} ${s}`);
    }
    for (let j = i + 1; j < 3; j++) assert.equal(l[i * 3 + j], 0);
  }
});

test("prior draws with a Cholesky factor have its covariance", () => {
  const cov = [1, 0.4, 0.4, 0.5], z = gaussianDraws(40000, 2, rng(5), cholesky(cov, 2));
  let sxx = 0, sxy = 0, syy = 0;
  for (let i = 0; i < z.length; i += 2) { sxx += z[i] ** 2; sxy += z[i] * z[i + 1]; syy += z[i + 1] ** 2; }
  const n = z.length / 2;
  assert.ok(Math.abs(sxx / n - 1) < 0.03 && Math.abs(sxy / n - 0.4) < 0.02 && Math.abs(syy / n - 0.5) < 0.02);
  assert.deepEqual(gaussianDraws(3, 2, rng(9)), normals(rng(9), 6), "N(0, I): the normals themselves");
});

test("a d-dimensional mixture draws each component's mean and covariance", () => {
  const d = 3, mix = { weights: Float32Array.of(0.5, 0.5), means: Float32Array.of(-10, 0, 0, 10, 1, 2),
    covs: Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0.5, 0, 0.5, 1, 0.3, 0, 0.3, 0.5) };
  const z = sampleMixture(mix, 20000, d, rng(11)), right = [];
  for (let i = 0; i < z.length; i += d) if (z[i] > 0) right.push([z[i], z[i + 1], z[i + 2]]);
  const mean = [0, 1, 2].map((a) => right.reduce((s, p) => s + p[a], 0) / right.length);
  const c = (a, b) => right.reduce((s, p) => s + (p[a] - mean[a]) * (p[b] - mean[b]), 0) / right.length;
  assert.ok(Math.abs(right.length / 20000 - 0.5) < 0.015);
  assert.ok(Math.abs(mean[0] - 10) < 0.05 && Math.abs(mean[1] - 1) < 0.04 && Math.abs(mean[2] - 2) < 0.03, `${mean}`);
  assert.ok(Math.abs(c(0, 1) - 0.5) < 0.06 && Math.abs(c(1, 2) - 0.3) < 0.04 && Math.abs(c(2, 2) - 0.5) < 0.03);
});
