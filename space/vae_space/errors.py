"""The refusal the Space's state raises: what a request asked for is not here. Raised below the request layer
(``engine``), which imports no Gradio; answered in words above it: ``handler`` turns it into the short
``gr.Error`` an endpoint answers with, ``limits.server_function`` into the page's ``{"error": ...}``, and the
background warm-up skips the step."""

from __future__ import annotations


class Unavailable(Exception):
    """A model a request needs is unknown, not loaded, not usable for that feature, or not prepared (yet): the
    message says which and why, in words a visitor can act on, and is shown as it stands."""
