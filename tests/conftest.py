import ast
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "data" / "mnist-mini"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a private datasets cache: a stale global one could serve an older copy of tests/data (must precede `import datasets`)
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="vae_hub_hf_datasets_")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


BENCH = ROOT / "bench"


def bench_module(name: str) -> ModuleType:
    """A benchmark script imported as a module. Its sibling imports (``from common import machine``, which work when
    the script runs, as Python puts bench/ first on the path) are loaded from bench/ the same way: those at the top
    before it, those inside functions after it (they may import it back)."""
    if name in sys.modules:
        return sys.modules[name]
    path = BENCH / f"{name}.py"
    tree = ast.parse(path.read_text())

    def siblings(nodes) -> list[str]:
        return [n.module for n in nodes if isinstance(n, ast.ImportFrom) and not n.level and n.module
                and (BENCH / f"{n.module}.py").is_file()]

    for dep in siblings(tree.body):
        bench_module(dep)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for dep in siblings(ast.walk(tree)):
        bench_module(dep)
    return mod


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["VAE_HUB_CACHE"] = str(tmp_path_factory.mktemp("vae_hub_cache"))


@pytest.fixture(scope="session")
def mini():
    from vae_hub.data.mnist import load_split

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
