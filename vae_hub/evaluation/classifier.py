"""A small MNIST classifier: the judge for sample quality (Fréchet distance, conditional accuracy).

Trained once and shipped in ``pretrained/mnist-classifier/`` as safetensors + config.json + a card.
Its 128-D penultimate features play the role Inception features play for FID: the Fréchet distance
between feature Gaussians of generated and real digits.

    python -m vae_hub.evaluation.classifier --dataset ylecun/mnist --out pretrained/mnist-classifier
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from torch import nn

from vae_hub.checks import check_field_types, check_range, check_sizes
from vae_hub.data.mnist import DEFAULT_DATASET, Split, load_split, shown_dataset
from vae_hub.files.weights import HubModel
from vae_hub.hub.cards import model_card, save_card
from vae_hub.hub.folders import CONFIG_NAME, WEIGHTS_NAME, bundled_dir, config_fields, read_config_json, write_atomic

MODEL_TYPE = "vae-hub-mnist-classifier"
FOLDER_NAME = "mnist-classifier"


@dataclass
class ClassifierConfig:
    """Architecture and recipe; serialised as config.json (``model_type`` marks it as not a VAE)."""

    model_type: str = MODEL_TYPE
    channels: list[int] = field(default_factory=lambda: [16, 32])
    hidden: int = 128  # penultimate width: the feature space of the Fréchet distance
    dropout: float = 0.25
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    max_shift: int = 2  # random translation (pixels) as augmentation
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_sizes("channels", self.channels, 1, 1024, (2, 2))
        check_range("hidden", self.hidden, 1, 16384)
        for name, lo, hi in (("dropout", 0, 0.99), ("epochs", 1, 10_000), ("batch_size", 1, 65_536), ("lr", 0, 1),
                             ("max_shift", 0, 14), ("seed", 0, 2**63 - 1)):
            check_range(name, getattr(self, name), lo, hi, lo_open=name == "lr")

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> ClassifierConfig:
        if not isinstance(data, dict) or data.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{source}: not a {MODEL_TYPE} config")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}")
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


class MNISTClassifier(nn.Module, HubModel, library_name="vae-hub", license="cc-by-sa-3.0",
                      tags=["mnist", "image-classification", "vae-hub", "evaluation"], pipeline_tag="image-classification"):
    """conv3x3(16) → pool → conv3x3(32) → pool → FC 128 (features) → FC 10. Input (B, 1, 28, 28) in [0, 1].

    Saved and loaded as every vae-hub model is (``vae_hub.files.weights.HubModel``): strictly, without pickle.
    """

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c1, c2 = self.config.channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, self.config.hidden)
        self.fc2 = nn.Linear(self.config.hidden, 10)
        self.drop = nn.Dropout(self.config.dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, hidden), after the ReLU."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(self.drop(h.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.features(x)))

    @torch.no_grad()
    def predict_features(self, x: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, features) for images in [0, 1], batched, in eval mode."""
        was = self.training
        self.eval()
        logits, feats = [], []
        for i in range(0, len(x), batch):
            f = self.features(x[i:i + batch].float())
            feats.append(f)
            logits.append(self.fc2(f))
        self.train(was)
        return torch.cat(logits), torch.cat(feats)


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """(B, C, 28, 28) in [0, 1] → (B, 1, 28, 28): colour digits are x·colour with max channel 1, so the
    maximum over channels recovers the stroke intensity."""
    return images if images.shape[1] == 1 else images.amax(1, keepdim=True)


def _shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    # one random translation per batch-quarter keeps it cheap but varied
    if max_shift <= 0:
        return x
    out = torch.empty_like(x)
    for part in torch.arange(len(x)).chunk(4):
        dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=g).tolist()
        out[part] = torch.roll(x[part], shifts=(dy, dx), dims=(2, 3))
    return out


@torch.no_grad()
def accuracy(model: MNISTClassifier, split: Split) -> float:
    logits, _ = model.predict_features(split.images.float() / 255)
    return float((logits.argmax(1) == split.labels).float().mean())


def train_classifier(train: Split, test: Split, config: ClassifierConfig | None = None,
                     log=print) -> tuple[MNISTClassifier, list[dict]]:
    """Adam with a cosine schedule over ``epochs``; returns (model in eval mode, per-epoch history)."""
    config = config or ClassifierConfig()
    torch.manual_seed(config.seed)
    model = MNISTClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    x_all, y_all = train.images.float() / 255, train.labels
    steps = math.ceil(len(train) / config.batch_size)
    total, history = config.epochs * steps, []
    g = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        t0, model = time.perf_counter(), model.train()
        perm = torch.randperm(len(train), generator=g)
        loss_sum = 0.0
        for i in range(steps):
            step = (epoch - 1) * steps + i
            for group in opt.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
            loss = F.cross_entropy(model(_shift(x_all[idx], config.max_shift, g)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        seconds = time.perf_counter() - t0
        acc = accuracy(model, test)
        history.append({"epoch": epoch, "train_loss": loss_sum / len(train), "test_accuracy": acc, "seconds": seconds})
        log(f"[classifier] epoch {epoch}/{config.epochs}: train loss {loss_sum / len(train):.4f}  "
            f"test accuracy {100 * acc:.2f}%  {seconds:.1f}s")
    return model.eval(), history


# ---------------------------------------------------------------------------- save / load
def save_classifier(model: MNISTClassifier, folder: str | Path, history: list[dict], info: dict) -> Path:
    """config.json, model.safetensors (float32), history.json and, last, the README.md model card."""
    folder = Path(folder)
    model.save_pretrained(folder)
    write_atomic(folder / "history.json", json.dumps({**info, "epochs": history}, indent=1))
    save_card(render_card(folder), folder)
    return folder


def load_classifier(folder: str | Path | None = None, device: str | torch.device = "cpu") -> MNISTClassifier:
    """Strict, pickle-free load from a folder (default: the bundled ``pretrained/mnist-classifier``)."""
    folder = Path(bundled_dir() / FOLDER_NAME if folder is None else folder)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{folder}: no classifier here (expected {CONFIG_NAME} and {WEIGHTS_NAME}); train one with "
                                f"python -m vae_hub.evaluation.classifier --dataset ylecun/mnist --out {folder}")
    return MNISTClassifier.from_folder(folder, map_location=device)


def is_classifier_folder(folder: str | Path) -> bool:
    return config_fields(folder).get("model_type") == MODEL_TYPE  # any JSON, however broken or nested, is safe


def render_card(folder: str | Path) -> ModelCard:
    """The classifier's card from its config.json and history.json, with vae-hub's shared front matter."""
    folder = Path(folder)
    c = ClassifierConfig.from_dict(read_config_json(folder), str(folder / CONFIG_NAME))
    hist = json.loads((folder / "history.json").read_text())
    acc = hist["epochs"][-1]["test_accuracy"]
    return model_card(_card_body(c, hist, acc), model_name="vae-hub/mnist-classifier",
                      tags=["mnist", "image-classification", "vae-hub", "evaluation"], task="image-classification",
                      metrics=[("accuracy", "test accuracy", acc)])


def _card_body(c: ClassifierConfig, hist: dict, acc: float) -> str:
    rows = "\n".join(f"| {h['epoch']} | {h['train_loss']:.4f} | {100 * h['test_accuracy']:.2f}% | {h['seconds']:.0f} s |"
                     for h in hist["epochs"])
    return f"""
# mnist-classifier

A small convolutional MNIST classifier, the judge of vae-hub's sample-quality metrics: its
{c.hidden}-D penultimate features give the Fréchet distance between generated and real digits (as Inception
features do for FID), and its predictions give the conditional accuracy of class-conditional samples.
It is not part of the VAE family and is not meant as a state-of-the-art classifier.

**Test accuracy: {100 * acc:.2f}%** on the 10,000 MNIST test digits.

## Load it

```python
from vae_hub.evaluation.classifier import load_classifier, to_gray
clf = load_classifier("pretrained/mnist-classifier")       # safetensors + config.json, no pickle
logits, features = clf.predict_features(to_gray(images))    # images (B, C, 28, 28) in [0, 1]
```

## Architecture

conv 3×3 ({c.channels[0]}) → ReLU → max-pool 2 → conv 3×3 ({c.channels[1]}) → ReLU → max-pool 2 →
dropout {c.dropout:g} → FC {c.hidden} → ReLU (**features**) → dropout → FC 10.
Input: grayscale intensities in [0, 1], shape (B, 1, 28, 28). Colour digits: take the maximum over channels.

## Training recipe

| setting | value |
|---|---|
| data | MNIST train split, {hist.get("n_train", "?")} images, grayscale intensities |
| augmentation | random translations of up to {c.max_shift} pixels |
| epochs | {c.epochs} |
| batch size | {c.batch_size} |
| optimizer | Adam, lr {c.lr:g}, cosine schedule to 0 |
| seed | {c.seed} |
| training time | {hist.get("seconds_total", 0):.0f} s |
| hardware | {hist.get("hardware", "?")} |

| epoch | train loss | test accuracy | time |
|---|---|---|---|
{rows}

Reproduce: `python -m vae_hub.evaluation.classifier --dataset ylecun/mnist --out pretrained/mnist-classifier`

## Limitations

- Judges digits only: its features see shape, not colour (colour digits are reduced to grayscale first).
- A Fréchet distance in these features is comparable only with numbers computed with this classifier
  and the same sample counts; it is not FID.
- MNIST is CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher Burges); these weights follow it.
"""


def main(argv: list[str] | None = None) -> int:
    from vae_hub.cli import hardware

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id, or local folder/parquet in the ylecun/mnist layout")
    p.add_argument("--out", default=f"pretrained/{FOLDER_NAME}")
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--min-accuracy", type=float, default=0.99, help="fail (exit 1) below this test accuracy")
    args = p.parse_args(argv)
    try:
        train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    config = ClassifierConfig(**({"epochs": args.epochs} if args.epochs else {}))
    model, history = train_classifier(train, test, config)
    info = {"dataset": shown_dataset(args.dataset), "n_train": len(train), "n_test": len(test),
            "seconds_total": sum(h["seconds"] for h in history), "hardware": hardware()}
    save_classifier(model, args.out, history, info)
    acc = history[-1]["test_accuracy"]
    print(f"saved {args.out}: test accuracy {100 * acc:.2f}%")
    return 0 if acc >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
