"""Latent explorer: the 2-D (and 3-D) models' latent spaces, decoded under the cursor in the visitor's
browser (web/explore.js, onnxruntime-web on the models' ONNX decoders). The server keeps ``/manifold`` and
``/decode_point`` for API users, and ``decode_points``, the views' fallback when the runtime cannot load;
``/slice3d`` and ``/corr_maps`` draw the sections below the live views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch

from vae_hub.checks import brief
from vae_hub.training.figures import image_grid, latent_grid

from .. import plots as P
from ..browser import live_panel, server_fn
from ..engine import Engine
from ..entries import MAP_MODEL, is_encoder
from ..handler import Result, fail, handler, number
from ..limits import pixels_response
from ..ui import image, note_box, start_here

MODELS = ("vae-z2", "vae-z2-corr", "vae-z3")
MAX_POINTS = 625


@dataclass
class Point(Result):
    decoded: np.ndarray
    latent_map: np.ndarray  # the point marked on the model's map


@dataclass
class Slice(Result):
    grid: np.ndarray  # vae-z3 decoded over (z₁, z₂) at z₃
    near: np.ndarray  # the test digits whose z₃ is near the slice


@dataclass
class CorrMaps(Result):
    isotropic: np.ndarray
    correlated: np.ndarray
    note: str


@handler
def manifold(engine: Engine, model: str = MAP_MODEL, n: int = 15, span: float = 2.5) -> np.ndarray:
    """The decoded grid over a 2-D latent, z₂ up."""
    e = engine.need(model, "map2d")
    n = number(n, 3, 25, "grid size", integer=True)
    span = number(span, 0.5, 5.0, "span")
    return engine.cached(("manifold", model, n, round(span, 3)),
                         lambda: image_grid(P.to_rgb(torch.sigmoid(e.model.decode(latent_grid(n, span)))), n, pad=0))


@handler
def decode_point(engine: Engine, model: str, z1: float, z2: float) -> Point:
    """Decode one point of a 2-D latent and mark it on that model's map."""
    e = engine.need(model, "map2d")
    z1, z2 = number(z1, -6, 6, "z1"), number(z2, -6, 6, "z2")
    img = torch.sigmoid(e.model.decode(torch.tensor([[z1, z2]])))[0]

    def paint(ov: P.Overlay) -> None:
        ov.cross((z1, z2), P.RED, 8)
        ov.note(f"z = ({z1:.2f}, {z2:.2f})", P.RED)

    return Point(P.digit(img, 8), engine.latent_map(model).draw(paint))


@handler
def decode_points(engine: Engine, model: Any, z: Any, k: Any) -> np.ndarray:
    """Codes (n × k, row-major, n ≤ 625) of a 2-D or 3-D model -> n decoded images, 784 values each in
    [0, 1], flat: what the explorer paints when the in-browser runtime cannot load."""
    e = engine.need(model, "any")
    if e.config.z_dim not in (2, 3) or not is_encoder(e.config):
        fail(f"{e.name} is not a 2-D or 3-D model; choose vae-z2, vae-z2-corr or vae-z3.")
    k = number(k, 1, 3, "k", integer=True)
    if k != e.config.z_dim:
        fail(f"k: {e.name} has {e.config.z_dim} latent dimensions, got k={k}.")
    try:
        codes = np.asarray(z, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        fail(f"z: expected a flat list of numbers (n × {k}), got {brief(z)}.")
    if codes.size == 0 or codes.size % k or codes.size // k > MAX_POINTS:
        fail(f"z: expected n × {k} numbers with 1 ≤ n ≤ {MAX_POINTS}, got {codes.size}.")
    if not np.isfinite(codes).all() or np.abs(codes).max() > 10:
        fail("z: every value must be a finite number in [-10, 10].")
    out = torch.sigmoid(e.model.decode(torch.from_numpy(codes).reshape(-1, k)))
    return out.flatten().numpy()  # float32: the server function writes it without a Python float per value


@handler
def slice3d(engine: Engine, z3: float = 0.0, n: int = 12, span: float = 2.5) -> Slice:
    """vae-z3 decoded over (z₁, z₂) at a fixed z₃, and the test digits whose z₃ is near it."""
    e = engine.need("vae-z3", "encoder")
    z3 = number(z3, -4, 4, "z3")
    n = number(n, 3, 25, "grid size", integer=True)
    span = number(span, 0.5, 5.0, "span")
    zz = latent_grid(n, span)
    z = torch.cat([zz, torch.full((len(zz), 1), z3)], 1)
    grid = image_grid(P.to_rgb(torch.sigmoid(e.model.decode(z))), n, pad=0)
    labels = engine.test.labels
    bg = engine.cached(("slice-bg", span), lambda: P.LatentMap(e.mu[:, :2], labels, "vae-z3: test digits near the slice",
                                                        lim=span + 0.5, faint=True))
    near = np.flatnonzero(np.abs(e.mu[:, 2] - z3) < 0.25)

    def paint(ov: P.Overlay) -> None:
        ov.dots(e.mu[near, :2], [P.CLASS_RGB[c] for c in labels[near]], r=2.6)
        s = span
        ov.polygon_z(np.array([[-s, -s], [s, -s], [s, s], [-s, s]]), P.INK, 1.2)
        ov.note(f"|z₃ − {z3:.2f}| < 0.25: {len(near)} digits (grey: all)")

    return Slice(grid, bg.draw(paint))


@handler
def corr_maps(engine: Engine) -> CorrMaps:
    """vae-z2 (isotropic prior) beside vae-z2-corr (tilted prior): test codes, prior contours and the
    aggregate posterior's covariance."""

    def build() -> CorrMaps:
        out, notes = [], []
        for name in ("vae-z2", "vae-z2-corr"):
            if name not in engine.models:
                out.append(P.placeholder(f"{name} is not available: {engine.missing.get(name, 'not loaded')}.",
                                         (440, 450)))
                continue
            e = engine.need(name, "map2d")
            cov = np.array(e.config.prior_cov) if e.config.prior_cov else np.eye(2)
            emp = np.cov(e.mu.T)
            lim = max(3.0, float(np.percentile(np.abs(e.mu), 99.5)) + 0.4)

            def decorate(ax, cov=cov, emp=emp) -> None:
                for k, ls in ((1, "-"), (2, "--")):
                    p = P.ellipse_points(cov, k, n=200)
                    ax.plot(*np.vstack([p, p[:1]]).T, color="black", lw=1.4, ls=ls,
                            label=f"prior {k}σ" if k == 1 else None)
                p = P.ellipse_points(emp, 2, np.zeros(2), n=200)
                ax.plot(*np.vstack([p, p[:1]]).T, color="#dc2626", lw=1.6, label="test codes 2σ")
                ax.legend(loc="lower right", fontsize=7, framealpha=0.85)

            prior = "N(0, I)" if not e.config.prior_cov else "N(0, Σ), Σ = [[1, .4], [.4, .5]]"
            m = P.LatentMap(e.mu, engine.test.labels, f"{name}: prior {prior}", lim=lim, decorate=decorate)
            out.append(m.draw())
            corr = emp[0, 1] / np.sqrt(emp[0, 0] * emp[1, 1])
            notes.append(f"`{name}`: test codes have correlation {corr:+.2f}, variances "
                         f"{emp[0, 0]:.2f} / {emp[1, 1]:.2f}")
        md = ("Each code is pulled towards its prior by the KL term, so the cloud of test codes takes the prior's "
              "shape. " + "; ".join(notes) + " (prior correlation: 0 and +0.57).")
        return CorrMaps(out[0], out[1], md)

    return engine.cached("corr", build)


def build(engine: Engine, q: dict, live: dict) -> gr.Tab:
    """The tab: the live panel (map, decoded point and grid, linked by one marker), the API's hidden views,
    vae-z3's slices and the correlated prior."""
    maps2d = engine.available("map2d")
    with gr.Tab("Latent explorer", id="explore") as tab:
        start_here("move the mouse over the map or the grid (or drag a finger): the point under it is decoded "
                   "at once, in your browser. The map shows where the test digits' codes lie; the grid shows "
                   "what the decoder makes of every point. Look for where one digit turns into another. For the "
                   "3-D model, one z₃ control moves the grid's plane and shows the test digits near it.")
        note_box(engine.unavailable_note(list(MODELS), "The explorer runs"))
        # one call at a time, computing at most half the time: a flood of them leaves a core to the queue
        points = server_fn("decode_points", lambda model, z, k: pixels_response("images", decode_points(engine, model, z, k)),
                           "model", "z", "k", duty=0.5)
        # vae-z3 is prepared after the 2-D models: waiting for it means all three are there
        live_panel(engine, "explore.js", "The explorer", "vx-root", css=("draw.css", "explore.css"),
                   server_functions=[points], only=MODELS, wait="vae-z3" if "vae-z3" in engine.models else None,
                   elem_id="explore-live")
        # The same views for API users: decoded grids and points, computed on the server.
        with gr.Group(visible=False):
            model = gr.Dropdown(maps2d, value=maps2d[0] if maps2d else None, label="2-D model")
            z1, z2 = gr.Number(0.0, label="z₁"), gr.Number(0.0, label="z₂")
            grid_n, span = gr.Number(15, label="grid size"), gr.Number(2.5, label="span")
            grid, point, p_map = image(label="grid"), image(label="decoded point"), image(label="map")
        gr.Button(visible=False).click(manifold.ui(engine), [model, grid_n, span], grid, api_name="manifold", **q)
        gr.Button(visible=False).click(decode_point.ui(engine), [model, z1, z2],
                                       Point.outputs(decoded=point, latent_map=p_map), api_name="decode_point", **live)

        # vae-z3's slices and the correlated prior are drawn in the page too (web/explore.js); their server-side
        # pictures stay as endpoints for API users (/slice3d, /corr_maps)
        with gr.Group(visible=False):
            z3 = gr.Slider(-3, 3, value=0.0, step=0.1, label="z₃")
            s_n = gr.Slider(5, 20, value=12, step=1, label="Grid size")
            s_grid = image(label="vae-z3 decoded at z₃", elem_classes=["pixelated"])
            s_map = image(label="Test digits near the slice")
            c_iso = image(label="vae-z2: isotropic prior")
            c_cor = image(label="vae-z2-corr: correlated prior")
            c_md = gr.Markdown()
        gr.on([z3.change, s_n.change], slice3d.ui(engine), [z3, s_n], Slice.outputs(grid=s_grid, near=s_map),
              api_name="slice3d", trigger_mode="always_last", show_progress="hidden", **q)
        gr.Button("Redraw", visible=False).click(corr_maps.ui(engine), None,
                                                 CorrMaps.outputs(isotropic=c_iso, correlated=c_cor, note=c_md),
                                                 api_name="corr_maps", **q)
    # what is otherwise drawn on first use, ahead of the first request
    engine.warm([lambda: corr_maps(engine), lambda: manifold(engine, MAP_MODEL, 15, 2.5),
                 lambda: slice3d(engine, 0.0, 12, 2.5)], skip=(gr.Error,))  # handlers: a missing model is a gr.Error
    return tab
