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
