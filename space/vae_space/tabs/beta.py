"""β comparison: the server draws the comparison figure and table (``/compare_betas``); the page then sweeps a
latent dimension of all five β-VAEs at once (web/beta.js) with their ONNX decoders, from each model's
posterior mean for the input just compared.
"""

from __future__ import annotations

import gradio as gr

from ..browser import live_panel
from ..engine import BETAS, Engine

# Hands each comparison's codes to the sweep panel in the page; one that comes before the panel has loaded waits.
ON_RESULT = ("(data) => { if (!data) return []; if (window.vaeBeta) window.vaeBeta.set(data); "
             "else window.vaeBetaPending = data; return []; }")


def build(engine: Engine) -> gr.HTML:
    """The sweep panel (inside the tab); feed it with ``json.change(None, json, None, js=ON_RESULT)``."""
    return live_panel(engine, "beta.js", "The β sweep", "vb-root", css=("draw.css", "explore.css", "interpolate.css"),
                      only=BETAS, wait=BETAS[-1] if BETAS[-1] in engine.models else None, elem_id="beta-live")
