"""The evaluation report: the Markdown tables, each model's metrics.json and card, the results block (docs/evaluation.md)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from vae_hub.evaluation import disentangle
from vae_hub.evaluation.protocol import Settings
from vae_hub.hub.cards import write_card
from vae_hub.hub.folders import write_atomic

MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
PYTORCH_EXAMPLES = 105.6  # pytorch/examples VAE after 10 epochs: test loss on grayscale digits
# Burda et al. (2016), Table 1, MNIST, k = 5,000 estimates; every model trained 3,280 passes at batch 20:
# (model, objective, NLL)
LITERATURE = [
    ("VAE, 1 stochastic layer", "ELBO", 86.76),
    ("IWAE, 1 stochastic layer", "IWAE k=5", 85.54),
    ("IWAE, 1 stochastic layer", "IWAE k=50", 84.78),
    ("VAE, 2 stochastic layers", "ELBO", 85.33),
    ("IWAE, 2 stochastic layers", "IWAE k=50", 82.90),
]
_BURDA = {(m, o): v for m, o, v in LITERATURE}
ANCHORS = [  # test NLL on dynamically binarized MNIST, nats
    ("Burda et al. (2016), VAE, 2 stochastic layers, k=5000 estimate", _BURDA["VAE, 2 stochastic layers", "ELBO"]),
    ("Burda et al. (2016), IWAE trained with k=50, 2 stochastic layers",
     _BURDA["IWAE, 2 stochastic layers", "IWAE k=50"]),
    ("modern hierarchical VAEs (e.g. NVAE, Vahdat & Kautz 2020)", 78.0),
]


# ---------------------------------------------------------------------------- cards
def card_metrics_map(r: dict, s: Settings) -> dict[str, str]:
    """{metrics.json key: human name} for the model card; keys whose value is None are skipped by the card."""
    tag = " [--quick settings]" if s.quick else ""
    what = "-log p(x|y)" if r.get("conditional") else "NLL"
    sub = ("every test digit" if r.get("nll_images") == r.get("n_test") else
           f"-ELBO on every test digit minus the ELBO-to-NLL gap measured on {r.get('nll_images')} of them")
    m = {}
    if r["data"] == "binarized":
        m.update(recon="test reconstruction on grayscale digits (BCE), nats/image",
                 kl="test KL on grayscale digits, nats/image", neg_elbo="test -ELBO on grayscale digits, nats/image")
    m.update({
        "nll": f"test {what}, dynamically binarized digits, IWAE k={s.nll_k} ({sub}), nats",
        "nll_se": "standard error of that NLL, nats",
        "elbo_bin": "test -ELBO, dynamically binarized digits, nats",
        "active_units": f"active units (Var of posterior mean > {s.au_threshold:g}) of {r.get('latent_dims')}",
        "active_categorical": f"active categorical variables (of {r.get('categorical_variables')})",
        "probe_accuracy": "linear-probe digit accuracy on posterior means (train → test)",
        "mig": f"MIG (digit label): mutual-information gap w.r.t. the digit label ({s.mig_bins} bins)",
        "fd": f"Fréchet distance, classifier features, {r.get('fd_samples')} prior samples vs test digits",
        "sample_confidence": "classifier's mean confidence on prior samples",
        "sample_balance": "class balance of prior samples (entropy of the classifier's labels / log 10)",
        "density_fd": f"Fréchet distance of {r.get('fd_samples')} samples from the training codes' density "
                      f"({r.get('density_components')}-component Gaussian mixture)",
        "density_confidence": "classifier's mean confidence on samples from the training codes' density",
        "density_balance": "class balance of samples from the training codes' density",
        "conditional_accuracy": "conditional accuracy: samples for class c read as c by the classifier",
        "colour_angle_recon": "stroke-colour error of reconstructions, degrees",
        "colour_digit_acc_recon": "digit accuracy of reconstructions (classifier)",
        "colour_angle_swap": "colour transfer by swapping colour units: colour error, degrees",
        "colour_digit_acc_swap": "colour transfer by swapping colour units: digit kept (classifier accuracy)",
    })
    m.update(disentangle.SUMMARY_NAMES)
    m["morpho_mig"] = f"MIG (handwriting factors): {m['morpho_mig']}, {s.morpho_bins} quantile bins"
    m["morpho_dci_disentanglement"] += f", {_REGRESSORS.get(s.dci_regressor, s.dci_regressor)}"
    return {k: v + tag for k, v in m.items() if r.get(k) is not None}


_REGRESSORS = {"gbt": "gradient-boosted trees", "lasso": "lasso"}
SHOW = ("slant", "thickness")  # the factors the β question is about, given their own columns


def rounded(obj, digits: int = 6):
    """Floats to 6 significant digits for the JSON files (the bundled folders have a size budget)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def write_model_metrics(folder: Path, r: dict, s: Settings, header: dict) -> None:
    payload = {**r, "card_metrics": card_metrics_map(r, s), **header, "settings": asdict(s)}
    write_atomic(folder / "metrics.json", json.dumps(rounded(payload), indent=1))
    write_card(folder)


# ---------------------------------------------------------------------------- markdown
def training_summary(folder: Path, c) -> dict:
    """How a model folder's model was trained, from its history.json: for the report's literature table."""
    h = json.loads((Path(folder) / "history.json").read_text())
    objective = "ELBO" if c.objective == "elbo" else f"IWAE k={c.iwae_k}{', DReG' if c.dreg else ''}"
    if c.kl_warmup_epochs:
        objective += f", KL warm-up {c.kl_warmup_epochs} epochs"
    return {"epochs": len(h["epochs"]), "batch_size": c.batch_size, "seconds": h.get("seconds_total", 0.0),
            "hardware": h.get("hardware", "?"), "precision": h.get("precision", "fp32"), "objective": objective}


def _f(v, nd: int = 1, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.{nd}f}%" if pct else f"{v:.{nd}f}"


def render_markdown(report: dict) -> str:
    """The results block: the likelihood table, the anchors, the latent-and-samples table, the figures note."""
    s = Settings(**{**report["settings"], "nll_ks": tuple(report["settings"]["nll_ks"])})
    lines = (_likelihood_lines(report, s) + _literature_lines(report, s) + _latent_lines(report, s)
             + _density_lines(report, s) + _factor_lines(report, s) + [
        "",
        "Figures per model in `pretrained/<variant>/figures/`: `latent_pca.png` (PCA of posterior means, latents "
        "beyond 2-D), `uncertainty.png` (per-pixel standard deviation of decoded posterior samples), "
        "`progress.png` (prior samples and reconstructions after every training epoch).",
    ])
    return "\n".join(lines) + "\n"


def _likelihood_lines(report: dict, s: Settings) -> list[str]:
    rows = report["models"]
    quick = " **(--quick settings: smoke-test numbers, not results)**" if s.quick else ""
    n_sub = next((r["nll_images"] for r in rows.values() if r.get("nll_images")), None)
    lines = [
        f"Generated by `{report['command']}`{quick} in {report['wall_seconds'] / 60:.1f} min on {report['hardware']}; "
        f"dataset `{report['dataset']}`, {report['n_test']:,} test / {report['n_train']:,} train digits. "
        "Every number below is in `metrics.json` with its settings."
        + "".join(f" Updated by `{u['command']}` ({', '.join(u['models'])}) in {u['wall_seconds'] / 60:.1f} min."
                  for u in report.get("updates", [])),
        "",
        "**Likelihood** (nats per image, MNIST test split). *recon, KL, loss*: the training objective (loss = recon + "
        "β·KL) on grayscale digits (colour models: their coloured digits), one posterior sample per image. "
        f"*−ELBO, NLL*: on dynamically binarized test digits (one fixed Bernoulli draw, seed {s.binarize_seed}); "
        f"NLL by importance sampling with k = {s.nll_k:,} (Burda et al.), "
        + (f"as the −ELBO over all test digits minus the ELBO-to-NLL gap measured on a fixed random subset of "
           f"{n_sub} digits (seed {s.subset_seed}), ± one standard error. "
           if n_sub and n_sub < report["n_test"] else "over every test digit, ± one standard error. ")
        + "Grayscale-trained models are scored on binarized digits they were not trained on. "
        "cvae: −log p(x|y), the label given. AU: active units (Burda et al.). **best**: the lowest NLL of these models.",
        "",
        "| model | trained on | recon | KL | loss | −ELBO (bin.) | NLL (bin.) | AU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    best = _best_nll(rows)
    for name, r in rows.items():
        au = (f"{r['active_units']}/{r['latent_dims']}" if r.get("active_units") is not None else "") + \
             (f"{' + ' if r.get('active_units') is not None else ''}{r['active_categorical']}/{r['categorical_variables']} cat."
              if r.get("active_categorical") is not None else "")
        nll = f"{r['nll']:.2f} ± {r['nll_se']:.2f}" if r.get("nll") is not None else "–"
        mark = " **best**" if name == best else ""
        lines.append(f"| `{name}`{mark} | {r['data']} | {_f(r['recon'])} | {_f(r['kl'])} | {_f(r['loss'])} | "
                     f"{_f(r.get('elbo_bin'), 2)} | {nll} | {au or '–'} |")
    return lines


def _best_nll(rows: dict) -> str | None:
    """The model with the lowest NLL (the one a likelihood user should download), if any has one."""
    scored = {n: r["nll"] for n, r in rows.items() if r.get("nll") is not None}
    return min(scored, key=scored.get) if scored else None


def _literature_lines(report: dict, s: Settings) -> list[str]:
    """Our likelihood models (trained on binarized digits) beside Burda et al.'s, with what each training cost."""
    ours = {n: r for n, r in report["models"].items() if r.get("data") == "binarized" and r.get("nll") is not None}
    if not ours:
        return []
    lines = ["", f"**Against the literature**: test NLL on dynamically binarized MNIST (k = {s.nll_k:,}), nats, and "
             "what the training cost. Burda et al. (2016) trained every model for 3,280 passes at batch 20.", "",
             "| model | objective | training | NLL |", "|---|---|---|---:|"]
    best = _best_nll(ours) if len(ours) > 1 else None
    for name, r in ours.items():
        t = r.get("training") or {}
        cost = (f"{t['epochs']} epochs, batch {t['batch_size']}, {t['seconds'] / 60:.0f} min on {t['hardware']}"
                f"{'' if t.get('precision', 'fp32') == 'fp32' else ', ' + t['precision'] + ' autocast'}" if t else "")
        lines.append(f"| `{name}` (ours{', best' if name == best else ''}) | {t.get('objective', '')} | {cost} | "
                     f"{r['nll']:.2f} ± {r['nll_se']:.2f} |")
    lines += [f"| Burda et al., {m} | {o} | 3,280 passes, batch 20 | {v:.2f} |" for m, o, v in LITERATURE]
    return lines


def _latent_lines(report: dict, s: Settings) -> list[str]:
    ref = report["reference"]
    lines = [
        "",
        f"Anchors: pytorch/examples VAE, test loss after 10 epochs on grayscale digits: {PYTORCH_EXAMPLES} "
        "(compare with *loss*). Test NLL on dynamically binarized MNIST: "
        + "; ".join(f"{name}: {v:.2f}" if v != 78.0 else f"{name}: ≈ 78" for name, v in ANCHORS) + ".",
        "",
        "**Latent and samples.** *Probe*: accuracy of a linear (multinomial logistic) probe on standardised "
        f"posterior means, fitted on the train split, scored on the test split. *MIG (digit label)*: "
        f"mutual-information gap between latent dimensions and the digit label ({s.mig_bins} equal-width bins). "
        "*FD*: Fréchet distance "
        f"between the classifier's penultimate features of {s.fd_samples:,} prior samples (Bernoulli means) and "
        f"of the test digits (lower is better; the train split scores {ref['fd_train_vs_test']:.2f} against the "
        f"test split). *Cond. acc.*: share of cvae samples asked for digit c that the classifier "
        f"({100 * ref['classifier_test_accuracy']:.2f}% test accuracy) reads as c. *Colour*: stroke-colour angular "
        "error (degrees) and digit accuracy, for reconstructions / for a colour transfer by swapping the "
        f"colour-carrying latent units (a transfer that moves nothing scores ≈ {ref['colour_angle_unchanged']:.0f}°).",
        "",
        "| model | probe | MIG (digit label) | FD | cond. acc. | colour error (rec. / transfer) | digit acc. (rec. / transfer) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["models"].items():
        colour = digit = "–"
        if r["data"] == "color":
            colour = f"{_f(r['colour_angle_recon'])}° / " + (f"{_f(r['colour_angle_swap'])}°" if r.get("colour_angle_swap")
                                                               is not None else "–")
            digit = f"{_f(r['colour_digit_acc_recon'], pct=True)} / {_f(r.get('colour_digit_acc_swap'), pct=True)}"
        lines.append(f"| `{name}` | {_f(r['probe_accuracy'], pct=True)} | {_f(r.get('mig'), 3)} | {_f(r['fd'], 2)} | "
                     f"{_f(r.get('conditional_accuracy'), pct=True)} | {colour} | {digit} |")
    return lines


def _density_lines(report: dict, s: Settings) -> list[str]:
    rows = {n: r for n, r in report["models"].items() if r.get("density_fd") is not None}
    if not rows:
        return []
    lines = [
        "",
        "**Samples from where the data lives.** A VAE's codes of the training digits do not fill its prior: prior "
        "draws can land where no digit's code lies. *Density*: a Gaussian mixture fitted to the posterior means of "
        "the training digits (`vae_hub.hub.density`; components chosen by held-out log-likelihood), sampled instead of "
        f"the prior ({s.fd_samples:,} samples each). *Confidence*: the classifier's mean top probability on the "
        "samples. *Balance*: entropy of the classifier's labels over log 10 (1: every digit equally often).",
        "",
        "| model | components | FD prior | FD density | confidence prior | confidence density | balance prior | "
        "balance density |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| `{name}` | {r.get('density_components')} | {_f(r['fd'], 2)} | {_f(r['density_fd'], 2)} | "
                     f"{_f(r.get('sample_confidence'), pct=True)} | {_f(r['density_confidence'], pct=True)} | "
                     f"{_f(r.get('sample_balance'), 3)} | {_f(r['density_balance'], 3)} |")
    return lines


def _factor_lines(report: dict, s: Settings) -> list[str]:
    """The disentanglement table against the measured handwriting factors, and the β sweep in numbers."""
    rows = {n: r for n, r in report["models"].items() if r.get("morpho_factors")}
    if not rows:
        return []
    names = next(iter(rows.values()))["morpho_factors"]
    lines = [
        "",
        f"**Disentanglement against handwriting factors.** Thickness, slant, width, height, length and area of "
        f"every test digit, measured as in Morpho-MNIST (Castro et al. 2019; `vae_hub.evaluation.morpho`), against the "
        f"posterior means of the Gaussian latent (its continuous part for `color-joint`), every dimension "
        f"scored. *MIG (factors)* (Chen et al. 2018): mean over factors of the gap in normalised mutual "
        f"information between the two most informative dimensions ({s.morpho_bins} quantile bins). *SAP* "
        f"(Kumar et al. 2018): mean gap in squared correlation between the two best dimensions. *DCI D, C, I* "
        f"(Eastwood & Williams 2018): disentanglement, completeness and informativeness (held-out R²), one "
        f"regressor per factor ({_REGRESSORS.get(s.dci_regressor, s.dci_regressor)}) fitted on "
        f"{s.dci_train_frac:.0%} of the codes (seed {s.seed}). *slant, thickness*: the dimension most correlated "
        "with the factor (numbered from z1, as in the Space), and ρ. The correlation matrix of every model is in "
        "`metrics.json` (`morpho_correlation`).",
        "",
        "| model | β | MIG (factors) | SAP | DCI D | DCI C | DCI I |" + "".join(f" {f} |" for f in SHOW),
        "|---|---:|---:|---:|---:|---:|---:|" + "---|" * len(SHOW),
    ]
    for name, r in rows.items():
        best = [disentangle.best_dimension(r["morpho_correlation"], f, names) for f in SHOW]
        lines.append(f"| `{name}` | {r['beta']:g} | {_f(r['morpho_mig'], 3)} | {_f(r['morpho_sap'], 3)} | "
                     f"{_f(r['morpho_dci_disentanglement'], 3)} | {_f(r['morpho_dci_completeness'], 3)} | "
                     f"{_f(r['morpho_dci_informativeness'], 3)} |" + "".join(f" z{j + 1} ({rho:+.2f}) |" for j, rho in best))
    return lines + _beta_sweep_lines(rows, names)


def _beta_sweep_lines(rows: dict, names: list[str]) -> list[str]:
    """The β question in numbers: per β-VAE, the best single-dimension |ρ| and the MIG of slant and thickness."""
    sweep = sorted((r["beta"], r) for n, r in rows.items() if n.startswith("beta-vae"))
    if len(sweep) < 2:
        return []
    seq = lambda vals, nd=2: ", ".join(f"{v:.{nd}f}" for v in vals)  # noqa: E731
    parts = []
    for f in SHOW:
        k = names.index(f)
        rho = [abs(disentangle.best_dimension(r["morpho_correlation"], f, names)[1]) for _, r in sweep]
        mig = [r["morpho_mig_per_factor"][k] for _, r in sweep]
        r2 = [r["morpho_dci_r2_per_factor"][k] for _, r in sweep]
        parts.append(f"{f}: best |ρ| {seq(rho)}, MIG {seq(mig, 3)}, held-out R² {seq(r2)}")
    betas = ", ".join(f"{b:g}" for b, _ in sweep)
    return ["", f"β sweep (`beta-vae-b*`, β = {betas}; 10-D MLP VAEs, one training seed each): " + "; ".join(parts) + "."]


def update_markdown(path: str | Path, block: str) -> None:
    """Replace the text between the results markers of a Markdown file with ``block``."""
    replace_block(path, block, MARK_START, MARK_END)


def replace_block(path: str | Path, block: str, start: str, end: str) -> None:
    """Replace the text between the ``start`` and ``end`` markers of a Markdown file with ``block``."""
    path = Path(path)
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path}: no '{start}' … '{end}' markers to replace")
    path.write_text(pattern.sub(lambda _: f"{start}\n{block.rstrip()}\n{end}", text, count=1))
