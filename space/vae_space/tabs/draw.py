"""Draw & encode: the pad and its live loop run in the visitor's browser (web/draw.js, web/preprocess.js)
on ONNX exports of the served weights with onnxruntime-web; this module lays the tab out, tells the
browser where everything is (the manifest), and keeps the server's side:

- ``/encode``: a drawing (sketchpad value or plain image) -> the seven outputs it always returned, for
  ``gradio_client`` users;
- ``/encode_array``: an already-preprocessed 28×28 input -> the numbers the browser paints; the pad's
  fallback when the in-browser runtime cannot load (no WebAssembly, the script blocked);
- the pad's ``handwriting`` server function: the drawing's measured thickness and slant, asked for when a
  stroke ends, beside (never in) the live loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch

from vae_hub.data.preprocess import sketch_image, to_mnist

from .. import plots as P
from ..browser import live_panel, server_fn
from ..engine import Engine
from ..entries import MAP_MODEL, Entry
from ..handler import Result, handler, pixels
from ..ui import note_box, start_here
from .shared import map_model, map_picture, neighbours, vote

CLASS_ARRAY = np.array(P.CLASS_RGB, np.uint8)


@dataclass
class Encoded(Result):
    """/encode's outputs, in the order API users receive them."""

    input: np.ndarray  # the 28×28 input the model sees, enlarged
    reconstruction: np.ndarray
    posterior: np.ndarray  # mean ± σ per dimension
    latent_map: np.ndarray  # 1σ and 2σ of q(z|x) on the 2-D map (or why there is none)
    neighbours: np.ndarray
    summary: str
    data: dict


@dataclass
class Numbers:
    """One input through one model: what /encode and the browser both report."""

    logits: torch.Tensor  # (1, 1, 28, 28) Bernoulli logits of the reconstruction at the posterior mean
    mean: np.ndarray
    sigma: np.ndarray
    recon_nll: float
    kl: float
    elbo: float
    percentile: float  # of the ELBO among the test digits'
    idx: np.ndarray  # nearest test digits, closest first
    dist: np.ndarray


def numbers(e: Entry, x: torch.Tensor) -> Numbers:
    """One input (1, 1, 28, 28) through a model."""
    post = e.model.encode(x)
    logits = e.model.decode(post.mean)
    recon_nll = float(e.model.recon_nll(logits, x)[0])
    kl = float(e.model.kl(post)[0])
    elbo = -(recon_nll + kl)
    pct = 100.0 * np.searchsorted(e.elbo_sorted, elbo) / len(e.elbo_sorted)
    mu, sigma = post.mean[0].numpy(), post.stddev[0].numpy()
    idx, dist = neighbours(e, mu)
    return Numbers(logits, mu, sigma, recon_nll, kl, elbo, float(pct), idx, dist)


def measure(x: np.ndarray) -> dict:
    """A 28×28 input's stroke thickness (px) and slant (°, + = the top leans right), as ``vae_hub.evaluation.morpho``
    measures the test digits' factors; {} for a blank input (nothing to measure is no error)."""
    from vae_hub.evaluation import morpho

    try:
        m = morpho.measure_dict(np.asarray(x, np.float32).reshape(28, 28))
    except ValueError:  # no ink
        return {}
    return {"thickness": round(m["thickness"], 2), "slant": round(m["slant"], 1)}


@handler
def handwriting(engine: Engine, x: Any) -> dict:
    """The drawing's own thickness and slant (784 values in [0, 1], as for /encode_array)."""
    return measure(pixels(x))


def map_posterior(engine: Engine, e: Entry, x: torch.Tensor, r: Numbers) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """Where the input sits on the 2-D latent map: the chosen model's own code when it is 2-D, else the 2-D
    model's posterior of the same input. (map model, mean, σ); mean and σ are None without that map."""
    name = map_model(e)
    if name not in engine.models or engine.latent_map(name) is None:
        return name, None, None
    if name == e.name:
        return name, r.mean, r.sigma
    p2 = engine.models[name].model.encode(x)
    return name, p2.mean[0].numpy(), p2.stddev[0].numpy()


@handler
def encode(engine: Engine, drawing: Any, model: str = MAP_MODEL) -> Encoded:
    """Drawing -> MNIST-style input, reconstruction, posterior per dimension, the posterior on the
    2-D latent map (1σ and 2σ ellipses), nearest test digits, typicality (ELBO percentile)."""
    e = engine.need(model, "encoder")
    x = torch.from_numpy(to_mnist(sketch_image(drawing)))[None, None]
    r = numbers(e, x)
    labels = engine.test.labels
    top, votes = vote(engine, r.idx)
    map_name, mz, ms = map_posterior(engine, e, x, r)

    def paint(ov: P.Overlay) -> None:
        if map_name == model:
            ov.dots(e.mu[r.idx], [P.INK] * len(r.idx), r=3.2)
        ov.ellipse(mz, 2 * ms, P.RED, width=1.6, fill=(220, 38, 38, 28))
        ov.ellipse(mz, ms, P.RED, width=2.6)
        ov.cross(mz, P.RED)
        ov.note("your drawing: 1σ and 2σ of q(z|x)" + ("" if map_name == model else f" under {map_name}"), P.RED)
        ov.inset(mz, ms, engine.models[map_name].mu, CLASS_ARRAY[labels])

    map_img = map_picture(engine, map_name, paint, "The latent map")  # paints only when mz is known
    tiles = [f"{labels[i]} · {d:.2f}" for i, d in zip(r.idx, r.dist)]
    nn_img = P.with_header(P.labelled_tiles(P.to_rgb(engine.test.x[r.idx]), tiles, k=2,
                                            colors=[P.CLASS_RGB[labels[i]] for i in r.idx]),
                           f"nearest test digits in {model}'s latent space (label · distance)", size=13)
    pct, ref = r.percentile, e.elbo_sorted
    verdict = ("typical" if pct >= 10 else "unusual" if pct >= 1 else "very unlike the test digits")
    summary = (f"**{model}** reconstructs it with −log p(x|z) = {r.recon_nll:.1f} nats, KL = {r.kl:.1f} nats.  \n"
               f"**Typicality:** ELBO {r.elbo:.1f} nats is at the **{pct:.0f}th percentile** of "
               f"{len(ref):,} test digits (median {np.median(ref):.1f}): *{verdict}*.  \n"
               f"**Nearest test digits** in {model}'s latent space: {votes} of {len(r.idx)} are a **{top}**.")
    hand = measure(x.numpy())
    if hand:
        summary += (f"  \n**Your handwriting:** stroke thickness {hand['thickness']:.1f} px, "
                    f"slant {hand['slant']:+.0f}° (at 28×28).")
    data = {"model": model, "mean": r.mean.round(4).tolist(), "sigma": r.sigma.round(4).tolist(),
            "recon_nll": round(r.recon_nll, 3), "kl": round(r.kl, 3), "elbo": round(r.elbo, 3),
            "elbo_percentile": round(float(pct), 2), "knn_label": top,
            "neighbours": [{"test_index": int(engine.test.index[i]), "label": int(labels[i]),
                            "distance": round(float(d), 4)} for i, d in zip(r.idx, r.dist)],
            "map_model": map_name if mz is not None else None, "handwriting": hand}
    return Encoded(P.digit(x[0], 8), P.digit(torch.sigmoid(r.logits[0]), 8), P.posterior_chart(r.mean, r.sigma),
                   map_img, nn_img, summary, data)


@handler
def encode_array(engine: Engine, x: Any, model: str = "vae-z20") -> dict:
    """An MNIST-style input already made (784 values in [0, 1], row-major, white digit on black; as the
    browser's preprocessing makes it) through a model: the code, reconstruction, ELBO and its percentile,
    nearest test digits, and the 2-D map model's code. The pad's fallback when the in-browser
    runtime cannot load."""
    e = engine.need(model, "encoder")
    xt = torch.from_numpy(pixels(x)).reshape(1, 1, 28, 28)
    r = numbers(e, xt)
    map_name, mz, ms = map_posterior(engine, e, xt, r)
    m = None if mz is None else {"model": map_name, "mean": mz.tolist(), "sigma": ms.tolist()}
    test = engine.test
    return {"model": model, "mean": r.mean.tolist(), "sigma": r.sigma.tolist(),
            "recon": torch.sigmoid(r.logits).flatten().tolist(), "recon_nll": r.recon_nll, "kl": r.kl,
            "elbo": r.elbo, "elbo_percentile": r.percentile, "elbo_median": float(np.median(e.elbo_sorted)),
            "n_test": len(e.elbo_sorted),
            "neighbours": [{"i": int(i), "test_index": int(test.index[i]), "label": int(test.labels[i]),
                            "distance": float(d)} for i, d in zip(r.idx, r.dist)],
            "map": m}


def for_the_pad(r: dict) -> dict:
    """/encode_array's answer as the pad's fallback sends it: the reconstruction in the 256 grey levels the page
    paints (a fifth of the JSON; on a first visit it shares the link with the runtime's download)."""
    out = dict(r)
    out["recon8"] = np.rint(np.asarray(out.pop("recon")) * 255).astype(int).tolist()
    return out


def build(engine: Engine, live: dict) -> gr.Tab:
    """The tab: the live panel, and the /encode and /encode_array endpoints."""
    encoders = engine.available("encoder")
    with gr.Tab("Draw & encode", id="draw") as tab:
        if not encoders:
            note_box("⚠️ No grayscale model is available to encode drawings with; the footer lists what is missing.")
        else:
            note_box(engine.unavailable_note([MAP_MODEL], "The latent map is shown"))
        start_here("draw a digit on the white pad. Everything updates while you draw, computed in your browser: the "
                   "28×28 input the model sees, its reconstruction, the code q(z|x) (mean ± σ per dimension), where "
                   "the drawing sits among the test digits on the 2-D map, and how typical it is.")
        live_panel(engine, "draw.js", "The drawing pad", "vd-root", elem_id="draw-live",
                   server_functions=[server_fn("encode_array", lambda x, m: for_the_pad(encode_array(engine, x, m)),
                                               "x", "model", slots=2),
                                     server_fn("handwriting", lambda x: handwriting(engine, x), "x")])

        # The API as it always was, for gradio_client: a drawing (sketchpad value or plain image) and a model in,
        # the seven outputs out. Hidden components: the page itself draws in the browser.
        with gr.Group(visible=False):
            api_pad = gr.Sketchpad(type="numpy", image_mode="RGBA", label="drawing")
            api_model = gr.Dropdown(encoders, value=encoders[0] if encoders else None, label="model")
            pics = {n: gr.Image(label=label, format="png") for n, label in (
                ("input", "input"), ("reconstruction", "reconstruction"), ("posterior", "posterior"),
                ("latent_map", "latent map"), ("neighbours", "neighbours"))}
            outs = Encoded.outputs(**pics, summary=gr.Markdown(), data=gr.JSON())
        api_pad.change(encode.ui(engine), [api_pad, api_model], outs, api_name="encode", **live)
        gr.api(_as_api(engine), api_name="encode_array")
    return tab


def _as_api(engine: Engine):
    def encode_array_api(x: list[float], model: str = "vae-z20") -> dict:
        """An MNIST-style 28×28 input (784 values in [0, 1], row-major, white on black) through a model."""
        return encode_array(engine, x, model)

    encode_array_api.__name__ = "encode_array"
    return encode_array_api
