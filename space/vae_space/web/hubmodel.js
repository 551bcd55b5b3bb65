// Any model from the Hugging Face Hub, by its repo id (?model=NAMESPACE/vae-hub-VARIANT, or the Models tab's
// field), run in the visitor's page like the bundled ones: its config.json and ONNX graphs come from the Hub's
// resolve URLs (manifest.hub: https://huggingface.co, or HF_ENDPOINT where the host set one), the graphs run in the
// same PageBackend (sessions made from the downloaded bytes, through blob: URLs), and the test digits are encoded
// here, in batches, for the model's codes and ELBOs: the Draw view's percentile, neighbours and map then work for
// it as for a bundled model. The result is a manifest model spec, added under the repo id.
//
// Checked before anything runs, each failure one line naming the problem and what is expected (HubModelError):
// - the id: NAMESPACE/NAME by the Hub's rules (letters, digits, '-', '_', '.'; no '--' or '..'; ≤ 96 characters);
// - config.json: a JSON object as vae_hub writes it (vae_hub/model/config.py, VAEConfig) for a model the page can run:
//   a Gaussian latent, z_dim ≥ 1, one channel (not coloured MNIST), not class-conditional; prior_cov a k×k
//   covariance or null;
// - encoder.onnx and decoder.onnx: both in the repo (a repo pushed without them: how to export them), each at most
//   MAX_GRAPH_BYTES by its Content-Length before the download and by the bytes read (a host that sends no length);
// - the graphs: the encoder takes x and gives mean and log_sigma, the decoder takes z and gives logits; one batch of
//   test digits through both must give (B, z_dim) codes and (B, 784) logits before the rest go through.
//
// Tested (tests/test_hub_by_id.py) against tests/hub_server.py, the project's in-memory Hub, answering with CORS
// headers. What that does not cover: the real Hub answers a resolve URL of an LFS- or Xet-stored file (the ONNX
// graphs are) with a redirect to its CDN or the cas/xet bridge, and the browser then sees that host's CORS
// headers and Content-Length (the stand-in answers every file itself); gated and private repos (the page has no
// token: the Hub's 401/403 is reported as such, untested); rate limits (429, untested); revisions other than main;
// Range requests and resumed downloads; the Hub's own caching and ETag behaviour; real download speeds.

import { PageBackend, SIDE, loadOrt } from "./backend.js";
import { cholesky, elboParts } from "./numbers.js";
import { writeSafetensors } from "./safetensors.js";
import { loadTestDigits } from "./sources.js";

export const DEFAULT_HUB = "https://huggingface.co";
export const MAX_GRAPH_BYTES = 64 * 2 ** 20;  // far above any vae-hub graph (a few MB), far below a tab's memory
export const MAX_CONFIG_BYTES = 2 ** 20;
export const MAX_LATENT = 1024;  // vae_hub.model.config.MAX_LATENT
const BATCH = 250;  // test digits per graph run: big enough to amortise the worker's round trip, small enough to report progress
const EXAMPLE = "vae-hub/vae-hub-vae-z2";
// fields every vae_hub config.json has (vae_hub.model.config.VAEConfig): a JSON file without them is not one of ours
const CONFIG_FIELDS = ["variant", "backbone", "latent", "z_dim", "in_channels", "data", "conditional"];
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const PX = SIDE * SIDE;
const ANSWER_MS = 30_000;  // a Hub that does not answer a HEAD or config.json in this time is reported, not waited for

export class HubModelError extends Error {
  constructor(message) { super(message); this.name = "HubModelError"; }
}
const fail = (message) => { throw new HubModelError(message); };
const brief = (s) => JSON.stringify(String(s).length > 60 ? `${String(s).slice(0, 57)}…` : String(s));
const mib = (n) => `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 2 : 1)} MiB`;

// "NAMESPACE/NAME" from what the visitor typed or pasted (a link to the repo's page works too), or a HubModelError.
export function parseRepoId(text, hub = DEFAULT_HUB) {
  let s = String(text ?? "").trim();
  for (const prefix of [hub, DEFAULT_HUB, "https://hf.co"]) if (prefix && s.startsWith(`${prefix.replace(/\/+$/, "")}/`)) s = s.slice(prefix.replace(/\/+$/, "").length + 1);
  s = s.replace(/\/+$/, "");
  const expected = `expected NAMESPACE/NAME, e.g. ${EXAMPLE}`;
  if (!s) fail(`No model id given: ${expected}.`);
  const parts = s.split("/");
  if (parts.length !== 2) fail(`${brief(s)} is not a Hub model id: ${expected}.`);
  for (const p of parts) {
    if (p.length > 96 || !NAME.test(p) || p.includes("..") || p.includes("--")) {
      fail(`${brief(s)} is not a Hub model id: ${expected}, each part letters, digits, '-', '_' and '.' (no '--' or '..', `
        + "not starting or ending with '-' or '.', at most 96 characters).");
    }
  }
  return s;
}

// The URL of a file of a repo on the Hub (the main revision).
export function resolveUrl(hub, repo, file) {
  return `${(hub || DEFAULT_HUB).replace(/\/+$/, "")}/${repo}/resolve/main/${file}`;
}

// What a config.json says about a model the page can run: {variant, zDim, priorCov, description}; else a
// HubModelError naming the field and what is expected.
export function checkConfig(config, repo) {
  const where = `${repo}'s config.json`;
  if (!config || typeof config !== "object" || Array.isArray(config)) fail(`${where} is not a JSON object: expected a vae_hub config (as train.py writes it).`);
  const missing = CONFIG_FIELDS.filter((k) => !(k in config));
  if (missing.length) fail(`${where} is not a vae_hub config: it has no ${missing.join(", ")} (expected the fields of vae_hub.model.config.VAEConfig).`);
  const { latent, z_dim: k, in_channels: channels, data, conditional } = config;
  if (latent !== "gaussian") fail(`${repo} has a ${brief(latent)} latent: only models with a Gaussian latent load by id (their encoder gives mean and log_sigma).`);
  if (!Number.isInteger(k) || k < 1 || k > MAX_LATENT) fail(`${where} has z_dim ${brief(k)}: expected a whole number from 1 to ${MAX_LATENT}.`);
  if (channels !== 1 || data === "color") fail(`${repo} is a coloured-MNIST model (${brief(channels)} channels, data ${brief(data)}): only single-channel models load by id.`);
  if (conditional !== false) fail(`${repo} is class-conditional (its graphs need a digit label y too): only unconditional models load by id.`);
  const cov = config.prior_cov ?? null;
  if (cov !== null) {
    const square = Array.isArray(cov) && cov.length === k && cov.every((r) => Array.isArray(r) && r.length === k && r.every(Number.isFinite));
    if (!square || cov.some((r, i) => r.some((v, j) => Math.abs(v - cov[j][i]) > 1e-6 * (1 + Math.abs(v))))) {
      fail(`${where} has a prior_cov that is not a symmetric ${k}×${k} matrix of numbers (expected one, or null for N(0, I)).`);
    }
  }
  const description = typeof config.description === "string" ? config.description : "";
  return { variant: String(config.variant), zDim: k, priorCov: cov, description };
}

// An N(0, Σ) prior as the page's exact KL wants it (browser.py _prior: Σ⁻¹, log|Σ|, Σ), by Cholesky; null for N(0, I).
export function priorOf(cov, repo = "the model") {
  if (cov === null || cov === undefined) return null;
  const d = cov.length, l = cholesky(cov.flat(), d);
  // numbers.cholesky floors a pivot at 0: a zero (or NaN, after one) on the diagonal means not positive definite
  for (let i = 0; i < d; i++) if (!(l[i * d + i] > 0)) fail(`${repo}'s prior_cov is not positive definite: expected a covariance matrix.`);
  let logdet = 0;
  for (let i = 0; i < d; i++) logdet += 2 * Math.log(l[i * d + i]);
  // Σ⁻¹ column by column: solve L·Lᵀ·x = e_c
  const inv = Array.from({ length: d }, () => new Array(d).fill(0));
  for (let c = 0; c < d; c++) {
    const y = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = i === c ? 1 : 0;
      for (let t = 0; t < i; t++) s -= l[i * d + t] * y[t];
      y[i] = s / l[i * d + i];
    }
    for (let i = d - 1; i >= 0; i--) {
      let s = y[i];
      for (let t = i + 1; t < d; t++) s -= l[t * d + i] * inv[t][c];
      inv[i][c] = s / l[i * d + i];
    }
  }
  return { inv, logdet, cov: cov.map((r) => r.slice()) };
}

// A file's size against the cap, from its Content-Length (null: the host sent none, checked while reading).
export function checkSize(length, cap, repo, file) {
  if (length !== null && length !== undefined && Number.isFinite(length) && length > cap) {
    fail(`${repo}'s ${file} is ${mib(length)}: more than the ${mib(cap)} this page downloads for one graph.`);
  }
}

// A failed answer of the Hub as one line: which repo or file, and why (the Hub's X-Error-Code where it exposes it).
export function httpProblem(status, code, repo, file) {
  if (code === "RepoNotFound" || ((status === 401 || status === 404) && file === "config.json" && !code)) {
    return `No public model repo ${repo} on the Hub (or it is private): expected NAMESPACE/NAME of a public repo, e.g. ${EXAMPLE}.`;
  }
  if (code === "GatedRepo" || status === 401 || status === 403) {
    return `${repo} is gated or private: this page has no Hub token, so only public, ungated repos load by id.`;
  }
  if (code === "EntryNotFound" || status === 404) {
    if (file.endsWith(".onnx")) return missingGraphs(repo, [file]);
    return `${repo} has no ${file}: expected a model folder as vae_hub's train.py pushes it.`;
  }
  if (status === 429) return `The Hub is limiting requests (HTTP 429) for ${repo}/${file}: try again in a minute.`;
  return `${repo}/${file}: the Hub answered HTTP ${status}${code ? ` (${code})` : ""}.`;
}

export function missingGraphs(repo, files) {
  return `${repo} has no ${files.join(" or ")}, the graphs this page runs: export them with “python -m vae_hub.onnx FOLDER”, `
    + "then push again with “python train.py --push-only FOLDER --push-to-hub NAMESPACE”.";
}

// The graphs' inputs and outputs, as vae_hub/hub/onnx.py names them, or a HubModelError saying what is expected.
export function checkGraphs(repo, encoder, decoder) {
  const has = (names, want) => want.every((n) => names.includes(n));
  const show = (names) => `[${names.join(", ")}]`;
  if (!(encoder.inputNames.length === 1 && encoder.inputNames[0] === "x" && has(encoder.outputNames, ["mean", "log_sigma"]))) {
    fail(`${repo}'s encoder.onnx takes ${show(encoder.inputNames)} and gives ${show(encoder.outputNames)}: expected x (B, 1, 28, 28) -> mean, log_sigma (vae_hub/hub/onnx.py).`);
  }
  if (!(decoder.inputNames.length === 1 && decoder.inputNames[0] === "z" && has(decoder.outputNames, ["logits"]))) {
    fail(`${repo}'s decoder.onnx takes ${show(decoder.inputNames)} and gives ${show(decoder.outputNames)}: expected z (B, z_dim) -> logits (B, 1, 28, 28) (vae_hub/hub/onnx.py).`);
  }
}

// One batch's outputs against the config: n codes of k numbers, n pictures of 784 logits.
export function checkShapes(repo, { mean, logSigma, logits }, n, k) {
  if (mean.length !== n * k || logSigma.length !== n * k) {
    fail(`${repo}'s encoder gives ${mean.length / n} numbers per digit: its config.json says z_dim ${k}.`);
  }
  if (logits.length !== n * PX) fail(`${repo}'s decoder gives ${logits.length / n} values per code: expected 784 (1 × 28 × 28).`);
}

// ------------------------------------------------------------------ in the page
// A GET or HEAD of one of the repo's files. A network failure (no connection, or a host without CORS headers) and,
// unless raw, an error status become one line.
// timeout: milliseconds for the whole answer (none for the graphs, which a slow connection takes a while to bring).
async function request(hub, repo, file, method = "GET", raw = false, timeout = null) {
  let r;
  try {
    r = await fetch(resolveUrl(hub, repo, file), { method, signal: timeout ? AbortSignal.timeout(timeout) : undefined });
  } catch (err) {
    if (err.name === "TimeoutError") fail(`The Hub at ${hub} did not answer for ${repo}/${file} within ${timeout / 1000} s: try again later.`);
    fail(`Could not reach the Hub at ${hub} for ${repo}/${file} (${err.message || err}): no connection, or the host sends no CORS headers.`);
  }
  if (!r.ok && !raw) fail(httpProblem(r.status, r.headers.get("x-error-code"), repo, file));
  return r;
}

const lengthOf = (r) => (r.headers.get("content-length") === null ? null : Number(r.headers.get("content-length")));

// A file's bytes, refused by its Content-Length before reading, and stopped once more than cap bytes came.
async function download(hub, repo, file, cap, onBytes = () => {}, timeout = null) {
  const r = await request(hub, repo, file, "GET", false, timeout);
  checkSize(lengthOf(r), cap, repo, file);
  const reader = r.body.getReader(), parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got += value.length;
    if (got > cap) { reader.cancel(); checkSize(got, cap, repo, file); }
    parts.push(value);
    onBytes(got);
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// The test digits through the model, in batches: posterior means (n × k) and deterministic ELBOs (the
// reconstruction at the mean and the exact KL, as the Space's engine computes them), as a codes file.
async function encodeTestDigits(backend, name, digits, k, prior, onProgress) {
  const n = digits.labels.length, mu = new Float32Array(n * k), elbo = new Float32Array(n);
  for (let s = 0; s < n; s += BATCH) {
    const b = Math.min(BATCH, n - s);
    const x = Float32Array.from(digits.images.subarray(s * PX, (s + b) * PX), (v) => v / 255);
    let out;
    try {
      const { mean, logSigma } = await backend.encode(name, x, b);
      out = { mean, logSigma, logits: await backend.logits(name, mean, b) };
    } catch (err) {  // the first batch runs into a graph made for other inputs: say which, not the runtime's words alone
      if (s > 0) throw err;
      fail(`${name}'s graphs do not run on a batch of test digits (${String(err.message || err).slice(0, 120)}): `
        + "expected x (B, 1, 28, 28) -> mean, log_sigma (B, z_dim) and z (B, z_dim) -> logits (B, 1, 28, 28).");
    }
    const { mean, logSigma, logits } = out;
    if (s === 0) checkShapes(name, out, b, k);
    mu.set(mean, s * k);
    for (let i = 0; i < b; i++) {
      const row = (a, w) => a.subarray(i * w, (i + 1) * w);
      elbo[s + i] = elboParts(row(x, PX), row(logits, PX), row(mean, k), row(logSigma, k), prior).elbo;
    }
    onProgress({ step: "encode", done: s + b, total: n });
  }
  return writeSafetensors({ mu: { dtype: "F32", shape: [n, k], data: mu }, elbo: { dtype: "F32", shape: [n], data: elbo } });
}

const blobUrl = (bytes) => URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));

// A repo's model, ready for the page's views: {name, spec} (spec as browser.py's manifest() gives a model), or a
// HubModelError. One load per repo per page, whichever asks first. onProgress({step, ...}) reports each stage.
const loads = new Map();
export function loadHubModel(m, text, onProgress = () => {}) {
  const hub = m.hub || DEFAULT_HUB;
  const repo = parseRepoId(text, hub);
  if (!loads.has(repo)) {
    const job = load(m, hub, repo, onProgress);
    job.catch(() => loads.delete(repo));  // a failed load may be tried again
    loads.set(repo, job);
  }
  return loads.get(repo);
}

async function load(m, hub, repo, onProgress) {
  const ortJob = loadOrt(m);  // the runtime downloads meanwhile
  ortJob.catch(() => {});
  onProgress({ step: "config" });
  const raw = await download(hub, repo, "config.json", MAX_CONFIG_BYTES, undefined, ANSWER_MS);
  let config;
  try {
    config = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    fail(`${repo}'s config.json is not JSON: expected a vae_hub config (as train.py writes it).`);
  }
  const c = checkConfig(config, repo);
  const prior = priorOf(c.priorCov, repo);
  // both graphs' presence and sizes before either download
  const heads = await Promise.all(["encoder.onnx", "decoder.onnx"].map(async (file) => {
    const r = await request(hub, repo, file, "HEAD", true, ANSWER_MS);
    return { file, status: r.status, code: r.headers.get("x-error-code"), length: lengthOf(r) };
  }));
  const absent = heads.filter((h) => h.status === 404 || h.code === "EntryNotFound").map((h) => h.file);
  if (absent.length) fail(missingGraphs(repo, absent));
  for (const h of heads) {
    if (h.status >= 400) fail(httpProblem(h.status, h.code, repo, h.file));
    checkSize(h.length, MAX_GRAPH_BYTES, repo, h.file);
  }
  const total = heads.reduce((a, h) => a + (h.length || 0), 0), got = { "encoder.onnx": 0, "decoder.onnx": 0 };
  const bytes = await Promise.all(heads.map(({ file }) => download(hub, repo, file, MAX_GRAPH_BYTES, (n) => {
    got[file] = n;
    onProgress({ step: "download", done: got["encoder.onnx"] + got["decoder.onnx"], total });
  })));
  let ort;
  try {
    ort = await ortJob;
  } catch (err) {
    fail(`${repo} runs in your browser, which cannot run it here: ${err.message || err}.`);
  }
  const [encoder, decoder] = bytes.map(blobUrl);
  const spec = {
    ready: true, z_dim: c.zDim, prior, error: null, encoder, decoder, codes: null,
    description: `${c.description || c.variant} From the Hub (${repo}), computed in your browser.`.trim(),
    hub: { repo, url: `${hub.replace(/\/+$/, "")}/${repo}`, variant: c.variant },
  };
  const backend = new PageBackend(ort, { ...m, models: { [repo]: spec } });
  let sessions;
  try {
    sessions = await Promise.all([backend.session(encoder), backend.session(decoder)]);
  } catch (err) {
    fail(`${repo}'s graphs are not ONNX models onnxruntime-web can load (${String(err.message || err).slice(0, 120)}): expected vae_hub's export.`);
  }
  checkGraphs(repo, ...sessions);
  onProgress({ step: "encode", done: 0, total: m.test.n });
  const digits = await loadTestDigits(m);
  spec.codes = blobUrl(await encodeTestDigits(backend, repo, digits, c.zDim, prior, onProgress));
  onProgress({ step: "done" });
  return { name: repo, spec };
}

// One line for the visitor while a model loads (onProgress's reports).
export function progressLine(repo, p) {
  if (p.step === "config") return `Loading ${repo} from the Hub: its config.json…`;
  if (p.step === "download") {
    const of = p.total ? ` of ${mib(p.total)}` : "";
    return `Loading ${repo} from the Hub: its ONNX graphs, ${mib(p.done)}${of}…`;
  }
  if (p.step === "encode") {
    return `Loading ${repo}: encoding the ${p.total.toLocaleString("en")} test digits in your browser (${Math.round(100 * p.done / p.total)}%)…`;
  }
  return `${repo} is loaded from the Hub: it runs in your browser, in every view's model choice.`;
}
