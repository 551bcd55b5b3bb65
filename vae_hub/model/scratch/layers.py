"""nn.Module wrappers around the hand-written Functions, drop-in twins of their torch.nn namesakes.

Parameter and buffer names, shapes and default initialisation match torch.nn exactly, so state_dicts
move both ways and the same ``torch.manual_seed`` gives the same weights in either kit.

One visible difference: Conv2d and ConvTranspose2d return (B, C, H, W) tensors stored channels-last
(as torch's own convolutions do for channels-last inputs), because that is the layout their GEMMs produce
and the next layer reads. Values are identical; use ``.reshape``/``.flatten`` (or ``.contiguous()`` first)
rather than ``.view`` on them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import init

from vae_hub.model.scratch.functional import BatchNorm2dFn, Conv2dFn, ConvTranspose2dFn, LeakyReLUFn, LinearFn, Pair


def _pair(v: int | tuple[int, int], name: str) -> Pair:
    out = (v, v) if isinstance(v, int) else tuple(v)
    if len(out) != 2 or not all(isinstance(i, int) for i in out):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return out  # type: ignore[return-value]


def _torch_default_init(weight: Tensor, bias: Tensor | None) -> None:
    # the same draws, in the same order, as torch.nn.Linear / _ConvNd.reset_parameters
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Linear(nn.Module):
    """y = x W^T + b, for x of shape (..., in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            _torch_default_init(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return LinearFn.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvBase(nn.Module):
    def __init__(self, weight_shape: tuple[int, ...], out_channels: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(weight_shape))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            _torch_default_init(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        return s + ("" if self.bias is not None else ", bias=False")

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input (B, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")


class Conv2d(_ConvBase):
    """2-D convolution (cross-correlation), groups=1, dilation=1, zero padding; weight (out, in, kh, kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Pair, stride: int | Pair = 1,
                 padding: int | Pair = 0, bias: bool = True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        super().__init__((out_channels, in_channels, *self.kernel_size), out_channels, bias)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return Conv2dFn.apply(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(_ConvBase):
    """Transposed 2-D convolution (the gradient of Conv2d w.r.t. its input); weight (in, out, kh, kw).

    Output side: (H - 1) * stride - 2 * padding + kernel_size + output_padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Pair, stride: int | Pair = 1,
                 padding: int | Pair = 0, output_padding: int | Pair = 0, bias: bool = True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.output_padding = _pair(output_padding, "output_padding")
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"output_padding {self.output_padding} must be smaller than stride {self.stride}")
        # torch's ConvTranspose weight is (in, out, kh, kw), so its fan_in comes from out * kh * kw
        super().__init__((in_channels, out_channels, *self.kernel_size), out_channels, bias)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return ConvTranspose2dFn.apply(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)


class BatchNorm2d(nn.Module):
    """Batch norm over (B, H, W) per channel, with affine weight/bias and tracked running statistics.

    ``momentum=None`` gives a cumulative average, as in torch.
    """

    _version = 2  # torch.nn.BatchNorm2d's state_dict version (the one with num_batches_tracked)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected input (B, {self.num_features}, H, W), got {tuple(x.shape)}")
        momentum = 0.0
        if self.training:
            if x.numel() // self.num_features < 2:
                raise ValueError(f"BatchNorm2d: expected more than 1 value per channel when training, "
                                 f"got input of shape {tuple(x.shape)}")
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return BatchNorm2dFn.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                   self.training, momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class LeakyReLU(nn.Module):
    """max(x, 0) + negative_slope * min(x, 0)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return LeakyReLUFn.apply(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ReLU(nn.Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return LeakyReLUFn.apply(x, 0.0)
