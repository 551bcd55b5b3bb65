"""Where the data lives in latent space: a Gaussian mixture fitted to the training digits' posterior means, to draw
codes from instead of the prior (ex-post density estimation, Ghosh et al. 2020, "From Variational to Deterministic
Autoencoders").

A VAE's aggregate posterior does not fill N(0, I): prior draws land where no training digit's code lies and decode
to blurs. Draws from this density land where the codes are.

How the number of components is chosen: each candidate in ``CANDIDATES`` is fitted (scikit-learn's
``GaussianMixture``, full covariances, seeded) on 90% of a seeded random 20,000 of the training codes and scored by
its mean log-likelihood on the other 10%; the best is refitted on all of them, starting from its fit. EM stops once an
iteration gains less than 0.01 nat per code (``TOL``). The file, ``density.safetensors`` in the model
folder, holds the mixture's weights, means and covariances, with the choice and its scores in the metadata. No
pickle anywhere.

    python -m vae_hub.hub.density --models pretrained --dataset ylecun/mnist   # fit and write one per folder

Imports: ``data``, ``folders``, ``models`` and ``train`` (its Batcher: the inputs as trained), scikit-learn when
fitting; ``hub`` (load), ``protocol`` (evaluate) and train.py use it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import safetensors
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from vae_hub.files.tensors import save_safetensors

FILE = "density.safetensors"
CANDIDATES = (1, 2, 5, 10, 20, 40)  # components; 80 costs another minute per 20-D model on a 2-core CPU
QUICK_CANDIDATES = (1, 2, 5)  # smoke tests (evaluate --quick)
HELDOUT = 0.1
SCAN_CODES = 20_000  # codes the candidates are compared on
# EM stops when the mean log-likelihood per code gains less than this (scikit-learn's default is 1e-3). The scan only
# ranks candidates a nat or more apart, and the final fit loses 0.02-0.05 nat per test code at 1e-2 for 2-4x fewer EM
# steps (bench/density_fit.py compares the two)
TOL = 1e-2


def has_density(config) -> bool:
    """Models whose codes are Gaussian only (a density over one-hot codes would be another model)."""
    return bool(config.z_dim) and not config.n_cat


def mixture(weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(probs=weights.float()),
                             MultivariateNormal(means.float(), covariance_matrix=covariances.float()))


def fit(codes: torch.Tensor, seed: int = 0, candidates: tuple[int, ...] = CANDIDATES,
        heldout: float = HELDOUT, scan: int = SCAN_CODES, warm_start: bool = True,
        tol: float = TOL) -> tuple[MixtureSameFamily, dict]:
    """A Gaussian mixture on ``codes`` (N, d), its number of components chosen on held-out codes; and how.

    The candidates are compared on a random ``scan`` of the codes (fitted on all but ``heldout`` of them, scored on
    the rest); the chosen one is then refitted on every code, starting from the candidate's fit, so EM needs a few
    steps instead of a hundred (``bench/density_fit.py`` times it against fitting every candidate and the final
    mixture from scratch on all the codes: ``scan=len(codes), warm_start=False``, and against scikit-learn's
    tighter default stopping rule: ``tol=1e-3``)."""
    from sklearn.mixture import GaussianMixture

    x = codes.detach().double().cpu().numpy()
    if x.ndim != 2 or len(x) < 20 or not np.isfinite(x).all():
        raise ValueError(f"codes: expected (N >= 20, d) finite values, got shape {tuple(x.shape)}")
    sub = x[np.random.default_rng(seed).permutation(len(x))[:scan]]
    n_held = max(2, int(round(len(sub) * heldout)))
    held, rest = sub[:n_held], sub[n_held:]

    def gmm(k: int, **init) -> GaussianMixture:
        return GaussianMixture(k, covariance_type="full", reg_covar=1e-6, max_iter=200, tol=tol, random_state=seed,
                               **init)

    fits = {k: gmm(k).fit(rest) for k in candidates if k <= len(rest) // 2}
    scores = {k: float(m.score(held)) for k, m in fits.items()}
    best = max(scores, key=scores.get)
    start = fits[best]
    init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_) if warm_start else {}
    final = gmm(best, **init).fit(x)
    info = {"n_components": best, "heldout_loglik": {str(k): round(v, 4) for k, v in scores.items()},
            "n_codes": len(x), "scan_codes": len(sub), "heldout_fraction": heldout, "seed": seed, "covariance": "full",
            "em_tol": tol,
            "chosen_by": "mean log-likelihood of held-out training codes (higher is better)",
            "final_fit": f"all codes, EM started from {'the chosen candidate' if warm_start else 'scratch'} "
                         f"({final.n_iter_} iterations)"}
    return mixture(*(torch.from_numpy(a) for a in (final.weights_, final.means_, final.covariances_))), info


def save(dist: MixtureSameFamily, info: dict, path: str | Path) -> Path:
    comp = dist.component_distribution
    tensors = {"weights": dist.mixture_distribution.probs.float().contiguous(),
               "means": comp.loc.float().contiguous(), "covariances": comp.covariance_matrix.float().contiguous()}
    save_safetensors(tensors, path, metadata={"info": json.dumps(info)})  # atomic, the usual mode, errors name the file
    return Path(path)


def load(path: str | Path, z_dim: int, device: str | torch.device = "cpu") -> tuple[MixtureSameFamily, dict]:
    """The density in ``path`` (on ``device``), checked against the model's latent size before use."""
    path = Path(path)
    with safetensors.safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in f.keys()}
    w, m, c = t.get("weights"), t.get("means"), t.get("covariances")
    if w is None or m is None or c is None or w.dim() != 1 or m.shape != (len(w), z_dim) or c.shape != (len(w), z_dim, z_dim):
        raise ValueError(f"{path}: expected weights (K,), means (K, {z_dim}), covariances (K, {z_dim}, {z_dim})")
    if not all(torch.isfinite(v).all() for v in (w, m, c)):
        raise ValueError(f"{path}: non-finite values")
    return mixture(w.to(device), m.to(device), c.to(device)), json.loads(meta.get("info", "{}"))


def attach(model, folder: str | Path) -> None:
    """Give ``model`` the density of its folder, if it has one (``model.sample(n, source="density")``). A file
    that cannot be used costs the density, with a warning, not the model."""
    path = Path(folder) / FILE
    if not path.is_file() or not has_density(model.config):
        return
    try:
        model.code_density, model.code_density_info = load(path, model.config.z_dim, model.prior_device)
    except (OSError, ValueError, safetensors.SafetensorError) as e:
        warnings.warn(f"{model.config.variant}: {FILE} not used ({e}); sampling from the prior still works", stacklevel=2)


def training_codes(model, train, binarize_seed: int = 0) -> torch.Tensor:
    """Posterior means of every training digit, as the model was trained to encode them."""
    from vae_hub.model.vae import encode_split
    from vae_hub.training.loop import Batcher

    b = Batcher(train, model.config, torch.device("cpu"))
    x, y = b.get(torch.arange(len(b)), torch.Generator().manual_seed(binarize_seed))
    dev = model.prior_device  # a model trained on a GPU is encoded there
    return encode_split(model, x.to(dev), None if y is None else y.to(dev))[0][:, : model.config.z_dim].cpu()


def fit_model(model, train, seed: int = 0, folder: str | Path | None = None, log=print,
              candidates: tuple[int, ...] = CANDIDATES) -> dict:
    """Fit ``model``'s density from the training split and attach it (``save_model_folder`` writes an attached
    one with the folder); written to ``folder`` at once when given."""
    t0 = time.perf_counter()
    dist, info = fit(training_codes(model, train), seed, candidates)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    model.code_density, model.code_density_info = dist, info
    if folder is not None:
        save(dist, info, Path(folder) / FILE)
    log(f"[{model.config.variant}] density of the training codes: {info['n_components']} components (held-out "
        f"log-likelihood per code {info['heldout_loglik']}) in {info['seconds']:.0f}s")
    return info


def fit_folder(folder: str | Path, train, seed: int = 0, log=print) -> dict | None:
    """Fit and write ``folder``'s density from the training split; None for a model without Gaussian codes."""
    from vae_hub.hub.folders import read_config
    from vae_hub.model.vae import VAE

    model = VAE.from_folder(folder, read_config(folder))
    return fit_model(model, train, seed, folder, log) if has_density(model.config) else None


def main(argv: list[str] | None = None) -> int:
    from vae_hub.data.mnist import DEFAULT_DATASET, load_split
    from vae_hub.hub.folders import model_folders

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="pretrained", help="a folder of model folders, or one model folder")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder in the ylecun/mnist layout")
    p.add_argument("--variants", nargs="+", help="only these variants")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    folders = [f for f in model_folders(Path(args.models)) if not args.variants or f.name in args.variants]
    if not folders:
        sys.exit(f"error: {args.models}: no complete model folders")
    train = load_split(args.dataset, "train")
    for folder in folders:
        fit_folder(folder, train, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
