"""Benchmark vae_hub.model.scratch against torch.nn: each layer at conv-vae-z20's shapes, and the whole training step.

    python bench/scratch_vs_torch.py [--quick] [--out bench/results/scratch_vs_torch.json]

What is measured (CPU, torch.set_num_threads(2) unless --threads says otherwise):
- forward / backward: wall-clock milliseconds per batch, the median over the timed repeats after warm-up.
  Scratch and torch repeats are interleaved, so a load spike from elsewhere hits both kits alike.
  For a layer, "backward" is y.backward(g) with g fixed; the input needs a gradient except for the first
  conv (whose input is the images, as in the model). For the VAE, one step = zero_grad + forward
  (loss.mean()) + backward + optimizer step (scratch.Adam vs torch.optim.Adam with its defaults; an extra
  row "torch-fused" uses Adam(fused=True), which vae_hub's trainer picks for torch models); "optimizer ms"
  is the optimizer step alone. The ratio scratch/torch is against the default torch.optim.Adam.
- images/s: batch size / median time of (forward + backward [+ optimizer step for the VAE]).
- other load: CPU cores kept busy by *other* processes while a config was timed (machine CPU time from
  /proc/stat minus this process's own, less 3 clock ticks of counting slack). Timings taken with this above
  0.1 are contaminated - with 2 threads on 2 cores every OpenMP region waits for a descheduled thread - and
  such rows are marked with "!".
- peak MiB: in a fresh subprocess per (config, kit), how far the peak resident set rises above the
  resident set once the module, optimizer and inputs exist, over 3 training iterations: activations,
  saved tensors, gradients, optimizer moments and workspaces, as the OS saw them. Linux only: the peak is
  VmHWM from /proc/self/status, reset to the current RSS after setup by writing 5 to /proc/self/clear_refs
  (getrusage's ru_maxrss cannot be used: it survives fork+exec, so a child reports its parent's peak).
  It is a process high-water mark (allocator slack, MKL/OpenMP buffers and the first call's one-off
  allocations included), not a count of tensor bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import loadavg, machine, median, rss_mib
from torch import nn

import vae_hub
from vae_hub.model import scratch

BATCH = 128
# name -> (scratch factory, torch factory, input shape without batch, does the input need a gradient)
LAYERS: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], tuple[int, ...], bool]] = {
    "Conv2d 1->32 k4s2 @28": (lambda: scratch.Conv2d(1, 32, 4, 2, 1), lambda: nn.Conv2d(1, 32, 4, 2, 1),
                              (1, 28, 28), False),
    "Conv2d 32->64 k4s2 @14": (lambda: scratch.Conv2d(32, 64, 4, 2, 1), lambda: nn.Conv2d(32, 64, 4, 2, 1),
                               (32, 14, 14), True),
    "ConvT2d 64->32 k4s2 @7": (lambda: scratch.ConvTranspose2d(64, 32, 4, 2, 1),
                               lambda: nn.ConvTranspose2d(64, 32, 4, 2, 1), (64, 7, 7), True),
    "ConvT2d 32->1 k4s2 @14": (lambda: scratch.ConvTranspose2d(32, 1, 4, 2, 1),
                               lambda: nn.ConvTranspose2d(32, 1, 4, 2, 1), (32, 14, 14), True),
    "Linear 3136->128": (lambda: scratch.Linear(3136, 128), lambda: nn.Linear(3136, 128), (3136,), True),
    "Linear 128->3136": (lambda: scratch.Linear(128, 3136), lambda: nn.Linear(128, 3136), (128,), True),
    "BatchNorm2d 32 @14": (lambda: scratch.BatchNorm2d(32), lambda: nn.BatchNorm2d(32), (32, 14, 14), True),
    "BatchNorm2d 64 @7": (lambda: scratch.BatchNorm2d(64), lambda: nn.BatchNorm2d(64), (64, 7, 7), True),
}
VAE = "VAE train step (conv-vae-z20)"
KITS = ("torch", "scratch")
VAE_KITS = (*KITS, "torch-fused")
CONTENDED = 0.1  # cores used by other processes above which a timing is flagged


def _images(n: int, seed: int) -> torch.Tensor:
    """Binary-ish 28x28 blobs (MNIST-like statistics, no download needed)."""
    g = torch.Generator().manual_seed(seed)
    low = (torch.rand(n, 1, 7, 7, generator=g) < 0.35).float()
    return torch.sigmoid((F.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False) - 0.4) * 12)


class _Case:
    """One (config, kit): builds its module and inputs once; run() does one timed training iteration."""

    def __init__(self, config: str, kit: str, batch: int):
        torch.manual_seed(0)
        self.batch, self.is_vae = batch, config == VAE
        if self.is_vae:
            torch.manual_seed(0)
            self.model = vae_hub.build("scratch-conv-vae" if kit == "scratch" else "conv-vae-z20")
            params = self.model.parameters()
            self.opt = (scratch.Adam(params, lr=1e-3) if kit == "scratch"
                        else torch.optim.Adam(params, lr=1e-3, fused=kit == "torch-fused"))
            self.x = _images(batch, seed=0)
        else:
            make_scratch, make_torch, shape, needs_grad = LAYERS[config]
            torch.manual_seed(0)
            self.model = make_scratch() if kit == "scratch" else make_torch()
            self.x = torch.randn(batch, *shape).requires_grad_(needs_grad)
            with torch.no_grad():
                self.g = torch.randn_like(self.model(self.x))
        self.model.train()

    def run(self) -> tuple[float, float, float]:
        """(forward, backward, optimizer) seconds for one iteration."""
        if self.is_vae:
            self.opt.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss = self.model(self.x).loss.mean()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            self.opt.step()
            t3 = time.perf_counter()
            return t1 - t0, t2 - t1, t3 - t2
        self.model.zero_grad(set_to_none=True)
        self.x.grad = None
        t0 = time.perf_counter()
        y = self.model(self.x)
        t1 = time.perf_counter()
        y.backward(self.g)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, 0.0


def _busy_s() -> tuple[float, float]:
    """(seconds of CPU used by the whole machine, by this process), both cumulative."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        busy = float("nan")
    own = os.times()
    return busy, own.user + own.system


def _time(config: str, kits: tuple[str, ...], batch: int, warmup: int,
          repeats: int) -> tuple[dict[str, dict[str, float]], float]:
    """Per-kit medians, and the other processes' CPU load (cores) while timing."""
    cases = {kit: _Case(config, kit, batch) for kit in kits}
    machine0, own0, wall0 = *_busy_s(), time.perf_counter()
    samples: dict[str, list[tuple[float, float, float]]] = {kit: [] for kit in kits}
    for i in range(warmup + repeats):
        for kit in (kits if i % 2 == 0 else kits[::-1]):  # interleaved, alternating who goes first
            t = cases[kit].run()
            if i >= warmup:
                samples[kit].append(t)
    out = {}
    for kit, ts in samples.items():
        med = [median(col) * 1e3 for col in zip(*ts)]
        total = median([sum(t) for t in ts]) * 1e3
        out[kit] = {"forward_ms": med[0], "backward_ms": med[1], "optimizer_ms": med[2], "total_ms": total,
                    "images_per_s": batch / (total / 1e3)}
    machine1, own1 = _busy_s()
    wall = time.perf_counter() - wall0
    # /proc/stat counts in clock ticks (10 ms): over a short window a few ticks of noise are not load
    others_s = max(0.0, (machine1 - machine0) - (own1 - own0) - 3 / os.sysconf("SC_CLK_TCK"))
    return out, others_s / wall


def _peak_memory_child(config: str, kit: str, batch: int, threads: int) -> None:
    torch.set_num_threads(threads)
    case = _Case(config, kit, batch)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident set
    before = rss_mib()
    for _ in range(3):
        case.run()
    print(json.dumps({"peak_rss_delta_mib": rss_mib(peak=True) - before}))


def _peak_memory(config: str, kit: str, batch: int, threads: int) -> float | None:
    cmd = [sys.executable, __file__, "--_memory-child", config, kit, "--batch", str(batch), "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        print(f"  memory probe for {config} / {kit} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_delta_mib"]


def _table(rows: list[dict]) -> str:
    head = ("| config | kit | forward ms | backward ms | optimizer ms | total ms | images/s | peak MiB "
            "| scratch/torch (total) | other load |")
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ratio = f"{r['ratio_total']:.2f}x" if r.get("ratio_total") is not None else ""
        mem = f"{r['peak_rss_delta_mib']:.1f}" if r.get("peak_rss_delta_mib") is not None else "n/a"
        opt = f"{r['optimizer_ms']:.2f}" if r["config"] == VAE else "-"
        lines.append(f"| {r['config']} | {r['kit']} | {r['forward_ms']:.2f} | {r['backward_ms']:.2f} | {opt} "
                     f"| {r['total_ms']:.2f} | {r['images_per_s']:.0f} | {mem} | {ratio} "
                     f"| {r['other_load_cores']:.2f}{' !' if r['other_load_cores'] > CONTENDED else ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no memory subprocesses (a smoke run)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/scratch_vs_torch.json"))
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--_memory-child", nargs=2, metavar=("CONFIG", "KIT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._memory_child:
        _peak_memory_child(*args._memory_child, args.batch, args.threads)
        return

    torch.set_num_threads(args.threads)
    warmup, repeats = (1, 3) if args.quick else (3, 15)
    load_before = loadavg()
    start = time.perf_counter()
    rows: list[dict] = []
    for config in [*LAYERS, VAE]:
        kits = VAE_KITS if config == VAE else KITS
        timed, others = _time(config, kits, args.batch, warmup, repeats)
        for kit in kits:
            mem = None if args.quick else _peak_memory(config, kit, args.batch, args.threads)
            row = {"config": config, "kit": kit, **timed[kit], "peak_rss_delta_mib": mem, "other_load_cores": others}
            if kit == "scratch":
                row["ratio_total"] = timed["scratch"]["total_ms"] / timed["torch"]["total_ms"]
            rows.append(row)
        print(f"  {config}: torch {timed['torch']['total_ms']:.2f} ms, scratch {timed['scratch']['total_ms']:.2f} ms",
              file=sys.stderr)
    vae_ratio = next(r["ratio_total"] for r in rows if r["config"] == VAE and r["kit"] == "scratch")

    print(_table(rows))
    print(f"\nVAE training step (batch {args.batch}, forward + backward + Adam), scratch/torch: {vae_ratio:.2f}x "
          f"(goal <= 3x) {'OK' if vae_ratio <= 3 else 'OVER BUDGET'}")
    meta = {
        **machine(), "batch": args.batch, "warmup": warmup, "repeats": repeats, "quick": args.quick,
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "wall_s": time.perf_counter() - start,
        "timing": "median wall-clock ms per batch over interleaved repeats after warm-up",
        "memory": "peak RSS rise (VmHWM) of a fresh subprocess over 3 training iterations, MiB",
    }
    contended = sorted({r["config"] for r in rows if r["other_load_cores"] > CONTENDED})
    meta["contended_configs"] = contended
    print(f"(threads {args.threads}, {repeats} repeats, load average before {load_before[0]:.2f}, "
          f"after {meta['loadavg_after'][0]:.2f}, {meta['wall_s']:.0f} s)")
    if contended:
        print(f"WARNING: other processes used > {CONTENDED} cores while timing {contended}: those rows ('!') "
              "are not a fair measurement; rerun on an idle machine")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows, "vae_step_ratio": vae_ratio}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
