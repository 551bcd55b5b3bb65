"""Wall time of every variant's full recipe, and the total (target: <= 60 minutes on a 2-core CPU).

    python bench/train_all.py --dataset ../shared/mnist            # train everything into a temp dir, timing each
    python bench/train_all.py --from-history pretrained             # report the timings recorded by a training run

Each variant is trained by `train.py` in its own subprocess (as a user would run it), so the time covers
data loading from the cache, training, per-epoch test evaluation and checkpoints, figures and the card.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write

import vae_hub


def from_history(folder: Path) -> dict[str, dict]:
    rows = {}
    for name in vae_hub.VARIANTS:
        h = folder / name / "history.json"
        if h.is_file():
            d = json.loads(h.read_text())
            rows[name] = {"train_seconds": d["seconds_total"], "epochs": len(d["epochs"]),
                          "test_loss": d["epochs"][-1]["test_loss"], "hardware": d.get("hardware")}
    return rows


def run_all(dataset: str, variants: list[str]) -> dict[str, dict]:
    rows = {}
    bundled_set = from_history(ROOT / "pretrained")
    with tempfile.TemporaryDirectory() as tmp:
        for name in variants:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "train.py"), "--variants", name, "--dataset", dataset, "--out", tmp,
                            "--no-progress"], check=True, capture_output=True)
            wall = time.perf_counter() - t0
            d = json.loads((Path(tmp) / name / "history.json").read_text())
            rows[name] = {"wall_seconds": wall, "train_seconds": d["seconds_total"], "epochs": len(d["epochs"]),
                          "test_loss": d["epochs"][-1]["test_loss"]}
            bundled = bundled_set.get(name)
            if bundled:  # same recipe and seed: any difference is the code (or float noise), not the recipe
                rows[name]["bundled_test_loss"] = bundled["test_loss"]
            print(f"{name:18s} {wall:8.1f} s  test {rows[name]['test_loss']:.2f}"
                  + (f" (bundled {bundled['test_loss']:.2f})" if bundled else ""), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--variants", nargs="+", default=list(vae_hub.VARIANTS))
    p.add_argument("--from-history", metavar="DIR")
    p.add_argument("--out")
    args = p.parse_args()
    rows = from_history(Path(args.from_history)) if args.from_history else run_all(args.dataset, args.variants)
    key = "train_seconds" if args.from_history else "wall_seconds"
    total = sum(r[key] for r in rows.values())
    print(f"\n| variant | epochs | {key.replace('_', ' ')} | test loss | bundled model's test loss |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        b = f"{r['bundled_test_loss']:.2f}" if "bundled_test_loss" in r else ""
        print(f"| {name} | {r['epochs']} | {r[key]:.0f} | {r['test_loss']:.2f} | {b} |")
    print(f"| **total** | | **{total:.0f} s = {total / 60:.1f} min** | | |")
    print(f"target: all variants, full recipes, <= 60 min: {'met' if total <= 3600 else 'NOT met'}")
    write("train_all", {"source": args.from_history or "run", "variants": rows, "total_seconds": total}, args.out)


if __name__ == "__main__":
    main()
