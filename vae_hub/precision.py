"""Training precision: what the hardware runs fast, a short measured probe, and the autocast context.

``fp32`` trains as before. ``bf16`` and ``fp16`` autocast only the networks' matmuls and convolutions: the
model casts the encoder's outputs and the decoder's logits back to float32 (``VAE.encode``/``decode``), so the
loss, the KL, the gradients of the float32 weights, Adam's state and the saved weights all stay float32.
``auto`` picks bf16 where it is measured to be faster (a CPU with AMX or AVX-512 BF16 units, or a CUDA device
with bf16), else fp32; the probe times the model's own Linear shapes, so the choice fits the step it speeds up.
The scratch kit writes its own float32 backward passes, so it always trains in fp32.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bf16 matmul units
MIN_SPEEDUP = 1.2  # auto takes bf16 only for a clear win: below this, noise or casts eat the gain
# vae-z20's Linear layers (in, out), encoder then decoder; the default probe shapes
MLP_LAYERS = ((784, 400), (400, 40), (20, 400), (400, 784))


@dataclass(frozen=True)
class Choice:
    """The precision a run trains in ("fp32", "bf16" or "fp16") and why it was chosen."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None for plain float32."""
        return DTYPES[self.name]


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


def step_shapes(layers: list[tuple[int, int]] | tuple, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matmul in one training step of Linear layers (in, out): forward, input gradient
    (not for the first layer) and weight gradient."""
    shapes = []
    for i, (a, b) in enumerate(layers):
        shapes.append((batch, a, b))
        if i:
            shapes.append((batch, b, a))
        shapes.append((a, batch, b))
    return shapes


def linear_layers(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of a model's torch Linear layers, in module order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


class Gemms:
    """Random operands for ``torch.mm`` at ``shapes`` in one dtype, and a timer for passes over all of them."""

    def __init__(self, shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
                     for m, k, n in shapes]
        self.flops = sum(2 * m * k * n for m, k, n in shapes)
        self.gflops(1)  # warm-up: first-call allocations and kernel selection

    def gflops(self, passes: int) -> float:
        """GFLOP/s over ``passes`` passes through every shape."""
        t0 = time.perf_counter()
        for _ in range(passes):
            for a, b in self.mats:
                torch.mm(a, b)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return self.flops * passes / (time.perf_counter() - t0) / 1e9

    def passes_for(self, seconds: float) -> int:
        """How many passes take about ``seconds`` (at least one)."""
        return max(1, round(seconds * self.gflops(1) * 1e9 / self.flops))


def gemm_ceiling(shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device | str = "cpu",
                 seconds: float = 0.05, rounds: int = 5) -> float:
    """Median GFLOP/s of ``torch.mm`` over ``shapes`` in ``dtype``: the matmul ceiling of a step at those shapes."""
    g = Gemms(shapes, dtype, device)
    n = g.passes_for(seconds)
    return statistics.median(g.gflops(n) for _ in range(rounds))


@functools.lru_cache(maxsize=32)
def probe(shapes: tuple[tuple[int, int, int], ...], device: str = "cpu", rounds: int = 3) -> tuple[float, float]:
    """Median GFLOP/s of float32 and of bfloat16 matmuls at ``shapes`` (a fraction of a second); cached per
    process. The two alternate round by round, so a slow spell on a shared machine hits both alike."""
    f32, b16 = Gemms(list(shapes), torch.float32, device), Gemms(list(shapes), torch.bfloat16, device)
    n = f32.passes_for(0.02)
    pairs = [(f32.gflops(n), b16.gflops(n)) for _ in range(rounds)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _auto(device: torch.device, shapes: tuple[tuple[int, int, int], ...]) -> Choice:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Choice("bf16", f"{torch.cuda.get_device_name(device)} runs bf16 matmuls natively")
        return Choice("fp32", f"{torch.cuda.get_device_name(device)} lacks bf16 support")
    if device.type != "cpu":
        return Choice("fp32", f"no automatic mixed precision on {device.type}")
    units = cpu_bf16_units()
    if not units:
        return Choice("fp32", f"the CPU has no bf16 matmul units (none of {', '.join(BF16_FLAGS)})")
    f32, b16 = probe(shapes, "cpu")
    measured = f"bf16 {b16:.0f} vs fp32 {f32:.0f} GFLOP/s at the step's matmul shapes ({', '.join(units)})"
    if b16 >= MIN_SPEEDUP * f32:
        return Choice("bf16", f"measured {measured}")
    return Choice("fp32", f"bf16 is not {MIN_SPEEDUP:g}x faster here: {measured}")


def choose(precision: str, device: torch.device | str, layers: list[tuple[int, int]] | None = None,
           batch: int = 128, scratch: bool = False) -> Choice:
    """The precision to train in: ``precision`` as asked (``auto`` decided by hardware and a probe at the
    Linear ``layers``' step shapes; vae-z20's by default), with the reason. Raises ValueError for fp16 off CUDA."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if scratch:
        if precision in ("bf16", "fp16"):
            raise ValueError(f"precision {precision!r}: the scratch kit trains in fp32 only (its hand-written "
                             "backward passes are float32)")
        return Choice("fp32", "the scratch kit's hand-written backward passes are float32")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device (got {device.type}); use bf16 or fp32")
    if precision != "auto":
        return Choice(precision, "asked for")
    return _auto(device, tuple(step_shapes(layers or list(MLP_LAYERS), batch)))


def autocast(choice: Choice, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context to run the networks' forward in: torch.autocast for bf16/fp16, nothing for fp32."""
    if choice.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=choice.dtype)

