import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "data" / "mnist-mini"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a private datasets cache: a stale global one could serve an older copy of tests/data (must precede `import datasets`)
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="vae_hub_hf_datasets_")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["VAE_HUB_CACHE"] = str(tmp_path_factory.mktemp("vae_hub_cache"))


@pytest.fixture(scope="session")
def mini():
    from vae_hub.data import load_split

    return load_split(str(MINI), "train"), load_split(str(MINI), "test")


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; .ci/run installs it
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the browser tests of a module (skipped where it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()
