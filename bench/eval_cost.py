"""Cost of the k=5000 importance-sampled likelihood over the test split, for one MLP and one conv model.

    python bench/eval_cost.py --dataset ../shared/mnist [--images 20] [--k 5000]

Times `vae_hub.evaluation.metrics.log_weights` (samples decoded in chunks of 2,500, so every decoder call is one large
matmul / convolution batch) on a few binarized test digits, takes the median seconds per image over
repeats, and extrapolates linearly to the 10,000-digit test split (the cost is exactly linear in images).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import median, write

import vae_hub
from vae_hub.data.mnist import load_split
from vae_hub.evaluation.metrics import log_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--models", nargs="+", default=["vae-z20", "conv-vae-z20"])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    test = load_split(args.dataset, "test")
    x = torch.bernoulli(test.images[: args.images].float() / 255, generator=torch.Generator().manual_seed(0))
    rows = {}
    print(f"| model | s per image (k={args.k}) | extrapolated to 10,000 test digits |\n|---|---:|---:|")
    for name in args.models:
        model = vae_hub.load(name)
        torch.manual_seed(0)
        log_weights(model, x[:1], k=500)  # warm-up
        per_image = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for i in range(args.images):
                log_weights(model, x[i:i + 1], k=args.k)
            per_image.append((time.perf_counter() - t0) / args.images)
        s = median(per_image)
        rows[name] = {"seconds_per_image": s, "extrapolated_test_split_seconds": s * 10_000, "k": args.k,
                      "images_timed": args.images, "repeats": args.repeats}
        print(f"| {name} | {s:.3f} | {s * 10_000 / 60:.0f} min |")
    write("eval_cost", rows, args.out)


if __name__ == "__main__":
    main()
