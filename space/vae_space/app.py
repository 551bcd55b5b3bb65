"""vae-hub Space: see what a variational autoencoder learns. The Gradio app (``space/app.py`` runs ``main``).

    python space/app.py                      # bundled pretrained/ (or VAE_HUB_WEIGHTS / VAE_HUB_NAMESPACE)
    python space/app.py --weights runs       # a folder of variant folders written by train.py

Honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT. Every interaction is a named API endpoint
(see "Use via API" at the bottom of the page, or ``gradio_client.Client(url).view_api()``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import gradio as gr
from PIL import Image

from vae_hub.data.preprocess import MAX_PIXELS

from . import browser, limits, serving
from .engine import Engine
from .guard import SafeBlocks
from .tabs import beta, draw, explore, generate, interpolate, models

log = logging.getLogger("vae_space")

# PIL refuses to decode images beyond twice this (decompression bombs); the preprocessing refuses
# anything beyond MAX_PIXELS with a short message.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

CSS = """
/* only pictures made of digit tiles alone scale pixelated; figures with text scale smoothly */
.pixelated img { image-rendering: pixelated; }
/* figures are drawn on white: in dark mode they sit in a light frame instead of glaring edge to edge */
.dark .block img, .dark .vd-chart, .dark .vd-map, .dark .vd-nn, .dark .vx-map, .dark .vx-grid {
  background: #fff; border-radius: 8px; padding: 4px; box-sizing: border-box; }
/* the card's figures: whole, at their own aspect ratio, two or three a row on a wide screen, one on a phone */
.card-figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr)); gap: 16px; }
.card-figures figure, .card-figures figcaption, .card-figures a { margin: 0 !important; padding: 0; }
.card-figures img { width: 100%; height: auto; display: block; background: #fff; border-radius: 6px; }
.card-figures figcaption { font-size: 0.9em; padding: 4px 2px 0 !important; color: var(--body-text-color); }
/* the card's tables break lines between words only ("optimizer", not "optimize / r") */
.model-card td, .model-card th { word-break: normal; overflow-wrap: normal; }
#footer { font-size: 0.85em; opacity: 0.85; text-align: center; margin-top: 1em; }
#encode-summary { min-height: 6em; }
.note { font-size: 0.9em; }
"""
# The system's own fonts: no web font to download before the page's text shows (about 190 kB on a first visit)
SANS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
MONO = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=SANS, font_mono=MONO)
# Gradio's image editor opens on its "image" tool and asks the user to pick the brush first: pick it for
# them on every pad as it appears (pads in other tabs render later). Harmless if the markup changes.
JS = """
() => {
  const pick = () => document.querySelectorAll('.vae-pad button[aria-label="Brush"]').forEach((b) => {
    if (!b.dataset.vaePicked) { b.dataset.vaePicked = "1"; b.click(); }
  });
  // Output pictures get their component's label as alt text (Gradio leaves it empty).
  const alt = () => document.querySelectorAll('.block img:not([alt]), .block img[alt=""]').forEach((img) => {
    const block = img.closest('.block');
    const cls = block ? Array.from(block.classList).find((c) => c.startsWith('alt-')) : null;
    const label = block && block.querySelector('[data-testid="block-label"]');
    const text = cls ? decodeURIComponent(cls.slice(4)) : (label ? label.textContent.trim() : '');
    if (text) img.alt = text;
  });
  new MutationObserver(() => { pick(); alt(); }).observe(document.body, { childList: true, subtree: true });
  pick();
  alt();
  // ?tab=<id>: the app's page links here for the tabs only this page has
  const tab = new URLSearchParams(location.search).get("tab");
  const label = { draw: "Draw & encode", interpolate: "Interpolate", beta: "β comparison",
                  explore: "Latent explorer", generate: "Generate", models: "Models" }[tab];
  if (label) {
    const open = () => {
      const b = Array.from(document.querySelectorAll('button[role="tab"]')).find((t) => t.textContent.trim() === label);
      if (b) b.click();
      return Boolean(b);
    };
    if (!open()) {
      const o = new MutationObserver(() => { if (open()) o.disconnect(); });
      o.observe(document.body, { childList: true, subtree: true });
    }
  }
}
"""
# Gradio's tabs that hold more than the app's views (each view links to its tab there): (label, id)
GRADIO_ONLY = [("Interpolate", "interpolate"), ("β comparison", "beta"), ("Generate", "generate")]


def status(engine: Engine):
    def status() -> dict:
        """Where the weights come from, which variants are loaded, missing (and why), and ready; and how many of
        the page's files are still being compressed (0: every download is at its smallest)."""
        return {**engine.status(), "assets_compressing": browser.assets().pending()}

    return status


def build_demo(engine: Engine, live_slots: int = 2, model_slots: int = 1) -> gr.Blocks:
    """The page: one tab per module in vae_space/tabs, each with its layout, handlers and browser code."""
    # Worker slots: the live drawing/slider updates have their own (one per core), so a β comparison or
    # a tab being filled never queues in front of the feedback to a stroke; the heavier button actions
    # share fewer slots, so under load they wait and the encoder keeps the CPU (bench/space_latency.py).
    q = dict(concurrency_id="models", concurrency_limit=model_slots)
    live = dict(concurrency_id="live", concurrency_limit=live_slots)
    # register every file the page may ask for once the models are prepared, so their compressed copies are made
    # before the first visitor asks (in a low-priority thread; instant when cached on disk)
    engine.warm([lambda: browser.manifest(engine)])

    # delete_cache: every 10 min, drop cached output files older than 30 min (each drawing makes new ones)
    with SafeBlocks(title="vae-hub: what a VAE learns", delete_cache=(600, 1800)) as demo:
        gr.Markdown("# vae-hub · see what a variational autoencoder learns\n"
                    "One family of VAEs trained on MNIST: draw a digit and watch it being encoded, walk between "
                    "digits, compare β values side by side, explore the latent space and sample.")
        with gr.Tabs(overflow_behavior="wrap"):  # on phones the tabs wrap onto more rows: none hidden in a menu
            draw.build(engine, live)
            interpolate.build(engine, q)
            beta.build(engine, q)
            explore.build(engine, q, live)
            generate.build(engine, q)
            models.build(engine, q)
        gr.api(status(engine), api_name="status")  # loaded / missing variants and the weight source, as JSON
        footer = gr.Markdown(engine.footer(), elem_id="footer")
        demo.load(engine.footer, None, footer, api_visibility="private")
    return demo


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", metavar="DIR", default=None,
                    help="a folder of variant folders (as train.py writes); default: $VAE_HUB_WEIGHTS, then the Hub "
                         "namespace $VAE_HUB_NAMESPACE, then the bundled pretrained/")
    ap.add_argument("--concurrency", type=int, default=int(os.environ.get("VAE_SPACE_CONCURRENCY", 2)),
                    help="live requests (drawing, sliders) computed at once (default 2: one per core of a basic Space)")
    ap.add_argument("--model-concurrency", type=int, default=int(os.environ.get("VAE_SPACE_MODEL_CONCURRENCY", 1)),
                    help="button actions (interpolate, β comparison, sampling, tabs) computed at once (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    engine = Engine.start(args.weights)
    demo = build_demo(engine, args.concurrency, args.model_concurrency)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=256)
    # SIGTERM (a Space stopping, `kill`) exits like Ctrl+C, so the atexit clean-up removes our temp folders
    signal.signal(signal.SIGTERM, lambda *_: (engine.shutdown(), sys.exit(0)))
    # Every API call is a new session holding a copy of the page's state (~340 kB): keep the newest few
    # hundred, not Gradio's default 10,000 (bench/space_memory.py shows memory flat over 5,000 calls).
    sessions = int(os.environ.get("VAE_SPACE_SESSIONS", 256))
    # "/" is the app's own page (vae_space/page.py); its manifest names the cards' file for its Models view
    page = lambda: browser.page_html(engine, GRADIO_ONLY, lambda: {"cards": models.cards_url(engine),  # noqa: E731
                                                                   "betas": beta.betas_url(engine)})
    # the page's own files (compressed, cached for good) and the page middleware: vae_space/serving.py
    demo.launch(theme=THEME, css=CSS, js=JS, max_file_size="25mb", footer_links=["api", "gradio"],
                state_session_capacity=sessions,
                app_kwargs=serving.app_kwargs(browser.assets(), lambda: demo.config, browser.preload_head,
                                              limits.MIDDLEWARE, page=page,
                                              routes=[browser.call_route(engine)]))

