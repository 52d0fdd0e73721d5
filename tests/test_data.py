"""Problem loaders, benchmark registry, sampler and prompt rendering."""

import json
import time
from pathlib import Path

import pytest

from sdlab.data import (
    BENCHMARKS,
    DataError,
    DataSampler,
    FieldMap,
    Problem,
    PromptTemplate,
    build_messages,
    load_benchmark,
    load_jsonl,
    load_parquet,
    load_problems,
    normalize_answer,
    render_prompt,
)
from sdlab.data.benchmarks import UnknownBenchmarkError, default_data_dir

BOXED = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def write_jsonl(path: Path, rows, raw_lines=()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dapo_rows():
    return [
        {"data_source": "math_dapo",
         "prompt": [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "Solve the following math problem step by step. The last line of your "
                                                "response should be of the form Answer: $Answer (without quotes).\n\n"
                                                "What is 1+1?\n\nRemember to put your answer on its own line after "
                                                "\"Answer:\"."}],
         "ability": "MATH", "reward_model": {"ground_truth": "2", "style": "rule-lighteval/MATH_v2"},
         "extra_info": {"index": "a-0"}},
        {"data_source": "math_dapo",
         "prompt": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                    {"role": "user", "content": "Compute {x} for x = 3."}],
         "ability": "MATH", "reward_model": {"ground_truth": "3", "style": "rule"}, "extra_info": {"index": "a-1"}},
    ]


DAPO_FIELDS = FieldMap(id="extra_info.index", prompt="prompt", answer="reward_model.ground_truth",
                       solution=None, source="data_source")


# --------------------------------------------------------------------------- real files

EXPECTED_ROWS = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "gsm8k": 1319, "dapo_math": 17276}


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_benchmark_local_files(shared_data, name):
    t0 = time.perf_counter()
    problems = load_benchmark(name, data_dir=shared_data)
    elapsed = time.perf_counter() - t0
    assert len(problems) == EXPECTED_ROWS[name]
    assert len({p.id for p in problems}) == len(problems)
    assert all(isinstance(p, Problem) and p.prompt.strip() and p.answer for p in problems)
    assert not any(p.prompt.rstrip().endswith("\\boxed{}.") for p in problems)  # no baked-in template
    if name == "dapo_math":
        assert elapsed < 5.0, f"dapo load took {elapsed:.2f}s"


def test_benchmark_contents(shared_data):
    amc = {p.id: p for p in load_benchmark("amc23", data_dir=shared_data)}
    assert amc["2023-AMC12A-1"].answer == "27"
    assert all("." not in p.answer for p in amc.values())
    gsm = load_benchmark("gsm8k", data_dir=shared_data)
    assert gsm[0].id == "gsm8k-test-0000" and gsm[0].answer == "18" and "####" in gsm[0].solution
    aime = load_benchmark("aime24", data_dir=shared_data, limit=5)
    assert len(aime) == 5 and aime[0].source == "aime24" and aime[0].solution
    dapo = load_benchmark("dapo_math", data_dir=shared_data, limit=3)
    assert [p.id for p in dapo] == ["dapo17k-00000", "dapo17k-00001", "dapo17k-00002"]
    assert dapo[0].answer == "34"


def test_benchmark_resolution(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SDLAB_DATA_DIR", str(shared_data))
    assert default_data_dir() == Path(shared_data)
    assert len(load_benchmark("aime25")) == 30
    # explicit data_dir without the file: a clear error, no silent hub download
    with pytest.raises(FileNotFoundError, match="aime25.jsonl"):
        load_benchmark("aime25", data_dir=tmp_path)
    # path override wins over data_dir
    f = write_jsonl(tmp_path / "mine.jsonl", [{"id": "q1", "problem": "1+1?" + BOXED, "answer": 2}])
    got = load_benchmark("aime25", data_dir=shared_data, path=f)
    assert got == [Problem("q1", "1+1?", "2", None, "aime25")]  # baked-in suffix stripped
    # unknown name lists the known ones
    with pytest.raises(UnknownBenchmarkError, match="aime24.*dapo_math.*gsm8k"):
        load_benchmark("aime26")
    with pytest.raises(KeyError):
        load_benchmark("nope")


def test_default_data_dir_relative_to_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("SDLAB_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert default_data_dir().resolve() == (tmp_path / "shared" / "data").resolve()


def test_registry_fields():
    assert BENCHMARKS["aime24"].hub_id == "HuggingFaceH4/aime_2024" and BENCHMARKS["aime24"].split == "train"
    assert BENCHMARKS["aime25"].split == BENCHMARKS["amc23"].split == BENCHMARKS["math500"].split == "test"
    assert BENCHMARKS["amc23"].fields.prompt == "question"
    assert BENCHMARKS["gsm8k"].config == "main" and BENCHMARKS["gsm8k"].fields.answer_after == "####"
    assert BENCHMARKS["dapo_math"].fields.answer == "reward_model.ground_truth"
    assert {b.local_file for b in BENCHMARKS.values()} == {f"{n}.jsonl" for n in EXPECTED_ROWS}


# --------------------------------------------------------------------------- field maps, formats


def test_dapo_layout_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = dapo_rows()
    f = write_jsonl(tmp_path / "dapo.jsonl", rows)
    got = load_jsonl(f, DAPO_FIELDS)
    assert [p.id for p in got] == ["a-0", "a-1"]
    assert got[0].prompt.startswith("Solve the following") and got[0].answer == "2"
    assert got[1].prompt == "Compute {x} for x = 3." and got[1].answer == "3"  # the last user message
    assert got[0].source == "math_dapo"

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dapo.parquet")
    assert load_parquet(tmp_path / "dapo.parquet", DAPO_FIELDS) == got
    assert load_problems(str(tmp_path / "dapo.parquet"), DAPO_FIELDS) == got
    # dict field maps (as in YAML configs) work too
    assert load_problems(f, {"id": "extra_info.index", "prompt": "prompt", "answer": "reward_model.ground_truth",
                             "source": "data_source"}) == got
    # the benchmark's path override detects the hub layout and strips the DAPO "Answer:" template
    bench = load_benchmark("dapo_math", path=tmp_path / "dapo.parquet")
    assert bench[0].prompt == "What is 1+1?" and bench[0].answer == "2"


def test_amc_layout_parquet_float_answers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"id": 0, "question": "q0", "answer": 27.0, "url": "u"},
                                         {"id": 1, "question": "q1", "answer": -1.0, "url": "u"}]),
                   tmp_path / "amc.parquet")
    got = load_parquet(tmp_path / "amc.parquet", BENCHMARKS["amc23"].fields)
    assert [(p.id, p.prompt, p.answer) for p in got] == [("0", "q0", "27"), ("1", "q1", "-1")]
    # the registry's path override picks the hub layout for this file
    assert [p.answer for p in load_benchmark("amc23", path=tmp_path / "amc.parquet")] == ["27", "-1"]


def test_parquet_error_names_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"problem": "a", "answer": "1"}, {"problem": "", "answer": "2"}]),
                   tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: row 2: field 'problem': empty"):
        load_parquet(tmp_path / "bad.parquet")


def test_generated_ids_and_defaults(tmp_path):
    f = write_jsonl(tmp_path / "plain.jsonl", [{"question": "q?", "answer": 1}, {"question": "r?", "answer": "x"}])
    got = load_jsonl(f, FieldMap(id=None, prompt="question", solution=None, source=None), default_source="mine")
    assert [p.id for p in got] == ["plain-0", "plain-1"] and got[0].source == "mine" and got[0].solution is None


def test_answer_after_marker(tmp_path):
    f = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "work <<1+1=2>>\n#### 2,125"}])
    fm = FieldMap(id=None, prompt="question", answer="answer", solution="answer", answer_after="####",
                  id_format="gsm8k-test-{index:04d}")
    (p,) = load_jsonl(f, fm)
    assert p.answer == "2125" and p.id == "gsm8k-test-0000" and p.solution.endswith("#### 2,125")


@pytest.mark.parametrize("value,expected", [(27.0, "27"), (-1.0, "-1"), (27, "27"), (0.5, "0.5"),
                                            (" 42 ", "42"), ("\\frac{1}{2}", "\\frac{1}{2}")])
def test_normalize_answer(value, expected):
    assert normalize_answer(value) == expected


@pytest.mark.parametrize("value", [True, [1, 2], {"a": 1}, float("nan")])
def test_normalize_answer_rejects(value):
    with pytest.raises(ValueError):
        normalize_answer(value)


# --------------------------------------------------------------------------- malformed rows


@pytest.mark.parametrize("line,pattern", [
    ('{"id": "b", "problem": "p"', r"bad\.jsonl:2: invalid JSON"),
    ('{"id": "b", "answer": "1"}', r"bad\.jsonl:2: field 'problem': missing"),
    ('{"id": "b", "problem": "   ", "answer": "1"}', r"bad\.jsonl:2: field 'problem': empty"),
    ('{"id": "b", "problem": "p"}', r"bad\.jsonl:2: field 'answer': missing"),
    ('{"id": "b", "problem": "p", "answer": ""}', r"bad\.jsonl:2: field 'answer': empty"),
    ('{"id": "b", "problem": "p", "answer": [1, 2]}', r"bad\.jsonl:2: field 'answer': .*cannot be normalised"),
    ('{"id": "b", "problem": "p", "answer": true}', r"bad\.jsonl:2: field 'answer': answer is a boolean"),
    ('{"id": "", "problem": "p", "answer": "1"}', r"bad\.jsonl:2: field 'id': empty"),
    ('{"id": "b", "problem": 5, "answer": "1"}', r"bad\.jsonl:2: field 'problem': expected a string or a chat list"),
    ('["not", "an", "object"]', r"bad\.jsonl:2: expected a JSON object"),
])
def test_malformed_rows(tmp_path, line, pattern):
    f = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "problem": "p", "answer": "1"}], [line])
    with pytest.raises(DataError, match=pattern) as info:
        load_jsonl(f)
    assert str(f) in str(info.value)


def test_chat_list_without_user(tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [{"prompt": [{"role": "system", "content": "s"}], "answer": "1"}])
    with pytest.raises(DataError, match=r"c\.jsonl:1: field 'prompt': chat-list prompt has no user message"):
        load_jsonl(f, FieldMap(prompt="prompt"))


def test_missing_dotted_field(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "reward_model": {"style": "x"}}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'reward_model\.ground_truth': missing"):
        load_jsonl(f, FieldMap(prompt="prompt", answer="reward_model.ground_truth"))


def test_duplicate_ids_name_both_lines(tmp_path):
    rows = [{"id": "x", "problem": "a", "answer": "1"}, {"id": "y", "problem": "b", "answer": "2"}]
    f = write_jsonl(tmp_path / "dup.jsonl", rows, ["", '{"id": "x", "problem": "c", "answer": "3"}'])
    with pytest.raises(DataError, match=r"dup\.jsonl:4: .*duplicate id 'x' \(first at line 1, again at line 4\)"):
        load_jsonl(f)


def test_blank_lines_keep_file_line_numbers(tmp_path):
    f = tmp_path / "blank.jsonl"
    f.write_text('{"problem": "a", "answer": "1"}\n\n\n{"problem": "b"}\n')
    with pytest.raises(DataError, match=r"blank\.jsonl:4: field 'answer'"):
        load_jsonl(f)


def test_load_problems_dispatch(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_problems(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="neither a data file"):
        load_problems("not a spec")
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"problem": "a", "answer": 1}, {"problem": "b", "answer": 2}]))
    assert [p.answer for p in load_problems(arr)] == ["1", "2"]


def test_dedupe_keeps_first(tmp_path):
    rows = [{"id": str(i), "problem": "same" if i != 1 else "other", "answer": str(i)} for i in range(4)]
    got = load_jsonl(write_jsonl(tmp_path / "dd.jsonl", rows), dedupe=True)
    assert [p.id for p in got] == ["0", "1"]


# --------------------------------------------------------------------------- sampler


def test_sampler_epochs_and_determinism():
    s = DataSampler(10, seed=3)
    first = s.next(10)
    assert sorted(first) == list(range(10)) and s.state_dict()["epoch"] == 1
    second = s.next(10)
    assert sorted(second) == list(range(10)) and second != first
    assert DataSampler(10, seed=3).next(20) == first + second
    assert DataSampler(10, seed=4).next(10) != first
    assert DataSampler(5, seed=0, shuffle=False).next(7) == [0, 1, 2, 3, 4, 0, 1]
    # n larger than the dataset spans several epochs
    assert len(DataSampler(3, seed=1).next(8)) == 8


def test_sampler_resume():
    ref = DataSampler(7, seed=11)
    stream = [ref.next(3) for _ in range(6)]
    s = DataSampler(7, seed=11)
    s.next(3), s.next(3)
    state = json.loads(json.dumps(s.state_dict()))  # survives a checkpoint round trip
    resumed = DataSampler(7, seed=11)
    resumed.load_state_dict(state)
    assert [resumed.next(3) for _ in range(4)] == stream[2:]
    with pytest.raises(ValueError, match="n=7"):
        DataSampler(8, seed=11).load_state_dict(state)


def test_sampler_problems():
    probs = [Problem(str(i), f"p{i}", str(i)) for i in range(4)]
    s = DataSampler(probs, seed=0)
    got = s.next_problems(4)
    assert sorted(p.id for p in got) == ["0", "1", "2", "3"]
    with pytest.raises(TypeError):
        DataSampler(4).next_problems(1)
    with pytest.raises(ValueError):
        DataSampler(0)


# --------------------------------------------------------------------------- prompts


def test_templates():
    msgs = build_messages("Find {x} where f(x)={y}.", "boxed")
    assert msgs == [{"role": "user", "content": "Find {x} where f(x)={y}." + BOXED}]
    assert build_messages("p", "plain", system="sys") == [{"role": "system", "content": "sys"},
                                                          {"role": "user", "content": "p"}]
    assert build_messages("a {b}", "Q: {problem} A: \\boxed{}")[-1]["content"] == "Q: a {b} A: \\boxed{}"
    assert PromptTemplate("<<{problem}>>").render("{problem}") == "<<{problem}>>"
    with pytest.raises(ValueError):
        build_messages("p", "no placeholder here")


class _NoTemplate:
    chat_template = None


def test_render_without_chat_template():
    msgs = build_messages("What is 2+2?", "boxed", system="Be careful.")
    assert render_prompt(_NoTemplate(), msgs, enable_thinking=True) == "Be careful.\n\nWhat is 2+2?" + BOXED
    assert render_prompt(None, build_messages("x", "plain"), enable_thinking=None) == "x"


def test_render_with_chat_template():
    from sdlab.testing import char_tokenizer

    tok = char_tokenizer(chat_template=True)
    msgs = build_messages("2+2?", "plain")
    default = render_prompt(tok, msgs, enable_thinking=None)
    assert default == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(tok, msgs, enable_thinking=True) == default
    off = render_prompt(tok, msgs, enable_thinking=False)
    assert off == default + "<think>\n\n</think>\n\n"
    plain_tok = char_tokenizer(chat_template=False)
    assert render_prompt(plain_tok, msgs, enable_thinking=False) == "2+2?"


class _Recorder:
    chat_template = "x"

    def apply_chat_template(self, messages, **kwargs):
        self.kwargs = kwargs
        return "rendered"


def test_render_passes_enable_thinking_only_when_set():
    r = _Recorder()
    render_prompt(r, [{"role": "user", "content": "q"}], enable_thinking=None)
    assert r.kwargs == {"tokenize": False, "add_generation_prompt": True}
    render_prompt(r, [{"role": "user", "content": "q"}], enable_thinking=False)
    assert r.kwargs["enable_thinking"] is False


# --------------------------------------------------------------------------- hub layouts (no download)


def test_hub_field_maps_with_fake_load_dataset(monkeypatch):
    import datasets

    import sdlab.data.benchmarks as bm

    fake = {
        ("openai/gsm8k", "main", "test"): [
            {"question": "Q0?", "answer": "step <<2*3=6>>6\n#### 1,234"},
            {"question": "Q1?", "answer": "#### 7"},
        ],
        ("math-ai/amc23", None, "test"): [{"id": 0, "question": "A?", "answer": 27.0, "url": "u"}],
        ("HuggingFaceH4/aime_2024", None, "train"): [
            {"id": 60, "problem": "P?", "solution": "S", "answer": "025", "url": "u", "year": "2024"}],
        ("BytedTsinghua-SIA/DAPO-Math-17k", None, "train"):
            dapo_rows() + [dict(dapo_rows()[0], extra_info={"index": "a-2"})],
    }
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kw):
        calls.append((path, name, split, revision))
        return fake[(path, name, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("SDLAB_DATA_DIR", raising=False)
    monkeypatch.setattr(bm, "default_data_dir", lambda: None)

    gsm = load_benchmark("gsm8k")
    assert [(p.id, p.answer, p.source) for p in gsm] == [("gsm8k-test-0000", "1234", "gsm8k"),
                                                         ("gsm8k-test-0001", "7", "gsm8k")]
    assert gsm[0].solution.endswith("#### 1,234")
    assert load_benchmark("amc23")[0].answer == "27"
    (aime,) = load_benchmark("aime24")
    assert (aime.id, aime.answer, aime.solution) == ("60", "25", "S")
    dapo = load_benchmark("dapo_math")
    assert [p.id for p in dapo] == ["a-0", "a-1"]  # the repeated prompt is dropped
    assert dapo[0].prompt == "What is 1+1?" and dapo[0].source == "dapo_math_17k"
    assert calls[0] == ("openai/gsm8k", "main", "test", None)
