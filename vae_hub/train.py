"""The trainer: whole dataset in memory, batches by index, Adam, resumable to the bit.

Randomness is derived from (seed, epoch) at the start of every epoch, so resuming from the
checkpoint written after epoch e replays epoch e+1 exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import torch
from tqdm.auto import tqdm

from .config import VAEConfig
from .data import Split, color_table, make_inputs, split_seed
from .models import VAE, fast_layout

CHECKPOINT = "checkpoint/last.safetensors"
N_PROGRESS = 16  # prior samples (fixed z) and reconstructions saved every epoch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or mps")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch.cuda.is_available() is False")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps asked for, but MPS is not available")
    return torch.device(name)


class Batcher:
    """Model inputs for a split, taken by index with no per-sample Python work."""

    def __init__(self, split: Split, config: VAEConfig, device: torch.device):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.kind = config.data
        self.colors = (color_table(len(split), split_seed(config.color_seed, split.name)).to(device)
                       if config.data == "color" else None)
        self.conditional = config.conditional
        self.channels_last = fast_layout(config)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, idx: torch.Tensor, generator: torch.Generator | None = None):
        colors = self.colors[idx] if self.colors is not None else None
        x = make_inputs(self.images[idx], self.kind, colors, generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (self.labels[idx] if self.conditional else None)


def lr_at(config: VAEConfig, step: int, total: int) -> float:
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    return config.lr


def temperature_at(config: VAEConfig, step: int, total: int) -> float:
    """Exponential decay from tau_start that reaches tau_min after anneal_frac of training, then holds."""
    frac = min(1.0, step / max(1.0, config.anneal_frac * total))
    return config.tau_start * (config.tau_min / config.tau_start) ** frac


def _seed(config: VAEConfig, epoch: int, stream: int) -> int:
    return (config.seed * 1_000_003 + epoch * 101 + stream) % (2**62)


@torch.no_grad()
def evaluate_elbo(model: VAE, batcher: Batcher, batch_size: int = 1000, seed: int = 1234) -> dict[str, float]:
    """Mean recon, KL and loss in nats per image over a split (one posterior sample per image)."""
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    gen = torch.Generator(device=batcher.images.device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(batcher), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(batcher)), device=batcher.images.device)
        out = model(*batcher.get(idx, gen))
        sums += torch.stack([out.recon.sum(), out.kl.sum(), out.loss.sum()]).double().cpu()
    model.train(was_training)
    recon, kl, loss = (sums / len(batcher)).tolist()
    return {"recon": recon, "kl": kl, "loss": loss}


def make_optimizer(model: VAE) -> torch.optim.Optimizer:
    if model.config.layers == "scratch":
        from .scratch import Adam

        return Adam(model.parameters(), lr=model.config.lr)
    # the fused kernel does the whole update in one pass per tensor: ~10-15% faster steps for the MLPs here
    return torch.optim.Adam(model.parameters(), lr=model.config.lr, fused=True)


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: VAE, opt: torch.optim.Optimizer, state: dict,
                    progress: dict[str, torch.Tensor]) -> None:
    """One safetensors file (model, optimizer, progress images) + JSON state, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, pstate in osd["state"].items():
        for k, v in pstate.items():
            tensors[f"optim.{pid}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tensors.update({f"progress.{k}": v.contiguous() for k, v in progress.items()})
    meta = {"state": json.dumps(state), "param_groups": json.dumps(osd["param_groups"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    safetensors.torch.save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint intact


def load_checkpoint(path: Path, model: VAE, opt: torch.optim.Optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state, groups = json.loads(meta["state"]), json.loads(meta["param_groups"])
    except Exception as e:
        raise ValueError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); delete it to start afresh") from None
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    params = [p for g in opt.param_groups for p in g["params"]]
    optim_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            p = params[int(pid)]
            # moments take their parameter's memory layout (fused Adam walks both buffers in storage order);
            # fused Adam also keeps `step` on the parameters' device
            optim_state.setdefault(int(pid), {})[name] = torch.empty_like(p).copy_(v) if v.shape == p.shape else v.to(device)
    opt.load_state_dict({"state": optim_state, "param_groups": groups})
    progress = {k[9:]: v for k, v in tensors.items() if k.startswith("progress.")}
    return state, progress


# ---------------------------------------------------------------------------- training
def fit(
    config: VAEConfig,
    train: Split,
    test: Split,
    out_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    resume: bool = False,
    progress_bar: bool = True,
    log: Callable[[str], None] = print,
    stop_after_epoch: int | None = None,
    on_epoch: Callable[[dict, dict[str, torch.Tensor]], None] | None = None,
) -> tuple[VAE, list[dict]]:
    """Train one variant; checkpoint after every epoch into out_dir/checkpoint/. Returns (model, history).

    ``stop_after_epoch`` ends the run early (as an interruption would) after that epoch's checkpoint.
    ``on_epoch(record, frame)`` runs after each epoch's checkpoint with its history record and progress
    images (uint8 "samples", "recons", "inputs"); an exception it raises (e.g. ``optuna.TrialPruned``)
    ends training there, with that epoch's checkpoint kept.
    """
    out_dir = Path(out_dir)
    device = resolve_device(device) if isinstance(device, str) else device
    ckpt = out_dir / CHECKPOINT
    torch.manual_seed(config.seed)
    model = VAE(config).to(device)
    if fast_layout(config):
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model)
    train_b, test_b = Batcher(train, config, device), Batcher(test, config, device)
    steps_per_epoch = math.ceil(len(train_b) / config.batch_size)
    total = config.epochs * steps_per_epoch

    # fixed probes for the progressive-generation view: prior z and test digits
    g = torch.Generator().manual_seed(config.seed + 7)
    probe_idx = torch.randperm(len(test_b), generator=g)[:N_PROGRESS].to(device)
    torch.manual_seed(config.seed + 7)
    probe_z = model.prior.sample((N_PROGRESS,)).to(device)
    probe_y = torch.arange(N_PROGRESS, device=device) % config.n_classes if config.conditional else None

    history: list[dict] = []
    progress: dict[str, torch.Tensor] = {}
    start_epoch, elapsed = 1, 0.0
    if ckpt.exists():
        if not resume:
            raise FileExistsError(f"{ckpt} exists from an earlier run: pass --resume to continue it "
                                  "or delete the folder to start afresh")
        state, progress = load_checkpoint(ckpt, model, opt)
        if state["config"] != config.to_dict():
            raise ValueError(f"{ckpt} was written for a different config/recipe; delete it to start afresh")
        history, start_epoch, elapsed = state["history"], state["epoch"] + 1, state["elapsed"]
        log(f"[{config.variant}] resuming after epoch {state['epoch']} of {config.epochs}")

    model.train()
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        torch.manual_seed(_seed(config, epoch, 0))  # reparameterisation noise
        gen_perm = torch.Generator().manual_seed(_seed(config, epoch, 1))
        gen_data = torch.Generator(device=device).manual_seed(_seed(config, epoch, 2))  # binarisation
        perm = torch.randperm(len(train_b), generator=gen_perm).to(device)
        sums = torch.zeros(3, device=device)
        grad_sums: dict[str, float] = {}
        n_grad = 0
        bar = tqdm(range(steps_per_epoch), desc=f"{config.variant} {epoch}/{config.epochs}",
                   disable=not progress_bar, leave=False, mininterval=0.5)
        for i in bar:
            step = (epoch - 1) * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(config, step, total)
            if config.n_cat:
                model.temperature.fill_(temperature_at(config, step, total))
            out = model(*train_b.get(perm[i * config.batch_size:(i + 1) * config.batch_size], gen_data))
            loss = out.loss.mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{config.variant}: non-finite loss ({loss.item()}) at epoch {epoch}, step {i}; "
                                         f"the last good checkpoint is kept at {ckpt if ckpt.exists() else '(none yet)'}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if i % 50 == 0:  # per-layer gradient norms, sampled: the "seeing inside" view
                for name, p in model.named_parameters():
                    if p.grad is not None:
                        grad_sums[name] = grad_sums.get(name, 0.0) + float(p.grad.norm())
                n_grad += 1
            opt.step()
            with torch.no_grad():
                sums += torch.stack([out.loss.sum(), out.recon.sum(), out.kl.sum()])
            if progress_bar and i % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.2f}")
        bar.close()
        train_sec = time.perf_counter() - t0
        elapsed += train_sec
        test = evaluate_elbo(model, test_b)
        tr = (sums / len(train_b)).tolist()
        record = {
            "epoch": epoch, "train_loss": tr[0], "train_recon": tr[1], "train_kl": tr[2],
            "test_loss": test["loss"], "test_recon": test["recon"], "test_kl": test["kl"],
            "seconds": train_sec, "lr": opt.param_groups[0]["lr"],
            "temperature": float(model.temperature) if config.n_cat else None,
            "grad_norms": {k: v / max(n_grad, 1) for k, v in grad_sums.items()},
        }
        history.append(record)
        with torch.no_grad():
            model.eval()
            samples = torch.sigmoid(model.decode(probe_z, probe_y))
            px, py = test_b.get(probe_idx)
            recons = model.reconstruct(px, py)
            model.train()
        frame = {"samples": samples, "recons": recons}
        for k, v in frame.items():
            v = (v * 255).round().to(torch.uint8).cpu()[None]
            progress[k] = torch.cat([progress[k], v]) if k in progress else v
        progress["inputs"] = (px * 255).round().to(torch.uint8).cpu()
        log(f"[{config.variant}] epoch {epoch}/{config.epochs}: train {tr[0]:.2f}  test {test['loss']:.2f} "
            f"(recon {test['recon']:.2f} + kl {test['kl']:.2f})  {train_sec:.1f}s")
        state = {"epoch": epoch, "history": history, "elapsed": elapsed, "config": config.to_dict()}
        save_checkpoint(ckpt, model, opt, state, progress)
        if on_epoch is not None:
            on_epoch(record, {"samples": progress["samples"][-1], "recons": progress["recons"][-1],
                              "inputs": progress["inputs"]})
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < config.epochs:
            break
    model.eval()
    model.progress = progress  # for the figures
    return model, history


def hardware() -> str:
    dev = "CPU"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return f"{dev}, {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
