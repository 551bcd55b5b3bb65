"""The evaluation protocol: every metric computed for one model, with the settings that produced it.

Protocol (MNIST test split):
- ELBO terms on the inputs the model was trained on (grayscale intensities; coloured digits for the
  colour models; grayscale for the binarized-data model too, so every 1-channel row is comparable with
  the pytorch/examples recipe); one posterior sample per image, exact KL.
- Likelihood on dynamically binarized test digits (one Bernoulli draw per pixel, fixed seed), for the
  1-channel models: the ELBO on all test digits and the importance-sampled estimate of log p(x) with k
  samples (Burda et al.) on a fixed random subset; the headline NLL is the full-split ELBO minus the
  mean ELBO-to-NLL gap measured on the subset (a difference estimator: the gap varies far less between
  digits than the NLL does), with the subset's direct mean kept in the JSON. ``--nll-images all``
  runs the literal protocol on every test digit.
- Active units, KL per unit, linear probe, MIG, Fréchet distance, conditional accuracy, colour control:
  see ``vae_hub.evaluation.metrics`` and docs/evaluation.md.
- Disentanglement against measured handwriting factors (Morpho-MNIST thickness, slant, width, height,
  length, area of every test digit, ``vae_hub.evaluation.morpho``), for every model with a Gaussian latent (the
  continuous part of a joint one): correlation matrix, MIG, SAP, DCI (``vae_hub.evaluation.disentangle``).

The report (tables, cards, the docs page's results block) is ``vae_hub.evaluation.report``; the command line is
``vae_hub.evaluation.evaluate``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae_hub.data.mnist import Split, color_table, make_inputs, split_seed
from vae_hub.evaluation import disentangle, morpho
from vae_hub.evaluation import metrics as M
from vae_hub.evaluation.classifier import MNISTClassifier, to_gray
from vae_hub.model.vae import VAE, encode_split, fast_layout
from vae_hub.training.figures import plot_latent_pca, plot_uncertainty
from vae_hub.training.loop import Batcher, evaluate_elbo

CPU = torch.device("cpu")


@dataclass
class Settings:
    """Every knob behind the numbers; saved verbatim into metrics.json."""

    nll_k: int = 5000  # importance samples per digit for the headline NLL
    nll_images: int | None = 100  # digits in the fixed random subset (None: the whole test split)
    nll_chunk: int = 1000  # samples decoded per call (memory bound)
    nll_ks: tuple[int, ...] = (1, 10, 100, 1000, 5000)  # bounds reported on the way to nll_k
    binarize_seed: int = 0  # the one Bernoulli draw of the test digits
    subset_seed: int = 0  # subset = first nll_images of torch.randperm(n_test) with this seed
    seed: int = 0  # posterior samples, prior samples, probe, colour pairs
    au_threshold: float = 0.01
    probe_l2: float = 1e-4
    probe_iters: int = 100
    probe_train: int | None = None  # training digits for the probe (None: the whole train split)
    mig_bins: int = 20  # label MIG: equal-width bins of the posterior means
    morpho_bins: int = 20  # factor MIG: quantile bins of means and factors
    dci_regressor: str = "gbt"  # DCI importances: gradient-boosted trees ("gbt") or a cross-validated lasso
    dci_train_frac: float = 0.8  # DCI regressors are fitted on this share of the test codes, scored on the rest
    fd_samples: int = 10000  # prior samples against the test split
    colour_pairs: int = 2000
    uncertainty_inputs: int = 8
    uncertainty_samples: int = 64
    quick: bool = False


QUICK = dict(nll_k=100, nll_images=12, nll_ks=(1, 10, 100), probe_iters=30, fd_samples=500, colour_pairs=200,
             uncertainty_samples=8, dci_regressor="lasso", quick=True)


# ---------------------------------------------------------------------------- data
@dataclass
class EvalData:
    train: Split
    test: Split
    test_bin: torch.Tensor  # the fixed binarization of the test digits, (N, 1, 28, 28)
    nll_idx: torch.Tensor  # the NLL subset
    test_logits: torch.Tensor  # classifier on the grayscale test digits
    test_feats: torch.Tensor
    reference: dict
    test_factors: np.ndarray  # Morpho-MNIST measures of every test digit, (N, 6) in the order of morpho.FACTORS


def prepare(train: Split, test: Split, clf: MNISTClassifier, s: Settings) -> EvalData:
    g = torch.Generator().manual_seed(s.binarize_seed)
    test_bin = make_inputs(test.images, "binarized", generator=g)
    n = len(test) if s.nll_images is None else min(s.nll_images, len(test))
    nll_idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(s.subset_seed))[:n]
    logits, feats = clf.predict_features(test.images.float() / 255)
    n_ref = min(s.fd_samples, len(train))
    _, train_feats = clf.predict_features(train.images[:n_ref].float() / 255)
    cols = color_table(len(test), split_seed(0, "test"))
    other = cols[torch.randperm(len(cols), generator=torch.Generator().manual_seed(s.seed))]
    reference = {
        "classifier_test_accuracy": float((logits.argmax(1) == test.labels).double().mean()),
        "fd_train_vs_test": M.frechet_distance(train_feats, feats),
        "fd_train_vs_test_n": n_ref,
        # what a colour transfer scores if the colour does not move at all: angle between random colour pairs
        "colour_angle_unchanged": float(M.angular_error(cols, other).mean()),
    }
    factors = morpho.split_factors(test.images.numpy())  # cached: measuring 10,000 digits takes about a minute
    return EvalData(train, test, test_bin, nll_idx, logits, feats, reference, factors)


# ---------------------------------------------------------------------------- per-model pieces
def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.inference_mode()
def likelihood(model: VAE, d: EvalData, s: Settings) -> dict:
    """ELBO on every binarized test digit; IWAE bounds for k in nll_ks on the subset; the NLL estimate."""
    y_all = d.test.labels if model.config.conditional else None
    pick = lambda t, i: None if t is None else t[i]
    torch.manual_seed(s.seed)
    neg_elbo = torch.cat([(o.recon + o.kl) for o in
                          (model(d.test_bin[b], pick(y_all, b)) for b in _batches(len(d.test), 1000))]).double()
    ks = sorted({k for k in s.nll_ks if k <= s.nll_k} | {1, s.nll_k})
    per_img = max(1, s.nll_chunk // s.nll_k)
    torch.manual_seed(s.seed + 1)
    est = {k: [] for k in ks}
    t0 = time.perf_counter()
    for b in _batches(len(d.nll_idx), per_img):
        idx = d.nll_idx[b]
        lw = M.log_weights(model, d.test_bin[idx], pick(y_all, idx), k=s.nll_k, chunk=s.nll_chunk)
        for k in ks:
            est[k].append(-M.iwae_estimate(lw, k))
    nll_seconds = time.perf_counter() - t0
    est = {k: torch.cat(v) for k, v in est.items()}
    nll_i, sub_elbo_i = est[s.nll_k], est[1]
    gap_i = sub_elbo_i - nll_i  # >= 0: how much the bound improves from 1 to k samples
    full_mean, full_se = M.mean_se(neg_elbo)
    gap_mean, gap_se = M.mean_se(gap_i)
    sub_mean, sub_se = M.mean_se(nll_i)
    whole = len(d.nll_idx) == len(d.test)
    out = {
        "elbo_bin": full_mean, "elbo_bin_se": full_se,
        "nll": sub_mean if whole else full_mean - gap_mean,
        "nll_se": sub_se if whole else math.sqrt(full_se**2 + gap_se**2),
        "nll_estimator": "mean over every test digit" if whole else
        "full-split -ELBO minus the mean (ELBO - IWAE) gap on the subset (difference estimator)",
        "nll_subset": sub_mean, "nll_subset_se": sub_se,
        "elbo_bin_subset": float(sub_elbo_i.mean()), "iwae_gap": gap_mean, "iwae_gap_se": gap_se,
        "nll_by_k": {str(k): float(v.mean()) for k, v in est.items()},
        "nll_images": len(d.nll_idx), "nll_k": s.nll_k, "nll_seconds": nll_seconds,
        "likelihood_of": "log p(x|y) (label given)" if model.config.conditional else "log p(x)",
    }
    return out


def model_inputs(model: VAE, split: Split, binarize_seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The inputs the model was trained on, for a whole split (binarized ones drawn once, seeded)."""
    b = Batcher(split, model.config, CPU)
    return b.get(torch.arange(len(b)), torch.Generator().manual_seed(binarize_seed))


def latent_stats(model: VAE, d: EvalData, s: Settings) -> tuple[dict, torch.Tensor]:
    c = model.config
    x_te, y_te = model_inputs(model, d.test, s.binarize_seed)
    means, kl = encode_split(model, x_te, y_te, with_kl=True)
    out: dict = {"latent_inputs": {"gray": "grayscale intensities", "binarized": "binarized digits (fixed draw)",
                                   "color": "coloured digits"}[c.data], **kl}
    if c.z_dim:
        au, var = M.active_units(means[:, : c.z_dim], s.au_threshold)
        out.update(active_units=au, latent_dims=c.z_dim, posterior_mean_variance=var)
    else:
        out.update(active_units=None, latent_dims=0)
    if c.n_cat:  # the same criterion on each one-hot block: total variance of its posterior probabilities
        blocks = means[:, c.z_dim:].unflatten(1, (c.n_cat, c.k_cat)).double().var(0).sum(1)
        out.update(active_categorical=int((blocks > s.au_threshold).sum()), categorical_variables=c.n_cat)
    if c.z_dim >= 2:
        mig = M.mutual_information_gap(means[:, : c.z_dim], d.test.labels, s.mig_bins)
        out.update(mig=mig["mig"], mi_normalised=mig["mi_normalised"])
    if c.z_dim:  # the Gaussian part against the handwriting factors
        fm = disentangle.factor_metrics(means[:, : c.z_dim].double().numpy(), d.test_factors, bins=s.morpho_bins,
                                        regressors=(s.dci_regressor,), train_frac=s.dci_train_frac, seed=s.seed)
        out.update(disentangle.summary(fm), morpho_mig_per_factor=fm["mig_per_factor"],
                   morpho_dci_r2_per_factor=fm["dci_r2_per_factor"])
    # the probe: digit label from posterior means, fitted on the train split, scored on the test split
    tr = d.train if s.probe_train is None else d.train.subset(s.probe_train)
    x_tr, y_tr = model_inputs(model, tr, s.binarize_seed + 1)
    means_tr, _ = encode_split(model, x_tr, y_tr)
    probe = M.linear_probe(means_tr, tr.labels, means, d.test.labels, l2=s.probe_l2, max_iter=s.probe_iters, seed=s.seed)
    out.update(probe_accuracy=probe["test_accuracy"], probe_train_accuracy=probe["train_accuracy"],
               probe_train_images=len(tr))
    return out, means


@torch.inference_mode()
def sample_quality(model: VAE, d: EvalData, clf: MNISTClassifier, s: Settings) -> dict:
    """Samples from the prior, and from the density of the training codes where the model has one: Fréchet
    distance to the test digits in classifier features, the classifier's mean confidence and the class balance;
    for conditional models also the share of samples asked for class c that the classifier reads as c."""
    c = model.config
    y = torch.arange(s.fd_samples) % c.n_classes if c.conditional else None
    prior, pred = scored_samples(model, d.test_feats, clf, s, "prior", y)
    out = {"fd": prior["fd"], "fd_samples": s.fd_samples, "sample_class_share": prior["class_share"],
           "sample_confidence": prior["confidence"], "sample_balance": prior["balance"]}
    if c.conditional:
        per = [float((pred[y == k] == k).double().mean()) for k in range(c.n_classes)]
        out.update(conditional_accuracy=float((pred == y).double().mean()), conditional_accuracy_per_class=per)
    if model.code_density is not None:
        dens, _ = scored_samples(model, d.test_feats, clf, s, "density", y)
        out.update(density_fd=dens["fd"], density_confidence=dens["confidence"], density_balance=dens["balance"],
                   density_class_share=dens["class_share"],
                   density_components=model.code_density_info.get("n_components"))
    return out


def scored_samples(model: VAE, test_feats: torch.Tensor, clf: MNISTClassifier, s: Settings, source: str,
                   y: torch.Tensor | None = None) -> tuple[dict, torch.Tensor]:
    """``s.fd_samples`` samples from ``source`` (Bernoulli means, seeded) scored against the test digits' classifier
    features ``test_feats``. The
    prior's come from torch's global generator seeded with ``s.seed``, as they always have (the published FDs)."""
    torch.manual_seed(s.seed)
    g = None if source == "prior" else torch.Generator().manual_seed(s.seed)
    imgs = torch.cat([model.sample(b.stop - b.start, None if y is None else y[b], source=source, generator=g)
                      for b in _batches(s.fd_samples, 1000)])
    logits, feats = clf.predict_features(to_gray(imgs))
    pred = logits.argmax(1)
    share = torch.bincount(pred, minlength=10).double() / len(pred)
    entropy = -(share[share > 0] * share[share > 0].log()).sum() / math.log(10)  # 1: every digit equally often
    return {"fd": M.frechet_distance(feats, test_feats), "confidence": float(logits.softmax(1).amax(1).mean()),
            "balance": float(entropy), "class_share": share.tolist()}, pred


def _codes_to_units(c) -> list[torch.Tensor]:
    """Index sets of the latent units: each continuous dimension, each one-hot block."""
    units = [torch.tensor([j]) for j in range(c.z_dim)]
    units += [torch.arange(c.z_dim + v * c.k_cat, c.z_dim + (v + 1) * c.k_cat) for v in range(c.n_cat)]
    return units


@torch.inference_mode()
def colour_control(model: VAE, d: EvalData, clf: MNISTClassifier, s: Settings) -> dict:
    """How well colour and digit are kept apart and controlled, for the coloured-MNIST models.

    1. Reconstruction: each test digit in its own colour, decoded from the posterior mode; stroke-colour
       angular error (degrees) to the true colour and classifier accuracy on the grayscale reconstruction.
    2. Colour units: encode the same digits in two random colours; a unit's colour share is
       E|m(x, c1) - m(x, c2)|^2 / (2 Var m) (1: only colour moves it, 0: colour never does).
       Units with a share above 0.5 are colour units.
    3. Colour transfer by code manipulation: digit A keeps its code except the colour units, which are
       copied from digit B painted in a target colour; the decoding should show A's digit in the target
       colour. Reported: angular error to the target colour, digit accuracy against A's label, and
       (reference) the angle between target and A's own colour, i.e. the error if nothing moved.
    """
    c = model.config
    n = min(s.colour_pairs, len(d.test))
    g = torch.Generator().manual_seed(s.seed)
    gray = d.test.images[:n].float() / 255
    labels = d.test.labels[:n]
    own = color_table(len(d.test), split_seed(c.color_seed, "test"))[:n]
    paint = lambda x, col: x * col[:, :, None, None]
    rand_col = lambda: (lambda t: t / t.amax(1, keepdim=True))(torch.rand(n, 3, generator=g))
    post = model.encode(paint(gray, own))
    rec = torch.sigmoid(model.decode(post.mode))
    digit = lambda imgs: clf.predict_features(to_gray(imgs))[0].argmax(1)
    out = {"colour_pairs": n,
           "colour_angle_recon": float(M.angular_error(M.stroke_colour(rec), own).mean()),
           "colour_digit_acc_recon": float((digit(rec) == labels).double().mean())}
    m1, m2 = model.encode(paint(gray, rand_col())).mean, model.encode(paint(gray, rand_col())).mean
    share = []
    for u in _codes_to_units(c):
        var = m1[:, u].double().var(0).sum()
        share.append(float((m1[:, u] - m2[:, u]).double().pow(2).sum(1).mean() / (2 * var)) if var > 1e-8 else 0.0)
    colour_units = [i for i, v in enumerate(share) if v > 0.5]
    out.update(colour_share=share, colour_units=len(colour_units), latent_units_total=len(share))
    if colour_units and len(colour_units) < len(share):
        units = _codes_to_units(c)
        cols = torch.cat([units[i] for i in colour_units])
        target = rand_col()
        donor = torch.randperm(n, generator=g)
        z = post.mode.clone()
        z[:, cols] = model.encode(paint(gray[donor], target)).mode[:, cols]
        moved = torch.sigmoid(model.decode(z))
        out.update(colour_angle_swap=float(M.angular_error(M.stroke_colour(moved), target).mean()),
                   colour_digit_acc_swap=float((digit(moved) == labels).double().mean()),
                   colour_angle_swap_unchanged=float(M.angular_error(own, target).mean()))
    else:
        out.update(colour_angle_swap=None, colour_digit_acc_swap=None,
                   colour_swap_note="no separable colour units (every unit or none carries colour)")
    return out


# ---------------------------------------------------------------------------- one model
def evaluate_model(model: VAE, d: EvalData, clf: MNISTClassifier, s: Settings, fig_dirs: list[Path],
                   log=print) -> dict:
    c = model.config
    model.eval()
    if fast_layout(c):  # oneDNN's channels-last convolutions: ~25% faster decoding
        model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    r: dict = {"variant": c.variant, "data": c.data, "latent": c.latent, "beta": c.beta, "conditional": c.conditional}
    # ELBO terms on grayscale digits (coloured ones for the colour models), as pytorch/examples reports them
    elbo_cfg = dataclasses.replace(c, data="gray") if c.in_channels == 1 else c
    e = evaluate_elbo(model, Batcher(d.test, elbo_cfg, CPU), seed=s.seed)
    r.update(elbo_inputs="grayscale" if c.in_channels == 1 else "coloured", recon=e["recon"], kl=e["kl"],
             loss=e["loss"], neg_elbo=e["recon"] + e["kl"])
    if c.in_channels == 1:
        r.update(likelihood(model, d, s))
        log(f"[{c.variant}] NLL {r['nll']:.2f} ± {r['nll_se']:.2f} (ELBO {r['elbo_bin']:.2f}) in {r['nll_seconds']:.0f}s")
    else:
        r.update(nll=None, nll_note="not reported: a colour model's Bernoulli likelihood covers 3×784 values of "
                 "coloured digits and is not comparable with binarized-MNIST likelihoods")
    lat, means = latent_stats(model, d, s)
    r.update(lat)
    r.update(sample_quality(model, d, clf, s))
    if c.data == "color":
        r.update(colour_control(model, d, clf, s))
    if fig_dirs:  # the figures are deterministic: drawn once, copied to the other folders
        first = fig_dirs[0]
        first.mkdir(parents=True, exist_ok=True)
        names = ["uncertainty.png"]
        if c.latent_size > 2:
            plot_latent_pca(model, means, d.test.labels, first / "latent_pca.png")
            names.append("latent_pca.png")
        x_te, y_te = model_inputs(model, d.test, s.binarize_seed)
        plot_uncertainty(model, x_te, y_te, d.test.labels, first / "uncertainty.png", s.uncertainty_inputs,
                         s.uncertainty_samples, s.seed)
        for fd in fig_dirs[1:]:
            fd.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copyfile(first / name, fd / name)
    r["seconds"] = time.perf_counter() - t0
    au = "" if r.get("active_units") is None else f"  AU {r['active_units']}/{r['latent_dims']}"
    log(f"[{c.variant}] done in {r['seconds']:.0f}s: probe {100 * r['probe_accuracy']:.1f}%  FD {r['fd']:.2f}{au}")
    return r


