"""Shipped organism bases: manifest, sha256 verification, install into the cache, and the bases
committed in the package (their keys are the default worlds')."""

from __future__ import annotations

import json

import pytest

from sdlab.organism import bases
from sdlab.organism import pretrain as pretrain_mod
from sdlab.organism.pretrain import load_organism, organism_key, pretrain, resolve_configs

TINY_MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2}
TINY_TRAIN = {"steps": 4, "tokens_per_batch": 256, "warmup_steps": 1}
SHIPPED_WORLD_SEEDS = (0, 1)  # the two v2 worlds of docs/organism.md ("World v2")


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


def test_committed_bases_are_the_default_worlds():
    keys = bases.shipped_keys()
    want = {organism_key(*resolve_configs({"version": 2, "seed": s})) for s in SHIPPED_WORLD_SEEDS}
    want |= {organism_key(*resolve_configs({"seed": s})) for s in (0, 1)}  # the demo's worlds (v1)
    assert want <= set(keys), f"shipped {keys}, default v2 worlds {sorted(want)}"
    total = 0
    for key in keys:
        folder = bases.shipped_path(key)
        manifest = bases.verify(folder)  # every byte as committed
        meta = json.loads((folder / "organism.json").read_text())
        assert meta["key"] == key == organism_key(*resolve_configs(meta["world"], meta["model"], meta["train"]))
        size = sum(f["bytes"] for f in manifest["files"].values())
        assert size < 8_000_000, (key, size)  # a few MB each
        total += size
    assert total < 20_000_000


def test_default_v2_world_loads_from_the_shipped_base_without_training(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_mod, "_train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    path = pretrain({"version": 2, "seed": 1}, cache_dir=tmp_path, progress=False)
    model, tok, world = load_organism(path)
    assert world.cfg.seed == 1 and world.version == 2
    shipped = bases.shipped_path(path.name) / "model.safetensors"
    assert (path / "model.safetensors").read_bytes() == shipped.read_bytes()


def test_the_tokenizer_still_gives_every_shipped_base_its_token_ids():
    """The vocabulary's order is the token ids: a reordering would silently scramble a shipped base."""
    from sdlab.organism.tokenizer import build_tokenizer
    from sdlab.organism.versions import world_config

    for key in bases.shipped_keys():
        folder = bases.shipped_path(key)
        meta = json.loads((folder / "organism.json").read_text())
        shipped = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
        assert build_tokenizer(world_config(meta["world"])).get_vocab() == shipped, key
