import json
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


PROBLEMS = [
    {"id": f"p{i}", "problem": f"What is {a}+{b}?", "answer": str(a + b), "solution": f"{a}+{b}={a + b}"}
    for i, (a, b) in enumerate([(1, 1), (2, 3), (4, 4), (1, 5), (3, 3), (2, 2), (0, 7), (6, 1)])
]
"""Eight one-line addition problems: the training data of the engine's tests."""


@pytest.fixture
def toy_data(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


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
