"""Handwriting factors in the Space (issue 14): the β comparison names each traversed dimension after the
measured factor it carries most and draws |ρ| heat maps; the Draw tab measures the drawing itself.

In-process, like tests/test_space_handlers.py: no server, no browser.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from vae_space import engine as engine_mod
from vae_space.engine import Engine
from vae_space.tabs import beta, draw

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes
from vae_hub.evaluation.morpho import FACTORS

ROOT = Path(__file__).resolve().parent.parent

WITH_KEYS = "beta-vae-b4"  # gets morpho_* keys in metrics.json
WITHOUT = "beta-vae-b1"  # its morpho_* keys are removed here: the Space measures its own test digits
NAME = {"thickness": "thick"}


def _rho(d: int) -> np.ndarray:
    """A made-up correlation matrix: dimension j carries slant with ρ = −(0.40 + 0.05 j), the rest ~0.1."""
    corr = np.full((d, len(FACTORS)), 0.1)
    corr[:, FACTORS.index("slant")] = -(0.40 + 0.05 * np.arange(d))
    return corr


@pytest.fixture(scope="module")
def eng(tmp_path_factory, request):
    weights = tmp_path_factory.mktemp("weights")
    for b in (WITH_KEYS, WITHOUT):
        shutil.copytree(ROOT / "pretrained" / b, weights / b)
    m = json.loads((weights / WITH_KEYS / "metrics.json").read_text())
    m.update(morpho_correlation=_rho(10).tolist(), morpho_factors=list(FACTORS), morpho_mig=0.1, morpho_sap=0.05)
    (weights / WITH_KEYS / "metrics.json").write_text(json.dumps(m))
    m = json.loads((weights / WITHOUT / "metrics.json").read_text())  # as a folder evaluated before issue 14
    (weights / WITHOUT / "metrics.json").write_text(json.dumps({k: v for k, v in m.items()
                                                                if not k.startswith("morpho_")}))
    mp = pytest.MonkeyPatch()
    mp.setattr(engine_mod, "N_FACTOR_DIGITS", 300)  # enough for the test, a fraction of the measuring time
    request.addfinalizer(mp.undo)
    return Engine.start(str(weights), variants=[WITH_KEYS, WITHOUT], background=False)


def test_labels_and_heat_maps_come_from_metrics_json(eng):
    f = eng.factors(eng.models[WITH_KEYS])
    assert f is not None and "metrics.json" in f.source
    np.testing.assert_array_equal(f.corr, _rho(10))
    r = beta.compare_betas(eng, "test digit 3", None, 0)
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


def test_without_the_keys_the_space_measures_its_test_digits(eng):
    e = eng.models[WITHOUT]
    f = eng.factors(e)
    assert f is not None and "300 of the Space's test digits" in f.source and f.corr.shape == (10, len(FACTORS))
    assert np.abs(f.corr).max() > 0.3, "some dimension of a β-VAE carries a handwriting factor"
    assert eng.factors(e) is f, "measured once, then cached"
    r = beta.compare_betas(eng, "test digit 3", None, 0)
    labels = f.labels(beta.MIN_RHO)
    assert [x["factor"] for x in r.data["models"][WITHOUT]["dominant_factor"]] == [n for n, _ in labels]
    assert all(n is None or abs(rho) >= beta.MIN_RHO for n, rho in labels)


def test_no_labels_when_no_factors(eng, monkeypatch):
    """A model whose factors cannot be had (metrics absent and measuring failing) is compared without them."""
    monkeypatch.setattr(Engine, "factors", lambda self, e: None)
    r = beta.compare_betas(eng, "test digit 3", None, 0)
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
    pad = {"background": None, "layers": [], "composite": render_strokes(DIGIT_STROKES[7])}
    out = draw.encode(eng, pad, WITHOUT)
    assert out.data["handwriting"]["thickness"] > 0 and "thickness" in out.summary
