"""The one HTML page of the browser app, for both hosts: the static site's ``index.html`` and what the Gradio Space
answers at ``/``. The page holds the tab bar (``web/app.js``), the views' styles, the modules to preload, and
either the manifest inline (the Gradio Space: one round trip less) or the URL of ``manifest.json`` (the static site).

Imports: the standard library only.
"""

from __future__ import annotations

import html
import json
from typing import Any

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vae-hub: what a VAE learns</title>
<meta name="description" content="Draw a digit and see what a variational autoencoder learns, computed in your browser.">
<link rel="icon" href="data:,">
{preload}
<style>
{css}
body {{ margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f7f8fa; color: #1e222a; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #111318; color: #e5e7eb; }} }}
main {{ max-width: 1400px; margin: 0 auto; padding: 12px 16px 40px; }}
h1 {{ font-size: 22px; margin: 8px 0 4px; }}
.vh-intro {{ font-size: 15px; margin: 0 0 12px; max-width: 900px; }}
.vh-tabs {{ display: flex; flex-wrap: wrap; gap: 4px; border-bottom: 1px solid #d5dae1; margin-bottom: 12px; }}
.vh-tab {{ font: inherit; font-size: 15px; padding: 8px 14px; border: none; background: none; color: inherit; cursor: pointer;
  border-bottom: 3px solid transparent; text-decoration: none; }}
.vh-tab[aria-selected="true"] {{ border-bottom-color: #4f46e5; font-weight: 600; }}
a.vh-tab {{ color: #4f46e5; }}
@media (prefers-color-scheme: dark) {{ a.vh-tab {{ color: #a5b4fc; }} }}
footer {{ font-size: 13px; opacity: 0.8; margin-top: 28px; }}
footer a {{ color: inherit; }}
</style>
</head>
<body>
<main>
<h1>vae-hub · see what a variational autoencoder learns</h1>
<p class="vh-intro">{intro}</p>
<div id="app" class="vh-root"></div>
<footer>{footer}</footer>
</main>
{manifest}<script type="module" src="{app}"></script>
</body>
</html>
"""

INTRO = ("One family of VAEs trained on MNIST. Draw a digit and watch it being encoded, or explore the latent space. "
         "Everything here is computed in your browser (onnxruntime-web); nothing you draw leaves it.")


def render(app: str, css: str, preload: list[str], footer: str, manifest: dict[str, Any] | None = None,
           intro: str = INTRO, fetches: list[str] = (), scripts: list[str] = ()) -> str:
    """The page. ``app``: the URL of web/app.js; ``preload``: module URLs to fetch at once beside it; ``footer``:
    HTML; ``manifest``: inlined for app.js to read (else it fetches manifest.json beside the page); ``fetches`` and
    ``scripts``: files the page will ask for with fetch() and <script>, asked for as soon as the HTML is read
    (the first view's largest downloads start before its modules have run)."""
    links = "\n".join([f'<link rel="modulepreload" href="{html.escape(u)}">' for u in preload]
                      + [f'<link rel="preload" href="{html.escape(u)}" as="script">' for u in scripts]
                      + [f'<link rel="preload" href="{html.escape(u)}" as="fetch" crossorigin="anonymous">' for u in fetches])
    inline = ""
    if manifest is not None:
        # JSON inside <script>: "</" must not close the element early
        text = json.dumps(manifest, separators=(",", ":")).replace("</", "<\\/")
        inline = f'<script type="application/json" id="vh-manifest">{text}</script>\n'
    return TEMPLATE.format(preload=links, css=css, intro=html.escape(intro), footer=footer, manifest=inline,
                           app=html.escape(app))
