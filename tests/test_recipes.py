"""Recipes: every YAML loads, carries the study's hyperparameters (study.md §6), every sweep expands,
the eval recipes map onto `sdlab eval`, and every training recipe runs one real training step
once its model and data are swapped for tiny local ones."""

import argparse
import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from sdlab.commands import sweep as sweep_cmd
from sdlab.commands.eval_recipe import build_argv, eval_parser, load_eval_recipe
from sdlab.config import Config, load_config
from sdlab.experiments import sweep as sw


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine, OpenMP threads spinning
    against each other make every matmul ~10x slower. Restored after this module."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
TRAIN = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name not in ("sweeps", "eval"))
SWEEPS = sorted((RECIPES / "sweeps").glob("*.yaml"))
EVALS = sorted((RECIPES / "eval").glob("*.yaml"))


def rel(p: Path) -> str:
    return str(p.relative_to(RECIPES))


def test_the_recipe_set_is_complete():
    names = {rel(p) for p in TRAIN}
    for model in ("deepseek-r1-distill-qwen-7b", "qwen3-8b-think", "qwen3-8b-nothink"):
        for variant in ("grpo", "sdpo_demo", "sdpo_demo_answer"):
            assert f"{model}/{variant}.yaml" in names
    assert "deepseek-r1-distill-qwen-7b/sdpo_demo_ema.yaml" in names
    assert {p.stem for p in SWEEPS} >= {"qwen3-8b-nothink-coverage", "organism-coverage", "organism-richness"}
    assert {p.stem for p in EVALS} == {"deepseek-r1-distill-qwen-7b", "qwen3-8b-think", "qwen3-8b-nothink"}


@pytest.mark.parametrize("path", TRAIN, ids=rel)
def test_training_recipe_fits_the_study_shapes(path):
    """Real-model recipes: checkpointed layers, bf16 compute on fp32 masters, a token budget that
    holds the longest student row (prompt + response), logits a chunk of positions at a time."""
    c = load_config(path)
    assert c.model.gradient_checkpointing and (c.model.dtype, c.model.master_dtype) == ("bfloat16", "float32")
    longest = c.data.max_prompt_length + c.rollout.max_new_tokens
    assert c.actor.max_tokens_per_micro_batch is not None and c.actor.max_tokens_per_micro_batch >= longest
    assert c.actor.logits_chunk_size <= 2048


@pytest.mark.parametrize("path", TRAIN, ids=rel)
def test_training_recipe_has_the_study_hyperparameters(path):
    c = load_config(path)
    model, variant = path.parent.name, path.stem
    assert c.model.name_or_path == {"deepseek-r1-distill-qwen-7b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                                    "qwen3-8b-think": "Qwen/Qwen3-8B", "qwen3-8b-nothink": "Qwen/Qwen3-8B"}[model]
    assert c.data.enable_thinking == {"deepseek-r1-distill-qwen-7b": None, "qwen3-8b-think": True,
                                      "qwen3-8b-nothink": False}[model]
    assert (c.data.train, c.data.prompt_template, c.reward.grader) == ("dapo_math", "boxed", "paper")
    assert (c.data.train_batch_size, c.rollout.n, c.actor.ppo_mini_batch_size, c.actor.ppo_epochs) == (256, 8, 128, 1)
    assert (c.data.max_prompt_length, c.rollout.max_new_tokens) == (2048, 20480)
    assert (c.rollout.temperature, c.rollout.top_p, c.rollout.top_k) == (1.0, 1.0, 0)
    assert (c.actor.warmup_steps, c.actor.lr_schedule, c.actor.grad_clip, c.actor.weight_decay) == (
        10, "constant", 1.0, 0.01)
    assert (c.actor.rollout_is, c.actor.rollout_is_threshold, c.actor.use_kl_loss) == ("token", 2.0, False)
    assert c.actor.loss_agg_mode == "token-mean" and c.advantage.norm_adv_by_std_in_grpo is False
    assert (c.eval.benchmarks, c.eval.every, c.eval.n, c.eval.temperature, c.eval.top_p) == (
        ["aime24"], 10, 1, 0.6, 0.95)
    assert c.steps == 100 and c.output_dir == f"runs/{model}/{variant}"
    if variant == "grpo":
        assert c.algorithm == "grpo" and c.actor.lr == 1e-6
        assert (c.actor.clip_ratio_low, c.actor.clip_ratio_high, c.actor.clip_ratio_c) == (0.2, 0.28, 3.0)
    else:
        s = c.sdpo
        assert c.algorithm == "sdpo" and c.actor.lr == 1e-5
        assert (s.distillation_weight, s.alpha, s.distillation_mode, s.distillation_topk, s.distillation_add_tail) == (
            1.0, 0.5, "topk", 100, True)
        assert (s.is_clip, s.success_reward_threshold, s.dont_reprompt_on_self_success, s.max_reprompt_len) == (
            2.0, 0.5, True, 22528)
        assert c.teacher_context == ("demo_answer" if variant == "sdpo_demo_answer" else "demo")
        assert s.teacher.kind == ("ema" if variant == "sdpo_demo_ema" else "frozen")
        if s.teacher.kind == "ema":
            assert s.teacher.update_rate == 0.05


def test_recipes_of_one_model_differ_only_in_the_method():
    method_keys = {"algorithm", "teacher_context", "actor.lr", "sdpo.teacher.kind", "output_dir"}
    for model_dir in {p.parent for p in TRAIN}:
        configs = [load_config(p) for p in sorted(model_dir.glob("*.yaml"))]
        assert set(sw.differing_keys(configs, exclude=())) <= method_keys, model_dir.name


@pytest.mark.parametrize("path", SWEEPS, ids=rel)
def test_sweep_expands(path, capsys, tmp_path):
    sweep = sw.load_sweep(path)
    runs = sw.expand(sweep)  # validates every run's config
    assert runs and len({r.name for r in runs}) == len(runs)
    grid = sw.format_grid(runs, sw.plan(runs))
    assert all(r.name in grid for r in runs)
    parser = argparse.ArgumentParser()
    sweep_cmd.add_arguments(parser)
    assert sweep_cmd.run(parser.parse_args([str(path), "--dry-run", "--output-dir", str(tmp_path / "out")])) == 0
    assert f"{len(runs)} of {len(runs)} runs" in capsys.readouterr().out and not (tmp_path / "out").exists()
    assert all(r.config.output_dir == str(sweep.output_dir / r.name) for r in runs)
    if path.stem in ("deepseek-r1-distill-qwen-7b", "qwen3-8b-think", "qwen3-8b-nothink"):
        # the method axis reproduces the per-method recipes exactly
        for r in runs:
            recipe = load_config(RECIPES / path.stem / f"{r.values['method']}.yaml")
            mine = dataclasses.replace(r.config, output_dir=recipe.output_dir,
                                       logging=dataclasses.replace(r.config.logging, run_name=None))
            assert mine == recipe, r.name
    if path.stem == "qwen3-8b-nothink-coverage":
        assert sorted({r.config.data.coverage for r in runs}) == [1, 8, 64, 128, 512]
        assert {(r.config.data.train_batch_size, r.config.actor.ppo_mini_batch_size) for r in runs} == {(64, 32)}
        assert {r.config.data.enable_thinking for r in runs} == {False}
        assert {(r.config.algorithm, r.config.actor.lr) for r in runs} == {("grpo", 1e-6), ("sdpo", 1e-5)}
    if path.stem == "organism-coverage":
        assert len(runs) == 18 and sorted({r.config.data.coverage for r in runs}) == [8, 32, 200]
    if path.stem == "organism-richness":
        ctx = [r.config.teacher_context for r in runs if r.config.algorithm == "sdpo"]
        assert sorted(set(ctx)) == sorted(["none", "feedback", "demo_answer", "demo", "answer"]) and len(ctx) == 15
    for r in runs:
        if r.config.model.name_or_path == "organism":
            assert r.config.eval.benchmarks == ["organism:train", "organism:ood"]


@pytest.mark.parametrize("path", EVALS, ids=rel)
def test_eval_recipe_maps_onto_sdlab_eval(path):
    options = load_eval_recipe(path)
    parser = eval_parser()
    args = parser.parse_args(build_argv({**options, "model": "m", "out": "o"}, parser))
    assert args.benchmarks == "aime24,aime25,amc23,math500"
    assert (args.n, args.top_k, args.max_new_tokens, args.seed) == (16, 0, 38912, 0)
    if path.stem == "qwen3-8b-nothink":
        assert (args.temperature, args.top_p, args.enable_thinking) == (0.7, 0.8, False)
    else:
        assert (args.temperature, args.top_p) == (0.6, 0.95)
        assert args.enable_thinking is (True if path.stem == "qwen3-8b-think" else None)


# ---------------------------------------------------------------------------- one real step per recipe


@pytest.fixture(scope="module")
def tiny_data(shared_data, tmp_path_factory):
    rows = [json.loads(x) for x in (shared_data / "dapo_math.jsonl").read_text().splitlines()[:4]]
    path = tmp_path_factory.mktemp("data") / "dapo4.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def half_correct(monkeypatch):
    """Grade for real (the recipe's grader on real golds), then call every other sample correct so
    that SDPO has successful siblings to distill from (a random tiny model never solves DAPO)."""
    from sdlab.engine import trainer as trainer_mod
    from sdlab.rewards import GradeResult

    real = trainer_mod.grade_many
    calls = []

    def grade_many(responses, golds, grader="math_verify", **kw):
        results = real(responses, golds, grader, **kw)
        calls.append(grader)
        return [GradeResult(correct=i % 2 == 0, pred=r.pred, reason="correct" if i % 2 == 0 else r.reason,
                            feedback="" if i % 2 == 0 else (r.feedback or "Your answer is incorrect."))
                for i, r in enumerate(results)]

    monkeypatch.setattr(trainer_mod, "grade_many", grade_many)
    return calls


@pytest.mark.parametrize("path", TRAIN, ids=rel)
def test_recipe_trains_one_step_on_a_tiny_model(path, tiny_qwen3, tiny_data, tmp_path, half_correct):
    from sdlab.engine.metrics import read_metrics
    from sdlab.engine.trainer import train

    recipe = load_config(path)
    out = tmp_path / "run"
    cfg = load_config(path, {
        "model.name_or_path": str(tiny_qwen3), "model.device": "cpu", "model.dtype": "float32",
        "data.train": str(tiny_data), "data.train_batch_size": 2, "actor.ppo_mini_batch_size": 2,
        "rollout.backend": "hf", "rollout.n": 2, "rollout.max_new_tokens": 8, "eval.every": 0,
        "data.max_prompt_length": 128, "sdpo.max_reprompt_len": 192, "sdpo.distillation_topk": 16,
        "steps": 1, "output_dir": str(out),
        "logging.progress": False, "checkpoint.save_final_model": False,
    })
    try:
        train(cfg)
    except Exception as e:  # only to say which recipe broke; the test still fails
        raise AssertionError(f"recipe {rel(path)} failed one training step on a tiny model: "
                             f"{type(e).__name__}: {e}") from e
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1]
    m = rows[0]
    assert half_correct == [recipe.reward.grader]
    assert m["reward/mean"] == 0.5 and math.isfinite(m["actor/loss"]) and math.isfinite(m["actor/grad_norm"])
    assert m["actor/lr"] == pytest.approx(recipe.actor.lr / recipe.actor.warmup_steps)  # warmup step 1 of 10
    if recipe.algorithm == "sdpo":
        assert m["sdpo/distilled_fraction"] > 0 and math.isfinite(m["sdpo/divergence"])
    assert (out / "checkpoints" / "step-1" / "COMPLETE").exists()
    assert recipe.logging.tensorboard and list((out / "tensorboard").glob("events.out.tfevents.*"))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["algorithm"] == recipe.algorithm and saved["teacher_context"] == recipe.teacher_context
    assert isinstance(load_config(out / "config.yaml"), Config)
