"""Pretrained organism bases shipped inside the package, verified by hash.

`sdlab/organism/bases/<key>/` holds a complete organism folder (safetensors weights, HF config,
tokenizer, world.json, organism.json) plus `manifest.json` with the sha256 and size of every other
file; `<key>` is `pretrain.organism_key(world, model, train)`, the same key the cache uses, so a
shipped base is used exactly when a run asks for the world, model and pretraining configs it was
built with. Any other config (another world seed, another budget, another model) is not shipped and
is pretrained into the cache as before.

Shipped (the default worlds): world v1 seeds 0 and 1 (the demo's bases, so a cold `sdlab demo`,
also with `--world-seed 0,1`, trains no base and every machine starts RL from the same bytes) and
world v2 seeds 0 and 1 (variant d of docs/organism.md, "World v2"). `test_organism_bases.py`
checks that these keys are the defaults.

`pretrain()` resolves a key in this order: the cache folder (re-verified against its manifest when
it came from a shipped base), a shipped base (verified, then copied into the cache atomically),
pretraining. A file whose hash does not match its manifest raises `ShippedBaseError` rather than
falling back to pretraining: CPU pretraining is not bit-identical across machines, and the point of
shipping is that every machine starts from the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..io import sha256_file

__all__ = ["MANIFEST", "SHIPPED_DIR", "ShippedBaseError", "install_shipped", "manifest_for", "ship", "shipped_keys",
           "shipped_path", "verify", "verify_if_shipped"]

SHIPPED_DIR = Path(__file__).resolve().parent / "bases"
MANIFEST = "manifest.json"


class ShippedBaseError(RuntimeError):
    """A shipped (or installed) base does not match its manifest."""


def manifest_for(folder: str | Path) -> dict:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    meta = json.loads((folder / "organism.json").read_text())
    return {"key": meta["key"], "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}}


def verify(folder: str | Path) -> dict:
    """Check every file of the manifest (present, same size, same sha256); returns the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ShippedBaseError(f"{folder}: no {MANIFEST}")
    manifest = json.loads(path.read_text())
    for name, entry in manifest["files"].items():
        f = folder / name
        if not f.is_file():
            raise ShippedBaseError(f"{folder}: {name} is missing")
        if f.stat().st_size != entry["bytes"] or sha256_file(f) != entry["sha256"]:
            raise ShippedBaseError(f"{folder}: {name} does not match its sha256 in {MANIFEST} (corrupted or modified); "
                                   f"reinstall the package or delete the folder to pretrain a fresh base")
    meta = json.loads((folder / "organism.json").read_text())
    if meta.get("key") != manifest["key"]:
        raise ShippedBaseError(f"{folder}: organism.json key {meta.get('key')} != manifest key {manifest['key']}")
    return manifest


def shipped_keys() -> list[str]:
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / MANIFEST).is_file())


def shipped_path(key: str) -> Path | None:
    p = SHIPPED_DIR / key
    return p if (p / MANIFEST).is_file() else None


def install_shipped(key: str, dest: str | Path, shipped_dir: str | Path | None = None) -> bool:
    """Copy the shipped base `key` (verified) to `dest`; False when none is shipped for `key`."""
    src = (Path(shipped_dir) / key) if shipped_dir is not None else shipped_path(key)
    if src is None or not (src / MANIFEST).is_file():
        return False
    verify(src)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=dest.parent))
    try:
        for f in src.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        verify(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():
                shutil.rmtree(dest, ignore_errors=True)
                os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def verify_if_shipped(folder: str | Path) -> None:
    """Re-verify a cache folder that was installed from a shipped base (has a manifest)."""
    if (Path(folder) / MANIFEST).is_file():
        verify(folder)


def ship(folder: str | Path, shipped_dir: str | Path | None = None) -> Path:
    """Copy a complete pretrained folder into the package's bases with its manifest (run once per
    default world when the design is frozen; the result is committed)."""
    folder = Path(folder)
    meta = json.loads((folder / "organism.json").read_text())
    out = Path(shipped_dir or SHIPPED_DIR) / meta["key"]
    out.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        if f.is_file() and f.name != MANIFEST:
            shutil.copy2(f, out / f.name)
    (out / MANIFEST).write_text(json.dumps(manifest_for(out), indent=2, sort_keys=True) + "\n")
    verify(out)
    return out
