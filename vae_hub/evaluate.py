"""Honest evaluation: one command computes every published number, with the settings that produced it.

    python -m vae_hub.evaluate --models pretrained/ --dataset ylecun/mnist --out eval \\
        [--quick] [--update-readme README.md] [--no-write-cards]

Writes OUT/metrics.json (every metric, its settings, seeds and sample counts), OUT/results.md (the
Markdown tables, also pasted between ``<!-- results:start -->`` and ``<!-- results:end -->`` of each
``--update-readme`` file) and OUT/figures/<variant>/*.png. Unless ``--no-write-cards``, each model
folder gets its own metrics.json and a re-rendered model card carrying the same numbers.

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
  see ``vae_hub.metrics`` and docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import metrics as M
from .classifier import FOLDER_NAME as CLASSIFIER_FOLDER
from .classifier import MNISTClassifier, load_classifier, to_gray
from .data import DEFAULT_DATASET, Split, color_table, load_split, make_inputs, split_seed
from .hub import model_folders
from .models import VAE
from .train import Batcher, evaluate_elbo, hardware

MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
PYTORCH_EXAMPLES = 105.6  # pytorch/examples VAE after 10 epochs: test loss on grayscale digits
ANCHORS = [  # test NLL on dynamically binarized MNIST, nats
    ("Burda et al. (2016), VAE, 2 stochastic layers, k=5000 estimate", 85.33),
    ("Burda et al. (2016), IWAE trained with k=50, 2 stochastic layers", 82.90),
    ("modern hierarchical VAEs (e.g. NVAE, Vahdat & Kautz 2020)", 78.0),
]
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
    mig_bins: int = 20
    fd_samples: int = 10000  # prior samples against the test split
    colour_pairs: int = 2000
    uncertainty_inputs: int = 8
    uncertainty_samples: int = 64
    quick: bool = False


QUICK = dict(nll_k=100, nll_images=12, nll_ks=(1, 10, 100), probe_iters=30, fd_samples=500, colour_pairs=200,
             uncertainty_samples=8, quick=True)


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
    return EvalData(train, test, test_bin, nll_idx, logits, feats, reference)


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


@torch.inference_mode()
def encode_split(model: VAE, x: torch.Tensor, y: torch.Tensor | None, batch: int = 2000,
                 with_kl: bool = False) -> tuple[torch.Tensor, dict]:
    """Posterior means (N, latent_size) and, optionally, the mean KL of each continuous dim / categorical variable."""
    means, kl_c, kl_d = [], 0.0, 0.0
    for b in _batches(len(x), batch):
        post = model.encode(x[b], None if y is None else y[b])
        means.append(post.mean)
        if with_kl:
            cont, disc = M.kl_per_unit(post, model.prior)
            kl_c = kl_c + (0 if cont is None else cont.double().sum(0))
            kl_d = kl_d + (0 if disc is None else disc.double().sum(0))
    kl = {}
    if with_kl:
        kl = {"kl_per_dim": (kl_c / len(x)).tolist() if model.config.z_dim else None,
              "kl_per_categorical": (kl_d / len(x)).tolist() if model.config.n_cat else None}
    return torch.cat(means).float(), kl


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
    """Fréchet distance of prior samples (Bernoulli means, grayscale) to the test digits in classifier features;
    for conditional models also the share of samples asked for class c that the classifier reads as c."""
    c = model.config
    torch.manual_seed(s.seed)
    y = torch.arange(s.fd_samples) % c.n_classes if c.conditional else None
    imgs = torch.cat([model.sample(b.stop - b.start, None if y is None else y[b])
                      for b in _batches(s.fd_samples, 1000)])
    logits, feats = clf.predict_features(to_gray(imgs))
    pred = logits.argmax(1)
    out = {"fd": M.frechet_distance(feats, d.test_feats), "fd_samples": s.fd_samples,
           "sample_class_share": (torch.bincount(pred, minlength=10).double() / len(pred)).tolist()}
    if c.conditional:
        per = [float((pred[y == k] == k).double().mean()) for k in range(c.n_classes)]
        out.update(conditional_accuracy=float((pred == y).double().mean()), conditional_accuracy_per_class=per)
    return out


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


# ---------------------------------------------------------------------------- figures
def _save_small(fig, path: Path, dpi: int = 72, colours: int = 64) -> None:
    """Save a figure as a palette PNG: the bundled model folders have a size budget (tests/test_hub.py)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    img = Image.open(buf).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)


def plot_latent_pca(model: VAE, means: torch.Tensor, d: EvalData, path: Path, n: int = 3000) -> None:
    """PCA of posterior means of test digits, coloured by digit (and, for coloured MNIST, by stroke colour)."""
    import matplotlib.pyplot as plt

    z = means[:n].double()
    zc = z - z.mean(0)
    with M.single_thread():
        vals, vecs = torch.linalg.eigh(zc.T @ zc)  # d x d: cheaper and steadier than an SVD of the N x d data
    pts = (zc @ vecs[:, [-1, -2]]).numpy()
    share = float(vals[-2:].sum() / vals.clamp(min=0).sum())
    colour = model.config.data == "color"
    fig, axes = plt.subplots(1, 2 if colour else 1, figsize=(10.5 if colour else 5.6, 4.6), squeeze=False)
    ax = axes[0, 0]
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=d.test.labels[:n].numpy(), cmap="tab10", s=3, alpha=0.6, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_title("coloured by digit")
    if colour:
        rgb = color_table(len(d.test), split_seed(model.config.color_seed, "test"))[:n].numpy()
        axes[0, 1].scatter(pts[:, 0], pts[:, 1], c=rgb, s=3, alpha=0.8)
        axes[0, 1].set_title("coloured by stroke colour")
    for a in axes[0]:
        a.set_xlabel("PC 1")
        a.set_ylabel("PC 2")
    fig.suptitle(f"{model.config.variant}: PCA of {model.config.latent_size}-D posterior means "
                 f"({100 * share:.0f}% of variance in 2 PCs)")
    fig.tight_layout()
    _save_small(fig, path)


@torch.inference_mode()
def plot_uncertainty(model: VAE, d: EvalData, s: Settings, path: Path) -> None:
    """Rows: input, mean of decoded posterior samples, per-pixel standard deviation of those decodings."""
    import matplotlib.pyplot as plt

    from .viz import image_grid

    c = model.config
    x_te, y_te = model_inputs(model, d.test, s.binarize_seed)
    idx = torch.stack([(d.test.labels == k).nonzero()[0, 0] for k in range(s.uncertainty_inputs)
                       if (d.test.labels == k).any()])
    x, y = x_te[idx], None if y_te is None else y_te[idx]
    torch.manual_seed(s.seed)
    z = model.encode(x, y).sample((s.uncertainty_samples,))
    probs = torch.sigmoid(model.decode(z.flatten(0, 1), None if y is None else y.repeat(s.uncertainty_samples)))
    probs = probs.view(s.uncertainty_samples, *x.shape)
    mean, std = probs.mean(0), probs.std(0).mean(1, keepdim=True)  # std averaged over colour channels
    vmax = max(float(std.max()), 1e-6)
    heat = torch.from_numpy(plt.get_cmap("magma")((std / vmax).squeeze(1).numpy())[..., :3]).permute(0, 3, 1, 2)
    rgb = lambda t: t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
    grid = image_grid(torch.cat([rgb(x), rgb(mean), heat.float()]), nrow=len(x))
    fig, ax = plt.subplots(figsize=(1.0 * len(x) + 1.2, 3.6))  # one axes: drawing 24 small ones is slow
    ax.imshow(grid)
    ax.set_xticks([])
    ax.set_yticks([(i + 0.5) * grid.shape[0] / 3 for i in range(3)], ["input", "mean", "pixel std"])
    fig.colorbar(plt.cm.ScalarMappable(cmap="magma", norm=plt.Normalize(0, vmax)), ax=ax, shrink=0.6, label="std")
    ax.set_title(f"{c.variant}: decodings of {s.uncertainty_samples} posterior samples", fontsize=9)
    _save_small(fig, path, dpi=80, colours=128)  # more colours: the colour models' strokes must stay true


# ---------------------------------------------------------------------------- one model
def evaluate_model(model: VAE, d: EvalData, clf: MNISTClassifier, s: Settings, fig_dirs: list[Path],
                   log=print) -> dict:
    c = model.config
    model.eval()
    if c.backbone == "conv" and c.layers == "torch":  # oneDNN's channels-last convolutions: ~25% faster decoding
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
    for fd in fig_dirs:
        fd.mkdir(parents=True, exist_ok=True)
        if c.latent_size > 2:
            plot_latent_pca(model, means, d, fd / "latent_pca.png")
        plot_uncertainty(model, d, s, fd / "uncertainty.png")
    r["seconds"] = time.perf_counter() - t0
    au = "" if r.get("active_units") is None else f"  AU {r['active_units']}/{r['latent_dims']}"
    log(f"[{c.variant}] done in {r['seconds']:.0f}s: probe {100 * r['probe_accuracy']:.1f}%  FD {r['fd']:.2f}{au}")
    return r


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
        "mig": f"mutual-information gap w.r.t. the digit label ({s.mig_bins} bins)",
        "fd": f"Fréchet distance, classifier features, {r.get('fd_samples')} prior samples vs test digits",
        "conditional_accuracy": "conditional accuracy: samples for class c read as c by the classifier",
        "colour_angle_recon": "stroke-colour error of reconstructions, degrees",
        "colour_digit_acc_recon": "digit accuracy of reconstructions (classifier)",
        "colour_angle_swap": "colour transfer by swapping colour units: colour error, degrees",
        "colour_digit_acc_swap": "colour transfer by swapping colour units: digit kept (classifier accuracy)",
    })
    return {k: v + tag for k, v in m.items() if r.get(k) is not None}


def _rounded(obj, digits: int = 6):
    """Floats to 6 significant digits for the JSON files (the bundled folders have a size budget)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v, digits) for v in obj]
    return obj


def write_model_metrics(folder: Path, r: dict, s: Settings, header: dict) -> None:
    from .hub import write_card

    payload = {**r, "card_metrics": card_metrics_map(r, s), **header, "settings": asdict(s)}
    (folder / "metrics.json").write_text(json.dumps(_rounded(payload), indent=1))
    write_card(folder)


# ---------------------------------------------------------------------------- markdown
def _f(v, nd: int = 1, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.{nd}f}%" if pct else f"{v:.{nd}f}"


def render_markdown(report: dict) -> str:
    s = Settings(**{**report["settings"], "nll_ks": tuple(report["settings"]["nll_ks"])})
    rows = report["models"]
    ref = report["reference"]
    quick = " **(--quick settings: smoke-test numbers, not results)**" if s.quick else ""
    n_sub = next((r["nll_images"] for r in rows.values() if r.get("nll_images")), None)
    lines = [
        f"Generated by `{report['command']}`{quick} in {report['wall_seconds'] / 60:.1f} min on {report['hardware']}; "
        f"dataset `{report['dataset']}`, {report['n_test']:,} test / {report['n_train']:,} train digits. "
        "Every number below is in `metrics.json` with its settings.",
        "",
        "**Likelihood** (nats per image, MNIST test split). *recon, KL, loss*: the training objective (loss = recon + "
        "β·KL) on grayscale digits (colour models: their coloured digits), one posterior sample per image. "
        f"*−ELBO, NLL*: on dynamically binarized test digits (one fixed Bernoulli draw, seed {s.binarize_seed}); "
        f"NLL by importance sampling with k = {s.nll_k:,} (Burda et al.), "
        + (f"as the −ELBO over all test digits minus the ELBO-to-NLL gap measured on a fixed random subset of "
           f"{n_sub} digits (seed {s.subset_seed}), ± one standard error. "
           if n_sub and n_sub < report["n_test"] else "over every test digit, ± one standard error. ")
        + "Grayscale-trained models are scored on binarized digits they were not trained on. "
        "cvae: −log p(x|y), the label given. AU: active units (Burda et al.).",
        "",
        "| model | trained on | recon | KL | loss | −ELBO (bin.) | NLL (bin.) | AU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        au = (f"{r['active_units']}/{r['latent_dims']}" if r.get("active_units") is not None else "") + \
             (f"{' + ' if r.get('active_units') is not None else ''}{r['active_categorical']}/{r['categorical_variables']} cat."
              if r.get("active_categorical") is not None else "")
        nll = f"{r['nll']:.2f} ± {r['nll_se']:.2f}" if r.get("nll") is not None else "–"
        lines.append(f"| `{name}` | {r['data']} | {_f(r['recon'])} | {_f(r['kl'])} | {_f(r['loss'])} | "
                     f"{_f(r.get('elbo_bin'), 2)} | {nll} | {au or '–'} |")
    lines += [
        "",
        f"Anchors: pytorch/examples VAE, test loss after 10 epochs on grayscale digits: {PYTORCH_EXAMPLES} "
        "(compare with *loss*). Test NLL on dynamically binarized MNIST: "
        + "; ".join(f"{name}: {v:.2f}" if v != 78.0 else f"{name}: ≈ 78" for name, v in ANCHORS) + ".",
        "",
        "**Latent and samples.** *Probe*: accuracy of a linear (multinomial logistic) probe on standardised "
        f"posterior means, fitted on the train split, scored on the test split. *MIG*: mutual-information gap "
        f"between latent dimensions and the digit label ({s.mig_bins} equal-width bins). *FD*: Fréchet distance "
        f"between the classifier's penultimate features of {s.fd_samples:,} prior samples (Bernoulli means) and "
        f"of the test digits (lower is better; the train split scores {ref['fd_train_vs_test']:.2f} against the "
        f"test split). *Cond. acc.*: share of cvae samples asked for digit c that the classifier "
        f"({100 * ref['classifier_test_accuracy']:.2f}% test accuracy) reads as c. *Colour*: stroke-colour angular "
        "error (degrees) and digit accuracy, for reconstructions / for a colour transfer by swapping the "
        f"colour-carrying latent units (a transfer that moves nothing scores ≈ {ref['colour_angle_unchanged']:.0f}°).",
        "",
        "| model | probe | MIG | FD | cond. acc. | colour error (rec. / transfer) | digit acc. (rec. / transfer) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        colour = digit = "–"
        if r["data"] == "color":
            colour = f"{_f(r['colour_angle_recon'])}° / " + (f"{_f(r['colour_angle_swap'])}°" if r.get("colour_angle_swap")
                                                               is not None else "–")
            digit = f"{_f(r['colour_digit_acc_recon'], pct=True)} / {_f(r.get('colour_digit_acc_swap'), pct=True)}"
        lines.append(f"| `{name}` | {_f(r['probe_accuracy'], pct=True)} | {_f(r.get('mig'), 3)} | {_f(r['fd'], 2)} | "
                     f"{_f(r.get('conditional_accuracy'), pct=True)} | {colour} | {digit} |")
    lines += [
        "",
        "Figures per model in `pretrained/<variant>/figures/`: `latent_pca.png` (PCA of posterior means, latents "
        "beyond 2-D), `uncertainty.png` (per-pixel standard deviation of decoded posterior samples), "
        "`progress.png` (prior samples and reconstructions after every training epoch).",
    ]
    return "\n".join(lines) + "\n"


def update_markdown(path: str | Path, block: str, start: str = MARK_START, end: str = MARK_END) -> None:
    """Replace the text between the start and end markers (default: the results markers) of a Markdown file."""
    path = Path(path)
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path}: no '{start}' … '{end}' markers to replace")
    path.write_text(pattern.sub(lambda _: f"{start}\n{block.rstrip()}\n{end}", text, count=1))


# ---------------------------------------------------------------------------- driver
def run(models: str | Path, dataset: str, out: str | Path, settings: Settings, *, classifier: str | Path | None = None,
        variants: list[str] | None = None, write_cards: bool = True, update: list[str] | None = None,
        command: str = "", log=print) -> dict:
    from . import load

    t_start = time.perf_counter()
    root, out = Path(models), Path(out)
    folders = model_folders(root)
    if variants:
        folders = [f for f in folders if f.name in variants]
    if not folders:
        raise FileNotFoundError(f"{root}: no complete model folders (config.json, model.safetensors, history.json, README.md)")
    if classifier is None:
        local = (root if not (root / "config.json").is_file() else root.parent) / CLASSIFIER_FOLDER
        classifier = local if local.is_dir() else None
    clf = load_classifier(classifier)
    train, test = load_split(dataset, "train"), load_split(dataset, "test")
    torch.manual_seed(settings.seed)
    d = prepare(train, test, clf, settings)
    log(f"evaluating {len(folders)} model(s) on {len(test)} test digits; classifier accuracy "
        f"{100 * d.reference['classifier_test_accuracy']:.2f}%, FD(train, test) {d.reference['fd_train_vs_test']:.2f}")
    shown = _shown_path(dataset)  # reports name the data as the project sees it, not this machine's path
    header = {"command": command.replace(dataset, shown), "dataset": shown, "n_test": len(test), "n_train": len(train),
              "classifier": str(classifier or "bundled"), "hardware": hardware()}
    results = {}
    for folder in folders:
        model = load(str(folder))
        dirs = [out / "figures" / model.config.variant] + ([folder / "figures"] if write_cards else [])
        r = evaluate_model(model, d, clf, settings, dirs, log)
        r["n_test"] = len(test)
        results[model.config.variant] = r
        if write_cards:
            write_model_metrics(folder, r, settings, header)
    protocol = {
        "binarization": "torch.bernoulli(test_images / 255, generator=torch.Generator().manual_seed(binarize_seed)), "
                        "drawn once for the whole test split",
        "nll_subset": "first nll_images of torch.randperm(n_test, generator=torch.Generator().manual_seed(subset_seed))",
        "nll_subset_indices": d.nll_idx.tolist() if len(d.nll_idx) < len(test) else "all",
    }
    report = {**header, "settings": asdict(settings), "protocol": protocol, "reference": d.reference,
              "anchors": {"pytorch_examples_10_epochs": PYTORCH_EXAMPLES, **{n: v for n, v in ANCHORS}},
              "wall_seconds": time.perf_counter() - t_start, "models": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_rounded(report), indent=1))
    md = render_markdown(report)
    (out / "results.md").write_text(md)
    for path in update or []:
        update_markdown(path, md)
    log(f"wrote {out / 'metrics.json'}, {out / 'results.md'} in {report['wall_seconds']:.0f}s")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="pretrained", help="a folder of model folders, or one model folder")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder/parquet in the ylecun/mnist layout")
    p.add_argument("--out", default="eval", help="metrics.json, results.md and figures/ go here")
    p.add_argument("--quick", action="store_true", help="small settings for smoke tests (numbers are not results)")
    p.add_argument("--classifier", help="classifier folder (default: MODELS/mnist-classifier, else the bundled one)")
    p.add_argument("--variants", nargs="+", help="evaluate only these variants")
    p.add_argument("--nll-k", type=int, help="importance samples per digit (default 5000)")
    p.add_argument("--nll-images", help="digits in the NLL subset, or 'all' for the whole test split (default 100)")
    p.add_argument("--fd-samples", type=int, help="prior samples for the Fréchet distance (default 10000)")
    p.add_argument("--seed", type=int, help="seed for posterior/prior samples, probe and colour pairs (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--update-readme", action="append", metavar="FILE",
                   help=f"replace the text between {MARK_START} and {MARK_END} in FILE with the tables (repeatable)")
    cards = p.add_mutually_exclusive_group()
    cards.add_argument("--write-cards", dest="write_cards", action="store_true", default=True,
                       help="write each model folder's metrics.json and re-render its card (default)")
    cards.add_argument("--no-write-cards", dest="write_cards", action="store_false")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    kw = dict(QUICK) if args.quick else {}
    if args.nll_k:
        kw["nll_k"] = args.nll_k
    if args.nll_images:
        kw["nll_images"] = None if args.nll_images == "all" else int(args.nll_images)
    if args.fd_samples:
        kw["fd_samples"] = args.fd_samples
    if args.seed is not None:
        kw["seed"] = args.seed
    return Settings(**kw)


def _shown_path(path: str) -> str:
    """A local path as reports show it: relative to the working directory (a Hub id is left as it is)."""
    p = Path(path)
    if not p.is_absolute() or not p.exists():
        return path
    return os.path.relpath(p)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = "python -m vae_hub.evaluate " + " ".join(shlex.quote(a) for a in argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        run(args.models, args.dataset, args.out, settings_from_args(args), classifier=args.classifier,
            variants=args.variants, write_cards=args.write_cards, update=args.update_readme, command=command)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
