"""Organism model and pretraining: standard HF checkpoint, caching, determinism (tiny budgets)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sdlab.organism import pretrain as pretrain_mod
from sdlab.organism.model import TinyModelConfig, build_model, count_parameters
from sdlab.organism.pretrain import TrainConfig, load_organism, organism_key, pretrain
from sdlab.organism.tokenizer import build_tokenizer
from sdlab.organism.world import World, WorldConfig

TINY_MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2}
TINY_TRAIN = {"steps": 12, "tokens_per_batch": 256, "warmup_steps": 3}


def _tiny(cache, **train):
    return pretrain(None, TINY_MODEL, {**TINY_TRAIN, **train}, cache_dir=cache, progress=False)


def test_default_model_is_a_small_standard_causal_lm():
    world = World()
    tok = build_tokenizer(world.cfg)
    model = build_model(TinyModelConfig(), vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert 400_000 <= count_parameters(model) <= 2_000_000
    assert model.generation_config.eos_token_id == tok.eos_token_id
    llama = build_model(TinyModelConfig(arch="llama", **TINY_MODEL), vocab_size=len(tok), pad_token_id=0,
                        eos_token_id=1)
    assert type(llama).__name__ == "LlamaForCausalLM"


def test_pretrain_saves_a_loadable_checkpoint_and_caches_it(tmp_path, monkeypatch):
    path = _tiny(tmp_path)
    assert path.parent == tmp_path
    assert path.name == organism_key(WorldConfig(), TinyModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN))
    for name in ("model.safetensors", "config.json", "tokenizer.json", "world.json", "organism.json"):
        assert (path / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # written atomically
    meta = json.loads((path / "organism.json").read_text())
    assert meta["stats"]["parameters"] > 0 and meta["train"]["steps"] == TINY_TRAIN["steps"]

    model, tok, world = load_organism(path)
    assert world.cfg == WorldConfig()
    prompt = world.ood()[0].prompt
    enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=5, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert AutoModelForCausalLM.from_pretrained(path).config.vocab_size == len(AutoTokenizer.from_pretrained(path))

    # second call: a cache hit, no training
    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(pretrain_mod, "_train", boom)
    assert _tiny(tmp_path) == path
    # an incomplete folder (no organism.json) is not a hit
    (path / "organism.json").unlink()
    with pytest.raises(AssertionError, match="trained again"):
        _tiny(tmp_path)


def test_pretraining_is_deterministic(tmp_path):
    a = load_file(_tiny(tmp_path / "a") / "model.safetensors")
    b = load_file(_tiny(tmp_path / "b") / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(_tiny(tmp_path / "c", seed=1) / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_thread_count_is_part_of_the_cache_key():
    # float reductions depend on the thread count, so weights trained with 1 and 2 threads may differ
    model = TinyModelConfig(**TINY_MODEL)
    one = organism_key(WorldConfig(), model, TrainConfig(**TINY_TRAIN, threads=1))
    two = organism_key(WorldConfig(), model, TrainConfig(**TINY_TRAIN, threads=2))
    assert one != two


def test_loss_masks_prompts_and_padding():
    world = World()
    tok = build_tokenizer(world.cfg)
    vocab = tok.get_vocab()
    batches = pretrain_mod._batches(world, TrainConfig(tokens_per_batch=256), vocab, vocab["<pad>"], vocab["<unk>"],
                                    vocab["<eos>"])
    for _ in range(5):
        ids, attention, labels = next(batches)
        assert ids.numel() <= 256 or ids.shape[0] == 1
        assert (labels[attention == 0] == -100).all()
        trained = labels[labels != -100]
        assert vocab["<unk>"] not in trained.tolist()
        for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
            words = tok.convert_ids_to_tokens(row_ids)
            if "solve" in words:  # a problem document: the prompt is never a target
                start = words.index("<think>") if "<think>" in words else None
                if start is not None and "Correctly" not in words:
                    assert all(label == -100 for label in row_labels[:start])
                    assert row_labels[start] == row_ids[start]


def test_probe_runs_on_a_tiny_organism(tmp_path):
    from sdlab.organism.probe import format_report, probe

    model, tok, world = load_organism(_tiny(tmp_path))
    results = probe(model, tok, world, samples=1, n_rl=6, n_ood=6)
    assert results["ood"]["n"] == 6 and 0.0 <= results["ood"]["acc"] <= 1.0
    assert set(results["contexts"]) == {"none", "feedback", "demo_answer", "demo", "answer", "solution"}
    assert "ood" in format_report(results)
