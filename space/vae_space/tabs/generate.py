"""Generate: samples from each model's prior (``/generate``), the class-conditional model's digits
(``/conditional``), and what the coloured-MNIST models' codes control (``/color_codes``)."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd
import torch

from vae_hub.model.distributions import kl_per_dim
from vae_hub.training.figures import image_grid

from .. import plots as P
from ..engine import Engine
from ..entries import COLOR_MODELS
from ..handler import Result, choice, fail, handler, number, seed_of
from ..ui import image, note_box, on_visit, quiet, start_here
from .shared import prior_codes

COLOR_CHANGE, SHAPE_CHANGE = 0.12, 0.08  # thresholds of color_shape_change for the "controls" column
DIGITS = ["all"] + [str(d) for d in range(10)]
# the colour sweeps: the TOP_DIMS continuous dimensions with the most KL, each from -SWEEP to SWEEP in SWEEP_STEPS;
# each categorical variable set to up to MAX_VALUES of its values (the page's colour section reads these too)
SWEEP, SWEEP_STEPS, TOP_DIMS, MAX_VALUES = 2.5, 9, 4, 13


@dataclass
class ColorCodes(Result):
    sweeps: np.ndarray  # the test digit, its reconstruction, and each variable swept
    table: pd.DataFrame  # what each variable controls


@handler
def generate(engine: Engine, model: str, n: int = 36, seed: int = 0) -> np.ndarray:
    """Samples from a model's prior (conditional models: labels 0-9 in turn)."""
    e = engine.need(model, "any")
    n = number(n, 1, 100, "number of samples", integer=True)
    return _grid(e, prior_codes(e.model, n, seed_of(seed)))


@handler
def generate_density(engine: Engine, model: str, n: int = 36, seed: int = 0) -> np.ndarray:
    """Samples decoded from codes drawn where the training digits' codes lie (a Gaussian mixture fitted to them,
    vae_hub.hub.density), not from the prior: the same model, number and seed as /generate, side by side."""
    e = engine.need(model, "any")
    n = number(n, 1, 100, "number of samples", integer=True)
    try:
        z = e.model.sample_codes(n, "density", torch.Generator().manual_seed(seed_of(seed)))
    except ValueError as ex:  # no density: the model's own message says why
        fail(str(ex))
    return _grid(e, z)


def _grid(e, z: torch.Tensor) -> np.ndarray:
    """Codes decoded into one picture (conditional models: labels 0-9 in turn, a row each)."""
    n = len(z)
    y = torch.arange(n) % 10 if e.config.conditional else None
    imgs = torch.sigmoid(e.model.decode(z, y))
    return image_grid(P.to_rgb(imgs), int(math.ceil(math.sqrt(n))) if not e.config.conditional else 10, pad_value=P.TILE_PAD, k=2)


@handler
def conditional(engine: Engine, digit: str = "all", n: int = 8, seed: int = 0) -> np.ndarray:
    """The class-conditional model: pick a digit (or 'all') and sample its styles."""
    e = engine.need("cvae", "any")
    digit = choice(str(digit) if isinstance(digit, int) and not isinstance(digit, bool) else digit, DIGITS, "digit")
    n = number(n, 1, 40, "samples per digit", integer=True)
    digits = list(range(10)) if digit == "all" else [int(digit)]
    z = prior_codes(e.model, n, seed_of(seed)).repeat(len(digits), 1)  # same styles in every row
    y = torch.tensor(digits).repeat_interleave(n)
    imgs = torch.sigmoid(e.model.decode(z, y))
    return image_grid(P.to_rgb(imgs), n if digit == "all" else min(n, 10), pad_value=P.TILE_PAD, k=2)


@handler
def color_codes(engine: Engine, model: str = "color-vae", seed: int = 0) -> ColorCodes:
    """How a colour model's codes control colour and shape: sweep each continuous dimension and
    each categorical variable around one test digit's code, and measure what changes."""
    e = engine.need(model, "color")
    seed = seed_of(seed)
    c = e.config
    x = engine.test.colored([color_digit(engine, seed)], c.color_seed)
    post = e.model.encode(x)
    base = post.mode[0]
    rows: dict[str, torch.Tensor] = {}
    kinds: list[str] = []
    if c.z_dim:
        kl_d = kl_per_dim(post, e.model.prior)[0][0]
        for dim in kl_d.argsort(descending=True)[: min(TOP_DIMS, c.z_dim)].tolist():
            z = base.repeat(SWEEP_STEPS, 1)
            z[:, dim] = torch.linspace(-SWEEP, SWEEP, SWEEP_STEPS)
            rows[f"z{dim + 1}"] = z
            kinds.append(f"continuous (KL {float(kl_d[dim]):.1f})")
    cats = np.asarray(color_values(c.k_cat))
    for v in range(c.n_cat):  # up to MAX_VALUES evenly spaced categories of each variable
        start = c.z_dim + v * c.k_cat
        z = base.repeat(len(cats), 1)
        z[:, start:start + c.k_cat] = 0
        z[torch.arange(len(cats)), start + torch.from_numpy(cats)] = 1
        rows[f"c{v + 1}"] = z
        kinds.append(f"categorical, {len(cats)} of {c.k_cat} values")
    out = torch.sigmoid(e.model.decode(torch.cat(list(rows.values()))))  # one batch
    decoded = dict(zip(rows, out.split([len(z) for z in rows.values()])))
    table, shown = [], {}
    for (name, imgs), kind in zip(decoded.items(), kinds):
        col, shape = color_shape_change(imgs)
        is_col, is_shape = col > COLOR_CHANGE, shape > SHAPE_CHANGE
        verdict = {(True, False): "colour", (False, True): "shape", (True, True): "colour and shape"}.get(
            (is_col, is_shape), "little")
        table.append([name, verdict, round(col, 3), round(shape, 3), kind])
        shown[f"{name}: {verdict}"] = P.to_rgb(imgs)
    recon = torch.sigmoid(e.model.decode(base[None]))
    head = P.labelled_tiles(P.to_rgb(torch.cat([x, recon])), ["test digit", "reconstruction"], k=3)
    strip, _ = P.frame_strip(shown, k=2, gap=3)
    # the verdict beside the name: on a phone the table's right-hand columns are off-screen
    df = pd.DataFrame(table, columns=["variable", "controls", "colour change", "shape change", "kind"])
    return ColorCodes(P.vstack([head, strip]), df)


def color_digit(engine: Engine, seed: int) -> int:
    """The test digit (its position in the Space's sample) that seed ``seed`` shows in /color_codes."""
    return int(np.random.default_rng(seed).integers(len(engine.test.labels)))


def color_values(k_cat: int) -> list[int]:
    """The values a categorical variable of k_cat categories is set to: up to MAX_VALUES, evenly spaced."""
    if not k_cat:
        return []
    return np.unique(np.linspace(0, k_cat - 1, min(k_cat, MAX_VALUES)).round().astype(int)).tolist()


COLOR_TABLE_NOTE = (
    f"*Colour change*: how far the stroke's colour (its chromaticity) moves over the sweep; *shape change*: how much "
    f"the stroke itself moves (the spread of each ink pixel's intensity over the sweep). A variable *controls* "
    f"colour above {COLOR_CHANGE:g} and shape above {SHAPE_CHANGE:g}; *little*: neither. A categorical variable set "
    "to another value may change the digit as well as its colour: the models were not told which is which.")

DENSITY_NOTE = (
    "Left, codes from the prior N(0, I); right, codes from a Gaussian mixture fitted to the codes of the 60,000 "
    "training digits. The prior has holes: a VAE's codes do not fill it, and codes drawn where no digit's code lies "
    "decode to blurs. Sampling where the data lives (ex-post density estimation, Ghosh et al. 2020) avoids them; "
    "the evaluation (docs/evaluation.md) compares both by FD and classifier confidence. The colour models with "
    "categorical codes have no "
    "density: their right picture stays empty.")


def engine_has_density(engine: Engine, model: str) -> bool:
    e = engine.models.get(model)
    return e is not None and e.model.code_density is not None


def color_shape_change(imgs: torch.Tensor) -> tuple[float, float]:
    """How much a sweep (S, 3, 28, 28) changes the stroke colour and the digit's shape.

    Shape: the spread over the sweep of each frame's stroke intensity (max over channels, scaled to
    peak 1 so brightness does not count), over the pixels that are ink in some frame. Colour: the
    spread of the stroke's chromaticity (its intensity-weighted mean colour over its brightest channel)."""
    inten = imgs.amax(1)  # (S, 28, 28): the stroke whatever its colour
    norm = inten / inten.flatten(1).amax(1).clamp_min(1e-3)[:, None, None]
    ink = (norm > 0.3).any(0)
    shape = float(norm[:, ink].std(0).mean()) if ink.any() else 0.0
    w = inten**2  # weight bright stroke pixels, not the faint background
    rgb = (imgs * w[:, None]).sum((2, 3)) / w.sum((1, 2)).clamp_min(1e-6)[:, None]
    chroma = rgb / rgb.amax(1, keepdim=True).clamp_min(1e-3)
    col = float((chroma - chroma.mean(0)).norm(dim=1).mean())
    return col, shape


def _new_seed() -> int:
    return secrets.randbelow(1_000_000)


def build(engine: Engine, q: dict) -> gr.Tab:
    """The tab: prior samples, the conditional model's digits, and the colour models' sweeps."""
    with gr.Tab("Generate", id="generate") as tab:
        start_here("press **Sample** for new digits, from the prior and from where the training digits' codes lie (each "
                   "press, a new seed); pick a digit for the "
                   "conditional model; below, see which codes control colour.")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=300):
                _samples(engine, tab, q)
            with gr.Column(min_width=300):
                _conditional(engine, tab, q)
        _colour(engine, tab, q)
    return tab


def _samples(engine: Engine, tab: gr.Tab, q: dict) -> None:
    """Samples from the prior beside samples from the density of the training codes (/generate, /generate_density)."""
    every = engine.available("any")
    gr.Markdown("### Samples\nCodes z decoded: drawn from the prior, and from where the training "
                "digits' codes lie.")
    model = gr.Dropdown(every, value=engine.default_encoder() or (every[0] if every else None),
                        label="Model", interactive=bool(every))
    with gr.Row():
        n = gr.Slider(4, 100, value=36, step=1, label="Samples")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed (Enter to reuse)")
    go = gr.Button("Sample", variant="primary", interactive=bool(every))
    with gr.Row(equal_height=False):  # side by side; one above the other on a phone
        with gr.Column(min_width=160):
            gr.Markdown("**From the prior** N(0, I)", elem_classes=["note"])
            samples = image(label="Samples", elem_classes=["pixelated"])
        with gr.Column(min_width=160):
            gr.Markdown("**From where the training digits' codes lie**", elem_classes=["note"])
            dense = image(label="Samples from the density of the training codes", elem_classes=["pixelated"])
    gr.Markdown(DENSITY_NOTE, elem_classes=["note"])
    ui_gen, ui_dense = generate.ui(engine), generate_density.ui(engine)
    inputs = [model, n, seed]
    gr.on([model.change, n.change, seed.submit], ui_gen, inputs, samples, api_name="generate",
          trigger_mode="always_last", **q)  # change, not release: arrow keys move a slider too
    # the same model, number and seed from the density; a model without one leaves the picture empty
    gr.on([model.change, n.change, seed.submit], quiet(ui_dense, 1), inputs, dense,
          api_visibility="private", trigger_mode="always_last", **q)
    gr.on(None, ui_dense, inputs, dense, api_name="generate_density", **q)
    model.change(lambda m: gr.update(value=None) if not engine_has_density(engine, m) else gr.skip(), model,
                 dense, api_visibility="private", show_progress="hidden")
    # each press draws new samples: a fresh seed, shown in the field so a result can be reproduced
    go.click(_new_seed, None, seed, api_visibility="private", show_progress="hidden").then(
        ui_gen, inputs, samples, api_visibility="private", **q).then(
        quiet(ui_dense, 1), inputs, dense, api_visibility="private", **q)
    on_visit(tab, ui_gen, inputs, [samples], **q)
    on_visit(tab, quiet(ui_dense, 1), inputs, [dense], **q)


def _conditional(engine: Engine, tab: gr.Tab, q: dict) -> None:
    """The class-conditional model's digits, one row per digit (/conditional)."""
    gr.Markdown("### Pick a digit\n`cvae` gets the label, so its code holds only style: the "
                "same styles in every row.")
    note_box(engine.unavailable_note(["cvae"], "This section needs it; it runs"))
    has_cvae = "cvae" in engine.models
    digit = gr.Radio(DIGITS, value="all", label="Digit", interactive=has_cvae)
    with gr.Row():
        c_n = gr.Slider(1, 20, value=8, step=1, label="Samples per digit", interactive=has_cvae)
        c_seed = gr.Number(0, precision=0, minimum=0, label="Seed", interactive=has_cvae)
    c_img = image(label="Conditional samples", elem_classes=["pixelated"])
    ui_cond = conditional.ui(engine)
    gr.on([digit.change, c_n.change, c_seed.change], ui_cond, [digit, c_n, c_seed], c_img, api_name="conditional",
          trigger_mode="always_last", **q)
    on_visit(tab, ui_cond, [digit, c_n, c_seed], [c_img], **q)


def _colour(engine: Engine, tab: gr.Tab, q: dict) -> None:
    """What the colour models' codes control: the sweeps and the table (/color_codes)."""
    colors = engine.available("color")
    gr.Markdown("### Colour: what do the codes control?\nThe coloured-MNIST models around one test digit's "
                "code: each continuous dimension swept from −2.5 to 2.5, each categorical variable set to "
                "each of its values. The table measures how much each sweep changes the stroke colour "
                "and the digit's shape.")
    note_box(engine.unavailable_note(COLOR_MODELS, "This section runs"))
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            # color-vae by default: its continuous codes visibly move colour and shape
            k_model = gr.Dropdown(colors, value="color-vae" if "color-vae" in colors else (colors[0] if colors else None),
                                  label="Colour model", interactive=bool(colors))
            k_seed = gr.Number(0, precision=0, minimum=0, label="Test digit (seed)", interactive=bool(colors))
            # px: whole words in the headers; the verdict comes second, so a phone shows it without scrolling
            k_table = gr.Dataframe(label="What each variable controls", interactive=False, wrap=True,
                                   headers=["variable", "controls", "colour change", "shape change", "kind"],
                                   column_widths=["80px", "110px", "70px", "70px", "130px"])
            gr.Markdown(COLOR_TABLE_NOTE, elem_classes=["note"])
        with gr.Column(scale=3, min_width=320):
            k_img = image(label="Sweeps", elem_id="color-sweeps")
    k_out = ColorCodes.outputs(sweeps=k_img, table=k_table)
    ui_col = color_codes.ui(engine)
    gr.on([k_model.change, k_seed.change], ui_col, [k_model, k_seed], k_out, api_name="color_codes", **q)
    on_visit(tab, ui_col, [k_model, k_seed], k_out, **q)
