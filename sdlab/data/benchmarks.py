"""Registry of the math benchmarks: hub id, split, field map and the local file name.

`load_benchmark(name)` reads, in order of preference: an explicit `path`; the local copy in
`data_dir` (default: `$SDLAB_DATA_DIR`, else `../shared/data` relative to the current directory
or to the repository root, when that folder exists); the Hugging Face hub.

The local copies (see `shared/data/README.md`) all use `{id, problem, answer, source, solution?}`;
the hub field maps handle each dataset's own layout (AMC float answers, GSM8K `#### N`, the DAPO
chat-list prompt and `reward_model.ground_truth`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .problems import DataError, FieldMap, Problem, load_hf, load_problems

__all__ = ["BENCHMARKS", "Benchmark", "UnknownBenchmarkError", "default_data_dir", "load_benchmark"]


class UnknownBenchmarkError(DataError, KeyError):
    """A benchmark name that is not in `BENCHMARKS`."""

    __str__ = Exception.__str__


def _strip_leading_zeros(answer: str) -> str:
    """AIME answers are integers 0-999; some copies write them as "025"."""
    return str(int(answer)) if re.fullmatch(r"0\d+", answer) else answer


_DAPO_HEAD = re.compile(r"^\s*Solve the following math problem step by step\..*?\n\s*\n", re.S)
_DAPO_TAIL = re.compile(r"\n\s*\n\s*Remember to put your answer on its own line after [\"“]?Answer:[\"”]?\.?\s*$", re.S)


def _strip_dapo_template(prompt: str) -> str:
    """Remove DAPO-Math-17k's "Answer:" instruction paragraphs (hub copy) so that `prompt` is the
    bare problem; our own template is applied later. Text without them is returned unchanged."""
    return _DAPO_TAIL.sub("", _DAPO_HEAD.sub("", prompt, count=1), count=1)


BOXED_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def _strip_boxed_suffix(prompt: str) -> str:
    """Some copies (FiRe-OPD, the study's eval parquets) bake the prompt suffix into the problem."""
    stripped = prompt.rstrip()
    if stripped.endswith(BOXED_SUFFIX):
        return stripped[: -len(BOXED_SUFFIX)].rstrip()
    return prompt


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str
    split: str
    fields: FieldMap
    """Field map of the hub dataset."""
    local_file: str
    """File name in the shared data folder (which uses the default `FieldMap()`)."""
    config: str | None = None
    revision: str | None = None
    dedupe: bool = False
    """Drop repeated prompts on hub loads (DAPO-Math-17k repeats each problem ~100 times)."""
    source: str = ""
    prompt_fn: Callable[[str], str] | None = field(default=None, compare=False)
    answer_fn: Callable[[str], str] | None = field(default=None, compare=False)
    description: str = ""

    def clean_prompt(self, prompt: str) -> str:
        prompt = _strip_boxed_suffix(prompt)
        return self.prompt_fn(prompt) if self.prompt_fn else prompt

    def postprocess(self, problems: list[Problem]) -> list[Problem]:
        """Bare problem text (known prompt suffixes/templates removed) and normalised answers."""
        out = []
        for p in problems:
            prompt = self.clean_prompt(p.prompt)
            answer = self.answer_fn(p.answer) if self.answer_fn else p.answer
            out.append(p if (prompt, answer) == (p.prompt, p.answer) else replace(p, prompt=prompt, answer=answer))
        return out

    def fields_for(self, path: str | Path) -> FieldMap:
        """The field map for a user-supplied file: the local layout (`problem`, `answer`) when the
        file has a `problem` column, else this benchmark's hub layout (e.g. a raw DAPO parquet)."""
        columns = _columns(Path(path))
        local = FieldMap()
        if columns is None or local.prompt in columns:
            return local
        hub_prompt = self.fields.prompt.split(".")[0]
        return self.fields if hub_prompt in columns else local


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("aime24", "HuggingFaceH4/aime_2024", "train",
                  FieldMap(id="id", prompt="problem", answer="answer", solution="solution", source=None),
                  "aime24.jsonl", source="aime24", answer_fn=_strip_leading_zeros,
                  description="AIME 2024 I+II, 30 problems"),
        Benchmark("aime25", "math-ai/aime25", "test",
                  FieldMap(id="id", prompt="problem", answer="answer", solution=None, source=None),
                  "aime25.jsonl", source="aime25", answer_fn=_strip_leading_zeros,
                  description="AIME 2025 I+II, 30 problems"),
        Benchmark("amc23", "math-ai/amc23", "test",
                  FieldMap(id="id", prompt="question", answer="answer", solution=None, source=None),
                  "amc23.jsonl", source="amc23", description="AMC 12 2023, 40 problems (float answers -> '27')"),
        Benchmark("math500", "HuggingFaceH4/MATH-500", "test",
                  FieldMap(id="unique_id", prompt="problem", answer="answer", solution="solution", source=None),
                  "math500.jsonl", source="math500", description="MATH-500, 500 problems"),
        Benchmark("gsm8k", "openai/gsm8k", "test",
                  FieldMap(id=None, prompt="question", answer="answer", solution="answer", source=None,
                           answer_after="####", id_format="gsm8k-test-{index:04d}"),
                  "gsm8k.jsonl", config="main", source="gsm8k", description="GSM8K test, 1319 problems"),
        Benchmark("dapo_math", "BytedTsinghua-SIA/DAPO-Math-17k", "train",
                  FieldMap(id="extra_info.index", prompt="prompt", answer="reward_model.ground_truth",
                           solution=None, source=None, id_format="dapo17k-{index:05d}"),
                  "dapo_math.jsonl", dedupe=True, source="dapo_math_17k", prompt_fn=_strip_dapo_template,
                  description="DAPO-Math-17k training set, deduplicated (17,276 locally)"),
    ]
}


def _columns(path: Path) -> set[str] | None:
    """Top-level field names of the first record of a .jsonl/.json/.parquet file (None if unknown)."""
    import json

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return set(pq.read_schema(path).names)
        with open(path, encoding="utf-8") as f:
            head = f.read(1)
            if head == "[":
                return None
            f.seek(0)
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    return set(rec) if isinstance(rec, dict) else None
    except Exception:
        return None
    return None


def default_data_dir() -> Path | None:
    """`$SDLAB_DATA_DIR`, else `../shared/data` from the CWD or from the repository root."""
    env = os.environ.get("SDLAB_DATA_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repo_root):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return None


def load_benchmark(name: str, *, data_dir: str | Path | None = None, path: str | Path | None = None,
                   limit: int | None = None) -> list[Problem]:
    """Problems of a registered benchmark (see module doc for where they come from)."""
    if name not in BENCHMARKS:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    b = BENCHMARKS[name]
    if path is not None:
        fields = b.fields_for(path)
        dedupe = b.dedupe and fields is b.fields
        return b.postprocess(load_problems(path, fields, split=b.split, dedupe=dedupe,
                                           default_source=b.source, limit=limit))
    explicit = data_dir is not None or bool(os.environ.get("SDLAB_DATA_DIR"))
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if folder is not None:
        local = folder / b.local_file
        if local.is_file():
            return b.postprocess(load_problems(local, default_source=b.source, limit=limit))
        if explicit:
            raise FileNotFoundError(f"benchmark {name!r}: {local} not found (data_dir={folder})")
    problems = load_hf(b.hub_id, b.split, b.fields, b.revision, config=b.config, default_source=b.source,
                       dedupe=b.dedupe, limit=limit)
    return b.postprocess(problems)
