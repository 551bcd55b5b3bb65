"""The Space's handlers and its drawing preprocessing, in-process: no server, no browser. Every number a handler
answers is pinned here; tests/test_space.py checks the API's contract through a launched app (endpoint names, output
shapes and types, bad input answered briefly), tests/test_space_faults.py the Space when its files or visitors
misbehave, tests/test_browser.py the in-browser panels.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image
from vae_space import engine as engine_mod
from vae_space import handler as H
from vae_space.engine import Engine
from vae_space.tabs import beta, draw, explore, generate, interpolate, models, shared

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes, to_mnist
from vae_hub.evaluation.morpho import FACTORS
from vae_hub.model.distributions import kl_per_dim

from .conftest import bench_module

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = ["vae-z20", "vae-z2", "vae-z2-corr", "vae-z3", "cvae", "beta-vae-b1", "beta-vae-b8", "color-joint"]


@pytest.fixture(scope="module")
def eng():
    return Engine.start(None, variants=VARIANTS, background=False)


def pad(digit: int, **kw) -> dict:
    return {"background": None, "layers": [], "composite": render_strokes(DIGIT_STROKES[digit], **kw)}


# ---------------------------------------------------------------------------- the decorator and named results
def test_handler_turns_failures_into_short_errors_and_feeds_the_ui(eng):
    @H.handler
    def broken(engine, x: int) -> int:
        raise KeyError("a bug, with a long internal message " * 20)

    with pytest.raises(gr.Error) as err:
        broken(eng, 1)
    assert "KeyError" in err.value.message and len(err.value.message) < 100
    assert not torch.is_inference_mode_enabled()

    @H.handler
    def grads(engine) -> bool:
        return torch.is_inference_mode_enabled()

    assert grads(eng), "handlers run without gradients"
    ui = draw.encode.ui(eng)
    assert list(inspect.signature(ui).parameters) == ["drawing", "model"], "Gradio sees the inputs, not the engine"
    out = ui(pad(7), "vae-z20")
    assert isinstance(out, tuple) and len(out) == 7
    assert all(Path(p).suffix == ".png" and Path(p).is_file() for p in out[:5]), "pictures are PNG files of our own"
    assert isinstance(out[5], str) and isinstance(out[6], dict)


def test_named_results_fix_the_output_order():
    assert [f for f in draw.Encoded.__dataclass_fields__] == ["input", "reconstruction", "posterior", "latent_map",
                                                             "neighbours", "summary", "data"]
    assert interpolate.Arithmetic.outputs(info=3, path_map=2, equation=1) == [1, 2, 3]
    with pytest.raises(TypeError, match="equation"):
        interpolate.Arithmetic.outputs(strip=1, path_map=2, info=3)


def test_input_checks_answer_in_words():
    for call, words in [*((lambda v=v: H.number(v, 0, 1, "seed"), "expected a number")
                          for v in ("x", float("nan"), float("inf"), None, [1, 2])),
                        (lambda: H.number(2.5, 0, 10, "steps", integer=True), "whole number"),
                        (lambda: H.number(11, 0, 10, "steps"), "between 0 and 10"),
                        (lambda: H.choice("z" * 500, ["a", "b"], "model"), "expected one of a, b"),
                        (lambda: H.pixels([0.5] * 783), "784"), (lambda: H.pixels([2.0] * 784), "[0, 1]")]:
        with pytest.raises(gr.Error) as err:
            call()
        assert words in err.value.message and len(err.value.message) < 200, err.value.message


# ---------------------------------------------------------------------------- drawing preprocessing
def test_a_drawing_becomes_the_mnist_input_whatever_its_background(eng):
    """Transparent or white background, sketchpad value or bare array: the same 28×28 input and code."""
    want = to_mnist(render_strokes(DIGIT_STROKES[3]))
    assert want.shape == (28, 28) and want.dtype == np.float32 and 0 <= want.min() and want.max() <= 1
    white = render_strokes(DIGIT_STROKES[3], background=(255, 255, 255, 255))
    outs = [draw.encode(eng, v, "vae-z20") for v in (pad(3), white, {"background": white, "layers": [],
                                                                     "composite": None})]
    for r in outs:
        np.testing.assert_allclose(r.input[4::8, 4::8, 0] / 255, want, atol=1 / 255 + 1e-6)
        np.testing.assert_allclose(r.data["mean"], outs[0].data["mean"], atol=1e-3)


def test_a_drawing_is_read_whatever_its_polarity_and_shape(eng):
    """White strokes on a transparent pad, and a wide JPEG scan (dark ink on off-white paper), as the app decodes
    them (RGBA): the same MNIST-style 7 as the pad's own drawing."""
    ref = draw.encode(eng, pad(7), "vae-z20").input[::8, ::8, 0].astype(float)
    scan = render_strokes(DIGIT_STROKES[7], (1600, 900), 60, ink=(40, 40, 60, 255), background=(235, 232, 225, 255))
    jpeg = io.BytesIO()
    Image.fromarray(scan).convert("RGB").save(jpeg, format="JPEG")
    inputs = {"transparent-white": render_strokes(DIGIT_STROKES[7], (400, 400), 16, ink=(255, 255, 255, 255)),
              "wide-scan": np.asarray(Image.open(jpeg).convert("RGBA"))}
    for name, value in inputs.items():
        x = draw.encode(eng, value, "vae-z20").input[::8, ::8, 0].astype(float)
        corr = np.corrcoef(ref.ravel(), x.ravel())[0, 1]
        assert corr > 0.85, f"{name}: correlation {corr:.2f} with the pad's drawing"


@pytest.mark.parametrize("value,words", [
    (None, "canvas is empty"),
    ({"background": None, "layers": [], "composite": np.zeros((400, 400, 4), np.uint8)}, "canvas is empty"),
    (np.zeros((4, 4), np.uint8), "too small"),
    ({"bogus": 1}, "background/layers/composite"),
    ("a string", "Expected an image"),
])
def test_bad_drawings_are_refused_with_a_reason(eng, value, words):
    with pytest.raises(gr.Error) as err:
        draw.encode(eng, value, "vae-z20")
    assert words in err.value.message, err.value.message


# ---------------------------------------------------------------------------- draw & encode
def test_encode_reports_the_posterior_and_agrees_with_encode_array(eng):
    r = draw.encode(eng, pad(7), "vae-z20")
    assert r.latent_map.shape == (454, 440, 3) and r.data["map_model"] == "vae-z2"
    assert r.data["knn_label"] == 7 and "**7**" in r.summary
    assert len(r.data["sigma"]) == 20 and min(r.data["sigma"]) > 0
    assert r.data["elbo"] == pytest.approx(-(r.data["recon_nll"] + r.data["kl"]), abs=2e-3)
    got = draw.encode_array(eng, (r.input[4::8, 4::8, 0] / 255).ravel().tolist(), "vae-z20")
    np.testing.assert_allclose(got["mean"], r.data["mean"], atol=2e-3)  # the PNG-free input: equal up to rounding
    assert [n["label"] for n in got["neighbours"]] == [n["label"] for n in r.data["neighbours"]]
    with pytest.raises(gr.Error, match="cannot be used"):
        draw.encode_array(eng, [0.0] * 784, "cvae")


# ---------------------------------------------------------------------------- interpolate
def test_interpolation_ends_are_the_endpoints_reconstructions(eng):
    r = interpolate.interpolate(eng, "vae-z2", "test digit 3", None, "test digit 8", None, 6, 0)
    z_a, z_b = torch.tensor(r.info["z_a"]), torch.tensor(r.info["z_b"])
    t = torch.linspace(0, 1, 6)
    path = interpolate.slerp(z_a, z_b, t)
    torch.testing.assert_close(path[0], z_a)
    torch.testing.assert_close(path[-1], z_b)
    u, v = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])  # two unit codes: slerp stays on the circle
    torch.testing.assert_close(interpolate.slerp(u, v, t).norm(dim=1), torch.ones(6))
    assert (path - ((1 - t)[:, None] * z_a + t[:, None] * z_b)).abs().max() > 1e-3, "not the straight line"
    assert len(r.info["tiles"]["linear"]) == 6 and Path(r.animation).suffix == ".gif"


def test_style_transfer_keeps_the_style_and_changes_the_digit(eng):
    r = interpolate.style_transfer(eng, "thick test digit 7", 0)
    assert r.info["label"] == 7 and len(r.info["z"]) == eng.models["cvae"].config.z_dim
    assert r.figure.ndim == 3 and r.figure.shape[1] > 7 * 28 * 3  # input, its code, five digits a row
    with pytest.raises(gr.Error, match="source"):
        interpolate.style_transfer(eng, "my drawing", 0)  # a drawing has no label to encode it with


def test_thick_and_thin_test_digits_are_picked_by_ink(eng):
    picked = {w: shared.pick_input(eng, f"{w} test digit 7", None, 0, 0) for w in ("thick", "thin")}
    assert all(label == 7 for _, label, _ in picked.values())
    ink = {w: float(x.sum()) for w, (x, _, _) in picked.items()}
    assert ink["thick"] > 1.5 * ink["thin"], ink


def test_the_pages_style_transfer_sentences_still_hold(eng):
    """The counts quoted on the page are what bench/space_style_transfer.py measures on these weights."""
    assert bench_module("space_style_transfer").measure(eng) == interpolate.MEASURED
    assert interpolate.MEASURED["style"] > interpolate.MEASURED["arith"]


# ---------------------------------------------------------------------------- β, explore, generate, models
def test_kl_per_dimension_adds_up_to_the_models_kl(eng):
    for name in ("beta-vae-b1", "vae-z20"):
        m = eng.models[name].model
        post = m.encode(eng.test.x[:16])
        torch.testing.assert_close(kl_per_dim(post, m.prior)[0].sum(1), m.kl(post), atol=1e-4, rtol=1e-4)
    r = beta.compare_betas(eng, "test digit 1", None, 0)
    for b, d in r.data["models"].items():
        assert sum(d["kl_per_dim"]) == pytest.approx(float(r.table.set_index("model").loc[b, "this input: KL"]),
                                                     abs=0.01)
    kl = r.table.set_index("model")["this input: KL"]
    assert kl["beta-vae-b8"] < kl["beta-vae-b1"], "a larger β spends fewer nats on the code"
    assert r.table.set_index("model").loc["beta-vae-b2"].isna()["this input: KL"], "a missing β is a blank row"


def test_prior_samples_repeat_with_their_seed(eng):
    m = eng.models["color-joint"].model
    a, b, c = (shared.prior_codes(m, 8, s) for s in (3, 3, 4))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    cat = a[:, m.config.z_dim:].unflatten(1, (m.config.n_cat, m.config.k_cat))
    assert torch.all(cat.sum(-1) == 1), "categorical codes are one-hot"
    np.testing.assert_array_equal(generate.generate(eng, "vae-z20", 9, 5), generate.generate(eng, "vae-z20", 9, 5))
    rows = generate.conditional(eng, "all", 3, 0)
    assert rows.shape[0] > rows.shape[1] / 3 * 9, "ten rows of three"


def test_samples_from_the_density_of_the_training_codes(eng):
    """Beside the prior's: the same grid, reproducible with its seed, from other codes; none for a model whose
    codes are not all Gaussian (a clear message)."""
    dense = generate.generate_density(eng, "vae-z20", 9, 5)
    np.testing.assert_array_equal(dense, generate.generate_density(eng, "vae-z20", 9, 5))
    assert dense.shape == generate.generate(eng, "vae-z20", 9, 5).shape
    assert not np.array_equal(dense, generate.generate(eng, "vae-z20", 9, 5))
    with pytest.raises(gr.Error, match="color-joint has no density.*not all Gaussian"):
        generate.generate_density(eng, "color-joint", 9, 5)


def test_explorer_handlers(eng):
    grid = explore.manifold(eng, "vae-z2", 5, 2.0)
    assert grid.shape == (140, 140, 3)
    p = explore.decode_point(eng, "vae-z2", 0.5, -1.0)
    assert p.decoded.shape == (224, 224, 3) and p.latent_map.shape == (454, 440, 3)
    flat = explore.decode_points(eng, "vae-z3", [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3)
    assert len(flat) == 2 * 784 and 0 <= min(flat) <= max(flat) <= 1
    for args, words in [(("vae-z20", [0.0] * 20, 20), "2-D or 3-D"), (("vae-z3", [0.0, 0.0], 3), "n × 3"),
                        (("vae-z2", [0.0, 99.0], 2), "[-10, 10]"), (("vae-z2", [0.0] * 3, 3), "k:")]:
        with pytest.raises(gr.Error) as err:
            explore.decode_points(eng, *args)
        assert words in err.value.message, err.value.message
    s = explore.slice3d(eng, 0.3, 6, 2.5)
    assert s.grid.shape == (168, 168, 3)
    c = explore.corr_maps(eng)
    assert "correlation" in c.note and c.isotropic.shape == c.correlated.shape


def test_color_codes_and_model_card(eng):
    k = generate.color_codes(eng, "color-joint", 0)
    assert list(k.table.columns) == ["variable", "controls", "colour change", "shape change", "kind"]
    assert set(k.table["controls"]) <= {"colour", "shape", "colour and shape", "little"}
    card = models.model_card(eng, "vae-z20")
    assert "## Test metrics" not in card.card and card.figures and "vae_hub.load" in card.download
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", card.figures)
    assert len(captions) >= 3 and not any("_" in c for c in captions), card.figures
    assert str(ROOT) not in card.figures, "the figures' URLs name no folder of the server"
    assert "Not available" in models.model_card(eng, "conv-vae-z20").card
    for v in eng.models:  # every card: the metrics once, in the table, by human labels (not raw keys)
        card = models.model_card(eng, v)
        names = list(card.metrics["metric"])
        assert "test loss" in " ".join(names) and not any("_" in n for n in names), (v, names)
        assert "## Test metrics" not in card.card and "## Training recipe" in card.card, v
    over = models.overview(eng)
    assert over.set_index("variant").loc["vae-z20", "loaded"] == "✓"


# ---------------------------------------------------------------------------- handwriting factors (issue 14)
# The β comparison names each traversed dimension after the measured factor it carries most and draws |ρ| heat maps;
# the Draw tab measures the drawing itself.
WITH_KEYS = "beta-vae-b4"  # gets morpho_* keys in metrics.json
WITHOUT = "beta-vae-b1"  # its morpho_* keys are removed here: the Space measures its own test digits


def _rho(d: int) -> np.ndarray:
    """A made-up correlation matrix: dimension j carries slant with ρ = −(0.40 + 0.05 j), the rest ~0.1."""
    corr = np.full((d, len(FACTORS)), 0.1)
    corr[:, FACTORS.index("slant")] = -(0.40 + 0.05 * np.arange(d))
    return corr


@pytest.fixture(scope="module")
def factor_eng(tmp_path_factory, request):
    """Two β-VAEs: one whose metrics.json carries made-up factor correlations, one evaluated before issue 14."""
    weights = tmp_path_factory.mktemp("weights")
    for b in (WITH_KEYS, WITHOUT):
        shutil.copytree(ROOT / "pretrained" / b, weights / b)
    m = json.loads((weights / WITH_KEYS / "metrics.json").read_text())
    m.update(morpho_correlation=_rho(10).tolist(), morpho_factors=list(FACTORS), morpho_mig=0.1, morpho_sap=0.05)
    (weights / WITH_KEYS / "metrics.json").write_text(json.dumps(m))
    m = json.loads((weights / WITHOUT / "metrics.json").read_text())
    (weights / WITHOUT / "metrics.json").write_text(json.dumps({k: v for k, v in m.items()
                                                                if not k.startswith("morpho_")}))
    mp = pytest.MonkeyPatch()
    mp.setattr(engine_mod, "N_FACTOR_DIGITS", 300)  # enough for the test, a fraction of the measuring time
    request.addfinalizer(mp.undo)
    return Engine.start(str(weights), variants=[WITH_KEYS, WITHOUT], background=False)


def test_labels_and_heat_maps_come_from_metrics_json(factor_eng):
    f = factor_eng.factors(factor_eng.models[WITH_KEYS])
    assert f is not None and "metrics.json" in f.source
    np.testing.assert_array_equal(f.corr, _rho(10))
    r = beta.compare_betas(factor_eng, "test digit 3", None, 0)
    d = r.data["models"][WITH_KEYS]
    assert d["factors"] == list(FACTORS) and d["factor_rho"] == np.round(_rho(10), 3).tolist()
    assert [x["factor"] for x in d["dominant_factor"]] == ["slant"] * 10
    assert d["dominant_factor"][2]["rho"] == pytest.approx(-0.50)
    # the heat map is in the figure: a cell of the colour of |ρ| = 0.85 (dimension 10), in the heat-map column
    heat_x = sum(beta.BETA_COLS[:4]) + 4 * 12
    assert r.figure.shape[1] == sum(beta.BETA_COLS) + 4 * 12
    colour = (np.asarray(colormaps["viridis"](0.85)[:3]) * 255).astype(np.uint8)
    assert np.all(r.figure[:, heat_x:] == colour, -1).sum() > 100, "a heat-map cell of |ρ| = 0.85"
    assert not np.all(r.figure[:, :heat_x] == colour, -1).any(), "…and only there"


def test_without_the_keys_the_space_measures_its_test_digits(factor_eng):
    e = factor_eng.models[WITHOUT]
    f = factor_eng.factors(e)
    assert f is not None and "300 of the Space's test digits" in f.source and f.corr.shape == (10, len(FACTORS))
    assert np.abs(f.corr).max() > 0.3, "some dimension of a β-VAE carries a handwriting factor"
    assert factor_eng.factors(e) is f, "measured once, then cached"
    r = beta.compare_betas(factor_eng, "test digit 3", None, 0)
    labels = f.labels(beta.MIN_RHO)
    assert [x["factor"] for x in r.data["models"][WITHOUT]["dominant_factor"]] == [n for n, _ in labels]
    assert all(n is None or abs(rho) >= beta.MIN_RHO for n, rho in labels)


def test_no_labels_when_no_factors(factor_eng, monkeypatch):
    """A model whose factors cannot be had (metrics absent and measuring failing) is compared without them."""
    monkeypatch.setattr(Engine, "factors", lambda self, e: None)
    r = beta.compare_betas(factor_eng, "test digit 3", None, 0)
    assert "dominant_factor" not in r.data["models"][WITH_KEYS]
    assert r.figure.shape[1] == sum(beta.BETA_COLS[:4]) + 3 * 12, "no heat-map column"


def test_draw_measures_thickness_and_slant(eng):
    def bar(width: int, lean: float) -> list[float]:
        """A stroke from row 4 to 23, ``width`` px wide, its top ``lean`` px right of its bottom per row."""
        img = np.zeros((28, 28), np.float32)
        for r in range(4, 24):
            c = int(round(14 + lean * (14 - r)))
            img[r, c - width // 2:c - width // 2 + width] = 1
        return img.ravel().tolist()

    a, b = draw.handwriting(eng, bar(2, 0.4)), draw.handwriting(eng, bar(5, -0.4))
    assert set(a) == {"thickness", "slant"} and b["thickness"] > a["thickness"] + 2, (a, b)
    assert a["slant"] > 10 and b["slant"] < -10, "+: the top leans right"
    assert draw.handwriting(eng, [0.0] * 784) == {}, "a blank pad: nothing to show, no error"
    out = draw.encode(eng, pad(7), WITHOUT)
    assert out.data["handwriting"]["thickness"] > 0 and "thickness" in out.summary
