"""The trainer: whole dataset in memory, batches by index, Adam, resumable to the bit.

Randomness is derived from (seed, epoch) at the start of every epoch, so resuming from the
checkpoint written after epoch e replays epoch e+1 exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import safetensors.torch
import torch
from tqdm.auto import tqdm

from vae_hub.checks import first_nonfinite, nonfinite_message
from vae_hub.cli import hardware
from vae_hub.data.mnist import Split, color_table, make_inputs, shown_dataset, split_seed
from vae_hub.files.tensors import save_safetensors
from vae_hub.model.config import VAEConfig
from vae_hub.model.objectives import Terms, kl_weight_at, training_terms
from vae_hub.model.vae import VAE, fast_layout
from vae_hub.training.precision import FP32, Choice, autocast, choose

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
    """The rate at ``step`` of ``total``: a linear warm-up over the first lr_warmup of the steps, then the schedule
    (constant, cosine or linear decay to 0) over the rest. Without a warm-up the cosine is exactly the original one."""
    warm = config.lr_warmup * total
    if step < warm:  # capped: a warm-up shorter than a step (tiny runs) must not overshoot lr
        return config.lr * min(1.0, (step + 1) / warm)
    done, span = min(step - warm, total - warm), total - warm
    if config.lr_schedule == "cosine":  # pi * done / span in this order: the bundled cosine models' exact rates
        return config.lr * 0.5 * (1 + math.cos(math.pi * done / span))
    if config.lr_schedule == "linear":
        return config.lr * (1 - done / span)
    return config.lr


def temperature_at(config: VAEConfig, step: int, total: int) -> float:
    """Exponential decay from tau_start that reaches tau_min after anneal_frac of training, then holds."""
    frac = min(1.0, step / max(1.0, config.anneal_frac * total))
    return config.tau_start * (config.tau_min / config.tau_start) ** frac


def _seed(config: VAEConfig, epoch: int, stream: int) -> int:
    """A distinct seed per (config seed, epoch, stream): streams 0-100 fit between consecutive epochs (x 101),
    and the prime 1_000_003 keeps seeds of different config seeds apart for runs under ~9,900 epochs.
    Reduced mod 2**62 to stay within torch's seed range."""
    return (config.seed * 1_000_003 + epoch * 101 + stream) % (2**62)


@torch.no_grad()
def evaluate_elbo(model: VAE, batcher: Batcher, batch_size: int = 1000, seed: int = 1234,
                  precision: Choice = FP32) -> dict[str, float]:
    """Mean recon, KL and loss in nats per image over a split (one posterior sample per image), the networks
    under ``precision``'s autocast (the terms themselves are float32 either way)."""
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    gen = torch.Generator(device=batcher.images.device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(batcher), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(batcher)), device=batcher.images.device)
        with autocast(precision, batcher.images.device):
            out = model(*batcher.get(idx, gen))
        sums += torch.stack([out.recon.sum(), out.kl.sum(), out.loss.sum()]).double().cpu()
    model.train(was_training)
    recon, kl, loss = (sums / len(batcher)).tolist()
    return {"recon": recon, "kl": kl, "loss": loss}


def make_optimizer(model: VAE) -> torch.optim.Optimizer:
    """The model's kit's Adam (fused torch Adam, or the hand-written one of the scratch kit)."""
    return model.kit.adam(model.parameters(), model.config.lr)


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
    save_safetensors(tensors, path, meta)  # atomic: a crash or a full disk leaves the previous checkpoint intact


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
@dataclass
class EpochRecord:
    """One line of history.json: the epoch's mean train and test terms (nats/image) and how it ran."""

    epoch: int
    train_loss: float
    train_recon: float
    train_kl: float
    test_loss: float
    test_recon: float
    test_kl: float
    seconds: float
    lr: float
    temperature: float | None
    grad_norms: dict[str, float]  # per parameter, mean over the sampled steps
    precision: str  # "fp32", or the autocast dtype the networks ran in ("bf16", "fp16")


class Trained(NamedTuple):
    model: VAE  # in eval mode
    history: list[dict]  # EpochRecord dicts, one per epoch
    progress: dict[str, torch.Tensor]  # uint8 frames for the progress figure: inputs, samples, recons


@dataclass
class Run:
    """What every epoch of one training run shares."""

    config: VAEConfig
    model: VAE
    opt: torch.optim.Optimizer
    train: Batcher
    test: Batcher
    device: torch.device
    ckpt: Path
    steps: int  # per epoch
    precision: Choice = FP32
    scaler: torch.amp.GradScaler | None = None  # fp16 only: loss scaling keeps small gradients from underflowing

    @property
    def total(self) -> int:
        return self.config.epochs * self.steps


def _probes(run: Run) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fixed probes for the progressive-generation view: test digits, prior codes and labels."""
    c, device = run.config, run.device
    g = torch.Generator().manual_seed(c.seed + 7)
    idx = torch.randperm(len(run.test), generator=g)[:N_PROGRESS].to(device)
    torch.manual_seed(c.seed + 7)
    z = run.model.prior.sample((N_PROGRESS,)).to(device)
    y = torch.arange(N_PROGRESS, device=device) % c.n_classes if c.conditional else None
    return idx, z, y


def _terms(run: Run, idx: torch.Tensor, gen_data: torch.Generator, step: int) -> Terms:
    """The objective's per-image terms for one batch, the networks under the run's autocast (if any)."""
    with autocast(run.precision, run.device):
        return training_terms(run.model, *run.train.get(idx, gen_data), kl_weight_at(run.config, step, run.steps))


def _backward(run: Run, loss: torch.Tensor) -> None:
    if run.scaler is None:
        loss.backward()
    else:  # fp16: scaled backward, then true gradients (the sampled norms and Adam see them unscaled)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.opt)


def _update(run: Run) -> None:
    if run.scaler is None:
        run.opt.step()
    else:
        run.scaler.step(run.opt)
        run.scaler.update()


def train_epoch(run: Run, epoch: int, progress_bar: bool = False,
                on_step: Callable[[VAE], None] | None = None) -> tuple[list[float], dict[str, float], float]:
    """One pass over the training split, seeded by (seed, epoch) alone so a resumed run replays it exactly.
    ``on_step(model)`` runs after every update. Returns the mean (loss, recon, kl) per image, the sampled
    per-parameter gradient norms and the seconds."""
    c, model, opt = run.config, run.model, run.opt
    t0 = time.perf_counter()
    torch.manual_seed(_seed(c, epoch, 0))  # reparameterisation noise
    perm = torch.randperm(len(run.train), generator=torch.Generator().manual_seed(_seed(c, epoch, 1))).to(run.device)
    gen_data = torch.Generator(device=run.device).manual_seed(_seed(c, epoch, 2))  # binarisation
    sums = torch.zeros(3, device=run.device)
    grad_sums: dict[str, float] = {}
    n_grad = 0
    bar = tqdm(range(run.steps), desc=f"{c.variant} {epoch}/{c.epochs}", disable=not progress_bar, leave=False,
               mininterval=0.5)
    for i in bar:
        step = (epoch - 1) * run.steps + i
        for group in opt.param_groups:
            group["lr"] = lr_at(c, step, run.total)
        if c.n_cat:
            model.temperature.fill_(temperature_at(c, step, run.total))
        out = _terms(run, perm[i * c.batch_size:(i + 1) * c.batch_size], gen_data, step)
        loss = out.loss.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(nonfinite_message(c.variant, f"loss ({loss.item()})", epoch, i, run.ckpt))
        opt.zero_grad(set_to_none=True)
        _backward(run, loss)
        if i % 50 == 0:  # per-layer gradient norms, sampled: the "seeing inside" view
            for name, p in model.named_parameters():
                if p.grad is not None:
                    grad_sums[name] = grad_sums.get(name, 0.0) + float(p.grad.norm())
            n_grad += 1
        _update(run)
        if on_step is not None:
            on_step(model)
        with torch.no_grad():
            sums += torch.stack([out.loss.sum(), out.recon.sum(), out.kl.sum()])
        if progress_bar and i % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.2f}")
    bar.close()
    if (bad := first_nonfinite(model.state_dict())) is not None:  # the last step can break the weights unseen
        raise FloatingPointError(nonfinite_message(c.variant, f"weights ({bad})", epoch, run.steps - 1, run.ckpt))
    return (sums / len(run.train)).tolist(), {k: v / max(n_grad, 1) for k, v in grad_sums.items()}, \
        time.perf_counter() - t0


@torch.no_grad()
def progress_frame(run: Run, probes: tuple, progress: dict[str, torch.Tensor]) -> None:
    """Append this epoch's fixed-z samples and probe reconstructions (uint8) to ``progress``."""
    idx, z, y = probes
    model = run.model.eval()
    samples = torch.sigmoid(model.decode(z, y))
    px, py = run.test.get(idx)
    recons = model.reconstruct(px, py)
    model.train()
    for k, v in {"samples": samples, "recons": recons}.items():
        v = (v * 255).round().to(torch.uint8).cpu()[None]
        progress[k] = torch.cat([progress[k], v]) if k in progress else v
    progress["inputs"] = (px * 255).round().to(torch.uint8).cpu()


def _start(run: Run, resume: bool, log: Callable[[str], None]) -> tuple[list[dict], dict[str, torch.Tensor], int, float]:
    """(history, progress, first epoch, seconds so far): from the checkpoint when resuming, else empty.
    Sets the run's precision: as the checkpoint trained (``auto`` decides once per run), else chosen now."""
    c = run.config
    if not run.ckpt.exists():
        run.precision = choose(c.precision, run.device, run.model, c.batch_size)
        _use_precision(run, None, log)
        return [], {}, 1, 0.0
    if not resume:
        raise FileExistsError(f"{run.ckpt} exists from an earlier run: pass --resume to continue it "
                              "or delete the folder to start afresh")
    state, progress = load_checkpoint(run.ckpt, run.model, run.opt)
    if state["config"] != run.config.to_dict():
        raise ValueError(f"{run.ckpt} was written for a different config/recipe; delete it to start afresh")
    log(f"[{run.config.variant}] resuming after epoch {state['epoch']} of {run.config.epochs}")
    run.precision = Choice(state.get("precision", "fp32"), "as the checkpoint was trained")
    _use_precision(run, state.get("scaler"), log)
    return state["history"], progress, state["epoch"] + 1, state["elapsed"]


def _use_precision(run: Run, scaler_state: dict | None, log: Callable[[str], None]) -> None:
    """Log the run's precision and why; fp16 gets a loss scaler (restored from the checkpoint when resuming)."""
    log(f"[{run.config.variant}] precision {run.precision.name}: {run.precision.reason}")
    if run.precision.name == "fp16":
        run.scaler = torch.amp.GradScaler(run.device.type)
        if scaler_state:
            run.scaler.load_state_dict(scaler_state)


def _new_run(config: VAEConfig, train: Split, test: Split, out_dir: Path, device: torch.device) -> Run:
    torch.manual_seed(config.seed)
    model = VAE(config).to(device)
    if fast_layout(config):
        model = model.to(memory_format=torch.channels_last)
    train_b = Batcher(train, config, device)
    return Run(config, model, make_optimizer(model), train_b, Batcher(test, config, device), device,
               out_dir / CHECKPOINT, math.ceil(len(train_b) / config.batch_size))


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
    on_step: Callable[[VAE], None] | None = None,
) -> Trained:
    """Train one variant; checkpoint after every epoch into out_dir/checkpoint/. Returns (model, history, progress).

    ``stop_after_epoch`` ends the run early (as an interruption would) after that epoch's checkpoint.
    ``on_epoch(record, frame)`` runs after each epoch's checkpoint with its history record and progress
    images (uint8 "samples", "recons", "inputs"); an exception it raises (e.g. ``optuna.TrialPruned``)
    ends training there, with that epoch's checkpoint kept. ``on_step(model)`` runs after every update (an
    average of the weights, say); it must not change the model, or a resumed run no longer replays the same.
    """
    run = _new_run(config, train, test, Path(out_dir), resolve_device(device) if isinstance(device, str) else device)
    probes = _probes(run)
    history, progress, start_epoch, elapsed = _start(run, resume, log)
    run.model.train()
    for epoch in range(start_epoch, config.epochs + 1):
        tr, grad_norms, seconds = train_epoch(run, epoch, progress_bar, on_step)
        elapsed += seconds
        # earlier epochs' test pass runs as training does (bf16 halves a convolutional model's, and moves the loss
        # by ~0.01 nat); the last one, the number on the card, in float32 as the model is served
        te = evaluate_elbo(run.model, run.test, precision=run.precision if epoch < config.epochs else FP32)
        record = EpochRecord(epoch, *tr, te["loss"], te["recon"], te["kl"], seconds, run.opt.param_groups[0]["lr"],
                             float(run.model.temperature) if config.n_cat else None, grad_norms, run.precision.name)
        history.append(dataclasses.asdict(record))
        progress_frame(run, probes, progress)
        log(f"[{config.variant}] epoch {epoch}/{config.epochs}: train {tr[0]:.2f}  test {te['loss']:.2f} "
            f"(recon {te['recon']:.2f} + kl {te['kl']:.2f})  {seconds:.1f}s")
        state = {"epoch": epoch, "history": history, "elapsed": elapsed, "config": config.to_dict(),
                 "precision": run.precision.name, "scaler": run.scaler.state_dict() if run.scaler else None}
        save_checkpoint(run.ckpt, run.model, run.opt, state, progress)
        if on_epoch is not None:
            on_epoch(history[-1], {"samples": progress["samples"][-1], "recons": progress["recons"][-1],
                                   "inputs": progress["inputs"]})
        if stop_after_epoch is not None and stop_after_epoch <= epoch < config.epochs:
            break
    return Trained(run.model.eval(), history, progress)


def run_info(config: VAEConfig, history: list[dict], train: Split, test: Split, dataset: str, device: torch.device,
             quick: bool = False) -> dict:
    """What a model folder's history.json records about its run beside the epochs: recipe, data, time, hardware."""
    return {"recipe": dataclasses.asdict(config), "dataset": shown_dataset(dataset), "n_train": len(train),
            "n_test": len(test), "seconds_total": sum(h["seconds"] for h in history),
            "hardware": hardware() if device.type == "cpu" else f"{device} ({hardware()})", "quick": quick,
            "precision": history[-1]["precision"]}
