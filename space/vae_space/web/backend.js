// The one backend the views compute through: encode a 28×28 input, decode codes, and analyse a drawing (code,
// reconstruction, ELBO, percentile, neighbours, the 2-D map's posterior). Two implementations:
//
// - PageBackend: onnxruntime-web in the visitor's page (in a worker, so compiling graphs never holds up a stroke),
//   on the manifest's ONNX graphs and test codes; in both hosts.
// - ServerBackend: the Gradio host's server functions (one request per call), while the runtime downloads or
//   where it cannot run. The static host has none: a view without a backend says so.
//
// The views never touch onnxruntime or the server directly.

import { fetchBytes, isPacked, loadCodes } from "./data.js";
import { elboParts, nearest, searchsorted, sigmoid } from "./numbers.js";

export const SIDE = 28;
const N_NEIGHBOURS = 8;

function loadScript(src, integrity) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    if (integrity) { s.integrity = integrity; s.crossOrigin = "anonymous"; }
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src.split("/").pop()}`));
    document.head.append(s);
  });
}

// onnxruntime-web, loaded once per page from the manifest's source (the host's copy, or the pinned CDN copy with
// subresource integrity). Its WebAssembly binary, the largest download, is asked for at once beside the script;
// a packed copy (the static build's) is unpacked here and handed over as bytes.
let ortLoading = null;
export function loadOrt(m) {
  if (m.force_server) return Promise.reject(new Error("the in-browser runtime is switched off here"));
  if (typeof WebAssembly !== "object") return Promise.reject(new Error("this browser has no WebAssembly"));
  if (!ortLoading) {
    const packed = isPacked(m.ort.wasm);
    const binary = packed ? fetchBytes(m.ort.wasm, 0) : null;
    // read to the end (into the cache) without keeping the 14 MB here
    if (!packed && m.ort.source === "local") fetchBytes(m.ort.wasm, 0).catch(() => {});
    ortLoading = (async () => {
      if (!window.ort) await loadScript(m.ort.script, m.ort.integrity);
      const ort = window.ort;
      if (packed) {
        ort.env.wasm.wasmBinary = await binary;
        ort.env.wasm.wasmPaths = { mjs: m.ort.mjs };
      } else {
        ort.env.wasm.wasmPaths = { wasm: m.ort.wasm, mjs: m.ort.mjs };
      }
      ort.env.wasm.proxy = true;  // a worker: graphs compile and run off the page's thread
      // threads need SharedArrayBuffer, which only cross-origin-isolated pages have
      ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
      ort.env.logLevel = "error";
      return ort;
    })();
    ortLoading.catch(() => { ortLoading = null; });
  }
  return ortLoading;
}

// The models a view can run now, and the one it opens on (the host's default when it is among them).
export function readyModels(m) {
  const models = Object.fromEntries(Object.entries(m.models).filter(([, s]) => s.ready));
  return { models, model: m.default_model in models ? m.default_model : Object.keys(models)[0] };
}

// A view computed in the page: onnxruntime-web and the page backend, then the view's first run; a browser that
// cannot run it gets one line saying why (view.note) and the view no backend. Marks the view ready (data-ready).
export async function startView(view, firstRun) {
  try {
    view.backend = new PageBackend(await loadOrt(view.m), view.m);
  } catch (err) {
    view.note.textContent = `This view runs in your browser, which cannot run it: ${err.message || err}.`;
    view.state.runtime = view.root.dataset.runtime = "none";
    return;
  }
  view.state.runtime = view.root.dataset.runtime = "browser";
  await firstRun();
  view.state.ready = true;
  view.root.dataset.ready = "1";
}

// ------------------------------------------------------------------ shared by both backends
class Backend {
  constructor(manifest) { this.m = manifest; }

  spec(model) {
    const s = this.m.models[model];
    if (!s) throw new Error(`${model} is not available here`);
    return s;
  }

  // The 2-D map a model's drawings are placed on: its own when it is 2-D, else the map model's.
  mapName(model) { return this.m.models[model]?.z_dim === 2 ? model : this.m.map_model; }
}

// ------------------------------------------------------------------ in the page
function oneHot(labels, k) {
  const y = new Float32Array(labels.length * k);
  labels.forEach((l, i) => { y[i * k + l] = 1; });
  return y;
}

const sessions = new Map();  // graph URL -> InferenceSession (promise), shared by every view

export class PageBackend extends Backend {
  constructor(ort, manifest) {
    super(manifest);
    this.ort = ort;
    this.kind = "browser";
    this.labels = null;  // {labels, index} of the test digits, set by the view once loaded
    this.arrived = new Set();  // the models whose extras are in
    this.extrasJobs = new Map();  // model -> its extras on their way
  }

  // A graph's session, compiled once per page; rank: its download's place in the queue (data.js).
  session(url, rank = 0) {
    if (!sessions.has(url)) {
      const s = fetchBytes(url, rank).then((buf) => this.ort.InferenceSession.create(new Uint8Array(buf), { executionProviders: ["wasm"] }));
      s.catch(() => sessions.delete(url));
      sessions.set(url, s);
    }
    return sessions.get(url);
  }

  // A float32 input tensor on a copy: the worker takes the buffer it is sent, and callers keep using theirs.
  tensor(values, shape) { return new this.ort.Tensor("float32", Float32Array.from(values), shape); }

  // n inputs (n × 784, row-major) -> posterior means and log σ (n × k each)
  async encode(model, x, n = 1) {
    const enc = await this.session(this.spec(model).encoder);
    const out = await enc.run({ x: this.tensor(x, [n, 1, SIDE, SIDE]) });
    return { mean: out.mean.data, logSigma: out.log_sigma.data };
  }

  // n codes (n × k, row-major) -> n × 784 pixel intensities
  async decode(model, z, n = 1) {
    return Float32Array.from(await this.logits(model, z, n), sigmoid);
  }

  // A class-conditional model's encoder: n inputs and their labels -> posterior means (n × z_dim)
  async encodeLabelled(spec, x, labels, n) {
    const enc = await this.session(spec.encoder);
    const out = await enc.run({ x: this.tensor(x, [n, 1, SIDE, SIDE]), y: this.tensor(oneHot(labels, spec.n_classes), [n, spec.n_classes]) });
    return out.mean.data;
  }

  // A class-conditional model's decoder (spec: the manifest's conditional entry): n codes and their labels ->
  // n × 784 pixel intensities (the label goes in one-hot, as the model was trained).
  async decodeLabelled(spec, z, labels, n) {
    const dec = await this.session(spec.decoder);
    const y = oneHot(labels, spec.n_classes);
    const out = await dec.run({ z: this.tensor(z, [n, spec.z_dim]), y: this.tensor(y, [n, spec.n_classes]) });
    return Float32Array.from(out.logits.data, sigmoid);
  }

  // A colour model's decoder: n codes (n × latent_size) -> n × 3 × 784 intensities
  async decodeColour(spec, z, n = 1) {
    const out = await (await this.session(spec.decoder)).run({ z: this.tensor(z, [n, spec.latent_size]) });
    return Float32Array.from(out.logits.data, sigmoid);
  }

  async logits(model, z, n = 1) {
    const dec = await this.session(this.spec(model).decoder);
    const out = await dec.run({ z: this.tensor(z, [n, z.length / n]) });
    return out.logits.data;
  }

  // Compile a model's two graphs (all a reconstruction needs) now, so its first use is as fast as the rest.
  async prepare(model) {
    const spec = this.spec(model);
    await Promise.all([this.session(spec.encoder), this.session(spec.decoder)]);
  }

  // What analyse needs beyond the model's graphs: its test codes (percentile, neighbours) and the map model's
  // encoder, fetched after the graphs. Until they are in, analyse answers without them (``partial``).
  // Asked for once per model (every partial answer asks); a failed one is asked for again.
  extras(model) {
    if (!this.extrasJobs.has(model)) {
      const map = this.m.models[this.mapName(model)];
      const job = Promise.all([this.loadCodes(model), map?.ready ? this.session(map.encoder, 1) : null]);
      job.then(() => this.arrived.add(model), () => this.extrasJobs.delete(model));
      this.extrasJobs.set(model, job);
    }
    return this.extrasJobs.get(model);
  }

  loadCodes(model) { return loadCodes(this.spec(model).codes, 1); }

  // One drawing through a model: what the Draw view paints (the same fields /encode_array answers).
  async analyse(model, x) {
    const spec = this.spec(model);
    const { mean, logSigma } = await this.encode(model, x);
    const logits = await this.logits(model, mean);
    const n = elboParts(x, logits, mean, logSigma, spec.prior);
    const r = {
      model, mean: Array.from(mean), sigma: Array.from(logSigma, Math.exp), recon: Float32Array.from(logits, sigmoid),
      recon_nll: n.recon_nll, kl: n.kl, elbo: n.elbo, elbo_percentile: null, elbo_median: null, n_test: null,
      neighbours: [], map: null, partial: !this.arrived.has(model),
    };
    if (r.partial) { this.extras(model); return r; }  // the reconstruction now; the rest once it is in
    const codes = await this.loadCodes(model);
    const sorted = codes.elboSorted;
    const labels = this.labels;
    r.neighbours = nearest(codes.mu, codes.n, mean, N_NEIGHBOURS).map((nb) => ({
      ...nb, label: labels ? labels.labels[nb.i] : null, test_index: labels ? labels.index[nb.i] : null }));
    r.elbo_percentile = 100 * searchsorted(sorted, n.elbo) / sorted.length;
    r.elbo_median = sorted[Math.floor(sorted.length / 2)];
    r.n_test = sorted.length;
    const mapName = this.mapName(model);
    if (this.m.models[mapName]?.ready) {
      const ms = mapName === model ? { mean, logSigma } : await this.encode(mapName, x);
      r.map = { model: mapName, mean: Array.from(ms.mean), sigma: Array.from(ms.logSigma, Math.exp) };
    }
    return r;
  }
}

// ------------------------------------------------------------------ on the server (the Gradio host only)
// The Gradio host's server functions for the app's own page (not Gradio's): {name: (data) => answer}, each a POST
// of JSON to <calls.url>/<name>, answered as a Gradio panel's server function is ({error} on a refusal).
export function httpServer(calls, base = document.baseURI) {
  const server = {};
  for (const name of calls.names) {
    const url = new URL(`${calls.url}/${name}`, base).href;
    server[name] = async (data) => {
      const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data ?? null) });
      try {
        return await r.json();
      } catch {
        return { error: `${name}: HTTP ${r.status}` };
      }
    };
  }
  return server;
}

export class ServerBackend extends Backend {
  constructor(server, manifest) {
    super(manifest);
    this.server = server;
    this.kind = "server";
    this.requests = 0;
  }

  async call(name, data) {
    this.requests += 1;
    const r = await this.server[name](data);
    if (!r || r.error) throw new Error((r && r.error) || `${name}: no answer`);
    return r;
  }

  async analyse(model, x) {
    const r = await this.call("encode_array", { x: Array.from(x), model });
    // the pad's answer carries the reconstruction in the 256 grey levels the page paints
    return { ...r, recon: Float32Array.from(r.recon8, (v) => v / 255) };
  }

  async encode(model, x) {
    const r = await this.call("encode_array", { x: Array.from(x), model });
    return { mean: Float32Array.from(r.mean), logSigma: Float32Array.from(r.sigma, Math.log) };
  }

  async decode(model, z, n = 1) {
    const r = await this.call("decode_points", { model, z: Array.from(z), k: z.length / n });
    return Float32Array.from(r.images);
  }

  async prepare() {}

  extras() { return Promise.resolve(); }
}
