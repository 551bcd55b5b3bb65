"""Build space/assets/test_digits.safetensors: a fixed sample of MNIST test digits for the Space.

The Space must not depend on a local MNIST copy or on `datasets`, so it ships this sample (uint8
images, labels, and the digits' indices in the test split, which also fix their colours for the
coloured-MNIST models). Run once from the repository root:

    python space/make_assets.py --dataset ../shared/mnist          # or ylecun/mnist when online
"""

from __future__ import annotations

import argparse
from pathlib import Path

import safetensors.torch
import torch

from vae_hub.data.mnist import load_split

ROOT = Path(__file__).resolve().parent.parent

OUT = Path(__file__).resolve().parent / "assets" / "test_digits.safetensors"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ylecun/mnist", help="Hub id or local folder in the ylecun/mnist layout")
    ap.add_argument("--n", type=int, default=4000, help="how many test digits (4000 is about 3 MiB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    test = load_split(args.dataset, "test", use_cache=False)
    g = torch.Generator().manual_seed(args.seed)
    index = torch.randperm(len(test), generator=g)[: args.n].sort().values
    tensors = {"images": test.images[index].contiguous(), "labels": test.labels[index].to(torch.uint8),
               "index": index.to(torch.int32)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tensors, str(args.out), metadata={
        "source": f"{args.dataset} test split", "license": "CC BY-SA 3.0 (MNIST: LeCun, Cortes, Burges)",
        "n": str(args.n), "seed": str(args.seed)})
    counts = torch.bincount(tensors["labels"].long(), minlength=10).tolist()
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB): {args.n} digits, per class {counts}")


if __name__ == "__main__":
    main()
