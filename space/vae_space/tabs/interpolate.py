"""Interpolate: the server encodes the endpoints and draws the strip, the GIF and the path (``/interpolate``,
``/arithmetic``); the page then scrubs along the path in the browser (web/interpolate.js): a slider decodes
each point of the linear and the spherical path with the model's ONNX decoder, and moves it on the map.
"""

from __future__ import annotations

import gradio as gr

from ..browser import live_panel
from ..engine import Engine

# Hands each new result's endpoints to the scrubber, in the page (no server round trip); a result that comes
# before the scrubber has loaded waits for it.
ON_RESULT = ("(info) => { if (!info) return []; if (window.vaeInterp) window.vaeInterp.set(info); "
             "else window.vaeInterpPending = info; return []; }")


def build(engine: Engine) -> gr.HTML:
    """The scrubber panel (inside the tab); feed it with ``json.change(None, json, None, js=ON_RESULT)``."""

    return live_panel(engine, "interpolate.js", "The path scrubber", "vi-root",
                      css=("draw.css", "explore.css", "interpolate.css"), elem_id="interp-live")
