import assert from "node:assert/strict";
import { test } from "node:test";

import {
  HubModelError, MAX_GRAPH_BYTES, checkConfig, checkGraphs, checkShapes, checkSize, httpProblem, missingGraphs, parseRepoId,
  priorOf, progressLine, resolveUrl,
} from "../vae_space/web/hubmodel.js";
import { parseSafetensors, writeSafetensors } from "../vae_space/web/safetensors.js";

// the fields of pretrained/vae-z2/config.json that matter here
const CONFIG = { variant: "vae-z2", description: "MLP VAE with a 2-D latent.", backbone: "mlp", latent: "gaussian", z_dim: 2,
  in_channels: 1, data: "gray", conditional: false, prior_cov: null };

const refused = (fn, pattern) => assert.throws(fn, (err) => err instanceof HubModelError && pattern.test(err.message), String(pattern));

test("a repo id is NAMESPACE/NAME by the Hub's rules; a pasted link to the repo works too", () => {
  assert.equal(parseRepoId(" vae-hub/vae-hub-vae-z2 "), "vae-hub/vae-hub-vae-z2");
  assert.equal(parseRepoId("someone/vae-hub-beta-vae-b0.5"), "someone/vae-hub-beta-vae-b0.5");
  assert.equal(parseRepoId("https://huggingface.co/vae-hub/vae-hub-vae-z3/"), "vae-hub/vae-hub-vae-z3");
  assert.equal(parseRepoId("http://127.0.0.1:9/ns/m", "http://127.0.0.1:9"), "ns/m");
  refused(() => parseRepoId(""), /No model id given: expected NAMESPACE\/NAME/);
  refused(() => parseRepoId(null), /No model id given/);
  for (const bad of ["vae-z2", "a/b/c", "../etc/passwd", "ns/..", "ns/a..b", "ns/a--b", "-ns/m", "ns/m.", "ns/m?x=1",
    "ns/m#frag", "ns/ m", "ns/%2e%2e", `ns/${"a".repeat(97)}`, "ns/", "/m", "ns//m"]) {
    refused(() => parseRepoId(bad), /is not a Hub model id: expected NAMESPACE\/NAME/);
  }
  assert.equal(resolveUrl("http://h:1/", "ns/m", "config.json"), "http://h:1/ns/m/resolve/main/config.json");
});

test("config.json: a vae_hub config of a single-channel, unconditional model with a Gaussian latent", () => {
  assert.deepEqual(checkConfig(CONFIG, "ns/m"), { variant: "vae-z2", zDim: 2, priorCov: null, description: CONFIG.description });
  refused(() => checkConfig([1, 2], "ns/m"), /ns\/m's config.json is not a JSON object/);
  refused(() => checkConfig("x", "ns/m"), /not a JSON object/);
  refused(() => checkConfig({ model_type: "bert", hidden_size: 768 }, "ns/m"), /is not a vae_hub config: it has no variant, backbone/);
  refused(() => checkConfig({ ...CONFIG, latent: "categorical" }, "ns/m"), /"categorical" latent: only models with a Gaussian latent/);
  refused(() => checkConfig({ ...CONFIG, in_channels: 3, data: "color" }, "ns/m"), /coloured-MNIST model .*only single-channel/);
  refused(() => checkConfig({ ...CONFIG, conditional: true }, "ns/m"), /class-conditional .*only unconditional/);
  for (const z of [0, -1, 2.5, "2", 5000, null]) refused(() => checkConfig({ ...CONFIG, z_dim: z }, "ns/m"), /z_dim .*expected a whole number from 1 to 1024/);
  refused(() => checkConfig({ ...CONFIG, prior_cov: [[1, 0.5], [0, 1]] }, "ns/m"), /prior_cov that is not a symmetric 2×2/);
  refused(() => checkConfig({ ...CONFIG, prior_cov: [[1, 0]] }, "ns/m"), /not a symmetric 2×2/);
  assert.deepEqual(checkConfig({ ...CONFIG, prior_cov: [[1, 0.5], [0.5, 1]] }, "ns/m").priorCov, [[1, 0.5], [0.5, 1]]);
});

test("an N(0, Σ) prior gives Σ⁻¹ and log|Σ| (browser.py's _prior); N(0, I) gives none", () => {
  assert.equal(priorOf(null), null);
  const p = priorOf([[2, 0.6], [0.6, 1]]);
  const det = 2 * 1 - 0.36;
  assert.ok(Math.abs(p.logdet - Math.log(det)) < 1e-12);
  const want = [[1 / det, -0.6 / det], [-0.6 / det, 2 / det]];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) assert.ok(Math.abs(p.inv[i][j] - want[i][j]) < 1e-12);
  assert.deepEqual(p.cov, [[2, 0.6], [0.6, 1]]);
  refused(() => priorOf([[1, 2], [2, 1]], "ns/m"), /ns\/m's prior_cov is not positive definite/);
});

test("sizes: refused over the cap by Content-Length, accepted without one (checked while reading)", () => {
  checkSize(MAX_GRAPH_BYTES, MAX_GRAPH_BYTES, "ns/m", "encoder.onnx");
  checkSize(null, MAX_GRAPH_BYTES, "ns/m", "encoder.onnx");
  refused(() => checkSize(MAX_GRAPH_BYTES + 1, MAX_GRAPH_BYTES, "ns/m", "encoder.onnx"),
    /ns\/m's encoder.onnx is 64.0 MiB: more than the 64.0 MiB this page downloads for one graph/);
  refused(() => checkSize(3 * 2 ** 30, MAX_GRAPH_BYTES, "ns/m", "decoder.onnx"), /decoder.onnx is 3072.0 MiB/);
});

test("the Hub's failures as one line each", () => {
  assert.match(httpProblem(404, "RepoNotFound", "ns/m", "config.json"), /^No public model repo ns\/m on the Hub/);
  assert.match(httpProblem(401, "RepoNotFound", "ns/m", "config.json"), /^No public model repo ns\/m/);
  assert.match(httpProblem(404, null, "ns/m", "config.json"), /^No public model repo/);
  assert.match(httpProblem(403, "GatedRepo", "ns/m", "config.json"), /gated or private: this page has no Hub token/);
  assert.match(httpProblem(404, "EntryNotFound", "ns/m", "config.json"), /ns\/m has no config.json: expected a model folder/);
  assert.match(httpProblem(404, "EntryNotFound", "ns/m", "encoder.onnx"), /has no encoder.onnx, the graphs this page runs/);
  assert.match(httpProblem(429, null, "ns/m", "config.json"), /HTTP 429/);
  assert.match(httpProblem(500, null, "ns/m", "decoder.onnx"), /ns\/m\/decoder.onnx: the Hub answered HTTP 500/);
  const msg = missingGraphs("ns/m", ["encoder.onnx", "decoder.onnx"]);
  assert.match(msg, /ns\/m has no encoder.onnx or decoder.onnx/);
  assert.match(msg, /python -m vae_hub.onnx FOLDER/);
  assert.match(msg, /python train.py --push-only FOLDER --push-to-hub NAMESPACE/);
});

test("the graphs' layout: x -> mean, log_sigma and z -> logits, with the config's sizes", () => {
  const enc = { inputNames: ["x"], outputNames: ["mean", "log_sigma"] }, dec = { inputNames: ["z"], outputNames: ["logits"] };
  checkGraphs("ns/m", enc, dec);
  refused(() => checkGraphs("ns/m", dec, enc), /encoder.onnx takes \[z\] and gives \[logits\]: expected x \(B, 1, 28, 28\) -> mean, log_sigma/);
  refused(() => checkGraphs("ns/m", { inputNames: ["x", "y"], outputNames: ["mean", "log_sigma"] }, dec), /takes \[x, y\]/);
  refused(() => checkGraphs("ns/m", enc, { inputNames: ["z"], outputNames: ["out"] }), /decoder.onnx takes \[z\] and gives \[out\]: expected z/);
  const f = (n) => new Float32Array(n);
  checkShapes("ns/m", { mean: f(6), logSigma: f(6), logits: f(3 * 784) }, 3, 2);
  refused(() => checkShapes("ns/m", { mean: f(9), logSigma: f(9), logits: f(3 * 784) }, 3, 2), /encoder gives 3 numbers per digit: its config.json says z_dim 2/);
  refused(() => checkShapes("ns/m", { mean: f(6), logSigma: f(6), logits: f(3 * 2352) }, 3, 2), /decoder gives 2352 values per code: expected 784/);
});

test("progress lines name the repo and the stage", () => {
  assert.match(progressLine("ns/m", { step: "config" }), /Loading ns\/m from the Hub: its config.json/);
  assert.match(progressLine("ns/m", { step: "download", done: 2 ** 20, total: 2 * 2 ** 20 }), /1.0 MiB of 2.0 MiB/);
  assert.match(progressLine("ns/m", { step: "encode", done: 1000, total: 4000 }), /encoding the 4,000 test digits in your browser \(25%\)/);
  assert.match(progressLine("ns/m", { step: "done" }), /ns\/m is loaded from the Hub/);
});

test("the codes file the page writes reads back as the host's", () => {
  const mu = Float32Array.from([1.5, -2, 0.25, 3]), elbo = Float32Array.from([-100.5, -90]);
  const bytes = writeSafetensors({ mu: { dtype: "F32", shape: [2, 2], data: mu }, elbo: { dtype: "F32", shape: [2], data: elbo } });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0, "the data starts 8-byte aligned");
  const t = parseSafetensors(bytes.buffer, "codes");
  assert.deepEqual(t.mu.shape, [2, 2]);
  assert.deepEqual(Array.from(t.mu.data), Array.from(mu));
  assert.deepEqual(Array.from(t.elbo.data), Array.from(elbo));
  assert.throws(() => writeSafetensors({ a: { dtype: "F32", shape: [3], data: new Float32Array(2) } }), /does not hold 2 values/);
  assert.throws(() => writeSafetensors({ a: { dtype: "F16", shape: [1], data: new Float32Array(1) } }), /cannot write F16/);
});
