"""Epistemic-word counting (study §4) and `sdlab epistemic`."""

import argparse
import json

import pytest

from sdlab.analysis.epistemic import EPISTEMIC_WORDS, count_epistemic, total
from sdlab.analysis.responses import compare_epistemic, read_responses, summarize_epistemic
from sdlab.commands.epistemic import add_arguments, run
from sdlab.data.problems import DataError

STUDY_VECTOR = ("Wait, let me check. Hmm, maybe x=2? That seems unlikely; checking again... "
                "Actually, factually it might work. Hmmm.")


def test_word_list():
    assert EPISTEMIC_WORDS == ("wait", "hmm", "perhaps", "maybe", "actually", "alternatively", "seems",
                               "might", "likely", "check")


def test_study_vector_paper_mode():
    c = count_epistemic(STUDY_VECTOR, mode="paper")
    assert c == {"wait": 1, "hmm": 2, "perhaps": 0, "maybe": 1, "actually": 2, "alternatively": 0,
                 "seems": 1, "might": 1, "likely": 1, "check": 2}
    assert total(c) == 11 and total(STUDY_VECTOR) == 11


def test_study_vector_word_mode():
    c = count_epistemic(STUDY_VECTOR, mode="word")
    assert c == {"wait": 1, "hmm": 1, "perhaps": 0, "maybe": 1, "actually": 1, "alternatively": 0,
                 "seems": 1, "might": 1, "likely": 0, "check": 1}
    assert total(c) == 7 and total(STUDY_VECTOR, mode="word") == 7


@pytest.mark.parametrize("text,word,paper,word_mode", [
    ("checking", "check", 1, 0),
    ("double-check the checkpoint; it checks out, checked", "check", 4, 1),
    ("that is unlikely", "likely", 1, 0),
    ("hmmm", "hmm", 1, 0),
    # str.count semantics: "hmmmmmm" holds one "h", so "hmm" occurs once (study §4 says twice, which
    # contradicts its own rule); two occurrences need two h's
    ("hmmmmmm", "hmm", 1, 0),
    ("hmmhmm", "hmm", 2, 0),
    ("hmm hmm", "hmm", 2, 2),
    ("HMM Hmm", "hmm", 2, 2),
    ("I await a mighty factually waiting", "wait", 2, 0),
    ("a mighty wind", "might", 1, 0),
    ("factually", "actually", 1, 0),
    ("Alternatively, ALTERNATIVELY", "alternatively", 2, 2),
    ("", "wait", 0, 0),
])
def test_substring_vs_word(text, word, paper, word_mode):
    assert count_epistemic(text, "paper")[word] == paper
    assert count_epistemic(text, "word")[word] == word_mode


def test_paper_mode_is_str_count():
    texts = ["Wait wait WAIT... waitwait", "perhaps Perhaps? PERHAPS!", "seemsseems it seems"]
    for t in texts:
        assert count_epistemic(t) == {w: t.lower().count(w) for w in EPISTEMIC_WORDS}


def test_custom_words_and_bad_mode():
    assert count_epistemic("Let me verify. Verified!", words=("verify", "Verif")) == {"verify": 1, "Verif": 2}
    assert count_epistemic("Let me verify. Verified!", mode="word", words=("verify",)) == {"verify": 1}
    with pytest.raises(ValueError, match="mode"):
        count_epistemic("x", mode="tokens")


# --------------------------------------------------------------------------- summaries


def test_summarize_epistemic():
    responses = ["wait wait hmm", "maybe", "no hedging here at all"]
    s = summarize_epistemic(responses, correct=[True, False, None], num_tokens=[10, 5, 5], groups=["a", "a", "b"])
    assert s["n_responses"] == 3 and s["n_problems"] == 2 and s["length_unit"] == "tokens"
    assert s["per_word"]["wait"] == {"total": 2, "mean_per_response": pytest.approx(2 / 3),
                                     "per_1k": pytest.approx(100.0), "mean_per_problem": pytest.approx(1.0)}
    assert s["total"]["total"] == 4 and s["total"]["per_1k"] == pytest.approx(200.0)
    by = s["by_correct"]
    assert by["correct"]["total"]["mean_per_response"] == 3 and by["incorrect"]["total"]["total"] == 1
    assert by["unknown_responses"] == 1
    w = summarize_epistemic(responses)
    assert w["length_unit"] == "words" and w["by_correct"] is None
    assert w["total"]["per_1k"] == pytest.approx(1000 * 4 / (3 + 1 + 5))


# --------------------------------------------------------------------------- CLI


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _run_json(capsys, *argv):
    assert run(_args(*argv, "--json")) == 0
    return json.loads(capsys.readouterr().out)


def test_subcommand_is_registered():
    from sdlab.cli import build_parser

    args = build_parser("epistemic").parse_args(["epistemic", "a.jsonl", "b.jsonl", "--mode", "word", "--words",
                                                 "wait,hmm", "--json"])
    assert args._module == "sdlab.commands.epistemic" and args.file2 == "b.jsonl" and args.mode == "word" and args.json


def test_cli_parity_with_study_format(tmp_path, capsys):
    records = [
        {"id": "p1", "generated_responses": [STUDY_VECTOR, "Let me double-check. Perhaps 4.", "4"],
         "correctness": [True, False, True]},
        {"id": "p2", "generated_responses": ["Hmmmmmm, unlikely. Wait. Alternatively maybe.", "Waiting..."],
         "correctness": [False, False]},
    ]
    f = _write(tmp_path / "study.jsonl", records)
    out = _run_json(capsys, str(f), "--mode", "paper")
    (s,) = out["summary"]
    # the study's definition: lower-case, str.count per word, whole response
    responses = [r for rec in records for r in rec["generated_responses"]]
    for w in EPISTEMIC_WORDS:
        ref_total = sum(r.lower().count(w) for r in responses)
        assert s["per_word"][w]["total"] == ref_total
        assert s["per_word"][w]["mean_per_response"] == pytest.approx(ref_total / len(responses))
        assert s["per_word"][w]["mean_per_problem"] == pytest.approx(ref_total / len(records))
    ref_e = sum(sum(r.lower().count(w) for w in EPISTEMIC_WORDS) for r in responses)
    assert s["total"]["total"] == ref_e and s["total"]["mean_per_response"] == pytest.approx(ref_e / 5)
    assert s["format"] == "study" and s["n_problems"] == 2
    assert s["by_correct"]["correct"]["n_responses"] == 2 and s["by_correct"]["incorrect"]["n_responses"] == 3
    assert s["length_unit"].startswith("whitespace words")


def test_cli_single_file_sdlab_samples(tmp_path, capsys):
    recs = [
        {"benchmark": "aime24", "problem_id": "1", "sample": 0, "response": "wait, check", "correct": True,
         "num_tokens": 4},
        {"benchmark": "aime24", "problem_id": "1", "sample": 1, "response": "hmm maybe", "correct": False,
         "num_tokens": 6},
        {"benchmark": "aime24", "problem_id": "2", "sample": 0, "response": "done", "correct": None, "num_tokens": 10},
    ]
    f = _write(tmp_path / "samples.jsonl", recs)
    s = _run_json(capsys, str(f))["summary"][0]
    assert s["format"] == "sdlab" and s["n_responses"] == 3 and s["n_problems"] == 2
    assert s["length_unit"] == "tokens (num_tokens field)"
    assert s["total"]["per_1k"] == pytest.approx(1000 * 4 / 20)
    assert s["by_correct"]["correct"]["total"]["mean_per_response"] == 2
    # word mode + custom words
    s = _run_json(capsys, str(f), "--mode", "word", "--words", "wait,maybe")["summary"][0]
    assert list(s["per_word"]) == ["wait", "maybe"] and s["total"]["total"] == 2
    # readable table
    assert run(_args(str(f))) == 0
    table = capsys.readouterr().out
    assert "TOTAL" in table and "wait" in table and "per 1,000 tokens" in table and "incorrect" in table


def test_cli_plain_text_records_and_tokenizer(tmp_path, capsys):
    from sdlab.testing import char_tokenizer

    tok_dir = tmp_path / "tok"
    char_tokenizer().save_pretrained(tok_dir)
    f = _write(tmp_path / "plain.jsonl", [{"text": "wait"}, {"text": "hmm hmm"}])
    s = _run_json(capsys, str(f), "--tokenizer", str(tok_dir))["summary"][0]
    # "wait" and "hmm" are single tokens of the char tokenizer: 1 + 3 tokens
    assert s["length_unit"].startswith("tokens (") and s["mean_length"] == pytest.approx(2.0)
    assert s["total"]["per_1k"] == pytest.approx(1000 * 3 / 4) and s["format"] == "plain"


def test_cli_two_files_paired(tmp_path, capsys):
    base = [{"problem_id": str(i), "sample": k, "response": "wait " * (2 + i % 3) + "hmm", "correct": bool(k)}
            for i in range(6) for k in range(2)]
    trained = [{"problem_id": str(i), "sample": k, "response": "wait", "correct": True}
               for i in range(6) for k in range(2)]
    fa, fb = _write(tmp_path / "base.jsonl", base), _write(tmp_path / "trained.jsonl", trained)
    out = _run_json(capsys, str(fa), str(fb))
    ch = out["change"]
    assert ch["paired"] is True and ch["unit"] == "problem"
    mean_a = out["summary"][0]["per_word"]["wait"]["mean_per_response"]
    assert ch["per_word"]["wait"]["diff"] == pytest.approx(1 - mean_a)
    assert ch["per_word"]["hmm"]["diff"] == pytest.approx(-1.0)
    assert (ch["per_word"]["hmm"]["ci_low"] == pytest.approx(-1.0)
            and ch["per_word"]["hmm"]["ci_high"] == pytest.approx(-1.0))
    w = ch["per_word"]["wait"]
    assert w["ci_low"] <= w["diff"] <= w["ci_high"] and w["ci_high"] < 0
    assert ch["total"]["diff"] == pytest.approx(w["diff"] - 1.0)
    # reproducible with the same seed
    assert _run_json(capsys, str(fa), str(fb))["change"] == ch
    # readable comparison table
    assert run(_args(str(fa), str(fb))) == 0
    assert "change FILE2 - FILE1" in capsys.readouterr().out


def test_cli_two_files_unpaired(tmp_path, capsys):
    fa = _write(tmp_path / "a.jsonl", [{"response": "wait wait"}, {"response": "wait"}, {"response": ""}])
    fb = _write(tmp_path / "b.jsonl", [{"generated_responses": ["hmm", "wait hmm", "maybe", "x"]}])
    ch = _run_json(capsys, str(fa), str(fb))["change"]
    assert ch["paired"] is False
    assert ch["per_word"]["wait"]["diff"] == pytest.approx(0.25 - 1.0)
    assert ch["per_word"]["wait"]["ci_low"] <= ch["per_word"]["wait"]["ci_high"]
    # --unpaired forces independent resampling even for matching problems
    fc = _write(tmp_path / "c.jsonl", [{"problem_id": "1", "response": "wait"}])
    fd = _write(tmp_path / "d.jsonl", [{"problem_id": "1", "response": "hmm"}])
    assert _run_json(capsys, str(fc), str(fd))["change"]["paired"] is True
    assert _run_json(capsys, str(fc), str(fd), "--unpaired")["change"]["paired"] is False


def test_compare_library_function(tmp_path):
    fa = _write(tmp_path / "a.jsonl", [{"id": i, "response": "maybe " * i} for i in range(5)])
    fb = _write(tmp_path / "b.jsonl", [{"id": i, "response": "maybe " * (i + 1)} for i in range(5)])
    ch = compare_epistemic(read_responses(fa), read_responses(fb), words=("maybe",))
    assert ch["paired"] and ch["per_word"]["maybe"]["diff"] == pytest.approx(1.0)
    # paired differences are all exactly +1: a degenerate interval
    assert ch["per_word"]["maybe"]["ci_low"] == pytest.approx(1.0) == ch["per_word"]["maybe"]["ci_high"]


@pytest.mark.parametrize("line,pattern", [
    ("{not json", r"bad\.jsonl:2: invalid JSON"),
    ('{"foo": 1}', r"bad\.jsonl:2: no 'response', 'text' or 'generated_responses' field"),
    ('{"response": 5}', r"bad\.jsonl:2: field 'response': expected a string"),
    ('{"generated_responses": "x"}', r"bad\.jsonl:2: field 'generated_responses'"),
    ('{"response": "x", "correct": "yes"}', r"bad\.jsonl:2: field 'correct'"),
    ('[1]', r"bad\.jsonl:2: expected a JSON object"),
])
def test_cli_unreadable_lines(tmp_path, line, pattern):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"response": "ok"}\n' + line + "\n")
    with pytest.raises(DataError, match=pattern):
        run(_args(str(f), "--json"))


def test_cli_main_entry(tmp_path, capsys):
    from sdlab.cli import main as cli_main

    def main(argv):
        return cli_main(["epistemic", *argv])

    f = _write(tmp_path / "r.jsonl", [{"response": "Wait, maybe."}])
    assert main([str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"][0]["total"]["total"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("oops\n")
    assert main([str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_registered_in_sdlab_cli(tmp_path, capsys, monkeypatch):
    from sdlab import cli

    assert cli.COMMANDS["epistemic"][0] == "sdlab.commands.epistemic"
    # only this subcommand, so the test does not depend on the other commands' modules
    monkeypatch.setattr(cli, "COMMANDS", {"epistemic": cli.COMMANDS["epistemic"]})
    f = _write(tmp_path / "r.jsonl", [{"response": "Hmm."}])
    assert cli.main(["epistemic", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"][0]["total"]["total"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "ok"}\n{"text": 3}\n')
    assert cli.main(["epistemic", str(bad)]) == 2
    assert "bad.jsonl:2: field 'text'" in capsys.readouterr().err
