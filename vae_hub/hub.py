"""Save, load and publish: safetensors + config.json + a model card with real numbers.

A model folder (what train.py writes and what is pushed to the Hub) holds:
model.safetensors, config.json, encoder.onnx and decoder.onnx (vae_hub.onnx), README.md (the card),
history.json, metrics.json (once evaluated), figures/*.png. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

from .checks import check_header, expected_tensors, read_json
from .config import VAEConfig
from .models import VAE, WEIGHTS_NAME
from .variants import VARIANTS

DEFAULT_NAMESPACE = "vae-hub"
REPO_PREFIX = "vae-hub-"
PUSH_IGNORE = ["checkpoint/*", "*.tmp*", ".*"]
WHY = {  # "what the variant is and why it exists", beyond its one-line description
    "vae-z2": "Two latent dimensions are too few for sharp digits, but the whole code space can be drawn: "
              "it powers the latent map, the drawing pad and the manifold explorer.",
    "vae-z3": "One more dimension than the map shows: the explorer slices it at a chosen z3.",
    "vae-z2-corr": "Shows what a prior does to the code: with the exact KL to a tilted prior the "
                   "aggregate posterior tilts too. (A popular tutorial samples from such a prior but keeps "
                   "the isotropic KL; this one does not.)",
    "vae-z20": "The reference point everyone knows: the pytorch/examples recipe, trained by our faster trainer.",
    "conv-vae-z20": "Convolutions share weights across the image and fit digits better than the MLP at a "
                    "similar size.",
    "scratch-conv-vae": "Teaching model: the same network as conv-vae-z20 with every layer's backward pass "
                        "written by hand, to show what the library does for you and what it costs.",
    "conv-vae-bin": "The one model trained for likelihood, on binary digits drawn afresh every batch: its "
                    "importance-sampled NLL is the number to set beside published binarized-MNIST results.",
    "cvae": "With the label given, the latent needs to hold only style: pick a digit and sample.",
    "color-vae": "Baseline for the colour family: one Gaussian code must hold stroke colour and digit shape.",
    "color-gumbel": "A purely discrete code: which categories carry colour and which carry shape?",
    "color-joint": "Continuous and discrete codes side by side, as in JointVAE.",
}


def bundled_dir() -> Path:
    """The repository's bundled pretrained set (override with VAE_HUB_PRETRAINED)."""
    return Path(os.environ.get("VAE_HUB_PRETRAINED", Path(__file__).resolve().parent.parent / "pretrained"))


def repo_id_for(variant: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{namespace}/{REPO_PREFIX}{variant}"


def read_config(folder: str | Path) -> VAEConfig:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a vae-hub model folder holds config.json and {WEIGHTS_NAME}")
    config = VAEConfig.from_dict(read_json(path), str(path))
    if config.variant not in VARIANTS:
        raise ValueError(f"{path}: unknown variant {config.variant!r}; known variants: {', '.join(VARIANTS)}")
    return config


def model_folders(root: str | Path) -> list[Path]:
    """Complete VAE model folders under root (or root itself), in registry order; the evaluation classifier
    and unfinished runs are skipped."""
    from .classifier import is_classifier_folder

    root = Path(root)

    def complete(p: Path) -> bool:
        return all((p / f).is_file() for f in ("config.json", WEIGHTS_NAME, "history.json", "README.md"))

    if (root / "config.json").is_file():
        return [root] if not is_classifier_folder(root) else []
    found = [p for p in sorted(root.iterdir()) if p.is_dir() and complete(p) and not is_classifier_folder(p)]
    order = {name: i for i, name in enumerate(VARIANTS)}
    return sorted(found, key=lambda p: (order.get(json.loads((p / "config.json").read_text()).get("variant"), 999), p.name))


def _resolve(name_or_path: str, revision: str | None = None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path in VARIANTS:
        local = bundled_dir() / name_or_path
        if local.is_dir():
            return local
        name_or_path = repo_id_for(name_or_path)
    elif path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        raise FileNotFoundError(f"{name_or_path!r} is not a model folder, a bundled variant ({', '.join(VARIANTS)}) "
                                "or a Hub repo id of the form 'namespace/name'")
    try:
        return Path(snapshot_download(name_or_path, revision=revision,
                                      allow_patterns=["config.json", WEIGHTS_NAME, "README.md", "*.json"]))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        why = ("HF_HUB_OFFLINE=1 is set and it is not in the local Hugging Face cache" if offline
               else f"it could not be downloaded ({type(e).__name__})")
        raise OSError(f"cannot load {name_or_path!r}: {why}. Download it once while online, or point at a local "
                      "folder instead, e.g. vae_hub.load('pretrained/vae-z20') or --weights DIR") from None


def load(name_or_path: str, *, device: str | torch.device = "cpu", revision: str | None = None) -> VAE:
    """Load a model in eval mode from a local folder, a Hub repo id, or a bundled variant name."""
    folder = _resolve(str(name_or_path), revision)
    config = read_config(folder)  # validate before building anything
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing; a vae-hub model folder holds config.json and {WEIGHTS_NAME}")
    check_header(weights, expected_tensors(lambda: VAE(config)))  # before any real allocation
    return VAE.from_pretrained(str(folder), map_location=str(device))


# ---------------------------------------------------------------------------- model cards
def _fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def card_metrics(folder: Path) -> list[tuple[str, str, float]]:
    """(metric id, human name, value) from history.json's last epoch and metrics.json if present."""
    hist = json.loads((folder / "history.json").read_text())
    last = hist["epochs"][-1]
    rows = [("test_loss", "test loss (recon + beta*KL), nats/image", last["test_loss"]),
            ("test_recon", "test reconstruction (BCE, summed over pixels), nats/image", last["test_recon"]),
            ("test_kl", "test KL, nats/image", last["test_kl"])]
    mpath = folder / "metrics.json"
    if mpath.is_file():
        m = json.loads(mpath.read_text())
        for key, name in m.get("card_metrics", {}).items():
            if m.get(key) is not None:
                rows.append((key, name, float(m[key])))
    return rows


def render_card(folder: str | Path, repo_id: str | None = None) -> ModelCard:
    """Render README.md from config.json, history.json (and metrics.json) in the folder."""
    folder = Path(folder)
    c = read_config(folder)
    hist = json.loads((folder / "history.json").read_text())
    repo_id = repo_id or repo_id_for(c.variant)
    metrics = card_metrics(folder)
    data = ModelCardData(
        library_name="vae-hub", license="cc-by-sa-3.0", tags=["vae", "mnist", "vae-hub", *c.tags],
        datasets=["ylecun/mnist"], pipeline_tag="unconditional-image-generation", model_name=repo_id,
        eval_results=[EvalResult(task_type="unconditional-image-generation", dataset_type="ylecun/mnist",
                                 dataset_name="MNIST (test split)", dataset_split="test", metric_type=key,
                                 metric_name=name, metric_value=round(value, 4)) for key, name, value in metrics],
    )
    latent = {"gaussian": f"{c.z_dim}-D diagonal Gaussian", "categorical": f"{c.n_cat} × {c.k_cat}-way categorical "
              "(Gumbel-softmax)", "joint": f"{c.z_dim}-D Gaussian + {c.n_cat} × {c.k_cat}-way categorical"}[c.latent]
    prior = f"N(0, Σ), Σ = {c.prior_cov}" if c.prior_cov else ("uniform categorical" if c.latent == "categorical" else "N(0, I)")
    arch = (f"MLP {c.in_channels * 784}-{'-'.join(map(str, c.hidden))}-{c.latent_size}" if c.backbone == "mlp" else
            f"conv {'-'.join(map(str, c.conv_channels))} (4×4, stride 2{', batch norm' if c.batch_norm else ''})"
            f" → FC {c.conv_hidden} → latent {c.latent_size}, mirrored decoder with transposed convolutions")
    figs = [(n, t) for n, t in [("reconstructions.png", "Test digits (top) and reconstructions (bottom)"),
                                ("samples.png", "Samples from the prior"), ("latent_map.png", "Latent map of test digits"),
                                ("manifold.png", "Decoded latent grid"), ("traversals.png", "Latent traversals"),
                                ("latent_pca.png", "PCA of the posterior means"),
                                ("uncertainty.png", "Per-pixel uncertainty: std of decoded posterior samples"),
                                ("loss_curves.png", "Loss curves"), ("progress.png", "Samples and reconstructions per epoch"),
                                ("filters.png", "Learned first-layer filters"),
                                ("feature_maps.png", "Feature maps of one test digit"),
                                ("grad_norms.png", "Per-layer gradient norms, logged during training")]
            if (folder / "figures" / n).is_file()]
    rows = "\n".join(f"| {name} | {_fmt(v, 3)} |" for _, name, v in metrics)
    onnx_section = _onnx_section(c, repo_id) if has_onnx(folder) else ""
    data_kind = {"gray": "grayscale intensities in [0, 1]", "binarized": "dynamically binarized (fresh Bernoulli draw "
                 "per batch)", "color": "randomly coloured digits (one RGB colour per image, fixed per index and seed)"}
    cond = "\n- **Conditioning:** one-hot digit label into encoder and decoder" if c.conditional else ""
    anneal = (f"\n- **Gumbel-softmax temperature:** {c.tau_start} → {c.tau_min}, exponential, reached at "
              f"{int(100 * c.anneal_frac)}% of training" if c.n_cat else "")
    body = f"""
# {c.variant}

{c.description} {WHY.get(c.variant, "")}

Part of [vae-hub](https://github.com/vae-hub/vae-hub): one config-driven VAE family trained on MNIST,
shared as safetensors with honest, reproducible numbers.

## Load it

```python
import vae_hub  # pip install -r requirements.txt from the vae-hub repository
model = vae_hub.load("{repo_id}")  # or a local folder
images = model.sample(16{", torch.arange(16) % 10" if c.conditional else ""})
```
{onnx_section}
## Architecture

- **Backbone:** {arch}
- **Latent:** {latent}; **prior:** {prior}
- **Likelihood:** Bernoulli on pixel intensities (BCE with logits, summed over {c.in_channels * 784} values)
- **Objective:** ELBO, loss = recon + β·KL with β = {c.beta:g}{cond}{anneal}

## Training recipe

| setting | value |
|---|---|
| data | MNIST train split, {hist.get("n_train", "?")} images, {data_kind[c.data]} |
| epochs | {c.epochs} |
| batch size | {c.batch_size} |
| optimizer | Adam{" (hand-written, vae_hub.scratch)" if c.layers == "scratch" else ""}, lr {c.lr:g}, {c.lr_schedule} schedule |
| seed | {c.seed} |
| training time | {hist.get("seconds_total", 0):.0f} s |
| hardware | {hist.get("hardware", "?")} |
| weights stored as | {hist.get("storage_dtype", "float32")}{_half_note(hist)} |

Reproduce: `python train.py --variants {c.variant} --dataset ylecun/mnist`

## Test metrics

MNIST test split (10,000 images), nats per image unless stated; from `history.json`
(last epoch){" and `metrics.json` (`python -m vae_hub.evaluate`)" if (folder / "metrics.json").is_file() else ""}.

| metric | value |
|---|---|
{rows}

## Figures

{chr(10).join(f"**{t}**{chr(10)}{chr(10)}![{t}](figures/{n}){chr(10)}" for n, t in figs)}
## Limitations

- Trained on 28×28 MNIST digits only{" (coloured synthetically)" if c.data == "color" else ""}; other images
  are out of distribution, and the ELBO-based scores are not calibrated for them.
- The Bernoulli likelihood on grayscale intensities is the classic convention, not a proper density
  for continuous pixels: compare its nats only with models evaluated the same way.
- Samples from small or heavily regularised latents are blurry; that is the model, not a bug.
- MNIST is CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher Burges); these weights follow it.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def has_onnx(folder: str | Path) -> bool:
    """Whether the folder carries both ONNX graphs (train.py writes them; the bundled pretrained/ set does not)."""
    from .onnx import DECODER_FILE, ENCODER_FILE

    return all((Path(folder) / f).is_file() for f in (ENCODER_FILE, DECODER_FILE))


def _onnx_section(c: VAEConfig, repo_id: str) -> str:
    """The card's ONNX section: what goes in and out of each graph, and a runnable onnxruntime snippet that
    reconstructs a digit (decodes the posterior mode, as model.reconstruct does)."""
    image = f"(B, {c.in_channels}, 28, 28)"
    cond_in = ", `y` (B, 10) one-hot label" if c.conditional else ""
    gauss = f"`mean`, `log_sigma` (B, {c.z_dim}): the Gaussian posterior N(mean, σ²), σ = exp(log_sigma)"
    cat = f"`logits` (B, {c.n_cat}, {c.k_cat}): log-probabilities of each {c.k_cat}-way variable"
    enc_out = {"gaussian": gauss, "categorical": cat, "joint": f"{gauss}; {cat}"}[c.latent]
    z_in = {"gaussian": f"(B, {c.z_dim})", "categorical": f"(B, {c.latent_size}): {c.n_cat} one-hot blocks of {c.k_cat}",
            "joint": f"(B, {c.latent_size}): the {c.z_dim} Gaussian dimensions, then {c.n_cat} one-hot blocks of {c.k_cat}"}
    feeds, y = ('{"x": x, "y": y}', ', "y": y') if c.conditional else ('{"x": x}', "")
    what = "coloured digit (RGB)" if c.in_channels == 3 else "MNIST digit"
    code = ["import numpy as np, onnxruntime as ort",
            'enc = ort.InferenceSession("encoder.onnx"); dec = ort.InferenceSession("decoder.onnx")',
            f"x = np.zeros((1, {c.in_channels}, 28, 28), np.float32)  # {what} in [0, 1]"]
    if c.conditional:
        code.append("y = np.eye(10, dtype=np.float32)[[3]]  # its label, one-hot (here: 3)")
    onehot = f"np.eye({c.k_cat}, dtype=np.float32)[logits.argmax(-1)].reshape(1, -1)"
    code += {"gaussian": [f"mean, log_sigma = enc.run(None, {feeds})"],
             "categorical": [f"(logits,) = enc.run(None, {feeds})", f"z = {onehot}  # the most likely code"],
             "joint": [f"mean, log_sigma, logits = enc.run(None, {feeds})",
                       f"z = np.concatenate([mean, {onehot}], 1)  # the most likely code"]}[c.latent]
    z = "mean" if c.latent == "gaussian" else "z"
    code.append(f'image = 1 / (1 + np.exp(-dec.run(None, {{"z": {z}{y}}})[0]))  # the reconstruction, in [0, 1]')
    nl = "\n"
    return f"""
## Run it without PyTorch (ONNX)

`encoder.onnx` and `decoder.onnx` are the same networks for [ONNX Runtime](https://onnxruntime.ai) (Python, C/C++,
C#, Java, the browser with onnxruntime-web): float32, weights inside each file, batch axis dynamic. Fetch them with
`huggingface_hub.hf_hub_download("{repo_id}", "encoder.onnx")` (and `"decoder.onnx"`).

| file | inputs | outputs |
|---|---|---|
| `encoder.onnx` | `x` {image} float32 in [0, 1]{cond_in} | {enc_out} |
| `decoder.onnx` | `z` {z_in[c.latent]}{cond_in} | `logits` {image}: Bernoulli logits (sigmoid gives the image) |

```python
{nl.join(code)}
```
"""


def _half_note(hist: dict) -> str:
    chk = hist.get("float16_check")
    if not chk:
        return ""
    return f" (test loss {chk['test_loss_float32']:.3f} → {chk['test_loss_float16']:.3f} nats, Δ {chk['delta']:+.3f})"


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    path = Path(folder) / "README.md"
    render_card(folder, repo_id).save(path)
    return path


# ---------------------------------------------------------------------------- push
def staged_files(folder: str | Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of everything upload_folder would send (checkpoints excluded)."""
    import fnmatch

    folder = Path(folder)
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not any(fnmatch.fnmatch(rel, pat) for pat in PUSH_IGNORE):
            out.append((rel, p.stat().st_size))
    return out


def push_folder(folder: str | Path, namespace: str, *, private: bool = False, dry_run: bool = False,
                token: str | None = None, log=print) -> str:
    """Create NAMESPACE/vae-hub-<variant> and upload the folder with its card rendered for that repo id."""
    folder = Path(folder)
    c = read_config(folder)
    repo_id = repo_id_for(c.variant, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / c.variant
        shutil.copytree(folder, stage, ignore=shutil.ignore_patterns("checkpoint", "*.tmp*"))
        write_card(stage, repo_id)
        files = staged_files(stage)
        log(f"{'[dry run] ' if dry_run else ''}{repo_id} ({'private' if private else 'public'}): "
            f"{len(files)} files, {sum(s for _, s in files) / 2**20:.2f} MiB")
        for rel, size in files:
            log(f"  {size:>10,d}  {rel}")
        if dry_run:
            return repo_id
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(stage), repo_id=repo_id, repo_type="model",
                          ignore_patterns=PUSH_IGNORE, commit_message=f"Upload {c.variant} from vae-hub")
    return repo_id


def save_model_folder(model: VAE, folder: str | Path, history: list[dict], info: dict, test=None,
                      progress: dict | None = None, half: bool = False) -> Path:
    """Write exactly the folder that is pushed: weights, config, history, figures, ONNX graphs, card."""
    from .onnx import DECODER_FILE, ENCODER_FILE, export_folder
    from .viz import write_figures

    folder = Path(folder)
    model._storage_dtype = torch.float16 if half else None
    # a retrained model's old card, metrics and graphs no longer apply
    for stale in ("README.md", "metrics.json", ENCODER_FILE, DECODER_FILE):
        (folder / stale).unlink(missing_ok=True)
    model.save_pretrained(folder)
    record = {"variant": model.config.variant, **info, "storage_dtype": "float16" if half else "float32",
              "epochs": history}
    (folder / "history.json").write_text(json.dumps(record, indent=1))
    if test is not None:
        write_figures(model, folder, test, history, progress)
    # exported from the folder as saved, so the graphs hold exactly the pushed weights (float16-rounded with --half)
    export_folder(folder)
    write_card(folder)
    return folder
