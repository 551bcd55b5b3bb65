// The files the views need (graphs, test codes, labels and digits, map pictures), each fetched once per page,
// whichever view asks first, the large ones two at a time in the order the open view needs them.
//
// Every URL in the manifest is content-addressed, so the browser's cache keeps it for good. The static build packs
// files for hosts that do not compress: a URL ending in ".gz" is a gzip copy, unpacked here in a stream by the
// browser's own DecompressionStream; one ending in ".zst" a zstd copy (smaller still: the runtime's binary is 2.4 MB
// against gzip's 3.5), unpacked by the decoder module the manifest names (fzstd), loaded with the first one.

import { parseSafetensors } from "./safetensors.js";

// Over HTTP/1.1 a browser opens six connections to a host; the page's own calls (the server answering the first
// strokes, the modules) must not wait behind megabytes for one. Ranks: 0 first … 3 last.
const BULK = 2;
let running = 0, order = 0;
const queue = [];  // [rank, order, start]

export function bulk(rank, job) {
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

let zstdModule = null, zstd = null;  // the decoder's URL (from the manifest), and the module once loaded

// Whether a URL names a packed copy, which fetchBytes unpacks.
export const isPacked = (url) => /\.(gz|zst)$/.test(url.split("?")[0]);

// A response's bytes, unpacked when the URL names a packed copy.
export async function bodyOf(response, url) {
  const name = url.split("?")[0];
  if (!response.ok) throw new Error(`${name.split("/").pop()}: HTTP ${response.status}`);
  if (name.endsWith(".gz")) return new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
  if (!name.endsWith(".zst")) return response.arrayBuffer();
  if (!zstdModule) throw new Error(`${name.split("/").pop()}: the manifest names no zstd decoder`);
  zstd ??= import(zstdModule);
  zstd.catch(() => { zstd = null; });
  const [packed, { decompress }] = await Promise.all([response.arrayBuffer(), zstd]);
  return unplane(decompress(new Uint8Array(packed))).buffer;
}

// A graph whose float16 weights the static build split into byte planes (static.py ``planes``: "VHBP", a count,
// then offset and length of each span, uint32 little-endian, then the graph) put back as it was; other bytes are
// returned as they are (in a buffer of their own).
export function unplane(bytes) {
  const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice());
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(0, 4)) !== "VHBP") return own(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(4, true), start = 8 + 8 * n;
  const out = bytes.slice(start);
  for (let s = 0; s < n; s++) {
    const off = view.getUint32(8 + 8 * s, true), len = view.getUint32(12 + 8 * s, true), half = len / 2;
    const src = bytes.subarray(start + off, start + off + len);
    for (let i = 0; i < half; i++) { out[off + 2 * i] = src[i]; out[off + 2 * i + 1] = src[half + i]; }
  }
  return out;
}

// A file's bytes, fetched once per page. rank: its place among the large downloads (0: the open view's model,
// 1: what it shows next, 3: pictures last); -1 for a small file, fetched at once.
const fetched = new Map();
export function fetchBytes(url, rank = 1) {
  if (!fetched.has(url)) {
    const get = () => fetch(url).then((r) => bodyOf(r, url));
    const job = rank < 0 ? get() : bulk(rank, get);
    job.catch(() => fetched.delete(url));  // a failed download is tried again on the next ask
    fetched.set(url, job);
  }
  return fetched.get(url);
}

export async function loadSafetensors(url, rank = 1) {
  return parseSafetensors(await fetchBytes(url, rank), url.split("/").pop());
}

// A model's test codes: posterior means (n × k) and the ELBOs sorted (for percentiles), parsed once per URL.
const codes = new Map();
export function loadCodes(url, rank = 1) {
  if (!codes.has(url)) {
    const job = loadSafetensors(url, rank).then((t) => ({
      mu: t.mu.data, n: t.mu.shape[0], k: t.mu.shape[1], elboSorted: Float32Array.from(t.elbo.data).sort() }));
    job.catch(() => codes.delete(url));
    codes.set(url, job);
  }
  return codes.get(url);
}

// Pictures (map backgrounds) as loaded <img> elements, by URL; one that fails to load is left out.
const images = new Map();
export function loadImage(url) {
  if (!images.has(url)) {
    images.set(url, new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => { images.delete(url); resolve(null); };
      img.src = url;
    }));
  }
  return images.get(url);
}

// The manifest's URLs are relative to the page (or to manifest.json); onnxruntime resolves its own files against
// its script's URL: everything is made absolute once, against ``base``.
export function absolute(m, base = document.baseURI) {
  const abs = (u) => (u ? new URL(u, base).href : u);
  if (m.ort && m.ort.source === "local") for (const k of ["script", "mjs", "wasm"]) m.ort[k] = abs(m.ort[k]);
  if (m.test) {
    m.test.labels = abs(m.test.labels);
    if (m.test.shards) m.test.shards = m.test.shards.map(abs);
  }
  for (const s of Object.values(m.models || {})) for (const k of ["encoder", "decoder", "codes", "density_url"]) s[k] = abs(s[k]);
  for (const s of Object.values(m.maps || {})) s.png = abs(s.png);
  for (const s of Object.values(m.conditional || {})) for (const k of ["encoder", "decoder"]) s[k] = abs(s[k]);
  for (const s of Object.values(m.colour?.models || {})) for (const k of ["decoder", "codes", "digits"]) s[k] = abs(s[k]);
  if (m.cards) m.cards = abs(m.cards);
  if (m.zstd) zstdModule = m.zstd = abs(m.zstd);
  if (m.betas) m.betas = abs(m.betas);
  return m;
}
