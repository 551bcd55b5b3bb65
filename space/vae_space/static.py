"""The static site: the Space's page as a folder of files any static host serves (a free static Space on the
Hugging Face Hub, GitHub Pages, ``python -m http.server``), computing everything in the visitor's browser.

    python -m vae_space.static OUT/                 # the bundled weights (or --weights DIR / VAE_HUB_WEIGHTS)
    python -m http.server -d OUT 8000               # try it: http://127.0.0.1:8000/

It is built from the same engine and the same modules as the Gradio Space, so the two hosts cannot drift: the
engine loads the weights, encodes the test digits and exports the ONNX graphs exactly as the Space does at
start-up; ``browser.manifest`` says where each file is; every file it names is copied here under a name carrying
its content hash (``files/<hash>/<name>``), packed where that makes it smaller (no host needs to compress
anything): a zstd copy (``.zst``) where that beats gzip by more than a few kilobytes (the runtime's binary: 2.4 MB
against gzip's 3.5), unpacked by a 24 kB decoder (fzstd, from npm) the page loads with the first such file; else a
gzip copy (``.gz``), which the browser's own DecompressionStream unpacks. The manifest is written with those
relative URLs, as ``manifest.json`` and inline in ``index.html`` (one round trip less on a first visit).
``index.html`` (``page.py``, the same page the Gradio Space answers at ``/``) loads ``web/app.js``, the page's tab bar.

What the static site cannot do that the Gradio Space can: there is no server to fall back to (a browser
without WebAssembly gets a note instead of numbers), the drawing's handwriting measures (``vae_hub.evaluation.morpho``)
are not computed, and the named API endpoints for ``gradio_client`` are the Gradio Space's alone.

Imports: the standard library, ``vae_space.browser``, ``vae_space.engine`` and ``vae_space.page`` (the same ones the
app uses).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import browser, page
from .engine import Engine

try:  # zstd copies need the decoder from npm (space/node_modules) and zstandard here; else gzip only
    import zstandard
except ImportError:  # pragma: no cover - requirements.txt installs it
    zstandard = None
from .tabs import beta, models

SPACE_FRONT_MATTER = """---
title: vae-hub
emoji: 🔢
colorFrom: indigo
colorTo: purple
sdk: static
pinned: false
license: mit
short_description: Draw a digit and see what a VAE learns, in your browser
datasets:
  - ylecun/mnist
tags:
  - vae
  - mnist
  - onnxruntime-web
---
"""

ZSTD_DECODER = browser.SPACE / "node_modules" / "fzstd" / "esm" / "index.mjs"
ZSTD_GAIN = 8 * 1024  # a zstd copy must save this much over gzip: else the browser's own gzip decoder is used


PLANES_MAGIC = b"VHBP"  # a zstd copy whose float16 weights were split into byte planes (see ``planes``)


def planes(data: bytes) -> bytes:
    """An ONNX graph with each large float16 initializer's bytes split into two planes, low bytes then high bytes,
    behind a header (magic, count, then offset and length of each, uint32 little-endian); ``data`` unchanged when it
    is not such a graph. Half-precision weights compress poorly byte by byte (zstd: 7% of 1 MB) because each weight's
    two bytes alternate; their high bytes (sign, exponent) are much alike, so apart they compress about 7% better.
    The page puts the bytes back (``data.js`` unplane) before the graph reaches onnxruntime."""
    import onnx

    try:
        graph = onnx.load_from_string(data)
    except Exception:  # not a graph: nothing to split
        return data
    spans, out = [], bytearray(data)
    for t in graph.graph.initializer:
        raw = t.raw_data
        if t.data_type == onnx.TensorProto.FLOAT16 and len(raw) >= 4096:
            off = data.find(raw)  # the weights are stored verbatim in the protobuf
            pair = np.frombuffer(raw, np.uint8).reshape(-1, 2)
            out[off:off + len(raw)] = pair.T.tobytes()
            spans.append((off, len(raw)))
    if not spans:
        return data
    head = np.array([len(spans), *[v for span in spans for v in span]], "<u4").tobytes()
    return PLANES_MAGIC + head + bytes(out)


def pack(data: bytes, zstd: bool, graph: bool = False) -> tuple[bytes, str]:
    """The smallest of ``data``, its gzip copy and (where ``zstd``) its zstd copy the page can unpack, and the suffix
    that says which ("", ".gz", ".zst"). ``graph``: an ONNX graph, whose zstd copy has its weights in byte planes."""
    best, suffix = data, ""
    gz = gzip.compress(data, 9, mtime=0)
    if len(gz) < 0.95 * len(data):
        best, suffix = gz, ".gz"
    if zstd and zstandard is not None and len(data) > ZSTD_GAIN:
        zs = zstandard.ZstdCompressor(level=19).compress(planes(data) if graph else data)
        if len(zs) < len(best) - ZSTD_GAIN:
            best, suffix = zs, ".zst"
    return best, suffix


def _copy(url: str, out: Path, written: dict[str, str]) -> str:
    """The asset behind one of the manifest's URLs, written under OUT/files (packed where that makes it smaller
    and the page can unpack it: see ``pack``); returns its URL relative to the site."""
    if url in written:
        return written[url]
    _, key, name = url.split("/", 2)
    asset = browser.assets().get(key, name)
    if asset is None:
        raise KeyError(f"{url}: not a registered file")
    data = asset.read()
    rel = f"files/{key}/{name}"
    if asset.compressible and not name.endswith((".js", ".mjs")):  # scripts are loaded by the browser itself
        data, suffix = pack(data, ZSTD_DECODER.is_file(), graph=name.endswith(".onnx"))
        rel += suffix
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written[url] = rel
    return rel


def _copy_json(url: str, out: Path, written: dict[str, str]) -> str:
    """A JSON asset that names other assets (the cards: their figures), written with those URLs rewritten, under
    the hash of what is written."""
    _, key, name = url.split("/", 2)
    data = json.dumps(_rewrite(json.loads(browser.assets().get(key, name).read()), out, written),
                      separators=(",", ":")).encode()
    return _write_hashed(out, name, data)


def _copy_decoder(out: Path) -> str:
    """fzstd's ES module (MIT), which unpacks the .zst copies in the page, under its content hash."""
    return _write_hashed(out, "fzstd.mjs", ZSTD_DECODER.read_bytes())


def _write_hashed(out: Path, name: str, data: bytes) -> str:
    """``data`` written as OUT/files/<its hash>/<name> (a file made here, not a registered asset); its URL."""
    rel = f"files/{hashlib.sha256(data).hexdigest()[:16]}/{name}"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(data)
    return rel


def _rewrite(value: Any, out: Path, written: dict[str, str]) -> Any:
    """The manifest with every asset URL (vh/<hash>/<name>) replaced by the copied file's."""
    if isinstance(value, str) and value.startswith("vh/"):
        return _copy(value, out, written)
    if isinstance(value, dict):
        return {k: _rewrite(v, out, written) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, out, written) for v in value]
    return value


def build(out: str | Path, weights: str | None = None) -> dict:
    """Write the site into ``out`` (emptied first); returns a summary (files, bytes, seconds)."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "web").mkdir(parents=True)
    browser.assets(background=False)  # the site packs its own copies here: no brotli copies to make
    engine = Engine.start(weights, background=False)
    try:
        m = browser.manifest(engine)
        m["models"] = {k: v for k, v in m["models"].items() if v["ready"]}
        m["maps"] = {}  # the page draws its maps from the test codes
        m["betas"] = beta.betas_url(engine)
        written: dict[str, str] = {}
        site = _rewrite(m, out, written)
        site["cards"] = _copy_json(models.cards_url(engine), out, written)
        site["host"] = "static"
        if any(u.endswith(".zst") for u in written.values()):
            site["zstd"] = _copy_decoder(out)
        (out / "manifest.json").write_text(json.dumps(site, separators=(",", ":")))
        # the modules, by their own names: they import each other by relative URL
        for name in sorted(p.name for p in browser.WEB.iterdir() if p.suffix in (".js", ".css")):
            shutil.copyfile(browser.WEB / name, out / "web" / name)
        css = "\n".join((browser.WEB / c).read_text() for c in browser.PAGE_CSS)
        footer = (f"Weights from {engine.source.describe()}; {len(engine.test.labels):,} test digits from the MNIST test "
                  "split (LeCun, Cortes, Burges; CC BY-SA 3.0). The Gradio Space has more views and an API.")
        preload = [f"web/{n}" for n in browser.module_graph("draw.js")] + ([site["zstd"]] if "zstd" in site else [])
        # the Draw view's critical path: the runtime and the default model's two graphs, asked for at once
        first = site["models"].get(site["default_model"], {})
        fetches = [u for u in (site["ort"]["wasm"], first.get("encoder"), first.get("decoder")) if u]
        (out / "index.html").write_text(page.render("web/app.js", css, preload, footer, site, fetches=fetches,
                                                    scripts=[site["ort"]["script"]]))
        (out / "README.md").write_text(SPACE_FRONT_MATTER + "\nThe vae-hub demo as a static site: see "
                                       "https://github.com/vae-hub/vae-hub (space/README.md).\n")
    finally:
        engine.shutdown()
    files = [p for p in out.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "models": sorted(site["models"]),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vae_space.static", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder to write the site into (emptied first)")
    ap.add_argument("--weights", metavar="DIR", default=None, help="a folder of variant folders (default: as the app)")
    args = ap.parse_args(argv)
    s = build(args.out, args.weights)
    print(f"wrote {args.out}: {s['files']} files, {s['bytes'] / 2**20:.1f} MiB, {len(s['models'])} models "
          f"({', '.join(s['models'])}) in {s['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
