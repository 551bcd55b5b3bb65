"""Training precision: what the hardware runs fast, a short measured probe, and the autocast context.

``fp32`` trains as before. ``bf16`` and ``fp16`` autocast only the networks' matmuls and convolutions: the
model casts the encoder's outputs and the decoder's logits back to float32 (``VAE.encode``/``decode``), so the
loss, the KL, the gradients of the float32 weights, Adam's state and the saved weights all stay float32.
``auto`` picks bf16 where it is measured to be faster (a CPU with AMX or AVX-512 BF16 units, or a CUDA device
with bf16), else fp32. The CPU probe times the model's own training step both ways, not bare matmuls: a step
also casts the weights to bf16 every forward and runs its elementwise work, loss and Adam in float32, so the
matmuls' speed-up overstates the step's.
The scratch kit writes its own float32 backward passes, so it always trains in fp32.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vae_hub.model.config import PRECISIONS

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bf16 matmul units
MIN_SPEEDUP = 1.2  # auto takes bf16 only for a clear win: below this, noise or casts eat the gain


@dataclass(frozen=True)
class Choice:
    """The precision a run trains in ("fp32", "bf16" or "fp16") and why it was chosen."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None for plain float32."""
        return DTYPES[self.name]


FP32 = Choice("fp32", "default")  # plain float32: no autocast


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16_units(flags: set[str] | None = None) -> list[str]:
    """Which bf16 matmul units the CPU has (AMX tiles, AVX-512 BF16), by its flags."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in BF16_FLAGS if f in flags]


def _steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor | None, choice: Choice,
           n: int) -> float:
    """Images per second over n training steps of ``model`` on (x, y), the forward under ``choice``'s autocast."""
    t0 = time.perf_counter()
    for _ in range(n):
        with autocast(choice, x.device):
            loss = model(x, y).loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return n * len(x) / (time.perf_counter() - t0)


def probe(model: nn.Module, batch: int, device: torch.device, rounds: int = 5, seconds: float = 0.05) -> tuple[float, float]:
    """Best images/s of the model's training step (forward, backward, Adam) in fp32 and under bf16 autocast over
    short rounds, alternating round by round so a slow spell on a shared machine hits both alike. The best, not
    the median: a busy machine only ever slows a round down, so the fastest round is each precision's own speed
    (medians of three 0.05 s rounds flipped vae-z20's choice between runs at a true 1.3x). Runs on a copy with
    its own optimizer and restores the global RNG: the real run is untouched, whatever the probe does."""
    c = model.config
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        m = copy.deepcopy(model).train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-6)
        x = torch.rand(batch, c.in_channels, 28, 28, device=device).round()
        y = torch.arange(batch, device=device) % c.n_classes if c.conditional else None
        fp32, bf16 = Choice("fp32", "probe"), Choice("bf16", "probe")
        warm = _steps(m, opt, x, y, fp32, 1)  # warm-up (allocations, kernel choice), and a first speed
        _steps(m, opt, x, y, bf16, 1)
        n = max(1, round(seconds * warm / batch))
        pairs = [(_steps(m, opt, x, y, fp32, n), _steps(m, opt, x, y, bf16, n)) for _ in range(rounds)]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def _auto(device: torch.device, model: nn.Module, batch: int) -> Choice:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Choice("bf16", f"{torch.cuda.get_device_name(device)} runs bf16 matmuls natively")
        return Choice("fp32", f"{torch.cuda.get_device_name(device)} lacks bf16 support")
    if device.type != "cpu":
        return Choice("fp32", f"no automatic mixed precision on {device.type}")
    units = cpu_bf16_units()
    if not units:
        return Choice("fp32", f"the CPU has no bf16 matmul units (none of {', '.join(BF16_FLAGS)})")
    f32, b16 = probe(model, batch, device)
    measured = (f"a training step at batch {batch} ran {b16:,.0f} images/s under bf16 autocast vs {f32:,.0f} in fp32 "
                f"({', '.join(units)})")
    if b16 >= MIN_SPEEDUP * f32:
        return Choice("bf16", f"measured: {measured}")
    return Choice("fp32", f"bf16 is not {MIN_SPEEDUP:g}x faster here: {measured}")


def choose(precision: str, device: torch.device | str, model: nn.Module | None = None, batch: int = 128) -> Choice:
    """The precision to train ``model`` in (vae-z20 when None): ``precision`` as asked, ``auto`` decided by the
    hardware and a probe of the model's own training step at ``batch``; with the reason. Raises ValueError for
    fp16 off CUDA and for low precision with the scratch kit."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if model is not None and model.config.layers == "scratch":
        if precision in ("bf16", "fp16"):
            raise ValueError(f"precision {precision!r}: the scratch kit trains in fp32 only (its hand-written "
                             "backward passes are float32)")
        return Choice("fp32", "the scratch kit's hand-written backward passes are float32")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device (got {device.type}); use bf16 or fp32")
    if precision != "auto":
        return Choice(precision, "set by the recipe or --precision")
    if model is None:
        from vae_hub.model.vae import build  # lazily: the trainer always passes its model

        model = build("vae-z20").to(device)
    return _auto(device, model, batch)


def autocast(choice: Choice, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context to run the networks' forward in: torch.autocast for bf16/fp16, nothing for fp32."""
    if choice.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=choice.dtype)

