"""Models: every variant at a glance, and one variant's card, metrics, figures and download (``/model_card``); and
the same for the app's own page (``cards_url``: every card as one JSON file, the card rendered to HTML)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
from markdown_it import MarkdownIt
from PIL import Image

from vae_hub.hub import repo as hub
from vae_hub.model.variants import VARIANTS

from ..browser import assets
from ..engine import Engine
from ..handler import Result, choice, handler
from ..ui import on_visit, start_here
from .shared import r2


@dataclass
class Card(Result):
    card: str  # the model card's text (markdown), without its figures and metrics sections
    metrics: pd.DataFrame
    figures: str  # the figures in the card's folder, as HTML (``figures_html``)
    download: str  # where to download it, and how to load it


@handler
def model_card(engine: Engine, variant: str) -> Card:
    """A variant's card, its metrics, its figures and where to download it."""
    variant = choice(variant, list(VARIANTS), "variant")
    src, repo = engine.source, _repo(engine, variant)
    download = (f"**Download:** [`{repo}`](https://huggingface.co/{repo}) on the Hugging Face Hub\n\n"
                f"```python\nimport vae_hub\nmodel = vae_hub.load(\"{repo}\")\n```")
    e = engine.models.get(variant)
    if e is not None and e.folder is not None and src.kind != "hub":
        download += f"\n\nLoaded here from `{src.shown(e.folder)}`."
    body, df = _card_text(engine, variant)
    return Card(body, df, figures_html(e.folder) if e else "", download)


def _card_text(engine: Engine, variant: str) -> tuple[str, pd.DataFrame]:
    """The card's markdown without its figures and metrics sections, and its metrics as a table (the Gradio tab's
    and the app page's)."""
    e = engine.models.get(variant)
    if e is None:
        return (f"### {variant}\n\n⚠️ Not available in this app: {engine.missing.get(variant, 'not loaded')}.\n\n"
                f"{VARIANTS[variant].description}", pd.DataFrame(columns=["metric", "value"]))
    body = _strip_front_matter(e.card) or (f"### {variant}\n\n{e.config.description}\n\n_(No model card: its README.md "
                                           "is missing, not UTF-8 or over 1 MB.)_")
    body = body.split("\n## Figures", 1)[0].strip()  # figures go under the card, where they render
    body = _drop_section(body, "## Test metrics")  # shown once, in the metrics table beside the card
    return body, pd.DataFrame([[name, round(v, 3)] for _, name, v in e.metrics], columns=["metric", "value"])


def figures_html(folder: Path | None) -> str:
    """The card's figures as the page shows them: across the page's width, each whole at its own aspect ratio (its
    size is in the tag, so nothing jumps as pictures arrive) with its caption under it, opening full size in a new
    tab. Served at content-addressed URLs (``vh/<key>/<name>``, cached for good): no URL names the weights folder,
    wherever it is, and no file beyond these figures is opened to visitors."""
    items = []
    for f in figures(folder):
        url, cap = html.escape(f["url"]), html.escape(f["caption"])
        items.append(f'<figure><a href="{url}" target="_blank" rel="noopener" title="Open {cap} full size">'
                     f'<img src="{url}" alt="{cap}" width="{f["width"]}" height="{f["height"]}" loading="lazy"></a>'
                     f"<figcaption>{cap}</figcaption></figure>")
    return f'<div class="card-figures">{"".join(items)}</div>' if items else ""


def figures(folder: Path | None) -> list[dict]:
    """The card's figures: {url (content-addressed), caption, width, height} each; a damaged picture is left out."""
    out = []
    for f in figure_files(folder):
        try:
            with Image.open(f) as im:
                w, h = im.size
        except Exception:  # a damaged picture: left out, the card still shows
            continue
        out.append({"url": assets().file(f), "caption": f.stem.replace("_", " "), "width": w, "height": h})
    return out


# The card's markdown as HTML for the app's page: tables on, raw HTML in a card escaped (a card is a file of the
# weights folder, and on the Hub anyone's)
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def cards_url(engine: Engine) -> str:
    """Every variant's card for the app's page, as one JSON file at a content-addressed URL (made once):
    {variant: {description, loaded, missing, html, metrics [[name, value]], figures, repo, loaded_from}}."""
    return engine.cached("cards-url", lambda: assets().data("cards.json", json.dumps(
        {v: _card_data(engine, v) for v in VARIANTS}, separators=(",", ":")).encode()))


def _card_data(engine: Engine, variant: str) -> dict:
    (body, df), e = _card_text(engine, variant), engine.models.get(variant)
    return {"description": VARIANTS[variant].description, "loaded": e is not None, "missing": engine.missing.get(variant),
            "html": _MD.render(body), "metrics": df.values.tolist(),
            "figures": figures(e.folder) if e else [], "repo": _repo(engine, variant)}


def _repo(engine: Engine, variant: str) -> str:
    src = engine.source
    return hub.repo_id_for(variant, src.location if src.kind == "hub" else hub.DEFAULT_NAMESPACE)


def figure_files(folder: Path | None) -> list[Path]:
    """The PNG figures in a model folder's figures/, without any that leave it (a symlink pointing elsewhere):
    the files the app serves, wherever the weights folder is."""
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
    """The tab: the overview table, then one variant's card beside its metrics, and its figures under them."""
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
        # below the card at the page's width, where their axes can be read; a tap opens one full size
        figures = gr.HTML("")
        outs = Card.outputs(card=card, metrics=metrics, figures=figures, download=download)
        ui = model_card.ui(engine)
        variant.change(ui, variant, outs, api_name="model_card", **q)
        on_visit(tab, ui, [variant], outs, **q)
    return tab
