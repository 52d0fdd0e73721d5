"""Pretrain the organism's base model from scratch on the generated corpus, and cache it.

`pretrain(world_cfg)` trains a tiny causal LM with plain torch AdamW (causal LM loss on response
tokens and fact lines, padding masked), deterministic on CPU given the seeds, and saves it with
`save_pretrained(safe_serialization=True)` together with the tokenizer and `world.json` under
`cache_dir/<hash of world + model + train config + corpus version>/`. A complete folder is reused
as is; a new one is written to a temporary folder and renamed into place, so readers never see a
half-written model and concurrent builders do not clash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from .model import TinyModelConfig, build_model, count_parameters
from .tokenizer import EOS, PAD, UNK, build_tokenizer, encode_words, load_tokenizer
from .world import World, WorldConfig
from .world2 import WorldConfigV2

__all__ = ["CORPUS_VERSION", "CORPUS_VERSION_V2", "TrainConfig", "V2_TRAIN", "default_cache_dir", "load_organism",
           "organism_key", "pretrain", "resolve_configs", "world_from_dir"]

CORPUS_VERSION = 1
"""Bumped whenever the generator, tokenizer or training code changes what a config produces."""

CORPUS_VERSION_V2 = 3
"""The same for world v2 (its key also holds the world's `version: 2`, so v1 keys never change).
1: variants a, b (docs/organism.md, "Variants tried"); 2: variant c (the marked second look-up);
3: variant d (after failed checks a known witness is checked, not looked up in the second function)."""

COMPLETE = "organism.json"
"""Written last inside the temporary folder: its presence marks a complete organism."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1600
    tokens_per_batch: int = 2048
    """Padded tokens per step (documents per step vary with their length)."""
    lr: float = 3e-3
    warmup_steps: int = 60
    min_lr_ratio: float = 0.05
    """Cosine decay from lr to lr * min_lr_ratio."""
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    seed: int = 0
    """Seeds the initial weights, the corpus stream and the batch order."""
    threads: int = 1
    """torch CPU threads during pretraining (part of the key: float sums depend on it)."""
    bucket: int = 16
    """Batches per length-sorted pool (less padding); order inside the pool is shuffled."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TrainConfig":
        d = dict(d or {})
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def default_cache_dir() -> Path:
    env = os.environ.get("SDLAB_ORGANISM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdlab" / "organism"


V2_TRAIN = TrainConfig(steps=4800)
"""World v2's default pretraining: variant d of docs/organism.md ("World v2"), the design chosen by
the pre-registered stopping rule (2 layers, 4,800 steps; two kinds of problem need more steps)."""


def organism_key(world_cfg: WorldConfig | WorldConfigV2, model_cfg: TinyModelConfig, train_cfg: TrainConfig) -> str:
    corpus = CORPUS_VERSION_V2 if isinstance(world_cfg, WorldConfigV2) else CORPUS_VERSION
    blob = json.dumps({"world": world_cfg.to_dict(), "model": model_cfg.to_dict(), "train": train_cfg.to_dict(),
                       "corpus_version": corpus}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_complete(path: Path) -> bool:
    return (path / COMPLETE).is_file() and (path / "model.safetensors").is_file() and (path / "world.json").is_file()


# ------------------------------------------------------------------------ batches


def _encode_doc(doc, vocab: dict[str, int], unk: int, eos: int) -> tuple[list[int], list[int]]:
    ctx = encode_words(doc.prompt, vocab, unk)
    resp = encode_words(doc.response, vocab, unk) + [eos]
    ids = ctx + resp
    # labels[t] is the target for position t (predicting ids[t] from ids[:t]); context positions are masked.
    labels = [-100] * len(ctx) + resp
    return ids, labels


def _batches(world: World, train_cfg: TrainConfig, vocab: dict[str, int], pad: int, unk: int, eos: int):
    """Batches of about `tokens_per_batch` (padded) tokens. Documents are length-sorted inside a pool
    of `bucket` batches (little padding) and the batches shuffled. A fixed token budget per step, not
    a fixed number of documents, keeps every trained token at the same weight: with Adam each step
    moves the weights about equally, so steps of short documents would otherwise count far more."""
    from .versions import iter_world_docs

    docs = iter_world_docs(world, seed=train_cfg.seed)
    rng = random.Random(f"sdlab-organism-batches:{train_cfg.seed}")
    budget = train_cfg.tokens_per_batch
    while True:
        pool, total = [], 0
        while total < budget * train_cfg.bucket:
            ids, lab = _encode_doc(next(docs), vocab, unk, eos)
            pool.append((ids, lab))
            total += len(ids)
        pool.sort(key=lambda p: len(p[0]))
        chunks, cur = [], []
        for item in pool:
            if cur and len(item[0]) * (len(cur) + 1) > budget:
                chunks.append(cur)
                cur = []
            cur.append(item)
        if cur:
            chunks.append(cur)
        rng.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (ids, lab) in enumerate(chunk):
                input_ids[i, : len(ids)] = torch.tensor(ids)
                labels[i, : len(lab)] = torch.tensor(lab)
                attention[i, : len(ids)] = 1
            yield input_ids, attention, labels


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


# ------------------------------------------------------------------------ pretraining


def _train(world: World, model_cfg: TinyModelConfig, train_cfg: TrainConfig, device: str, progress: bool):
    tok = build_tokenizer(world.cfg)
    vocab = tok.get_vocab()
    pad, eos, unk = vocab[PAD], vocab[EOS], vocab[UNK]
    model = build_model(model_cfg, vocab_size=len(vocab), pad_token_id=pad, eos_token_id=eos, seed=train_cfg.seed)
    model.to(device)
    model.train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=train_cfg.lr, betas=train_cfg.betas, eps=1e-8)
    batches = _batches(world, train_cfg, vocab, pad, unk, eos)
    t0 = time.perf_counter()
    ema = None
    tokens = 0
    history = []
    for step in range(train_cfg.steps):
        input_ids, attention, labels = next(batches)
        input_ids, attention, labels = input_ids.to(device), attention.to(device), labels.to(device)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, train_cfg)
        # Right padding + causal attention: real tokens never see the padding, and padded positions
        # carry no labels, so no attention mask is needed (and SDPA takes its causal fast path).
        logits = model(input_ids=input_ids).logits
        loss = causal_lm_loss(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        tokens += int(attention.sum())
        value = float(loss.detach())
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if (step + 1) % 100 == 0 or step + 1 == train_cfg.steps:
            history.append({"step": step + 1, "loss": round(ema, 4)})
            if progress:
                elapsed = time.perf_counter() - t0
                print(f"[organism pretrain] step {step + 1}/{train_cfg.steps} loss {ema:.3f} "
                      f"({elapsed:.0f}s, {tokens / max(elapsed, 1e-9):.0f} tok/s)", flush=True)
    model.eval()
    stats = {"seconds": round(time.perf_counter() - t0, 2), "tokens": tokens, "final_loss": round(ema or 0.0, 4),
             "parameters": count_parameters(model), "loss_history": history}
    return model, tok, stats


def resolve_configs(world_cfg=None, model_cfg=None, train_cfg=None):
    """(world, model, train) configs from objects or override mappings; a mapping's defaults are
    those of the world's version (v1: exactly the v1 defaults)."""
    from .versions import default_model_config, default_train_config, world_config, world_version

    world_cfg = world_config(world_cfg)
    version = world_version(world_cfg)
    if not isinstance(model_cfg, TinyModelConfig):
        model_cfg = default_model_config(version, model_cfg)
    if not isinstance(train_cfg, TrainConfig):
        train_cfg = default_train_config(version, train_cfg)
    return world_cfg, model_cfg, train_cfg


def pretrain(world_cfg: WorldConfig | WorldConfigV2 | dict | None = None,
             model_cfg: TinyModelConfig | dict | None = None, train_cfg: TrainConfig | dict | None = None,
             cache_dir: str | Path | None = None,
             device: str = "cpu", progress: bool = True, use_shipped: bool = True) -> Path:
    """Path of the pretrained organism for these configs: the cached folder; else a base shipped in
    the package for exactly these configs (verified by sha256, copied into the cache); else
    pretrained now and cached."""
    from .versions import make_world, world_version

    world_cfg, model_cfg, train_cfg = resolve_configs(world_cfg, model_cfg, train_cfg)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = organism_key(world_cfg, model_cfg, train_cfg)
    final = root / key
    if _is_complete(final):
        from .bases import verify_if_shipped

        verify_if_shipped(final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    if use_shipped:
        from .bases import install_shipped

        if install_shipped(key, final):
            if progress:
                print(f"[organism pretrain] using the shipped base {key} (sha256 verified)", flush=True)
            return final
    world = make_world(world_cfg)
    if progress:
        print(f"[organism pretrain] building {final} (world {world_cfg.config_hash()}, {train_cfg.steps} steps)",
              flush=True)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(train_cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train_cfg.seed)
            model, tok, stats = _train(world, model_cfg, train_cfg, device, progress)
    finally:
        torch.set_num_threads(old_threads)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    try:
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        info = {"config": world_cfg.to_dict(), "hash": world_cfg.config_hash()}
        if world_version(world_cfg) != 1:  # v1's world.json stays byte for byte as it was
            info = {"version": world_version(world_cfg), **info}
        (tmp / "world.json").write_text(json.dumps(info, indent=2))
        meta = {"key": key, "corpus_version": CORPUS_VERSION_V2 if world_version(world_cfg) == 2 else CORPUS_VERSION,
                "world": world_cfg.to_dict(),
                "model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "stats": stats}
        (tmp / COMPLETE).write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_complete(final):  # a stale partial folder: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"[organism pretrain] done in {stats['seconds']}s, {stats['parameters']} parameters, "
              f"final loss {stats['final_loss']}", flush=True)
    return final


def world_from_dir(path: str | Path):
    """The world (v1 `World` or v2 `WorldV2`) an organism folder was pretrained on."""
    from .versions import make_world, world_config

    data = json.loads((Path(path) / "world.json").read_text())
    return make_world(world_config(data["config"], version=data.get("version", 1)))


def load_organism(path: str | Path, device: str = "cpu"):
    """(model, tokenizer, world) of a pretrained organism folder (or any fine-tuned copy that keeps
    its world.json)."""
    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)
    model.eval()
    return model, load_tokenizer(path), world_from_dir(path)
