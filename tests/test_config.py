import pytest

from sdlab.config import Config, ConfigError, load_config, parse_override


def test_defaults_validate():
    cfg = load_config(None, [])
    assert isinstance(cfg, Config) and cfg.algorithm == "grpo"


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("algorithm: sdpo\nrollout:\n  n: 4\nactor:\n  lr: 1.0e-5\n")
    cfg = load_config(p, ["rollout.n=16", "teacher_context=demo", "sdpo.teacher.kind=ema",
                          "eval.benchmarks=aime24,amc23"])
    assert cfg.algorithm == "sdpo" and cfg.rollout.n == 16 and cfg.actor.lr == 1e-5
    assert cfg.teacher_context == "demo" and cfg.sdpo.teacher.kind == "ema"
    assert cfg.eval.benchmarks == ["aime24", "amc23"]


def test_round_trip(tmp_path):
    cfg = load_config(None, ["actor.clip_ratio_c=3.0", "data.coverage=8"])
    cfg.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


@pytest.mark.parametrize(
    "override, key",
    [
        ("rollout.nn=3", "rollout.nn"),
        ("bogus=1", "bogus"),
        ("rollout.n=0", "rollout.n"),
        ("rollout.top_p=1.5", "rollout.top_p"),
        ("actor.loss_agg_mode=sum", "actor.loss_agg_mode"),
        ("algorithm=ppo", "algorithm"),
        ("teacher_context=everything", "teacher_context"),
        ("rollout.n=abc", "rollout.n"),
        ("sdpo.teacher.kind=moving", "sdpo.teacher.kind"),
        ("actor.ppo_mini_batch_size=3", "actor.ppo_mini_batch_size"),
    ],
)
def test_rejects_bad_values_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_invalid_combinations():
    with pytest.raises(ConfigError, match="sampled_token.*alpha"):
        load_config(None, ["algorithm=sdpo", "sdpo.distillation_mode=sampled_token", "sdpo.alpha=0.5"])
    load_config(None, ["algorithm=sdpo", "sdpo.distillation_mode=sampled_token", "sdpo.alpha=1.0"])
    with pytest.raises(ConfigError, match="use_kl_loss"):
        load_config(None, ["algorithm=sdpo", "actor.use_kl_loss=true"])


def test_parse_override():
    assert parse_override("a.b=1") == ("a.b", 1)
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent.yaml")
