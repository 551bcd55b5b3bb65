"""Wall time of every variant's full recipe, and the total (target: <= 22 minutes on a 2-core CPU).

    python bench/train_all.py --dataset ../shared/mnist                    # train everything into a temp dir
    python bench/train_all.py --dataset ../shared/mnist --jobs 1           # one variant at a time, all threads
    python bench/train_all.py --dataset ../shared/mnist --keep runs/all    # ... and keep the folders (to bundle)
    python bench/train_all.py --from-history pretrained                     # the timings a training run recorded
    python bench/train_all.py --fd-from runs/all --dataset ../shared/mnist  # the samples of a kept run, measured again

Everything is trained the way a user trains it, by one `python train.py --variants ... --half --jobs N` process
(N = the core count by default: one variant per core at a time), so the total covers start-up, data loading,
training, per-epoch test evaluation and checkpoints, the float16 check, figures, ONNX export and the cards.
Each variant's minutes are train.py's own per-variant wall time (with --jobs > 1 variants overlap, so they sum
to more than the total); the precision is the one each recipe trained in (history.json).

Once the clock has stopped, the models whose recipes are held to their samples (issue 25: the conv-vae-z20 twins and
the β-VAEs, each at most the old set's prior-sample FD) are measured as `python -m vae_hub.evaluate` measures them
(10,000 prior samples, seed 0, the bundled classifier's features), from the folders as written (float16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, fd_judge, machine, sample_fd, write

from vae_hub.model.variants import FAST_SET

TARGET_MINUTES = 22
# the old set's prior-sample FDs (docs/training.md, "Winning back the samples"): at most these, asks issue 25
FD_TARGETS = {"conv-vae-z20": 66.8, "scratch-conv-vae": 68.5, "beta-vae-b0.5": 96.5, "beta-vae-b1": 84.8,
              "beta-vae-b2": 86.3, "beta-vae-b4": 116.3, "beta-vae-b8": 191.5}


def history_row(path: Path) -> dict:
    """What a model folder's history.json says of its training run."""
    d = json.loads(path.read_text())
    return {"train_seconds": d["seconds_total"], "epochs": len(d["epochs"]), "test_loss": d["epochs"][-1]["test_loss"],
            "hardware": d.get("hardware"), "precision": d.get("precision", "fp32"),
            "batch_size": d["recipe"]["batch_size"]}


def from_history(folder: Path) -> dict[str, dict]:
    return {name: history_row(folder / name / "history.json") for name in FAST_SET
            if (folder / name / "history.json").is_file()}


def sample_fds(folder: Path, dataset: str, names: list[str]) -> dict[str, float]:
    """The prior-sample FD of each folder in ``folder`` named in FD_TARGETS, as ``evaluate`` measures it."""
    import vae_hub
    from vae_hub.data.mnist import load_split

    names = [n for n in names if n in FD_TARGETS and (folder / n).is_dir()]
    if not names:
        return {}
    judge = fd_judge(load_split(dataset, "test"))
    fds = {}
    for name in names:
        fds[name] = round(sample_fd(vae_hub.load(str(folder / name)), *judge), 2)
        print(f"{name:18s} prior-sample FD {fds[name]:.2f} (at most {FD_TARGETS[name]})", flush=True)
    return fds


def run_all(dataset: str, variants: list[str], keep: str | None = None, jobs: int = 1) -> tuple[dict[str, dict], float]:
    """Train ``variants`` in one train.py process, ``jobs`` at a time; (per-variant rows, the process's wall s)."""
    bundled_set = from_history(ROOT / "pretrained")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep or tmp)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--variants", *variants, "--dataset", dataset,
                                 "--out", str(out), "--no-progress", "--half", "--jobs", str(jobs)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:  # train.py's log as it goes: an hour-long run should not be silent
            lines.append(line.rstrip())
            print(f"  {lines[-1]}", flush=True)
        total = time.perf_counter() - t0
        if proc.wait():
            sys.exit(f"error: train.py failed ({proc.returncode}); its last lines are above")
        walls = {}  # train.py's closing table: variant, s/epoch, test loss, wall s
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[0] in variants:
                walls[parts[0]] = float(parts[3])
        rows = {}
        for name in variants:
            rows[name] = {"wall_seconds": walls[name], **history_row(out / name / "history.json")}
            if (bundled := bundled_set.get(name)):
                rows[name]["bundled_test_loss"] = bundled["test_loss"]
            print(f"{name:18s} {walls[name]:8.1f} s  {rows[name]['precision']:5s} test {rows[name]['test_loss']:.2f}"
                  + (f" (bundled {bundled['test_loss']:.2f})" if bundled else ""), flush=True)
        for name, fd in sample_fds(out, dataset, variants).items():  # the clock has stopped
            rows[name]["prior_fd"] = fd
    return rows, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--variants", nargs="+", default=list(FAST_SET), help="default: the fast set (iwae-bin trains apart)")
    p.add_argument("--from-history", metavar="DIR")
    p.add_argument("--fd-from", metavar="DIR", help="measure the samples of DIR's folders (an earlier --keep DIR) and "
                                                    "add them to the results file's rows; no training")
    p.add_argument("--keep", metavar="DIR", help="train into DIR and keep the model folders (default: a temp dir)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="variants trained at once by train.py --jobs (default: the core count)")
    p.add_argument("--out")
    args = p.parse_args()
    if args.fd_from:
        add_fds(Path(args.fd_from), args.dataset, args.out)
        return
    m = machine()
    print(f"CPU: {m['cpu']}, {m['threads']} threads" + ("" if args.from_history else f", {args.jobs} variant(s) at a time"),
          flush=True)
    if args.from_history:
        rows = from_history(Path(args.from_history))
        total = sum(r["train_seconds"] for r in rows.values())
    else:
        rows, total = run_all(args.dataset, args.variants, args.keep, args.jobs)
    data = {"source": args.from_history or "run", "variants": rows, "total_seconds": total,
            "target_minutes": TARGET_MINUTES, "fd_targets": FD_TARGETS, "jobs": None if args.from_history else args.jobs}
    report(data)
    write("train_all", data, args.out)


def report(data: dict) -> None:
    """The table, and whether the targets are met: the total time, and each sample-judged model's FD. A run's rows
    give each variant's wall time; rows read from history.json files, their recorded training time."""
    rows, total = data["variants"], data["total_seconds"]
    key = "wall_seconds" if data["source"] == "run" else "train_seconds"
    print("\n| variant | epochs | batch | precision | minutes | test loss | bundled model's test loss when run "
          "| prior-sample FD (at most) |\n|---|---:|---:|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        b = f"{r['bundled_test_loss']:.2f}" if "bundled_test_loss" in r else ""
        fd = f"{r['prior_fd']:.2f} ({FD_TARGETS[name]})" if "prior_fd" in r else ""
        print(f"| {name} | {r['epochs']} | {r.get('batch_size', '')} | {r.get('precision', 'fp32')} | "
              f"{r[key] / 60:.1f} | {r['test_loss']:.2f} | {b} | {fd} |")
    print(f"| **total** | | | | **{total / 60:.1f}** | | | |")
    print(f"target: all variants, full recipes, <= {TARGET_MINUTES} min: {'met' if total <= 60 * TARGET_MINUTES else 'NOT met'}")
    fds = {n: r["prior_fd"] for n, r in rows.items() if "prior_fd" in r}
    if fds:
        over = [n for n, fd in fds.items() if fd > FD_TARGETS[n]]
        print(f"target: prior-sample FD at most the old set's for {', '.join(fds)}: "
              + ("met" if not over else f"NOT met ({', '.join(over)})"))


def add_fds(folder: Path, dataset: str, out: str | None) -> None:
    """--fd-from: the FDs of an earlier run's kept folders, added to the results file it wrote."""
    from common import RESULTS

    path = Path(out) if out else RESULTS / "train_all.json"
    data = json.loads(path.read_text())
    for name, fd in sample_fds(folder, dataset, list(data["variants"])).items():
        data["variants"][name]["prior_fd"] = fd
    data["fd_targets"] = FD_TARGETS
    report(data)
    write("train_all", data, out)  # the machine of the run, not of this measurement


if __name__ == "__main__":
    main()
