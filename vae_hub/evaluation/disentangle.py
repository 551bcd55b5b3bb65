"""Disentanglement of latent codes against continuous, measured factors (e.g. ``vae_hub.evaluation.morpho.FACTORS``).

Inputs everywhere: ``means`` (N, d) latent posterior means and ``factors`` (N, K) one measured value per
item and factor. ``factor_metrics(means, factors)`` computes all of them:

- **correlation matrix** (d, K): Pearson correlation of each latent dimension with each factor (0 for a
  constant dimension). ``dominant_factor(corr)`` names each dimension's most correlated factor.
- **MIG** (Chen, Li, Grosse & Duvenaud 2018, "Isolating sources of disentanglement in VAEs"): for each
  factor, the gap between the two largest I(z_j; v_k) / H(v_k), averaged over factors. Both the means and
  the continuous factors are discretised into ``bins`` equal-frequency (quantile) bins and the mutual
  information is the plug-in estimate on the contingency table (``sklearn.metrics.mutual_info_score``);
  quantile bins keep outlying codes or digits from emptying the other bins, and make the score invariant to
  monotone rescaling of either side. (The label MIG in ``vae_hub.evaluation.metrics`` bins means by equal width.)
- **SAP** (Kumar, Sattigeri & Balakrishnan 2018, "Variational inference of disentangled latent concepts
  from unlabeled observations"): for continuous factors S_jk is the R^2 of a linear regression of factor k
  on dimension j alone, i.e. the squared correlation; SAP is the mean over factors of the gap between the
  two largest S_jk.
- **DCI** (Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled
  representations"): one regressor per factor predicts the standardised factor from all standardised codes,
  fitted on a random ``train_frac`` of the items. Importances R_jk: ``feature_importances_`` of
  scikit-learn's GradientBoostingRegressor ("gbt") or |coefficients| of a cross-validated Lasso ("lasso").
  Disentanglement = sum_j rho_j (1 - H_K(P_j.)), P_jk = R_jk / sum_k R_jk, rho_j = sum_k R_jk / sum R;
  completeness = mean_k (1 - H_d(P~_.k)), P~_jk = R_jk / sum_j R_jk (entropies with log base K and d);
  informativeness = mean over factors of the held-out R^2 (1 - NRMSE^2 in the paper's terms; higher is
  better, unlike the paper's error).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_ITEMS = 20


def _check(means, factors) -> tuple[np.ndarray, np.ndarray]:
    z, v = np.asarray(means, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if z.ndim != 2 or v.ndim != 2:
        raise ValueError(f"means {z.shape} and factors {v.shape}: expected 2-D arrays (N, d) and (N, K)")
    if len(z) != len(v):
        raise ValueError(f"means have {len(z)} rows but factors {len(v)}: expected one factor row per code")
    if len(z) < MIN_ITEMS or z.shape[1] < 1 or v.shape[1] < 1:
        raise ValueError(f"means {z.shape}, factors {v.shape}: expected at least {MIN_ITEMS} items, "
                         "one latent dimension and one factor")
    if not (np.isfinite(z).all() and np.isfinite(v).all()):
        raise ValueError("means or factors contain NaN or infinite values")
    flat = np.flatnonzero(v.std(0) == 0)
    if len(flat):
        raise ValueError(f"factor column(s) {flat.tolist()} are constant: a factor must vary to be captured")
    return z, v


def correlation_matrix(means, factors) -> np.ndarray:
    """(d, K) Pearson correlation of each latent dimension with each factor; 0 where a dimension is constant."""
    z, v = _check(means, factors)
    zc, vc = z - z.mean(0), v - v.mean(0)
    zs, vs = np.sqrt((zc**2).sum(0)), np.sqrt((vc**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (zc.T @ vc) / np.outer(zs, vs)
    return np.where(np.isfinite(corr), corr, 0.0).clip(-1, 1)


def dominant_factor(corr, names: Sequence[str] | None = None, min_abs: float = 0.0) -> list[tuple[str | None, float]]:
    """For each latent dimension (row of ``corr``) the factor it correlates with most and that signed rho,
    e.g. ``("slant", 0.81)`` for a label "z3 ≈ slant, ρ = 0.81". Below ``min_abs`` the name is None."""
    from vae_hub.evaluation.morpho import FACTORS

    c = np.asarray(corr, dtype=np.float64)
    names = list(FACTORS if names is None else names)
    if c.ndim != 2 or c.shape[1] != len(names):
        raise ValueError(f"corr has shape {c.shape}; expected (dims, {len(names)}) for factors {names}")
    best = np.abs(c).argmax(1)
    return [(names[k] if abs(c[j, k]) >= min_abs else None, float(c[j, k])) for j, k in enumerate(best)]


def best_dimension(corr, factor: str, names: Sequence[str] | None = None) -> tuple[int, float]:
    """The latent dimension most correlated with ``factor`` (a column of ``corr``) and that signed rho."""
    from vae_hub.evaluation.morpho import FACTORS

    names = list(FACTORS if names is None else names)
    if factor not in names:
        raise ValueError(f"unknown factor {factor!r}; expected one of {names}")
    col = np.asarray(corr, dtype=np.float64)[:, names.index(factor)]
    j = int(np.abs(col).argmax())
    return j, float(col[j])


def _quantile_bins(x: np.ndarray, bins: int) -> np.ndarray:
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, x, side="right")


def mig(means, factors, bins: int = 20) -> dict:
    """MIG over continuous factors: {"mig", "mig_per_factor" (K,), "mi_normalised" (d, K)}; mig is None for d < 2."""
    from sklearn.metrics import mutual_info_score

    z, v = _check(means, factors)
    zb = [_quantile_bins(z[:, j], bins) for j in range(z.shape[1])]
    mi = np.zeros((z.shape[1], v.shape[1]))
    per = []
    for k in range(v.shape[1]):
        vb = _quantile_bins(v[:, k], bins)
        h = mutual_info_score(vb, vb)  # entropy of the binned factor
        mi[:, k] = [mutual_info_score(vb, b) / h for b in zb]
        top = np.sort(mi[:, k])[::-1]
        per.append(float(top[0] - top[1]) if len(top) > 1 else None)
    return {"mig": float(np.mean(per)) if z.shape[1] > 1 else None, "mig_per_factor": per,
            "mi_normalised": mi.tolist(), "mig_bins": bins}


def sap(corr) -> dict:
    """SAP from the (d, K) correlation matrix: S = corr^2 (single-dimension linear R^2); None for d < 2."""
    s = np.sort(np.asarray(corr, dtype=np.float64) ** 2, axis=0)[::-1]
    if len(s) < 2:
        return {"sap": None, "sap_per_factor": [None] * s.shape[1]}
    gaps = s[0] - s[1]
    return {"sap": float(gaps.mean()), "sap_per_factor": gaps.tolist()}


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of a row-stochastic matrix, in log base ``base`` (0 when base is 1)."""
    if base < 2:
        return np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(1) / np.log(base)


def _regressor(kind: str, seed: int):
    if kind == "gbt":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=seed)
    if kind == "lasso":
        from sklearn.linear_model import LassoCV

        return LassoCV(cv=5, random_state=seed)
    raise ValueError(f"unknown DCI regressor {kind!r}; expected 'gbt' or 'lasso'")


def importances_to_dci(r) -> dict:
    """Disentanglement and completeness from a (d, K) matrix of non-negative importances."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    d, k = r.shape
    total = r.sum()
    if total <= 0:
        return {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    row, col = r.sum(1), r.sum(0)
    used = row > 0
    dis = 1 - _entropy_rows(r[used] / row[used, None], k)
    disentanglement = float((row[used] / total * dis).sum())
    comp = np.zeros(k)  # a factor no dimension predicts counts as 0 (not captured)
    seen = col > 0
    comp[seen] = 1 - _entropy_rows((r[:, seen] / col[seen]).T, d)
    return {"dci_disentanglement": disentanglement, "dci_completeness": float(comp.mean()),
            "dci_completeness_per_factor": comp.tolist()}


def dci(means, factors, regressor: str = "gbt", train_frac: float = 0.8, seed: int = 0) -> dict:
    """Eastwood & Williams' DCI with one regressor per factor, fitted on a seeded random train_frac split."""
    from sklearn.metrics import r2_score

    z, v = _check(means, factors)
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac={train_frac}; expected a fraction strictly between 0 and 1")
    _regressor(regressor, seed)  # fail on a bad name before any work
    perm = np.random.default_rng(seed).permutation(len(z))
    n_tr = int(round(train_frac * len(z)))
    tr, te = perm[:n_tr], perm[n_tr:]
    mu, sd = z[tr].mean(0), z[tr].std(0)
    zs = (z - mu) / np.where(sd > 0, sd, 1.0)
    vs = (v - v[tr].mean(0)) / v[tr].std(0)
    imp = np.zeros((z.shape[1], v.shape[1]))
    r2 = []
    for k in range(v.shape[1]):
        model = _regressor(regressor, seed).fit(zs[tr], vs[tr, k])
        imp[:, k] = model.feature_importances_ if regressor == "gbt" else np.abs(model.coef_)
        r2.append(float(r2_score(vs[te, k], model.predict(zs[te]))))
    return {**importances_to_dci(imp), "dci_informativeness": float(np.mean(r2)), "dci_r2_per_factor": r2,
            "dci_importance": imp.tolist(), "dci_regressor": regressor, "dci_train": len(tr), "dci_test": len(te)}


def factor_metrics(means, factors, names: Sequence[str] | None = None, *, bins: int = 20,
                   regressors: Sequence[str] = ("gbt",), train_frac: float = 0.8, seed: int = 0) -> dict:
    """Every metric of this module for one model's latent means against measured factors, as a JSON-ready dict.

    Top-level scalars: mig, sap, and per regressor r: dci_disentanglement / dci_completeness /
    dci_informativeness (the first regressor's unprefixed, the others under ``dci_<r>``)."""
    from vae_hub.evaluation.morpho import FACTORS

    z, v = _check(means, factors)
    names = list(FACTORS if names is None else names)
    if len(names) != v.shape[1]:
        raise ValueError(f"{len(names)} factor names for {v.shape[1]} factor columns")
    corr = correlation_matrix(z, v)
    out: dict = {"factors": names, "n_items": len(z), "latent_dims": z.shape[1], "correlation": corr.tolist(),
                 "dominant": [{"dim": j, "factor": f, "rho": r} for j, (f, r) in enumerate(dominant_factor(corr, names))]}
    out.update(mig(z, v, bins))
    out.update(sap(corr))
    for i, reg in enumerate(regressors):
        res = dci(z, v, reg, train_frac, seed)
        if i == 0:
            out.update(res)
        else:
            out[f"dci_{reg}"] = res
    return out


# what vae_hub.evaluation.evaluate stores per model (metrics.json keys; the label MIG there is "mig") and the card's names
SUMMARY_NAMES = {
    "morpho_mig": "MIG w.r.t. Morpho-MNIST factors (thickness, slant, width, height, length, area)",
    "morpho_sap": "SAP w.r.t. Morpho-MNIST factors",
    "morpho_dci_disentanglement": "DCI disentanglement w.r.t. Morpho-MNIST factors",
    "morpho_dci_completeness": "DCI completeness w.r.t. Morpho-MNIST factors",
    "morpho_dci_informativeness": "DCI informativeness (held-out R² of the factors from the code)",
}


def summary(result: dict) -> dict:
    """``factor_metrics`` output as flat metrics.json entries: the scores in ``SUMMARY_NAMES``, plus the
    correlation matrix and each dimension's dominant factor (for the Space's labels and heat maps)."""
    return {"morpho_mig": result["mig"], "morpho_sap": result["sap"],
            "morpho_dci_disentanglement": result["dci_disentanglement"],
            "morpho_dci_completeness": result["dci_completeness"],
            "morpho_dci_informativeness": result["dci_informativeness"],
            "morpho_dci_regressor": result["dci_regressor"], "morpho_factors": result["factors"],
            "morpho_correlation": result["correlation"], "morpho_dominant": result["dominant"]}
