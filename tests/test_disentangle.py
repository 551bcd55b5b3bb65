"""MIG, SAP, DCI and the correlation matrix on synthetic codes whose answers are known."""

import json

import numpy as np
import pytest

from vae_hub.evaluation import disentangle as D

from .conftest import bench_module

NAMES = ["a", "b", "c"]


def factors(n: int = 1500, k: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, k))


def disentangled(v: np.ndarray, seed: int = 1) -> np.ndarray:
    """Each of three factors in its own dimension: permuted (c, a, b), rescaled, a little noise."""
    noise = 0.05 * np.random.default_rng(seed).normal(size=(len(v), 3))
    return np.concatenate([3 * v[:, [2]], -v[:, [0]], 0.5 * v[:, [1]]], 1) + noise


def with_noise_dims(z: np.ndarray, seed: int = 2) -> np.ndarray:
    return np.concatenate([z, np.random.default_rng(seed).normal(size=(len(z), 2))], 1)


def rotated(v: np.ndarray, seed: int = 3) -> np.ndarray:
    """Every dimension a mixture of every factor: as informative, not disentangled."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(v.shape[1], v.shape[1])))
    return v @ q


def test_correlation_matrix_is_pearson_and_zero_for_constant_dims():
    v = factors()
    z = np.concatenate([with_noise_dims(disentangled(v)), np.ones((len(v), 1))], 1)
    c = D.correlation_matrix(z, v)
    assert c.shape == (6, 3)
    full = np.corrcoef(z[:, :5].T, v.T)
    np.testing.assert_allclose(c[:5], full[:5, 5:], atol=1e-12)
    assert (c[5] == 0).all()


def test_dominant_factor_names_each_dimension():
    corr = np.array([[0.1, -0.81, 0.2], [0.05, 0.02, 0.1], [0.6, 0.0, -0.7]])
    assert D.dominant_factor(corr, NAMES) == [("b", -0.81), ("c", 0.1), ("c", -0.7)]
    assert D.dominant_factor(corr, NAMES, min_abs=0.3)[1] == (None, 0.1)
    assert D.best_dimension(corr, "c", NAMES) == (2, -0.7) and D.best_dimension(corr, "a", NAMES) == (2, 0.6)
    with pytest.raises(ValueError, match="unknown factor"):
        D.best_dimension(corr, "slope", NAMES)
    with pytest.raises(ValueError, match="expected"):
        D.dominant_factor(corr, ["a", "b"])


def test_sap_from_known_correlations():
    corr = np.array([[0.9, 0.0], [0.3, 0.5], [0.1, -0.2]])
    out = D.sap(corr)
    np.testing.assert_allclose(out["sap_per_factor"], [0.81 - 0.09, 0.25 - 0.04])
    assert out["sap"] == pytest.approx((0.72 + 0.21) / 2)
    assert D.sap(corr[:1])["sap"] is None


def test_dci_from_known_importances():
    one_each = D.importances_to_dci(np.eye(3))
    assert one_each["dci_disentanglement"] == pytest.approx(1) and one_each["dci_completeness"] == pytest.approx(1)
    spread = D.importances_to_dci(np.ones((3, 3)))
    assert spread["dci_disentanglement"] == pytest.approx(0) and spread["dci_completeness"] == pytest.approx(0)
    # one dimension predicts every factor: complete (each factor in one dim), not disentangled
    hub = D.importances_to_dci(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert hub["dci_disentanglement"] == pytest.approx(0) and hub["dci_completeness"] == pytest.approx(1)
    # an unused dimension carries no weight in D
    assert D.importances_to_dci(np.vstack([np.eye(3), np.zeros(3)]))["dci_disentanglement"] == pytest.approx(1)


@pytest.mark.parametrize("regressor", ["lasso", "gbt"])
def test_disentangled_codes_score_high_and_rotated_codes_low(regressor):
    v = factors()
    good = D.factor_metrics(with_noise_dims(disentangled(v)), v, NAMES, regressors=(regressor,))
    bad = D.factor_metrics(with_noise_dims(rotated(v)), v, NAMES, regressors=(regressor,))
    assert good["mig"] > 0.5 and good["sap"] > 0.9
    assert good["dci_disentanglement"] > 0.9 and good["dci_completeness"] > 0.8
    assert good["dci_informativeness"] > 0.95
    assert [d["factor"] for d in good["dominant"][:3]] == ["c", "a", "b"]
    # the rotation keeps all information but spreads each factor over every dimension
    assert bad["dci_informativeness"] > 0.9
    assert bad["mig"] < good["mig"] - 0.3 and bad["sap"] < good["sap"] - 0.3
    assert bad["dci_disentanglement"] < good["dci_disentanglement"] - 0.3
    assert bad["dci_completeness"] < good["dci_completeness"] - 0.3
    json.dumps(good)  # JSON-ready


def test_mig_normalised_information_of_a_copied_factor_is_near_one():
    v = factors(3000)
    z = with_noise_dims(v[:, [0]])
    out = D.mig(z, v, bins=10)
    mi = np.asarray(out["mi_normalised"])
    assert mi[0, 0] > 0.95 and mi[1:, 0].max() < 0.05  # a copy carries all of H(v), noise next to none
    assert out["mig_per_factor"][0] > 0.9 and max(out["mig_per_factor"][1:]) < 0.05
    assert D.mig(v[:, :1], v)["mig"] is None  # one dimension: no gap


def test_factor_metrics_keeps_second_regressor_apart_and_summarises():
    v = factors(400)
    out = D.factor_metrics(disentangled(v), v, NAMES, regressors=("lasso", "gbt"))
    assert out["dci_regressor"] == "lasso" and out["dci_gbt"]["dci_regressor"] == "gbt"
    s = D.summary(out)
    assert set(D.SUMMARY_NAMES) <= set(s) and s["morpho_dci_completeness"] == out["dci_completeness"]
    assert s["morpho_dominant"][0] == {"dim": 0, "factor": "c", "rho": pytest.approx(1, abs=0.01)}


@pytest.mark.parametrize("z,v,match", [
    (np.zeros((100, 2)), np.ones((99, 3)), "rows"),
    (np.zeros(100), np.ones((100, 3)), "2-D"),
    (np.zeros((5, 2)), np.ones((5, 3)), "at least"),
    (np.full((100, 2), np.nan), np.random.default_rng(0).normal(size=(100, 3)), "NaN"),
    (np.zeros((100, 2)), np.ones((100, 3)), "constant"),
])
def test_bad_inputs_are_named(z, v, match):
    with pytest.raises(ValueError, match=match):
        D.factor_metrics(z, v, NAMES)


def test_bad_settings_are_named():
    v = factors(100)
    with pytest.raises(ValueError, match="regressor"):
        D.dci(disentangled(v), v, regressor="forest")
    with pytest.raises(ValueError, match="train_frac"):
        D.dci(disentangled(v), v, train_frac=1.0)
    with pytest.raises(ValueError, match="names"):
        D.factor_metrics(disentangled(v), v, ["a"])


def test_morpho_report_script_on_the_mini_split(tmp_path):
    """bench/morpho_report.py end to end on the bundled mini split: JSON, tables and figure, numbers from the run."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    mod = bench_module("morpho_report")
    out = tmp_path / "morpho.json"
    mod.main(["--dataset", str(root / "tests" / "data" / "mnist-mini"), "--models", str(root / "pretrained"),
              "--variants", "vae-z2", "beta-vae-b8", "--regressors", "lasso", "--limit", "200", "--speed-batch", "5",
              "--out", str(out)])
    report = json.loads(out.read_text())
    assert list(report["models"]) == ["vae-z2", "beta-vae-b8"] and report["n_test"] == 200
    r = report["models"]["beta-vae-b8"]
    assert np.asarray(r["correlation"]).shape == (10, 6) and 0 <= r["dci_completeness"] <= 1
    md = out.with_suffix(".md").read_text()
    assert f"| `beta-vae-b8` | 8 | {r['active_units']}/10 |" in md and f"{r['mig']:.3f}" in md
    assert out.with_suffix(".png").stat().st_size > 1000
