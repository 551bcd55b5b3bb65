"""Model cards: the README.md of every model folder, rendered from the numbers in the folder.

VAE cards come from config.json, history.json and (once evaluated) metrics.json; the classifier renders its
own body through the same ``model_card`` front matter. The card is written last and atomically: it marks a
folder as finished (``vae_hub.hub.folders.is_complete``).
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from vae_hub.checks import MAX_JSON_BYTES, read_json
from vae_hub.hub.folders import CARD_NAME, read_config, repo_id_for, write_atomic
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE
from vae_hub.model.config import VAEConfig
from vae_hub.model.variants import WHY

LICENSE = "cc-by-sa-3.0"  # MNIST's licence; the weights follow it
MAX_CARD_BYTES = 1 << 20  # a card is a few kB; like config.json, anything near this is not one
MAX_HISTORY_BYTES = 8 << 20  # ~5 kB an epoch: over 1,500 epochs
FIGURES = [("reconstructions.png", "Test digits (top) and reconstructions (bottom)"),
           ("samples.png", "Samples from the prior"), ("latent_map.png", "Latent map of test digits"),
           ("manifold.png", "Decoded latent grid"), ("traversals.png", "Latent traversals"),
           ("latent_pca.png", "PCA of the posterior means"),
           ("uncertainty.png", "Per-pixel uncertainty: std of decoded posterior samples"),
           ("loss_curves.png", "Loss curves"), ("progress.png", "Samples and reconstructions per epoch"),
           ("filters.png", "Learned first-layer filters"),
           ("feature_maps.png", "Feature maps of one test digit"),
           ("grad_norms.png", "Per-layer gradient norms, logged during training")]


def model_card(body: str, *, model_name: str, tags: list[str], task: str,
               metrics: list[tuple[str, str, float]]) -> ModelCard:
    """A card with vae-hub's front matter (library, licence, dataset) and ``metrics`` as MNIST test-split results."""
    data = ModelCardData(
        library_name="vae-hub", license=LICENSE, tags=tags, datasets=["ylecun/mnist"], pipeline_tag=task,
        model_name=model_name,
        eval_results=[EvalResult(task_type=task, dataset_type="ylecun/mnist", dataset_name="MNIST (test split)",
                                 dataset_split="test", metric_type=key, metric_name=name,
                                 metric_value=round(value, 4)) for key, name, value in metrics],
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def save_card(card: ModelCard, folder: str | Path) -> Path:
    path = Path(folder) / CARD_NAME
    write_atomic(path, str(card))
    return path


def _fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def read_card(folder: str | Path) -> str:
    """A folder's card text; "" when it is missing, over MAX_CARD_BYTES or not UTF-8 (the model still loads)."""
    path = Path(folder) / CARD_NAME
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            return ""
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return ""


def card_metrics(folder: str | Path) -> list[tuple[str, str, float]]:
    """(metric id, human name, value) from history.json's last epoch and metrics.json if present. Both files
    are size-capped before reading; a file of the wrong shape raises ValueError, TypeError, KeyError or IndexError."""
    folder = Path(folder)
    hist = read_json(folder / "history.json", MAX_HISTORY_BYTES, "a training history is a JSON object of epochs")
    last = hist["epochs"][-1]
    rows = [("test_loss", "test loss (recon + beta*KL), nats/image", float(last["test_loss"])),
            ("test_recon", "test reconstruction (BCE, summed over pixels), nats/image", float(last["test_recon"])),
            ("test_kl", "test KL, nats/image", float(last["test_kl"]))]
    mpath = folder / "metrics.json"
    if mpath.is_file():
        m = read_json(mpath, MAX_JSON_BYTES, "metrics are a small JSON object")
        for key, name in m.get("card_metrics", {}).items():
            if m.get(key) is not None:
                rows.append((key, name, float(m[key])))
    return rows


def _describe(c: VAEConfig) -> dict[str, str]:
    """The card's phrases for the latent, prior, architecture, data and extras of a config."""
    latent = {"gaussian": f"{c.z_dim}-D diagonal Gaussian", "categorical": f"{c.n_cat} × {c.k_cat}-way categorical "
              "(Gumbel-softmax)", "joint": f"{c.z_dim}-D Gaussian + {c.n_cat} × {c.k_cat}-way categorical"}[c.latent]
    prior = f"N(0, Σ), Σ = {c.prior_cov}" if c.prior_cov else ("uniform categorical" if c.latent == "categorical" else "N(0, I)")
    arch = (f"MLP {c.in_channels * 784}-{'-'.join(map(str, c.hidden))}-{c.latent_size}" if c.backbone == "mlp" else
            f"conv {'-'.join(map(str, c.conv_channels))} (4×4, stride 2{', batch norm' if c.batch_norm else ''})"
            f" → FC {c.conv_hidden} → latent {c.latent_size}, mirrored decoder with transposed convolutions")
    data_kind = {"gray": "grayscale intensities in [0, 1]", "binarized": "dynamically binarized (fresh Bernoulli draw "
                 "per batch)", "color": "randomly coloured digits (one RGB colour per image, fixed per index and seed)"}
    cond = "\n- **Conditioning:** one-hot digit label into encoder and decoder" if c.conditional else ""
    anneal = (f"\n- **Gumbel-softmax temperature:** {c.tau_start} → {c.tau_min}, exponential, reached at "
              f"{int(100 * c.anneal_frac)}% of training" if c.n_cat else "")
    objective = (f"IWAE, the {c.iwae_k}-sample importance-weighted bound{' with DReG encoder gradients' if c.dreg else ''}"
                 f", β = {c.beta:g}" if c.objective == "iwae" else f"ELBO, loss = recon + β·KL with β = {c.beta:g}")
    if c.kl_warmup_epochs:
        objective += f"; KL weight warmed up linearly from 0 to 1 over {c.kl_warmup_epochs} epochs"
    schedule = {"constant": "constant schedule", "cosine": "cosine schedule", "linear": "linear decay to 0"}[c.lr_schedule]
    if c.lr_warmup:
        schedule = f"linear warm-up over the first {100 * c.lr_warmup:g}% of the steps, then {schedule}"
    return {"latent": latent, "prior": prior, "arch": arch, "data_kind": data_kind[c.data], "cond": cond,
            "anneal": anneal, "objective": objective, "schedule": schedule}


def _figures(folder: Path) -> str:
    nl = "\n"
    return nl.join(f"**{t}**{nl}{nl}![{t}](figures/{n}){nl}" for n, t in FIGURES if (folder / "figures" / n).is_file())


def render_card(folder: str | Path, repo_id: str | None = None) -> ModelCard:
    """Render README.md from config.json, history.json (and metrics.json) in the folder."""
    folder = Path(folder)
    c = read_config(folder)
    hist = json.loads((folder / "history.json").read_text())
    repo_id = repo_id or repo_id_for(c.variant)
    metrics = card_metrics(folder)
    body = _vae_body(c, hist, repo_id, folder, "\n".join(f"| {name} | {_fmt(v, 3)} |" for _, name, v in metrics))
    return model_card(body, model_name=repo_id, tags=["vae", "mnist", "vae-hub", *c.tags],
                      task="unconditional-image-generation", metrics=metrics)


def _vae_body(c: VAEConfig, hist: dict, repo_id: str, folder: Path, rows: str) -> str:
    d = _describe(c)
    onnx_section = _onnx_section(c, repo_id) if has_onnx(folder) else ""
    evaluated = " and `metrics.json` (`python -m vae_hub.evaluate`)" if (folder / "metrics.json").is_file() else ""
    hist = {"n_train": "?", "hardware": "?", "storage_dtype": "float32", **hist}
    precision = hist.get("precision", "fp32")  # histories written before the field: trained in fp32
    if precision != "fp32":
        precision += " autocast for the networks; loss, KL, Adam state and weights in float32"
    return _VAE_BODY.format(c=c, hist=hist, repo_id=repo_id, rows=rows, onnx_section=onnx_section, why=WHY.get(c.variant, ""),
                            cond_arg=", torch.arange(16) % 10" if c.conditional else "",
                            scratch=" (hand-written, vae_hub.model.scratch)" if c.layers == "scratch" else "",
                            seconds=f"{hist.get('seconds_total', 0):.0f}", half_note=_half_note(hist),
                            evaluated=evaluated, figures=_figures(folder), pixels=c.in_channels * 784,
                            factor_note=_factor_note(folder), precision=precision,
                            coloured=" (coloured synthetically)" if c.data == "color" else "", **d)


def _factor_note(folder: Path) -> str:
    """Each active latent dimension's most correlated handwriting factor, from metrics.json ("" before evaluation)."""
    path = folder / "metrics.json"
    m = json.loads(path.read_text()) if path.is_file() else {}
    if not m.get("morpho_dominant"):
        return ""
    var, thr = m.get("posterior_mean_variance") or [], m.get("settings", {}).get("au_threshold", 0.01)
    dims = [d for d in m["morpho_dominant"] if d["dim"] >= len(var) or var[d["dim"]] > thr]
    return ("\nMost correlated handwriting factor of each active latent dimension (Morpho-MNIST measures of the test "
            "digits; the whole correlation matrix is `morpho_correlation` in `metrics.json`): "
            + ", ".join(f"z{d['dim'] + 1} {d['factor']} (ρ = {d['rho']:+.2f})" for d in dims) + ".\n")


def has_onnx(folder: str | Path) -> bool:
    """Whether the folder carries both ONNX graphs (train.py writes them; the bundled pretrained/ set does not)."""
    return all((Path(folder) / f).is_file() for f in (ENCODER_FILE, DECODER_FILE))


_VAE_BODY = """
# {c.variant}

{c.description} {why}

Part of [vae-hub](https://github.com/vae-hub/vae-hub): one config-driven VAE family trained on MNIST,
shared as safetensors with honest, reproducible numbers.

## Load it

```python
import vae_hub  # pip install -r requirements.txt from the vae-hub repository
model = vae_hub.load("{repo_id}")  # or a local folder
images = model.sample(16{cond_arg})
```
{onnx_section}
## Architecture

- **Backbone:** {arch}
- **Latent:** {latent}; **prior:** {prior}
- **Likelihood:** Bernoulli on pixel intensities (BCE with logits, summed over {pixels} values)
- **Objective:** {objective}{cond}{anneal}

## Training recipe

| setting | value |
|---|---|
| data | MNIST train split, {hist[n_train]} images, {data_kind} |
| epochs | {c.epochs} |
| batch size | {c.batch_size} |
| optimizer | Adam{scratch}, lr {c.lr:g}, {schedule} |
| seed | {c.seed} |
| training time | {seconds} s |
| hardware | {hist[hardware]} |
| precision | {precision} |
| weights stored as | {hist[storage_dtype]}{half_note} |

Reproduce: `python train.py --variants {c.variant} --dataset ylecun/mnist`

## Test metrics

MNIST test split (10,000 images), nats per image unless stated; from `history.json`
(last epoch){evaluated}.

| metric | value |
|---|---|
{rows}
{factor_note}
## Figures

{figures}
## Limitations

- Trained on 28×28 MNIST digits only{coloured}; other images
  are out of distribution, and the ELBO-based scores are not calibrated for them.
- The Bernoulli likelihood on grayscale intensities is the classic convention, not a proper density
  for continuous pixels: compare its nats only with models evaluated the same way.
- Samples from small or heavily regularised latents are blurry; that is the model, not a bug.
- MNIST is CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher Burges); these weights follow it.
"""


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
    """Render and write the folder's card (atomically: it is the folder's completion marker)."""
    return save_card(render_card(folder, repo_id), folder)
