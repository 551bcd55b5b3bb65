"""Layout pieces every tab uses: drawing pads, output pictures, notes, and filling a tab when it is opened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import gradio as gr

PAD_SIZE = (400, 400)
BIG = ["download", "fullscreen"]  # corner buttons on figures (no "share")


def sketchpad(label: str, elem_id: str, size: tuple[int, int] = PAD_SIZE, visible: bool = True) -> gr.Sketchpad:
    """A black pen with about MNIST's stroke-to-digit proportion on this canvas; one layer, no tools."""
    return gr.Sketchpad(label=label, elem_id=elem_id, elem_classes=["vae-pad"], canvas_size=size, height=size[1] + 60,
                        type="numpy", image_mode="RGBA", layers=False, transforms=(), buttons=[],
                        brush=gr.Brush(default_size=max(4, size[0] // 24), colors=["#000000"], color_mode="fixed"),
                        fixed_canvas=True, visible=visible)


def image(label: str, **kw: Any) -> gr.Image:
    """An output picture: lossless PNG (the tests compare pixels), no upload, download/fullscreen only.
    Figures carry their own titles, so Gradio's floating label (which covers the top of the image) is off
    unless asked for; the label still names the image for screen readers and the API page."""
    kw.setdefault("show_label", False)
    kw.setdefault("format", "png")
    kw.setdefault("interactive", False)
    kw.setdefault("buttons", BIG)
    # Gradio renders no label text when it is hidden and leaves the <img> alt empty: the page script
    # reads the label back from this class and sets it as the alt text
    kw["elem_classes"] = [*kw.get("elem_classes", []), "alt-" + quote(label, safe="")]
    return gr.Image(label=label, **kw)


def start_here(text: str) -> None:
    """The one line at the top of a tab: what to do, and what to look for."""
    gr.Markdown(f"**Start here:** {text}", elem_classes=["note"])


def note_box(text: str | None) -> None:
    """A highlighted note (why a section is limited), only when there is something to say."""
    if text:
        gr.Markdown(text, elem_classes=["note"])


def quiet(fn: Callable, n_outputs: int) -> Callable:
    """For automatic triggers (a tab opened, a drawing changed): show nothing rather than an error toast
    when the input is not there yet. Explicit actions use the handler itself."""

    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            return tuple(gr.skip() for _ in range(n_outputs)) if n_outputs > 1 else gr.skip()

    run.__name__ = f"{getattr(fn, '__name__', 'handler')}_quiet"
    return run


def on_visit(tab: gr.Tab, fn: Callable, inputs: list | None, outputs: list, **events: Any) -> None:
    """Fill a section the first time its tab is opened (not on page load: most visitors open one or two
    tabs); quietly empty if its model is missing, the tab's note says why."""
    seen = gr.State(False)
    run_quiet = quiet(fn, len(outputs))

    def run(done: bool, *args: Any) -> tuple:
        if done:
            return (*(gr.skip() for _ in outputs), True)
        got = run_quiet(*args)
        return (*(got if len(outputs) > 1 else (got,)), True)

    tab.select(run, [seen, *(inputs or [])], [*outputs, seen], api_visibility="private", show_progress="hidden",
               **events)
