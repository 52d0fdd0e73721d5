import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SDLAB_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory):
    from sdlab.testing import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("models") / "tiny-qwen3", arch="qwen3")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from sdlab.testing import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("models") / "tiny-llama", arch="llama")


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config):
    # Tiny models gain nothing from several threads, and OpenMP threads spinning against each
    # other (reward workers, subprocesses) slow a 2-core machine down many times over.
    import torch

    torch.set_num_threads(1)
