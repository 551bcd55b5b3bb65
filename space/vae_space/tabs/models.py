"""Models: every variant at a glance, and one variant's card, metrics, figures and download (``/model_card``)."""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from vae_hub import hub
from vae_hub.variants import VARIANTS

from ..engine import Engine
from ..handler import Result, choice, handler
from ..ui import on_visit, start_here
from .shared import r2


@dataclass
class Card(Result):
    card: str  # the model card's text (markdown), without its figures and metrics sections
    metrics: pd.DataFrame
    figures: list  # (path, caption) of each figure in the card's folder
    download: str  # where to download it, and how to load it


@handler
def model_card(engine: Engine, variant: str) -> Card:
    """A variant's card, its metrics, its figures and where to download it."""
    variant = choice(variant, list(VARIANTS), "variant")
    src = engine.source
    repo = hub.repo_id_for(variant, src.location if src.kind == "hub" else hub.DEFAULT_NAMESPACE)
    download = (f"**Download:** [`{repo}`](https://huggingface.co/{repo}) on the Hugging Face Hub\n\n"
                f"```python\nimport vae_hub\nmodel = vae_hub.load(\"{repo}\")\n```")
    e = engine.models.get(variant)
    if e is None:
        return Card(f"### {variant}\n\n⚠️ Not available in this app: {engine.missing.get(variant, 'not loaded')}.\n\n"
                    f"{VARIANTS[variant].description}", pd.DataFrame(columns=["metric", "value"]), [], download)
    if e.folder is not None and src.kind != "hub":
        download += f"\n\nLoaded here from `{src.shown(e.folder)}`."
    body = _strip_front_matter(e.card) or (f"### {variant}\n\n{e.config.description}\n\n_(No model card: its README.md "
                                           "is missing, not UTF-8 or over 1 MB.)_")
    body = body.split("\n## Figures", 1)[0].strip()  # figures go to the gallery, where they render
    body = _drop_section(body, "## Test metrics")  # shown once, in the metrics table beside the card
    df = pd.DataFrame([[name, round(v, 3)] for _, name, v in e.metrics], columns=["metric", "value"])
    figs = [(str(served(f)), f.stem.replace("_", " ")) for f in figure_files(e.folder)]
    return Card(body, df, figs, download)


_FIGURES: list[Path] = []


def served(figure: Path) -> Path:
    """A card's figure as the page gets it: a copy in the app's own temp folder, made once per file version.
    Gradio then serves it from its cache like any output, so no URL names the weights folder (wherever it is,
    inside the working directory or not) and no folder beyond these files is opened to visitors."""
    if not _FIGURES:
        _FIGURES.append(Path(tempfile.mkdtemp(prefix="vae_space_figures_")))
        atexit.register(shutil.rmtree, _FIGURES[0], ignore_errors=True)
    st = figure.stat()
    key = hashlib.sha256(f"{figure.resolve()}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:16]
    copy = _FIGURES[0] / f"{key}-{figure.name}"
    if not copy.is_file():
        tmp = copy.with_suffix(".tmp")
        shutil.copyfile(figure, tmp)
        tmp.replace(copy)
    return copy


def figure_files(folder: Path | None) -> list[Path]:
    """The PNG figures in a model folder's figures/, without any that leave it (a symlink pointing elsewhere):
    the files the app serves (copied by ``served``), wherever the weights folder is."""
    if folder is None or not (folder / "figures").is_dir():
        return []
    inside = (folder / "figures").resolve()
    return [f for f in sorted((folder / "figures").glob("*.png")) if f.is_file() and f.resolve().parent == inside]


def overview(engine: Engine) -> pd.DataFrame:
    """Every variant: whether it is loaded here, its headline test numbers, what it is."""
    rows = []
    for v, c in VARIANTS.items():
        e = engine.models.get(v)
        met = {k: val for k, _, val in e.metrics} if e else {}
        rows.append([v, "✓" if e else "✗ " + engine.missing.get(v, "not loaded"), r2(met.get("test_loss")),
                     r2(met.get("test_kl")), c.description])
    return pd.DataFrame(rows, columns=["variant", "loaded", "test loss", "test KL", "what it is"])


def _drop_section(markdown: str, heading: str) -> str:
    """The markdown without the section under ``heading`` (up to the next heading of the same level)."""
    head, sep, rest = markdown.partition(f"\n{heading}")
    if not sep:
        return markdown
    level = heading.split(" ", 1)[0] + " "
    nxt = rest.find(f"\n{level}")
    return head.rstrip() + ("\n\n" + rest[nxt + 1:] if nxt >= 0 else "")


def _strip_front_matter(card: str) -> str:
    if card.startswith("---"):
        parts = card.split("---", 2)
        if len(parts) == 3:
            return parts[2].strip()
    return card.strip()


def build(engine: Engine, q: dict) -> gr.Tab:
    """The tab: the overview table, then one variant's card beside its metrics and figures."""
    with gr.Tab("Models", id="models") as tab:
        start_here("pick a variant to read its card: what it is, how it was trained, its test numbers and where to "
                   "download it.")
        gr.Markdown("### All variants")
        gr.Dataframe(overview(engine), interactive=False, wrap=True,
                     column_widths=["150px", "100px", "80px", "70px", "440px"])  # px: a phone scrolls sideways
        variant = gr.Dropdown(list(VARIANTS), value="vae-z20", label="Variant")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                card = gr.Markdown(label="Model card", elem_classes=["model-card"])
            with gr.Column(scale=2):
                download = gr.Markdown()
                metrics = gr.Dataframe(label="Test metrics", interactive=False, wrap=True,
                                       column_widths=["78%", "22%"])  # long names wrap; the value stays in view
                gr.Markdown("#### Figures from the card")
                # one figure a row at its own aspect ratio, its caption a line under it: Gradio's label and
                # captions float over the pictures and would cover the figures' titles and axes (app.py's CSS)
                figures = gr.Gallery(label="Figures from the card", show_label=False, columns=1, height="auto",
                                     object_fit="contain", interactive=False, elem_classes=["card-figures"])
        outs = Card.outputs(card=card, metrics=metrics, figures=figures, download=download)
        ui = model_card.ui(engine)
        variant.change(ui, variant, outs, api_name="model_card", **q)
        on_visit(tab, ui, [variant], outs, **q)
    return tab
