"""Shipped organism bases: manifest, sha256 verification, install into the cache, and the bases
committed in the package (their keys are the default v2 worlds')."""

from __future__ import annotations

import json

import pytest

from sdlab.organism import bases
from sdlab.organism import pretrain as pretrain_mod
from sdlab.organism.pretrain import pretrain

TINY_MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2}
TINY_TRAIN = {"steps": 4, "tokens_per_batch": 256, "warmup_steps": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return pretrain({"version": 2}, TINY_MODEL, TINY_TRAIN, cache_dir=cache, progress=False, use_shipped=False)


def test_ship_install_verify_and_tamper(tiny, tmp_path, monkeypatch):
    shipped = tmp_path / "bases"
    out = bases.ship(tiny, shipped)
    manifest = json.loads((out / bases.MANIFEST).read_text())
    assert manifest["key"] == tiny.name and "model.safetensors" in manifest["files"]
    assert bases.verify(out)["key"] == tiny.name
    # pretrain() takes the shipped base for exactly its key, verified, without training
    monkeypatch.setattr(bases, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(pretrain_mod, "_train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    cache = tmp_path / "cache"
    got = pretrain({"version": 2}, TINY_MODEL, TINY_TRAIN, cache_dir=cache, progress=False)
    assert got == cache / tiny.name and (got / bases.MANIFEST).is_file()
    assert (got / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()
    # another config is not shipped: it would be pretrained
    with pytest.raises(AssertionError, match="trained"):
        pretrain({"version": 2, "seed": 5}, TINY_MODEL, TINY_TRAIN, cache_dir=cache, progress=False)
    # a modified file fails the hash check, in the package and in the cache
    weights = got / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(bases.ShippedBaseError, match="sha256"):
        pretrain({"version": 2}, TINY_MODEL, TINY_TRAIN, cache_dir=cache, progress=False)
    (out / "config.json").write_text("{}")
    with pytest.raises(bases.ShippedBaseError):
        bases.install_shipped(tiny.name, tmp_path / "other", shipped_dir=shipped)
    assert not (tmp_path / "other").exists()
