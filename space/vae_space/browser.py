"""What the Space's in-browser views need from the server: the manifest that tells the page where its modules,
the onnxruntime-web runtime, each model's ONNX graphs (float16 storage) and test codes, the map pictures and the
test digits are, all at content-addressed URLs of the app's own asset route (``assets.py``: compressed, cached
for good, no server path in any URL), and the one builder of live panels.

The Gradio Space answers ``/`` with the browser app itself (``page_html``: the static site's page, manifest inline),
not with Gradio's page: a visitor downloads no Gradio scripts before drawing. The views' server functions (the
fallbacks while the runtime downloads, and the handwriting measures) are the same callables the Gradio panels use,
reached by the app at ``POST vh-call/<name>`` (``call_route``), behind the same limits. Gradio's own page, with
every tab and the API, stays at ``/?ui=gradio``.

onnxruntime-web is served by the app from ``space/node_modules`` after ``npm ci`` in ``space/`` (works
offline); without it, the page loads the same pinned version from a public CDN with subresource integrity.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import safetensors.numpy
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vae_hub.data.mnist import cache_dir
from vae_hub.data.preprocess import DIGIT_STROKES

from .assets import AssetStore, chosen_encoding, compress
from .engine import Engine
from .entries import MAP_MODEL, is_colour, is_conditional_generator
from .limits import server_function
from .page import render

SPACE = Path(__file__).resolve().parents[1]
WEB = Path(__file__).resolve().parent / "web"
ORT_DIST = SPACE / "node_modules" / "onnxruntime-web" / "dist"
ORT_VERSION = json.loads((SPACE / "package.json").read_text())["dependencies"]["onnxruntime-web"]
ORT_SCRIPT = "ort.wasm.min.js"  # the WebAssembly-only build: no WebGL/WebGPU code to download
ORT_FILES = (ORT_SCRIPT, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # the script, its loader, the binary
# sha384 of dist/ort.wasm.min.js of that version (tests check it against the npm package)
ORT_INTEGRITY = "sha384-Bw6URI+Gvoadw0do7/QrSHUC9D1vCYYK5OSqChFyhyV5mzPL4oe2rOAFljAnS8Sq"
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
HUB = "https://huggingface.co"  # where the page fetches a model by its repo id (web/hubmodel.js); HF_ENDPOINT overrides it
PAD = 280  # the pad's drawing surface in pixels (≤ preprocess.WORK_SIDE, so both sides see the same pixels)
PEN = 20  # pen width on it: a digit drawn across most of the pad gets about MNIST's stroke-to-height ratio
# the styles of the views the page mounts itself
PAGE_CSS = ("draw.css", "explore.css", "interpolate.css", "beta.css", "generate.css", "models.css")
FIRST_VIEW = "draw.js"  # the view the page opens on: its modules are preloaded
CALL_PREFIX = "vh-call"
# every server function made by server_fn, by name: what the app's page may call at vh-call/<name>
PAGE_CALLS: dict[str, Callable] = {}


_store: list[AssetStore] = []
_store_lock = threading.Lock()


def assets(background: bool = True) -> AssetStore:
    """The process's asset store (made on first use, its compressed copies cached under the cache folder;
    ``background=False``: none made, for a process that only reads the files, as the static build)."""
    with _store_lock:
        if not _store:
            _store.append(AssetStore(cache_dir() / "space" / "compressed", background=background))
        return _store[0]


def web_urls() -> dict[str, str]:
    """Our modules and styles, one group: they import each other by relative URL."""
    return assets().group(WEB, sorted(p.name for p in WEB.iterdir() if p.suffix in (".js", ".css")))


def module_graph(module: str) -> list[str]:
    """A module and every module it imports, directly or not (our modules import by relative URL)."""
    seen, todo = [], [module]
    while todo:
        name = todo.pop(0)
        if name in seen or not (WEB / name).is_file():
            continue
        seen.append(name)
        todo += re.findall(r"""^import[^"']*["']\./([\w.-]+\.js)["']""", (WEB / name).read_text(), re.M)
    return seen


def preload_head(module: str = "draw.js") -> str:
    """``<link rel=modulepreload>`` for the open tab's modules, for the page's <head>: they download while
    Gradio starts, instead of one round trip after another once the panel mounts."""
    urls = web_urls()
    return "".join(f'<link rel="modulepreload" href="{urls[m]}">' for m in module_graph(module) if m in urls)


def density_spec(d: Any) -> dict:
    """A 2-D model's density of the training codes (a Gaussian mixture) as JSON: weights, means, covariances."""
    comp = d.component_distribution

    def r(t: Any) -> list:
        return np.round(t.detach().cpu().double().numpy(), 5).tolist()

    return {"weights": r(d.mixture_distribution.probs), "means": r(comp.loc), "covs": r(comp.covariance_matrix)}


def density_url(d: Any) -> str:
    """A model's density of the training codes as safetensors (weights (K,), means (K, d), covariances (K, d, d);
    float32, as ``density.safetensors`` holds them) at a content-addressed URL."""
    comp = d.component_distribution

    def f32(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().float().numpy())

    data = safetensors.numpy.save({"weights": f32(d.mixture_distribution.probs), "means": f32(comp.loc),
                                   "covariances": f32(comp.covariance_matrix)})
    return assets().data("density.safetensors", data)


def graph_urls(e: Any) -> dict[str, str]:
    """A prepared model's encoder and decoder graphs: {"encoder": url, "decoder": url} (one group: one key)."""
    enc, dec = e.onnx["encoder"], e.onnx["decoder"]
    urls = assets().group(enc.parent, [enc.name, dec.name])
    return {"encoder": urls[enc.name], "decoder": urls[dec.name]}


def ort_source() -> dict:
    """Where the page gets onnxruntime-web: the script, the loader it imports and the WebAssembly binary."""
    script, mjs, wasm = ORT_FILES
    if all((ORT_DIST / f).is_file() for f in ORT_FILES):
        urls = assets().group(ORT_DIST, ORT_FILES)
        return {"source": "local", "script": urls[script], "mjs": urls[mjs], "wasm": urls[wasm], "integrity": None,
                "version": ORT_VERSION}
    return {"source": "cdn", "script": ORT_CDN + script, "mjs": ORT_CDN + mjs, "wasm": ORT_CDN + wasm,
            "integrity": ORT_INTEGRITY, "version": ORT_VERSION}


def test_urls(engine: Engine) -> dict:
    """The test digits: their labels and indices (a few kB, which the numbers need first), and their pictures a class
    a file (``shards``: the digits labelled c, in the labels' order, about 55 kB each compressed; the Draw view's
    neighbour tiles need only their classes, the views that pick digits all ten)."""
    small = safetensors.numpy.save({"labels": engine.test.labels.astype(np.uint8),
                                    "index": engine.test.index.astype(np.int32)})
    return {"labels": assets().data("test_labels.safetensors", small),
            "shards": engine.cached(("test-shards",), lambda: _shards(engine)), "n": len(engine.test.labels)}


def _shards(engine: Engine) -> list[str]:
    images, labels = engine.test.images, engine.test.labels
    return [assets().data(f"test_digits_{c}.safetensors",
                          safetensors.numpy.save({"images": np.ascontiguousarray(images[labels == c])}))
            for c in range(10)]


def codes_url(engine: Engine, name: str) -> str:
    """A model's test codes: the cached file, or (a cache that could not be written) the same made in memory."""
    e = engine.models[name]
    path = engine.prep.codes_path(e)
    if path.is_file():
        return assets().file(path, "codes.safetensors")
    data = {"mu": np.ascontiguousarray(e.mu, np.float16), "elbo": np.ascontiguousarray(e.elbo, np.float32)}
    return assets().data("codes.safetensors", safetensors.numpy.save(data))


def _prior(engine: Engine, name: str) -> dict | None:
    """N(0, Σ) priors: what the browser's exact KL (Σ⁻¹ and log|Σ|) and its prior samples (Σ) need; None for N(0, I)."""
    cov = engine.models[name].config.prior_cov
    if cov is None:
        return None
    s = np.asarray(cov, np.float64)
    return {"inv": np.linalg.inv(s).tolist(), "logdet": float(np.linalg.slogdet(s)[1]), "cov": s.tolist()}


def conditional_specs(engine: Engine) -> dict:
    """The class-conditional models the page samples: their graphs (inputs z and y, one-hot), latent size, classes."""
    out = {}
    for name, e in engine.models.items():
        if is_conditional_generator(e.config):
            ready = e.ready.is_set() and e.onnx is not None and not e.error
            out[name] = {"ready": ready, "z_dim": e.config.z_dim, "n_classes": e.config.n_classes,
                         "description": e.config.description, "error": e.error or e.onnx_error or None,
                         **(graph_urls(e) if ready else {})}
    return out


COLOUR_POOL = 64  # the coloured test digits the page's colour section offers: /color_codes's seeds 0-63


def colour_pool(engine: Engine) -> np.ndarray:
    """The test digits (positions in the Space's sample) /color_codes shows for seeds 0 … COLOUR_POOL-1."""
    from .tabs.generate import color_digit

    return engine.cached(("colour-pool",), lambda: np.array([color_digit(engine, s) for s in range(COLOUR_POOL)]))


def colour_digits_url(engine: Engine, color_seed: int) -> str:
    """The coloured test digits of /color_codes's seeds 0 … COLOUR_POOL-1, as safetensors: ``images`` (N, 28, 28)
    uint8 (the grey digits) and ``colours`` (N, 3) float32 (the stroke colour the colour models' test split gave
    each), so the page's input is exactly the server's (grey / 255 × colour, in float32) without a port of the
    colouring; ``labels`` (N,) uint8 and ``digit`` (N,) int32, the digit's position in the Space's sample. 50 kB."""
    def make() -> str:
        i = colour_pool(engine)
        data = {"images": np.ascontiguousarray(engine.test.images[i]),
                "colours": np.ascontiguousarray(engine.test.colours(i, color_seed).numpy(), np.float32),
                "labels": engine.test.labels[i].astype(np.uint8), "digit": i.astype(np.int32)}
        return assets().data("colour_digits.safetensors", safetensors.numpy.save(data))

    return engine.cached(("colour-digits", color_seed), make)


def colour_codes_url(engine: Engine, name: str) -> str:
    """A colour model's encoder outputs for the COLOUR_POOL coloured test digits (``mean``, ``log_sigma`` and/or
    ``logits``, float32, as its encoder.onnx gives them): the page sweeps around these codes, so it needs the
    decoder alone (an encoder graph is 0.8 MB; these are a few kB)."""
    import onnxruntime

    e = engine.models[name]

    def make() -> str:
        i = colour_pool(engine)
        x = engine.test.colored(i, e.config.color_seed).numpy().astype(np.float32)
        sess = onnxruntime.InferenceSession(str(e.onnx["encoder"]), providers=["CPUExecutionProvider"])
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
        data = {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}
        return assets().data("colour_codes.safetensors", safetensors.numpy.save(data))

    return engine.cached(("colour-codes", name), make)


def colour_specs(engine: Engine) -> dict:
    """The colour section of the Generate view: each coloured-MNIST model's decoder graph and latent layout (the
    decoder's z is the continuous dimensions, then one one-hot block of k_cat per categorical variable), the pool
    digits' codes as its encoder gave them (``colour_codes_url``: the page needs no encoder), the sweeps and
    thresholds of /color_codes, and its test digits (fetched when the section is used)."""
    from .tabs import generate as G

    out = {}
    for name, e in engine.models.items():
        c = e.config
        if not is_colour(c):
            continue
        ready = e.ready.is_set() and e.onnx is not None and not e.error
        out[name] = {"ready": ready, "description": c.description, "latent": c.latent, "z_dim": c.z_dim,
                     "n_cat": c.n_cat, "k_cat": c.k_cat, "latent_size": c.latent_size,
                     "values": G.color_values(c.k_cat), "error": e.error or e.onnx_error or None,
                     **({"decoder": graph_urls(e)["decoder"], "codes": colour_codes_url(engine, name),
                         "digits": colour_digits_url(engine, c.color_seed)} if ready else {})}
    return {"models": out, "default": "color-vae", "n_digits": COLOUR_POOL,
            "sweep": {"range": G.SWEEP, "steps": G.SWEEP_STEPS, "top_dims": G.TOP_DIMS},
            "thresholds": {"colour": G.COLOR_CHANGE, "shape": G.SHAPE_CHANGE}}


def hub_endpoint() -> str:
    """The Hub the page loads models from by id: huggingface_hub's own override (``HF_ENDPOINT``, e.g. a mirror, or
    the tests' stand-in), else the Hugging Face Hub."""
    return (os.environ.get("HF_ENDPOINT") or HUB).rstrip("/")


def manifest(engine: Engine, wait: str | None = None, timeout: float = 120.0) -> dict:
    """Where the browser finds each model's graphs and test codes, the maps, the runtime and the test digits.
    Waits for the default model, the map model and ``wait`` to be prepared (exported, test set encoded)."""
    encoders = engine.available("encoder")
    default = engine.default_encoder()
    for name in {default, MAP_MODEL, wait} & set(engine.models):
        engine.models[name].ready.wait(timeout)
    models = {}
    for name in encoders:
        e = engine.models[name]
        ready = e.ready.is_set() and e.onnx is not None and not e.error
        spec: dict[str, Any] = {"ready": ready, "z_dim": e.config.z_dim, "prior": _prior(engine, name),
                                "description": e.config.description,
                                "error": e.error or e.onnx_error or None}
        if ready:
            spec.update(**graph_urls(e), codes=codes_url(engine, name))
        if e.model.code_density is not None:
            # fetched when samples are drawn from it; made once per model
            spec["density_url"] = engine.cached(("density-url", name), lambda d=e.model.code_density: density_url(d))
            if e.config.z_dim == 2:  # a few numbers: the map draws from it
                spec["density"] = density_spec(e.model.code_density)
        models[name] = spec
    maps = {}
    for name, m in engine.prep.maps.items():
        png = engine.prep.map_png(engine.models[name])
        if png.is_file():
            maps[name] = {"png": assets().file(png, "map.png"), "lim": m.lim, "box": list(m.box), "width": m.W,
                          "height": m.H}
    return {"ort": ort_source(), "default_model": default, "map_model": MAP_MODEL,
            "models": models, "conditional": conditional_specs(engine), "colour": colour_specs(engine), "maps": maps,
            "test": test_urls(engine),
            "strokes": {str(d): s for d, s in DIGIT_STROKES.items()}, "pad": PAD, "pen": PEN, "hub": hub_endpoint(),
            "force_server": os.environ.get("VAE_SPACE_RUNTIME", "").lower() == "server"}


def server_fn(name: str, call: Callable[..., Any], *keys: str, slots: int = 1, duty: float = 1.0) -> Callable:
    """A panel's server function named ``name``: the page sends one dict, ``call`` gets its ``keys`` in order;
    a refusal comes back as {"error": message} for the page to show, not as a failed request. At most
    ``slots`` calls run at once (computing ``duty`` of the time), off the queue's threads, their input bounded
    (``limits.server_function``)."""

    def fn(data: Any = None) -> Any:
        data = data if isinstance(data, dict) else {}
        return call(*(data.get(k) for k in keys))

    made = server_function(name, fn, slots, duty=duty)
    PAGE_CALLS.setdefault(name, made)
    return made


def page_manifest(engine: Engine, more: Iterable[tuple[str, str]] = (), extra: dict | None = None) -> dict:
    """The manifest of the app's page on the Gradio Space: every model (ready or not: the page asks again for one
    still being prepared), the server behind it, ``more``: the tabs only Gradio's page has, as (label, id), and
    ``extra`` (the cards' URL)."""
    m = manifest(engine) | (extra or {})
    m["host"] = "gradio"
    m["calls"] = {"url": CALL_PREFIX, "names": sorted({"live_manifest", *PAGE_CALLS})}
    m["more"] = [{"label": label, "href": f"?ui=gradio&tab={tab}"} for label, tab in more]
    return m


def page_html(engine: Engine, more: Iterable[tuple[str, str]] = (), extra: Callable[[], dict] | None = None) -> str:
    """What the Gradio Space answers at ``/``: the static site's page with its manifest inline."""
    urls = web_urls()
    preload = [urls[n] for n in module_graph(FIRST_VIEW) if n in urls]
    css = "\n".join((WEB / c).read_text() for c in PAGE_CSS)
    footer = (engine.footer().replace("  \n", "<br>").replace("`", "") +
              '<br>The full app, every tab and the API: <a href="?ui=gradio">Gradio page</a> · '
              '<a href="?view=api">API</a>')
    return render(urls["app.js"], css, preload, footer, page_manifest(engine, more, extra() if extra else None))


def manifest_call(engine: Engine, wait: str | None = None, keep: set[str] | None = None,
                  module: str | None = None, extra: Callable[[], dict] | None = None) -> Callable:
    """The ``live_manifest`` server function: the manifest, once the model the page asks for (``{"wait": name}``,
    else ``wait``) is prepared; ``keep``: only these models, ready; ``module``: the URL of the panel's module too;
    ``extra``: more entries (a view's own files). At most 4 at once: each may wait for a model."""

    def live_manifest(data: Any = None) -> dict:
        asked = data.get("wait") if isinstance(data, dict) and isinstance(data.get("wait"), str) else None
        try:
            m = manifest(engine, asked if asked in engine.models else wait)
        except Exception as e:  # the page shows it; the server keeps going
            return {"error": f"{type(e).__name__}: {str(e)[:160]}"}
        if keep is not None:
            m["models"] = {k: v for k, v in m["models"].items() if k in keep and v["ready"]}
        if module is not None:
            m["module_js"] = web_urls()[module]
        if extra is not None:
            m.update(extra())
        return m

    return server_function("live_manifest", live_manifest, 4, 30.0)


def call_route(engine: Engine) -> Route:
    """``POST vh-call/<name>`` with a JSON body: the server function ``name`` (``PAGE_CALLS``) answers, as a
    Gradio panel's would. The body's size is bounded by ``limits.MIDDLEWARE`` before it gets here."""
    calls = {"live_manifest": manifest_call(engine)}

    async def respond(request: Request) -> Response:
        name = request.path_params["name"]
        fn = calls.get(name) or PAGE_CALLS.get(name)
        if fn is None:
            return _error(404, f"no server function {name[:40]!r} here")
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(400, "the body is not JSON")
        return _compressed(await fn(data), request.headers.get("accept-encoding", ""))

    return Route(f"/{CALL_PREFIX}/{{name}}", respond, methods=["POST"], name="vae_hub_calls")


def _compressed(response: Response, accept: str) -> Response:
    """An answer of more than a kilobyte, brotli- or gzip-compressed as the browser accepts (the pad's fallback
    answers several a second on a first visit, beside the runtime's download)."""
    enc = chosen_encoding(accept)
    if len(response.body) < 1024 or "content-encoding" in response.headers or enc is None:
        return response
    return Response(compress(response.body, enc, 4), status_code=response.status_code, media_type=response.media_type,
                    headers={"content-encoding": enc, "vary": "Accept-Encoding"})


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")


# Each live panel's own script: fetch the manifest, import the panel's module, hand it the element.
_MOUNT = """
const root = element.querySelector('.vh-root');
(async () => {
  try {
    const m = await server.live_manifest({});
    if (!m || m.error) throw new Error((m && m.error) || 'no manifest');
    const mod = await import(new URL(m.module_js, document.baseURI).href);
    await mod.mount(root, m, server);
  } catch (err) {
    root.textContent = WHAT + ' could not start: ' + (err && err.message ? err.message : err);
    console.warn('vae-hub:', err);
  }
})();
"""


def live_panel(engine: Engine, module: str, what: str, root_class: str, css: Iterable[str] = ("draw.css",),
               server_functions: Iterable[Callable] = (), only: Iterable[str] | None = None, wait: str | None = None,
               extra: Callable[[], dict] | None = None, **kw: Any) -> gr.HTML:
    """A gr.HTML that runs ``web/<module>`` in the page on the manifest (``server.live_manifest``), with the
    given server functions as its fallbacks. ``only``: the models it needs; ``wait``: one to wait for; ``extra``:
    more manifest entries (a view's own files)."""
    manifest_fn = manifest_call(engine, wait, set(only) if only is not None else None, module, extra)
    return gr.HTML("", html_template=f"<div class='vh-root {root_class}'>Loading {what.lower()}…</div>",
                   css_template="".join((WEB / c).read_text() for c in css), js_on_load=_MOUNT.replace("WHAT", json.dumps(what)),
                   server_functions=[manifest_fn, *server_functions], apply_default_css=False, **kw)
