"""Problem records and loaders (JSONL, JSON, parquet, Hugging Face hub) with field mapping.

A `Problem` holds the bare problem text (no prompt template), the reference answer as a string,
an optional reference solution and a source tag. `FieldMap` says which column holds which field;
dotted paths (`reward_model.ground_truth`) reach into nested records, and a chat-list prompt
(`[{"role": ..., "content": ...}, ...]`, as in DAPO-Math-17k) yields its last user message.

Every malformed row raises `DataError` naming the file, the 1-based line (or row) and the field.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "DataError",
    "DataSampler",
    "FieldMap",
    "Problem",
    "load_hf",
    "load_json",
    "load_jsonl",
    "load_parquet",
    "load_problems",
    "normalize_answer",
    "problems_from_records",
]


from ..errors import DataError  # noqa: E402  (defined with the other user errors)
from ..io import read_jsonl, read_text  # noqa: E402


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    """The problem text, without any prompt template."""
    answer: str
    solution: str | None = None
    source: str = ""


@dataclass(frozen=True)
class FieldMap:
    """Which record field holds each `Problem` field. Dotted paths reach into nested dicts (and
    lists, with integer segments). `id=None` generates ids from `id_format`; an id field that a
    row lacks also falls back to the generated id. `solution`/`source` are optional in every row.

    `answer_after`: when set, the answer is the text after the last occurrence of this marker
    (GSM8K's `####`), with thousands separators removed from plain numbers."""

    id: str | None = "id"
    prompt: str = "problem"
    answer: str = "answer"
    solution: str | None = "solution"
    source: str | None = "source"
    answer_after: str | None = None
    id_format: str = "{stem}-{index}"
    """Generated ids: `stem` is the file stem (or dataset name), `index` the 0-based row index."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FieldMap":
        if not d:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown field-map keys {unknown}; known: {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------- field access

_MISSING = object()


def _get_path(record: Any, path: str) -> Any:
    """`record[path]` if that key exists literally, else follow the dotted path."""
    if isinstance(record, dict) and path in record:
        return record[path]
    cur = record
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        elif isinstance(cur, (list, tuple, np.ndarray)) and re.fullmatch(r"-?\d+", part):
            i = int(part)
            if not -len(cur) <= i < len(cur):
                return _MISSING
            cur = cur[i]
        else:
            return _MISSING
    return cur


def _is_chat_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0 and all(
        isinstance(m, dict) and "content" in m for m in value)


def _prompt_text(value: Any) -> str:
    """A string prompt, or the content of the last user message of a chat list."""
    if isinstance(value, str):
        return value
    if _is_chat_list(value):
        users = [m for m in value if m.get("role", "user") == "user"]
        if not users:
            raise ValueError("chat-list prompt has no user message")
        content = users[-1]["content"]
        if not isinstance(content, str):
            raise ValueError(f"last user message content is {type(content).__name__}, not a string")
        return content
    raise ValueError(f"expected a string or a chat list of {{role, content}} messages, got {type(value).__name__}")


_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")


def normalize_answer(value: Any, *, answer_after: str | None = None) -> str:
    """An answer as a string: strings are stripped, integral floats lose their `.0` (27.0 -> "27"),
    other numbers use their shortest repr. Raises ValueError for anything else (lists, bools, NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        raise ValueError("answer is a boolean")
    if isinstance(value, str):
        text = value
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"answer is not a finite number ({x})")
        text = str(int(x)) if x.is_integer() else repr(x)
    else:
        raise ValueError(f"answer of type {type(value).__name__} cannot be normalised to a string")
    if answer_after is not None:
        if answer_after not in text:
            raise ValueError(f"answer has no {answer_after!r} marker")
        text = text.rsplit(answer_after, 1)[1].strip()
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
    return text.strip()


def _optional_str(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, (numbers.Number,)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


# --------------------------------------------------------------------------- records -> problems


def problems_from_records(
    records: Iterable[tuple[int, Any]],
    fields: FieldMap | None = None,
    *,
    origin: str,
    stem: str,
    unit: str = "line",
    default_source: str = "",
    dedupe: bool = False,
    limit: int | None = None,
) -> list[Problem]:
    """Turn `(position, record)` pairs into problems. `origin` names the file in messages; `unit`
    is "line" (messages read `file:LINE: ...`) or "row" (`file: row N: ...`). With `dedupe`, rows
    whose prompt text repeats an earlier one are dropped (keep first)."""
    fm = fields or FieldMap()
    problems: list[Problem] = []
    seen_ids: dict[str, int] = {}
    seen_prompts: set[str] = set()

    def where(pos: int) -> str:
        return f"{origin}:{pos}" if unit == "line" else f"{origin}: row {pos}"

    for index, (pos, rec) in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(f"{where(pos)}: expected a JSON object, got {type(rec).__name__}")

        def fail(fname: str, msg: str) -> DataError:
            return DataError(f"{where(pos)}: field {fname!r}: {msg}")

        # prompt
        raw = _get_path(rec, fm.prompt)
        if raw is _MISSING or raw is None:
            raise fail(fm.prompt, "missing")
        try:
            prompt = _prompt_text(raw)
        except ValueError as e:
            raise fail(fm.prompt, str(e)) from None
        if not prompt.strip():
            raise fail(fm.prompt, "empty")
        # answer
        raw = _get_path(rec, fm.answer)
        if raw is _MISSING or raw is None:
            raise fail(fm.answer, "missing")
        try:
            answer = normalize_answer(raw, answer_after=fm.answer_after)
        except ValueError as e:
            raise fail(fm.answer, str(e)) from None
        if not answer:
            raise fail(fm.answer, "empty")
        # id
        raw = _get_path(rec, fm.id) if fm.id else _MISSING
        if raw is _MISSING:
            pid = fm.id_format.format(stem=stem, index=index)
        else:
            try:
                pid = _optional_str(raw)
            except ValueError as e:
                raise fail(fm.id, str(e)) from None
            if pid is None or not pid.strip():
                raise fail(fm.id, "empty")
        # optional fields
        try:
            solution = _optional_str(_get_path(rec, fm.solution)) if fm.solution else None
        except ValueError as e:
            raise fail(fm.solution, str(e)) from None
        try:
            source = _optional_str(_get_path(rec, fm.source)) if fm.source else None
        except ValueError as e:
            raise fail(fm.source, str(e)) from None

        if dedupe:
            if prompt in seen_prompts:
                continue
            seen_prompts.add(prompt)
        if pid in seen_ids:
            first = seen_ids[pid]
            raise DataError(f"{where(pos)}: field {fm.id or 'id'!r}: duplicate id {pid!r} "
                            f"(first at {unit} {first}, again at {unit} {pos})")
        seen_ids[pid] = pos
        problems.append(Problem(id=pid, prompt=prompt, answer=answer, solution=solution,
                                source=source if source is not None else default_source))
        if limit is not None and len(problems) >= limit:
            break
    return problems


# --------------------------------------------------------------------------- loaders


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {p}")
    return p


def load_jsonl(path: str | Path, fields: FieldMap | None = None, *, default_source: str = "",
               dedupe: bool = False, limit: int | None = None) -> list[Problem]:
    """One JSON object per line (blank lines are skipped; line numbers stay those of the file)."""
    p = _check_file(path)
    return problems_from_records(read_jsonl(p), fields, origin=str(p), stem=p.stem, unit="line",
                                 default_source=default_source, dedupe=dedupe, limit=limit)


def load_json(path: str | Path, fields: FieldMap | None = None, *, default_source: str = "",
              dedupe: bool = False, limit: int | None = None) -> list[Problem]:
    """A JSON array of objects (row numbers are 1-based array positions), or JSONL in a .json file."""
    p = _check_file(path)
    text = read_text(p)
    if not text.lstrip().startswith("["):
        return load_jsonl(p, fields, default_source=default_source, dedupe=dedupe, limit=limit)
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    return problems_from_records(enumerate(rows, start=1), fields, origin=str(p), stem=p.stem, unit="row",
                                 default_source=default_source, dedupe=dedupe, limit=limit)


def load_parquet(path: str | Path, fields: FieldMap | None = None, *, default_source: str = "",
                 dedupe: bool = False, limit: int | None = None) -> list[Problem]:
    """A parquet file; messages name the 1-based row."""
    import pyarrow.parquet as pq

    p = _check_file(path)
    try:
        rows = pq.read_table(p).to_pylist()
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{p}: cannot read parquet ({e})") from None
    return problems_from_records(enumerate(rows, start=1), fields, origin=str(p), stem=p.stem, unit="row",
                                 default_source=default_source, dedupe=dedupe, limit=limit)


def load_hf(dataset_id: str, split: str, fields: FieldMap | None = None, revision: str | None = None, *,
            config: str | None = None, default_source: str = "", dedupe: bool = False,
            limit: int | None = None) -> list[Problem]:
    """A Hugging Face hub dataset via `datasets.load_dataset` (downloads on first use)."""
    from datasets import load_dataset

    ds = load_dataset(dataset_id, config, split=split, revision=revision)
    origin = f"{dataset_id}" + (f"[{config}]" if config else "") + f" split {split}"
    stem = dataset_id.rsplit("/", 1)[-1]
    return problems_from_records(enumerate(ds, start=1), fields, origin=origin, stem=stem, unit="row",
                                 default_source=default_source, dedupe=dedupe, limit=limit)


_FILE_SUFFIXES = {".jsonl": load_jsonl, ".ndjson": load_jsonl, ".json": load_json, ".parquet": load_parquet}


def load_problems(spec: str | Path, fields: FieldMap | dict | None = None, *, split: str = "train",
                  revision: str | None = None, config: str | None = None, dedupe: bool = False,
                  default_source: str = "", limit: int | None = None) -> list[Problem]:
    """Dispatch on the spec: a `.jsonl`/`.json`/`.parquet` path (or any existing file, read as
    JSONL) loads locally; anything else of the form `owner/name` is a hub dataset id."""
    fm = FieldMap.from_dict(fields) if isinstance(fields, dict) else fields
    p = Path(spec)
    loader = _FILE_SUFFIXES.get(p.suffix.lower())
    if loader is not None:
        return loader(p, fm, default_source=default_source, dedupe=dedupe, limit=limit)
    if p.is_file():
        return load_jsonl(p, fm, default_source=default_source, dedupe=dedupe, limit=limit)
    s = str(spec)
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", s):
        return load_hf(s, split, fm, revision, config=config, default_source=default_source, dedupe=dedupe,
                       limit=limit)
    raise FileNotFoundError(f"{s!r} is neither a data file (.jsonl, .json, .parquet) nor a hub dataset id (owner/name)")


# --------------------------------------------------------------------------- sampling


class DataSampler:
    """Deterministic, resumable epoch-wise shuffler over problem indices.

    Epoch `e` visits every index once, in the permutation drawn from `(seed, e)` (identity order
    when `shuffle=False`). The state is `(epoch, position)`; `next(n)` returns the next `n`
    indices, crossing epoch boundaries as needed, so a run that checkpoints `state_dict()` and
    restores it with `load_state_dict()` continues with exactly the same indices.

    Construct with the number of problems, or with the problems themselves to use
    `next_problems(n)`."""

    def __init__(self, source: int | Sequence, *, seed: int = 0, shuffle: bool = True):
        if isinstance(source, numbers.Integral):
            self.items = None
            self.n = int(source)
        else:
            self.items = list(source)
            self.n = len(self.items)
        if self.n <= 0:
            raise ValueError("DataSampler needs at least one problem")
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.position = 0
        self._order_epoch = -1
        self._order = np.arange(self.n)

    def __len__(self) -> int:
        return self.n

    def order(self, epoch: int) -> np.ndarray:
        """The visiting order of one epoch."""
        if not self.shuffle:
            return np.arange(self.n)
        if epoch != self._order_epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._order_epoch = epoch
        return self._order

    def next(self, n: int) -> list[int]:
        if n < 0:
            raise ValueError("n must be >= 0")
        out: list[int] = []
        while len(out) < n:
            order = self.order(self.epoch)
            take = min(n - len(out), self.n - self.position)
            out.extend(int(i) for i in order[self.position:self.position + take])
            self.position += take
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
        return out

    def next_problems(self, n: int) -> list:
        if self.items is None:
            raise TypeError("DataSampler was built from a count; pass the problems to use next_problems()")
        return [self.items[i] for i in self.next(n)]

    def state_dict(self) -> dict[str, int | bool]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "n": self.n,
                "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("n", self.n), ("seed", self.seed), ("shuffle", self.shuffle)):
            if key in state and state[key] != mine:
                raise ValueError(f"sampler state was saved with {key}={state[key]!r}, this run has {key}={mine!r}")
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position < self.n:
            raise ValueError(f"invalid sampler state (epoch={epoch}, position={position}, n={self.n})")
        self.epoch, self.position = epoch, position
