// What the Space's in-browser tabs share: onnxruntime-web loading and sessions, fetching (each URL once per page,
// whichever tab asks first), safetensors reading, the manifest's URLs, DOM and colour helpers.
//
// Every URL in the manifest is content-addressed (vh/<hash>/<name>) and served compressed and cached for good, so
// a tab asks for what it needs when it needs it and a repeat visit finds it all in the browser's cache.

export const CLASS_RGB = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];
export const RED = "rgb(220, 38, 38)";
export const BLUE = "rgb(37, 99, 235)";
export const LIGHT_BLUE = "rgb(147, 197, 253)";
export const INK = "rgb(30, 34, 42)";
export const SIDE = 28;
export const sigmoid = (v) => 1 / (1 + Math.exp(-v));  // decoder logits → pixel intensities

// ------------------------------------------------------------------ small helpers
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// Large downloads (the runtime's binary, graphs, codes, digits) go two at a time, the most needed first: over
// HTTP/1.1 a browser opens six connections to a host, and the page's own calls (the server answering the first
// strokes, the modules, Gradio's) must not wait behind megabytes for one. Ranks: 0 first ... 3 last.
const BULK = 2;
let running = 0, order = 0;
const queue = [];  // [rank, order, start]
function bulk(rank, job) {
  return new Promise((resolve, reject) => {
    const start = () => {
      running += 1;
      job().then(resolve, reject).finally(() => {
        running -= 1;
        queue.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        if (queue.length) queue.shift()[2]();
      });
    };
    if (running < BULK) start();
    else queue.push([rank, order++, start]);
  });
}

// A file's bytes, fetched once per page: tabs that need the same graph or codes share one download. ``rank``:
// its place among the large downloads (0: the pad's model, 1: what the open view shows next, 3: pictures last);
// -1 for a small file, fetched at once.
const fetched = new Map();
export function fetchBytes(url, rank = 1) {
  if (!fetched.has(url)) {
    const get = () => fetch(url).then(async (r) => {
      if (!r.ok) throw new Error(`${url.split("/").pop()}: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    const job = rank < 0 ? get() : bulk(rank, get);
    job.catch(() => fetched.delete(url));  // a failed download is tried again on the next ask
    fetched.set(url, job);
  }
  return fetched.get(url);
}

export async function loadSafetensors(url, rank = 1) {
  const buf = await fetchBytes(url, rank);
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const types = { F32: Float32Array, U8: Uint8Array, I32: Int32Array };
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const T = types[t.dtype];
    if (!T) throw new Error(`${url}: unsupported dtype ${t.dtype} for ${name}`);
    const [s, e] = t.data_offsets;
    out[name] = { shape: t.shape, data: new T(buf.slice(8 + n + s, 8 + n + e)) };
  }
  return out;
}

function loadScript(src, integrity) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    if (integrity) { s.integrity = integrity; s.crossOrigin = "anonymous"; }
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

// ------------------------------------------------------------------ runtimes
const sessions = new Map();  // graph URL -> InferenceSession (promise), shared by every tab

export class BrowserRuntime {
  // onnxruntime-web sessions per graph, created on first use and kept.
  constructor(ort) { this.ort = ort; this.kind = "browser"; }

  session(url) {
    if (!sessions.has(url)) {
      const s = fetchBytes(url).then((buf) => this.ort.InferenceSession.create(new Uint8Array(buf), { executionProviders: ["wasm"] }));
      s.catch(() => sessions.delete(url));
      sessions.set(url, s);
    }
    return sessions.get(url);
  }

  // A float32 input tensor on a copy: the worker takes the buffer it is sent, and callers keep using theirs.
  tensor(values, shape) { return new this.ort.Tensor("float32", Float32Array.from(values), shape); }

  async encode(spec, x) {
    const enc = await this.session(spec.encoder);
    const out = await enc.run({ x: this.tensor(x, [1, 1, SIDE, SIDE]) });
    return { mean: out.mean.data, logSigma: out.log_sigma.data };
  }

  async decode(spec, z) {
    return this.decodeMany(spec, Float32Array.from(z), 1);
  }

  // n codes at once (row-major, n × k) -> n × 784 Bernoulli logits
  async decodeMany(spec, z, n) {
    const dec = await this.session(spec.decoder);
    const out = await dec.run({ z: this.tensor(z, [n, z.length / n]) });
    return out.logits.data;
  }
}


// onnxruntime-web from the manifest's source (the app's node_modules, or the pinned CDN copy with SRI), loaded
// once per page. The WebAssembly binary (the largest download) is asked for at once, beside the script, so its
// transfer does not wait for the script and the loader it imports; onnxruntime's own request for the same URL is
// then answered by the browser's cache.
let ortLoading = null;
export function loadOrt(m) {
  if (m.force_server) return Promise.reject(new Error("the in-browser runtime is switched off here"));
  if (typeof WebAssembly !== "object") return Promise.reject(new Error("this browser has no WebAssembly"));
  if (!ortLoading) {
    // read to the end (into the cache) without keeping the 14 MB here; first among the large downloads
    if (m.ort.source === "local") bulk(0, () => fetch(m.ort.wasm).then((r) => r.body.pipeTo(new WritableStream()))).catch(() => {});
    ortLoading = (async () => {
      if (!window.ort) await loadScript(m.ort.script, m.ort.integrity);
      const ort = window.ort;
      ort.env.wasm.wasmPaths = { wasm: m.ort.wasm, mjs: m.ort.mjs };
      // in a worker: compiling the graphs and the first runs never hold up the page (a stroke drawn meanwhile is
      // answered at once, by the server until the runtime is ready)
      ort.env.wasm.proxy = true;
      // threads need SharedArrayBuffer, which only cross-origin-isolated pages have
      ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
      ort.env.logLevel = "error";
      return new BrowserRuntime(ort);
    })();
    ortLoading.catch(() => { ortLoading = null; });
  }
  return ortLoading;
}

// The manifest's URLs are relative to the page; onnxruntime resolves its own files against its script's URL,
// so everything is made absolute once.
export function absolute(m) {
  const abs = (u) => (u ? new URL(u, document.baseURI).href : u);
  if (m.ort && m.ort.source === "local") for (const k of ["script", "mjs", "wasm"]) m.ort[k] = abs(m.ort[k]);
  if (m.test) { m.test.url = abs(m.test.url); m.test.labels = abs(m.test.labels); }
  for (const s of Object.values(m.models || {})) for (const k of ["encoder", "decoder", "codes"]) s[k] = abs(s[k]);
  for (const s of Object.values(m.maps || {})) s.png = abs(s.png);
  return m;
}


// The manifest's map backgrounds as loaded <img> elements, by URL (a map that fails to load is left out).
// Pass only the maps a view shows: each is a download.
export async function loadMapImages(maps) {
  const out = {};
  await Promise.all(Object.values(maps).filter(Boolean).map((spec) => new Promise((resolve) => {
    const img = new Image();
    img.onload = () => { out[spec.png] = img; resolve(); };
    img.onerror = () => resolve();
    img.src = spec.png;
  })));
  return out;
}

// 784 values in [0, 1] (row-major 28×28) painted as grey pixels on a 28×28 canvas.
export function putDigit(canvas, v) {
  const g = canvas.getContext("2d"), im = g.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const x = Math.round(255 * Math.min(1, Math.max(0, v[i])));
    im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = x;
    im.data[4 * i + 3] = 255;
  }
  g.putImageData(im, 0, 0);
}

// Runs work() for the newest request only: requests that come while it runs collapse into one more run.
export class Latest {
  constructor(work, onError) { this.work = work; this.onError = onError; this.busy = false; this.queued = false; }

  request() {
    this.queued = true;
    if (!this.busy) this.run();
  }

  async run() {
    this.busy = true;
    try {
      while (this.queued) {
        this.queued = false;
        await this.work();
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.busy = false;
    }
  }
}
