"""β comparison: in Gradio's page, the page's own view (web/beta.js, computed in the browser, with ``betas_url``:
each β-VAE's test metrics and factor correlations as one JSON file); on the server, ``/compare_betas`` for
gradio_client: the comparison figure and table for one input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from vae_hub.model.distributions import kl_per_dim
from vae_hub.model.variants import VARIANTS

from .. import plots as P
from ..browser import PAGE_CSS, assets, live_panel
from ..engine import Engine
from ..entries import BETAS, Factors
from ..handler import Result, fail, handler
from ..ui import note_box, sketchpad, start_here
from .shared import SOURCES, pick_input, r2

BETA_COLS = (150, 96, 270, 520, 250)  # label, reconstruction, KL bars, traversals, factor heat map (pixels)
USED = 0.05  # nats: a dimension this input uses
MIN_RHO = 0.3  # a dimension is labelled with a factor only from this |ρ| on
SHORT = {"thickness": "thick"}  # heat-map column names fit a cell of HEAT_CELL[0] px at 10 pt
HEAT_CELL = (36, 15)


@dataclass
class Comparison(Result):
    input: np.ndarray  # the 28×28 input
    figure: np.ndarray  # reconstruction, KL per dimension and traversals for each β
    table: pd.DataFrame  # each model's test metrics and this input's numbers
    data: dict  # KL per dimension and posterior mean for each β


@handler
def compare_betas(engine: Engine, source: str, drawing: Any, seed: int = 0) -> Comparison:
    """One input through every beta-VAE: reconstruction, KL per dimension (sorted), traversals of
    the most-used dimensions; and each model's test metrics from its card."""
    have = [b for b in BETAS if b in engine.models]
    if not have:
        fail("No beta-VAE is available: " + "; ".join(f"{b}: {engine.missing.get(b, 'not loaded')}" for b in BETAS))
    x, _, desc = pick_input(engine, source, drawing, seed, 0)
    results = {}
    steps = torch.linspace(-2.5, 2.5, 7)
    for b in have:
        m = engine.need(b, "beta").model
        post = m.encode(x)
        mu = post.mean[0]
        kl_d = kl_per_dim(post, m.prior)[0][0].numpy()
        order = np.argsort(-kl_d)
        top = order[:3]
        zs = [mu[None]]
        for dim in top:
            z = mu.repeat(len(steps), 1)
            z[:, dim] = steps
            zs.append(z)
        imgs = P.to_rgb(torch.sigmoid(m.decode(torch.cat(zs))))
        logits = m.decode(mu[None])
        results[b] = dict(kl=kl_d, order=order, top=top, recon=imgs[0], trav=imgs[1:].reshape(len(top), 7, 28, 28, 3),
                          recon_nll=float(m.recon_nll(logits, x)[0]), kl_total=float(kl_d.sum()),
                          mean=[round(float(v), 5) for v in mu], factors=engine.factors(engine.models[b]))
    vmax = max(float(r["kl"].max()) for r in results.values())
    factors = [r["factors"] for r in results.values() if r["factors"] is not None]
    cols = _cols(bool(factors))
    width = sum(cols) + 12 * (len(cols) - 1)
    rows = [_row(VARIANTS[b].beta, results.get(b), vmax, width, engine.missing.get(b, "not loaded")) for b in BETAS]
    figure = P.vstack([_header(bool(factors))] + rows + ([_factor_key(factors[0])] if factors else []), gap=6)
    rows = []
    for b in BETAS:
        e = engine.models.get(b)
        met = {k: v for k, _, v in e.metrics} if e else {}
        r = results.get(b)
        rows.append([b, VARIANTS[b].beta, r2(met.get("test_loss")), r2(met.get("test_recon")), r2(met.get("test_kl")),
                     e.active if e else None, r2(r["recon_nll"]) if r else None, r2(r["kl_total"]) if r else None,
                     int((r["kl"] > USED).sum()) if r else None])
    table = pd.DataFrame(rows, columns=["model", "β", "test loss", "test recon", "test KL", "active dims (test)",
                                        "this input: recon", "this input: KL", "this input: dims used"])
    data = {"input": desc, "models": {b: {"kl_per_dim": r["kl"].round(4).tolist(), "order": r["order"].tolist(),
                                          "mean": r["mean"], "beta": VARIANTS[b].beta,
                                          "recon_nll": round(r["recon_nll"], 3), **_factor_data(r["factors"])}
                                      for b, r in results.items()}}
    return Comparison(P.digit(x[0], 6), figure, table, data)


def betas_url(engine: Engine) -> str:
    """What the app's β view needs beyond the graphs, as one JSON file at a content-addressed URL (kept once every
    β-VAE is prepared, so its active units are in):
    {"models": {name: {beta, metrics {test_loss, test_recon, test_kl, active}, factors, factor_rho, ...}}}."""
    if all(engine.models[b].ready.is_set() for b in BETAS if b in engine.models):
        return engine.cached("betas-url", lambda: _betas_json(engine))
    return _betas_json(engine)


def _betas_json(engine: Engine) -> str:
    models = {}
    for b in BETAS:
        e = engine.models.get(b)
        if e is None:
            continue
        met = {k: v for k, _, v in e.metrics}
        models[b] = {"beta": VARIANTS[b].beta, "active": e.active,
                     "metrics": {k: r2(met.get(k)) for k in ("test_loss", "test_recon", "test_kl")},
                     **_factor_data(engine.factors(e))}
    data = json.dumps({"models": models, "used": USED, "min_rho": MIN_RHO}, separators=(",", ":"))
    return assets().data("betas.json", data.encode())


def _factor_data(f: Factors | None) -> dict:
    """The numbers behind the labels and heat map: ρ per dimension and factor, each dimension's dominant factor."""
    if f is None:
        return {}
    return {"factors": f.names, "factor_rho": f.corr.round(3).tolist(), "factor_source": f.source,
            "dominant_factor": [{"factor": n, "rho": round(r, 3)} for n, r in f.labels(MIN_RHO)]}


def _cols(factors: bool) -> tuple[int, ...]:
    return BETA_COLS if factors else BETA_COLS[:4]


def _header(factors: bool) -> np.ndarray:
    titles = ("", "reconstruction", "KL per dimension, sorted (nats)", "3 most-used dimensions, swept −2.5 … 2.5",
              "|ρ| with handwriting factors")
    cols = _cols(factors)
    img, d = P.canvas(sum(cols) + (len(cols) - 1) * 12, 22)
    x = 0
    for w, t in zip(cols, titles):
        d.text((x + w / 2, 4), t, font=P.font(13), fill=P.MUTED, anchor="mt")
        x += w + 12
    return np.asarray(img)


def _row(beta: float, r: dict | None, vmax: float, width: int, missing: str = "") -> np.ndarray:
    """One β: its numbers, reconstruction, KL per dimension (one scale for all β) and traversals."""
    h = 3 * 58 + 6
    if r is None:
        return P.placeholder(f"β = {beta:g}: not available ({missing}).", (width, 70))
    used = int((r["kl"] > USED).sum())
    label, d = P.canvas(BETA_COLS[0], h)
    d.text((8, h / 2 - 30), f"β = {beta:g}", font=P.font(22), fill=P.INK)
    d.text((8, h / 2 + 2), f"KL {r['kl_total']:.1f} nats", font=P.font(13), fill=P.MUTED)
    d.text((8, h / 2 + 20), f"{used} of {len(r['kl'])} dims used", font=P.font(13), fill=P.MUTED)
    rec, _ = P.canvas(BETA_COLS[1], h)
    rec.paste(Image.fromarray(P.upscale(r["recon"], 3)), (6, (h - 84) // 2))
    names = [f"z{i + 1}" for i in r["order"]]
    bars = P.kl_bars(r["kl"][r["order"]], names, width=BETA_COLS[2], height=h - 30, vmax=vmax)
    bars_c, _ = P.canvas(BETA_COLS[2], h)
    bars_c.paste(Image.fromarray(bars), (0, 15))
    f = r["factors"]
    labels = f.labels(MIN_RHO) if f else []
    names, notes = {}, {}
    for j, i in enumerate(r["top"]):  # "z3 ≈ slant" over "ρ = 0.81": what the traversal changes, measured
        factor, rho = labels[i] if labels else (None, 0.0)
        key = f"z{i + 1} ≈ {factor}" if factor else f"z{i + 1}"
        names[key] = r["trav"][j]
        if factor:
            notes[key] = f"ρ = {rho:+.2f}"
    trav, _ = P.frame_strip(names, k=2, gap=2, label_w=BETA_COLS[3] - 7 * 58, notes=notes)
    trav_c, _ = P.canvas(BETA_COLS[3], h)
    trav_c.paste(Image.fromarray(trav), (0, (h - trav.shape[0]) // 2))
    parts = [np.asarray(label), np.asarray(rec), np.asarray(bars_c), np.asarray(trav_c)]
    if f is not None:
        parts.append(_heat(f, r["order"], r["top"], h))
    return P.hstack(parts, gap=12)


def _heat(f: Factors, order: np.ndarray, top: np.ndarray, h: int) -> np.ndarray:
    """|ρ| of each dimension (rows in the KL bars' order; the traversed ones in ink) with each factor."""
    cols = [SHORT.get(n, n) for n in f.names]
    heat = P.heat_map(np.abs(f.corr[order]), [f"z{i + 1}" for i in order], cols,
                      (HEAT_CELL[0], min(HEAT_CELL[1], (h - 20) // len(order))),
                      marked=[int(np.flatnonzero(order == t)[0]) for t in top])
    out, _ = P.canvas(BETA_COLS[4], h)
    out.paste(Image.fromarray(heat), (0, (h - heat.shape[0]) // 2))
    return np.asarray(out)


def _factor_key(f: Factors) -> np.ndarray:
    """Under the rows: the heat maps' colour key and what ρ is."""
    key = P.color_scale(BETA_COLS[4], "|ρ|")
    text, d = P.canvas(sum(BETA_COLS[:4]) + 36, key.shape[0] + 6)
    d.text((text.width - 8, 4), f"ρ: Pearson correlation of a dimension's posterior mean with a measured handwriting "
           f"factor (Morpho-MNIST), {f.source}.", font=P.font(12), fill=P.MUTED, anchor="ra")
    d.text((text.width - 8, 18), f"A traversed dimension is named after the factor it carries most when |ρ| ≥ {MIN_RHO}.",
           font=P.font(12), fill=P.MUTED, anchor="ra")
    return P.hstack([np.asarray(text), key], gap=12)


def build(engine: Engine, q: dict) -> gr.Tab:
    """The tab: the page's own β view (web/beta.js: the five β-VAEs on one input, test digit or the drawing made on
    Draw & encode, with KL bars, named traversals, |ρ| heat maps and the sweep, computed in the browser), and the
    /compare_betas endpoint for gradio_client on hidden components."""
    ui = compare_betas.ui(engine)
    with gr.Tab("β comparison", id="beta") as tab:
        start_here("as β grows, watch the reconstruction blur and the KL bars vanish, one dimension after another; "
                   "drag the sweep to see what each model's most-used dimension does.")
        note_box(engine.unavailable_note(BETAS, "The comparison runs"))
        live_panel(engine, "beta.js", "The β comparison", "vb-root", css=PAGE_CSS, elem_id="beta-live",
                   wait=BETAS[-1] if BETAS[-1] in engine.models else None, extra=lambda: {"betas": betas_url(engine)})
        # The API as it always was, for gradio_client; hidden: the page above computes in the browser.
        with gr.Group(visible=False):
            src = gr.Dropdown(SOURCES, value="random test digit", label="Input")
            pad = sketchpad("Draw the input", "pad-beta", (280, 280))
            seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)")
            inp = gr.Image(label="Input (28×28)", format="png")
            fig = gr.Image(label="Reconstruction, KL per dimension and traversals for each β", format="png")
            table = gr.Dataframe(label="Test metrics from each model's card, and this input's numbers")
            data = gr.JSON(label="KL per dimension, posterior mean and handwriting-factor ρ for each β")
            go = gr.Button("Compare")
        go.click(ui, [src, pad, seed], Comparison.outputs(input=inp, figure=fig, table=table, data=data),
                 api_name="compare_betas", **q)
    # measure the test digits' handwriting factors before the first comparison asks (when metrics.json has none)
    engine.warm([lambda b=b: engine.factors(engine.models[b]) for b in BETAS if b in engine.models])
    return tab
