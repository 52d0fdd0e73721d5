"""Problems, benchmark registry, prompt templates."""

from .benchmarks import BENCHMARKS, Benchmark, UnknownBenchmarkError, default_data_dir, load_benchmark
from .problems import (
    DataError,
    DataSampler,
    FieldMap,
    Problem,
    load_hf,
    load_json,
    load_jsonl,
    load_parquet,
    load_problems,
    normalize_answer,
)
from .prompts import TEMPLATES, PromptTemplate, build_messages, get_template, render_prompt

__all__ = [
    "BENCHMARKS", "Benchmark", "DataError", "DataSampler", "FieldMap", "Problem", "PromptTemplate",
    "TEMPLATES", "UnknownBenchmarkError", "build_messages", "default_data_dir", "get_template", "load_benchmark",
    "load_hf", "load_json", "load_jsonl", "load_parquet", "load_problems", "normalize_answer", "render_prompt",
]
