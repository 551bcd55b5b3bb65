"""Screenshots of every tab of the Space, as a first-time visitor sees it, on a desktop and on a phone: the app's own
page at ``/`` (its tabs) and Gradio's page at ``/?ui=gradio`` (every tab).

    python bench/space_screenshots.py                  # -> /tmp/space_shots/{desktop,phone}-{app,gradio}-<tab>.png
    python bench/space_screenshots.py shots --weights runs
    python bench/space_screenshots.py --static         # and the static site: {device}-static-<tab>.png

Starts ``space/app.py`` on 127.0.0.1 (bundled weights unless told), drives Chromium through Playwright
(headless), opens each tab in turn (the Draw tab gets a 7 drawn on its pad, so its panels show something),
waits for its pictures, and saves a full-page screenshot at 1440×900 and at 390×844 (a phone).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import CHROMIUM, FLAGS, launch, static_site, stop

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # --static builds the site in this process, from the bundled weights

from vae_hub.data.preprocess import DIGIT_STROKES  # noqa: E402

VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}
TABS = {"draw": "Draw & encode", "interpolate": "Interpolate", "beta": "β comparison", "explore": "Latent explorer",
        "generate": "Generate", "models": "Models"}
PAGES = {"app": ("", tuple(TABS)), "gradio": ("?ui=gradio", tuple(TABS))}  # page: (query, its tabs)


def draw_seven(page) -> None:
    """A 7 on the Draw tab's pad, with the mouse, stroke by stroke."""
    canvas = page.locator("#draw-pad canvas")
    box = canvas.bounding_box()
    for stroke in DIGIT_STROKES[7]:
        pts = [(box["x"] + box["width"] * (0.12 + 0.76 * x), box["y"] + box["height"] * (0.12 + 0.76 * y))
               for x, y in stroke]
        page.mouse.move(*pts[0])
        page.mouse.down()
        for x, y in pts[1:]:
            page.mouse.move(x, y, steps=8)
        page.mouse.up()


def settle(page, timeout_s: float = 120.0) -> None:
    """Wait until every visible output picture of the tab holds a loaded image (a tab fills itself when first
    opened, without progress markers) and no request shows a progress marker."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        # pictures load lazily, when scrolled near: walk down the page as a visitor would, then back up
        height = page.evaluate("() => document.documentElement.scrollHeight")
        for y in range(0, height, page.viewport_size["height"] // 2):
            page.evaluate(f"() => window.scrollTo(0, {y})")
            time.sleep(0.15)
        page.evaluate("() => window.scrollTo(0, 0)")
        busy = page.evaluate("""() => {
          const shown = (el) => el.offsetParent !== null;
          const pending = Array.from(document.querySelectorAll('.pending, .eta-bar, .progress-text')).some(shown);
          const empty = Array.from(document.querySelectorAll('.block[class*="alt-"]')).filter(shown)
            .some((b) => { const img = b.querySelector('img'); return !img || !img.complete || !img.naturalWidth; });
          return pending || empty;
        }""")
        if not busy:
            break
        time.sleep(1.0)
    time.sleep(1.5)  # the in-browser panels paint after their model runs


def shoot(url: str, out: Path, tabs: tuple[str, ...] = tuple(TABS), devices: tuple[str, ...] = tuple(VIEWPORTS),
          pages: dict = PAGES) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for device in devices:
            w, h = VIEWPORTS[device]
            phone = device == "phone"
            ctx = browser.new_context(viewport={"width": w, "height": h}, device_scale_factor=1, is_mobile=phone,
                                      has_touch=phone)
            for name, (query, has) in pages.items():
                page = ctx.new_page()
                page.goto(url + query)
                page.wait_for_selector("#draw-pad[data-ready='1']", timeout=180_000)
                for key in [t for t in tabs if t in has]:
                    page.get_by_role("tab", name=TABS[key]).click()
                    if key == "draw":
                        draw_seven(page)
                    settle(page)
                    if key == "generate" and page.locator(".vk").count():  # the colour section runs once in view
                        page.locator(".vk").scroll_into_view_if_needed()
                        page.wait_for_selector(".vk[data-ready='1']", timeout=120_000)
                    path = out / f"{device}-{name}-{key}.png"
                    page.screenshot(path=str(path), full_page=True)
                    saved.append(path)
                    print(path)
                page.close()
            ctx.close()
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="/tmp/space_shots", help="folder for the PNGs (default /tmp/space_shots)")
    ap.add_argument("--weights", default=None, help="as for space/app.py (default: the bundled pretrained/)")
    ap.add_argument("--tabs", nargs="+", choices=list(TABS), default=list(TABS), help="only these tabs")
    ap.add_argument("--devices", nargs="+", choices=list(VIEWPORTS), default=list(VIEWPORTS), help="only these")
    ap.add_argument("--static", action="store_true", help="also the static site (built into a temporary folder)")
    args = ap.parse_args(argv)
    url, proc, _ = launch(args.weights)
    try:
        shoot(url, Path(args.out), args.tabs, args.devices)
    finally:
        stop(proc)
    if args.static:
        with static_site(args.weights) as (surl, _):
            shoot(surl, Path(args.out), args.tabs, args.devices, {"static": ("", tuple(TABS))})


if __name__ == "__main__":
    main()
