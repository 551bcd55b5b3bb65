"""Autograd Functions with hand-written backward passes.

Every layer in ``vae_hub.model.scratch`` runs its maths inside one of these Functions, so PyTorch's autograd
never differentiates through it: ``forward`` runs with autograd off and ``backward`` is the chain rule
written out by hand. Convolutions are im2col + one GEMM (see the conv section); nothing here calls
``F.conv*``, ``F.linear``, ``F.batch_norm``, ``F.relu`` or a BCE loss.

Shapes: B batch, C/O input/output channels, K = C*kh*kw patch length, L = number of patch positions.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------------- linear
class LinearFn(torch.autograd.Function):
    """y = x @ W.T + b for x (..., in), W (out, in), b (out,) or None."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        ctx.in_shape = x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x2, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, weight.shape[0])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (g2 @ weight).view(ctx.in_shape)
        if ctx.needs_input_grad[1]:
            gw = g2.t() @ x2
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


# --------------------------------------------------------------------------------------------- conv
# Convolutions run in a channels-last (NHWC) layout internally: the patch matrix is (B*L, kh*kw*C) with the
# channel innermost, so every product is a single large GEMM on contiguous operands (no per-image bmm and
# no transposed copies of the patch matrix), and the outputs come back as NCHW views of NHWC memory,
# which is what the next layer wants to read. im2col is a strided view plus one gather copy;
# col2im is its adjoint: a few strided accumulates over blocks of kernel taps, never a loop over pixels.


def _nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) in any memory layout -> contiguous (B, H, W, C); free when x is already channels-last."""
    return x.permute(0, 2, 3, 1).contiguous()


def _pad_nhwc(x: Tensor, pad: Pair, size: Pair | None = None) -> Tensor:
    """Zero-pad an NHWC tensor by pad on top/left, up to size (default: symmetric pad) on bottom/right."""
    b, h, w, c = x.shape
    hp, wp = size if size is not None else (h + 2 * pad[0], w + 2 * pad[1])
    if (hp, wp) == (h, w) and pad == (0, 0):
        return x
    out = x.new_zeros(b, hp, wp, c)
    out[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    return out


def _im2col(xp: Tensor, kernel: Pair, stride: Pair, out: Pair) -> Tensor:
    """Patches of a padded NHWC tensor: (B * Ho * Wo, kh * kw * C), rows in (b, i, j) order."""
    b, _, _, c = xp.shape
    sb, sh, sw, sc = xp.stride()
    view = xp.as_strided((b, *out, *kernel, c), (sb, stride[0] * sh, stride[1] * sw, sh, sw, sc))
    return view.reshape(b * out[0] * out[1], -1)


def _col2im(cols: Tensor, batch: int, out: Pair, kernel: Pair, stride: Pair, size: Pair) -> Tensor:
    """Adjoint of _im2col: scatter-add patch rows (B*Ho*Wo, kh*kw*C) back onto an NHWC canvas of size.

    Kernel tap i = a*s + r lands on canvas row (ho + a)*s + r. Viewing the canvas as (H/s, s) blocks, the
    s*s taps that share (a, a') land on one strided block slice each, so this is ceil(k/s)^2 accumulates
    (4 for k=4, s=2) rather than k^2, and never a loop over pixels.
    """
    (ho, wo), (kh, kw), (sh, sw) = out, kernel, stride
    c = cols.shape[1] // (kh * kw)
    taps = cols.view(batch, ho, wo, kh, kw, c)
    ah, aw = -(-kh // sh), -(-kw // sw)
    hc = -(-max(size[0], (ho + ah - 1) * sh) // sh) * sh  # room for every block, a multiple of the stride
    wc = -(-max(size[1], (wo + aw - 1) * sw) // sw) * sw
    canvas = cols.new_zeros(batch, hc, wc, c)
    blocks = canvas.view(batch, hc // sh, sh, wc // sw, sw, c)
    for a in range(ah):
        rh = min(sh, kh - a * sh)
        for b in range(aw):
            rw = min(sw, kw - b * sw)
            src = taps[:, :, :, a * sh:a * sh + rh, b * sw:b * sw + rw]  # (B, Ho, Wo, rh, rw, C)
            blocks[:, a:a + ho, :rh, b:b + wo, :rw] += src.permute(0, 1, 3, 2, 4, 5)
    return canvas[:, :size[0], :size[1]]


def _as_nchw(y_nhwc: Tensor) -> Tensor:
    return y_nhwc.permute(0, 3, 1, 2)


def _saved(ctx: FunctionCtx, grad: Tensor) -> tuple:
    """What a convolution's backward starts from: its saved tensors, its geometry, the batch size and channels."""
    return (*ctx.saved_tensors, *ctx.geom, grad.shape[0], grad.shape[1])


class Conv2dFn(torch.autograd.Function):
    """2-D cross-correlation (groups=1, dilation=1) as im2col + one GEMM.

    forward:  P = im2col(pad(x)) (B*L, K);  Y = P @ W2.T + b  with W2 = W as (O, kh, kw, C) -> (O, K)
    backward: dW2 = G.T @ P;  db = sum of G over rows;  dx = crop(col2im(G @ W2))  with G = dY as (B*L, O)
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor | None,
                stride: Pair, padding: Pair) -> Tensor:
        b, _, h, w = x.shape
        o, _, kh, kw = weight.shape
        out = ((h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1)
        cols = _im2col(_pad_nhwc(_nhwc(x), padding), (kh, kw), stride, out)
        w2 = weight.permute(0, 2, 3, 1).reshape(o, -1)
        y = torch.addmm(bias, cols, w2.t()) if bias is not None else cols @ w2.t()
        # the patch matrix is what the weight gradient needs; x itself is never used again
        ctx.save_for_backward(cols if ctx.needs_input_grad[1] else None, w2)
        ctx.geom = ((h, w), (kh, kw), stride, padding, out)
        ctx.has_bias = bias is not None
        return _as_nchw(y.view(b, *out, o))

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        cols, w2, (h, w), kernel, stride, padding, out, b, o = _saved(ctx, grad)
        g = _nhwc(grad).view(-1, o)  # (B*L, O)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            size = (h + 2 * padding[0], w + 2 * padding[1])
            canvas = _col2im(g @ w2, b, out, kernel, stride, size)
            gx = _as_nchw(canvas[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w])
        if ctx.needs_input_grad[1]:
            c = w2.shape[1] // (kernel[0] * kernel[1])
            gw = (g.t() @ cols).view(o, *kernel, c).permute(0, 3, 1, 2).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None, None


class ConvTranspose2dFn(torch.autograd.Function):
    """The adjoint of Conv2dFn (groups=1, dilation=1); weight (C_in, C_out, kh, kw) as in torch.

    forward:  Y = crop(col2im(X @ W2)) + b   with X = x as (B*H*W, C_in), W2 = W as (C_in, kh*kw*C_out)
    backward: P = im2col(pad(dY));  dX = P @ W2.T;  dW2 = X.T @ P;  db = sum of dY
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor | None,
                stride: Pair, padding: Pair, output_padding: Pair) -> Tensor:
        b, c, h, w = x.shape
        _, o, kh, kw = weight.shape
        out = tuple((n - 1) * s - 2 * p + k + op
                    for n, s, p, k, op in zip((h, w), stride, padding, (kh, kw), output_padding))
        # the canvas holds every patch ((n-1)*s + k) and every output pixel (p + out, with output_padding)
        size = tuple(max((n - 1) * s + k, p + m) for n, s, k, p, m in zip((h, w), stride, (kh, kw), padding, out))
        x2 = _nhwc(x).view(b * h * w, c)
        w2 = weight.permute(0, 2, 3, 1).reshape(c, -1)
        canvas = _col2im(x2 @ w2, b, (h, w), (kh, kw), stride, size)
        y = canvas[:, padding[0]:padding[0] + out[0], padding[1]:padding[1] + out[1]]
        y = y + bias if bias is not None else y.contiguous()
        ctx.save_for_backward(x2 if ctx.needs_input_grad[1] else None, w2)
        ctx.geom = ((h, w), (kh, kw), stride, padding, size)
        ctx.has_bias = bias is not None
        return _as_nchw(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x2, w2, (h, w), kernel, stride, padding, size, b, o = _saved(ctx, grad)
        gy = _nhwc(grad)
        cols = _im2col(_pad_nhwc(gy, padding, size), kernel, stride, (h, w))  # (B*H*W, kh*kw*C_out)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _as_nchw((cols @ w2.t()).view(b, h, w, -1))
        if ctx.needs_input_grad[1]:
            c = w2.shape[0]
            gw = (x2.t() @ cols).view(c, *kernel, o).permute(0, 3, 1, 2).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum((0, 1, 2))
        return gx, gw, gb, None, None, None


# --------------------------------------------------------------------------------------------- batch norm
class BatchNorm2dFn(torch.autograd.Function):
    """Per-channel batch norm for (B, C, H, W); affine weight and bias of shape (C,).

    training: normalise with the batch mean and biased variance, and update the running buffers in place
    (running_var takes the unbiased variance, as torch does); eval: normalise with the running buffers.
    Written to allocate as few activation-sized tensors as possible: on CPU each fresh buffer costs page
    faults that dwarf the arithmetic of these memory-bound passes.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,
                running_var: Tensor, training: bool, momentum: float, eps: float) -> Tensor:
        c, dims = x.shape[1], (0, 2, 3)
        if training:
            # two passes (mean, then the centred sum of squares) for stability; the centred x becomes xhat
            n = x.numel() // c
            mean = x.sum(dims) / n
            xhat = x - mean.view(1, c, 1, 1)
            var = (xhat * xhat).sum(dims) / n  # faster on CPU than var_mean or vector_norm over these dims
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var, alpha=momentum * n / (n - 1))
        else:
            var = running_var
            xhat = x - running_mean.view(1, c, 1, 1)
        invstd = (var + eps).rsqrt()
        xhat.mul_(invstd.view(1, c, 1, 1))
        y = torch.addcmul(bias.view(1, c, 1, 1), xhat, weight.view(1, c, 1, 1))
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.training = training
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        xhat, weight, invstd = ctx.saved_tensors
        c, dims = xhat.shape[1], (0, 2, 3)
        buf = grad * xhat  # the one activation-sized allocation: it is reused for dx below
        sum_gx, sum_g = buf.sum(dims), grad.sum(dims)
        gx = None
        if ctx.needs_input_grad[0]:
            a = weight * invstd
            if ctx.training:
                # the batch statistics depend on x too, so dx = a * (g - mean(g) - xhat * mean(g * xhat))
                n = xhat.numel() // c
                gx = torch.addcmul((-a * sum_g / n).view(1, c, 1, 1), xhat, (-a * sum_gx / n).view(1, c, 1, 1),
                                   out=buf)
                gx.addcmul_(grad, a.view(1, c, 1, 1))
            else:
                gx = torch.mul(grad, a.view(1, c, 1, 1), out=buf)
        return gx, sum_gx, sum_g, None, None, None, None, None


# --------------------------------------------------------------------------------------------- activations
class LeakyReLUFn(torch.autograd.Function):
    """max(x, 0) + slope * min(x, 0); slope 0 is ReLU. The gradient at exactly 0 is slope, as in torch."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, slope: float) -> Tensor:
        y = x.clamp_min(0) if slope == 0 else torch.where(x > 0, x, x * slope)
        # for slope >= 0, y > 0 exactly where x > 0, so keep the output: the next layer holds it anyway
        ctx.save_for_backward(y if slope >= 0 else x)
        ctx.slope = slope
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, None]:
        (ref,) = ctx.saved_tensors
        positive = ref > 0
        if ctx.slope == 0:
            return grad * positive, None
        return torch.where(positive, grad, grad * ctx.slope), None


# --------------------------------------------------------------------------------------------- losses
class BCEWithLogitsFn(torch.autograd.Function):
    """Per-row sum of sigmoid cross-entropy: sum_d max(l, 0) - l*t + log1p(exp(-|l|))."""

    @staticmethod
    def forward(ctx: FunctionCtx, logits: Tensor, target: Tensor) -> Tensor:
        per = logits.clamp_min(0) - logits * target + torch.log1p(torch.exp(-logits.abs()))
        ctx.save_for_backward(logits, target)
        return per.sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        logits, target = ctx.saved_tensors
        g = grad.unsqueeze(1)
        gl = (torch.sigmoid(logits) - target) * g if ctx.needs_input_grad[0] else None
        gt = -logits * g if ctx.needs_input_grad[1] else None
        return gl, gt


class GaussianKLFn(torch.autograd.Function):
    """KL(N(mu, exp(logvar)) || N(0, I)) per row: 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)."""

    @staticmethod
    def forward(ctx: FunctionCtx, mu: Tensor, logvar: Tensor) -> Tensor:
        var = logvar.exp()
        ctx.save_for_backward(mu, var)
        return 0.5 * (mu * mu + var - 1 - logvar).sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        mu, var = ctx.saved_tensors
        g = grad.unsqueeze(1)
        gmu = mu * g if ctx.needs_input_grad[0] else None
        glv = 0.5 * (var - 1) * g if ctx.needs_input_grad[1] else None
        return gmu, glv


# --------------------------------------------------------------------------------------------- wrappers
def _rows(t: Tensor, name: str) -> Tensor:
    if t.dim() < 2:
        raise ValueError(f"{name}: expected shape (B, D), got {tuple(t.shape)}")
    return t.flatten(1)


def bce_with_logits(logits: Tensor, target: Tensor) -> Tensor:
    """Bernoulli negative log-likelihood of target under sigmoid(logits), summed per row -> (B,).

    Inputs are (B, D); any further dimensions are flattened into D.
    """
    if logits.shape != target.shape:
        raise ValueError(f"bce_with_logits: logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    return BCEWithLogitsFn.apply(_rows(logits, "logits"), _rows(target, "target").to(logits.dtype))


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row -> (B,), for mu and logvar of shape (B, D)."""
    if mu.shape != logvar.shape:
        raise ValueError(f"gaussian_kl: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ")
    return GaussianKLFn.apply(_rows(mu, "mu"), _rows(logvar, "logvar"))
