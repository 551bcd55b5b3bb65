"""Latent explorer: the 2-D (and 3-D) models' latent spaces, decoded under the cursor in the visitor's
browser (web/explore.js, onnxruntime-web on the models' ONNX decoders). The server keeps ``/manifold`` and
``/decode_point`` for API users, and ``decode_points``, the views' fallback when the runtime cannot load.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..browser import live_panel
from ..engine import Engine

MODELS = ("vae-z2", "vae-z2-corr", "vae-z3")

def build(engine: Engine) -> None:
    """The live panel (inside the tab): map, decoded point and grid, linked by one marker."""

    def decode_points(data: Any = None) -> dict:
        data = data if isinstance(data, dict) else {}
        try:
            return {"images": engine.decode_points(data.get("model"), data.get("z"), data.get("k"))}
        except gr.Error as e:
            return {"error": str(e.message)[:240]}

    # vae-z3 is prepared after the 2-D models: waiting for it means all three are there
    live_panel(engine, "explore.js", "The explorer", "vx-root", css=("draw.css", "explore.css"),
               server_functions=[decode_points], only=MODELS, wait="vae-z3" if "vae-z3" in engine.models else None,
               elem_id="explore-live")
