"""Where a convolutional model's training step goes on this CPU: each convolution's forward and backward, timed
alone at the step's own shapes and layout, against the float32 matrix-multiply ceiling of one core.

    python bench/conv_step.py                                   # conv-vae-z20, batch 128, one thread (a --jobs 2 worker)
    python bench/conv_step.py --variant conv-vae-bin --threads 2

One thread by default, as each `train.py --jobs 2` worker trains. The whole step is the trainer's own (the
objective, backward, fused Adam) on random digits in float32, the model in the layout `fit` gives it. Each
convolution is then run by itself, forward and backward (no input gradient for the first, as in training), on
inputs of the shapes and layout it sees in the step; its GFLOP/s count 2 FLOPs per multiply-add, three passes
(forward, input gradient, weight gradient). The ceiling is a float32 matrix product of 2048 x 2048 on the same
threads (bench/train_throughput.py's gemm_ceiling: the median of five rounds). What the convolutions leave of the
step is batch norm, ReLU, the linear layers, the loss and Adam.
Writes bench/results/conv_step.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, write
from torch import nn
from train_throughput import gemm_ceiling

import vae_hub
from vae_hub.cli import training_process
from vae_hub.model.objectives import training_terms
from vae_hub.model.vae import fast_layout


def best_ms(fn, reps: int, rounds: int = 5) -> float:
    """The fastest of ``rounds`` means over ``reps`` calls, in ms (this machine's neighbours are noisy)."""
    for _ in range(3):
        fn()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append((time.perf_counter() - t0) / reps * 1000)
    return min(out)


def conv_rows(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Each convolution's input (shape, layout) as the step feeds it, then its timing alone."""
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            inputs.setdefault(name, args[0].detach())
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    rows = []
    for i, (name, inp) in enumerate(inputs.items()):
        conv = model.get_submodule(name)
        first = i == 0
        inp = inp.clone(memory_format=torch.preserve_format).requires_grad_(not first)
        out = conv(inp)
        grad = torch.ones_like(out)
        b = inp.shape[0]
        spatial = (out if isinstance(conv, nn.Conv2d) else inp).shape[2:]  # positions the kernel is applied at
        macs = b * spatial.numel() * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        passes = 2 if first else 3

        def fwd_bwd(conv=conv, inp=inp, grad=grad) -> None:
            conv.zero_grad(set_to_none=True)
            conv(inp).backward(grad)

        ms = best_ms(fwd_bwd, 20)
        fwd = best_ms(lambda conv=conv, inp=inp: conv(inp), 20)
        rows.append({"layer": name, "kind": type(conv).__name__,
                     "channels": f"{conv.in_channels}->{conv.out_channels}", "input": list(inp.shape),
                     "channels_last": inp.is_contiguous(memory_format=torch.channels_last) and inp.shape[1] > 1,
                     "ms": round(ms, 2), "forward_ms": round(fwd, 2),
                     "gflops": round(2 * macs * passes / ms / 1e6, 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="conv-vae-z20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args(argv)
    training_process()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = vae_hub.build(args.variant).train()
    if fast_layout(model.config):
        model = model.to(memory_format=torch.channels_last)
    c = model.config
    x = torch.rand(args.batch, c.in_channels, 28, 28)
    y = torch.arange(args.batch) % c.n_classes if c.conditional else None
    opt = model.kit.adam(model.parameters(), c.lr)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        training_terms(model, x, y, 1.0).loss.mean().backward()
        opt.step()

    step_ms = best_ms(step, 20)
    ceiling = gemm_ceiling([(2048, 2048, 2048)], torch.float32)
    rows = conv_rows(model, x)
    conv_ms = sum(r["ms"] for r in rows)
    print(f"CPU: {machine()['cpu']}, {args.threads} thread(s); {args.variant}, batch {args.batch}, float32")
    print(f"float32 matmul ceiling (2048^3): {ceiling:.0f} GFLOP/s")
    print(f"training step: {step_ms:.1f} ms ({args.batch / step_ms * 1000:,.0f} images/s)")
    for r in rows:
        print(f"  {r['layer']:12s} {r['kind']:16s} {r['channels']:7s} input {r['input']} "
              f"{'channels-last' if r['channels_last'] else 'NCHW'}: {r['ms']:5.2f} ms "
              f"(forward {r['forward_ms']:.2f}), {r['gflops']:6.1f} GFLOP/s = {r['gflops'] / ceiling:4.0%} of the ceiling")
    print(f"the convolutions: {conv_ms:.1f} ms of the step's {step_ms:.1f} ({conv_ms / step_ms:.0%}); "
          f"the rest (batch norm, ReLU, linear layers, loss, Adam): {step_ms - conv_ms:.1f} ms")
    write("conv_step", {"variant": args.variant, "batch": args.batch, "threads": args.threads,
                        "matmul_gflops": round(ceiling, 1), "step_ms": round(step_ms, 2),
                        "convolutions": rows, "conv_ms": round(conv_ms, 2)}, args.out)


if __name__ == "__main__":
    main()
