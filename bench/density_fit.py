"""The training codes' density, fitted three ways: as train.py now fits it (the components chosen on a scan of
20,000 codes, the chosen mixture refitted on every code starting from the candidate's fit, EM stopped at a gain
under 0.01 nat per code), the same with EM run to scikit-learn's default tolerance (1e-3, as until this
change), and every candidate fitted on all the codes with the final mixture from scratch (as the bundled set's
first densities were fitted).

    python bench/density_fit.py --dataset ../shared/mnist                         # conv-vae-z20 and beta-vae-b1
    python bench/density_fit.py --dataset ../shared/mnist --variants vae-z20 conv-vae-bin

For each way: the seconds (one thread, as each `train.py --jobs 2` worker fits), the components chosen, the mean
log-likelihood of the test digits' codes (out of sample: the codes the density never saw) and the FD of 10,000
images decoded from its draws (evaluate's settings). Writes bench/results/density_fit.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import ROOT, fd_judge, machine, sample_fd, write
from threadpoolctl import threadpool_limits

import vae_hub
from vae_hub.data.mnist import load_split
from vae_hub.hub import density

WAYS = {"scan 20,000 codes, warm start": {},
        "the same, EM to tol 1e-3": {"tol": 1e-3},
        "every code, from scratch, tol 1e-3": {"scan": 10**9, "warm_start": False, "tol": 1e-3}}


def measure(variant: str, train, test, feats: torch.Tensor, clf) -> dict:
    model = vae_hub.load(str(ROOT / "pretrained" / variant))
    codes = density.training_codes(model, train)
    test_codes = density.training_codes(model, test)
    out = {}
    for way, kw in WAYS.items():
        t0 = time.perf_counter()
        dist, info = density.fit(codes, **kw)
        seconds = time.perf_counter() - t0
        model.code_density, model.code_density_info = dist, info
        fd = sample_fd(model, clf, feats, "density")
        out[way] = {"seconds": round(seconds, 1), "components": info["n_components"], "final_fit": info["final_fit"],
                    "test_code_loglik": round(float(dist.log_prob(test_codes.float()).mean()), 3), "fd": round(fd, 2)}
        print(f"{variant:16s} {way:32s} {seconds:6.1f} s  K={info['n_components']:2d}  test codes "
              f"{out[way]['test_code_loglik']:8.3f} nats  FD {fd:6.2f}  ({info['final_fit']})", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--variants", nargs="+", default=["conv-vae-z20", "beta-vae-b1"])
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS (the EM) on one thread too, as in a train.py --jobs 2 worker
    print(f"CPU: {machine()['cpu']}, 1 thread")
    train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
    clf, feats = fd_judge(test)
    results = {v: measure(v, train, test, feats, clf) for v in args.variants}
    write("density_fit", {"threads": 1, "variants": results}, args.out)


if __name__ == "__main__":
    main()
