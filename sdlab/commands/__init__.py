"""Every `sdlab X` command, and nothing else.

The contract: `sdlab/commands/<name>.py` defines `add_arguments(parser)` and `run(args) -> int`;
`run` parses what argparse could not, calls library code, and prints. No library logic lives
here, and only `sdlab.cli` imports these modules, so everything a command does can be called from
a notebook without argparse. A new command is one module and one line in COMMANDS.

Errors meant for the user (a `ConfigError`, `DataError`, `FileNotFoundError` …) propagate to
`sdlab.cli`, which prints them as one line and exits with status 2.
"""

# name -> (module, one-line help); `sdlab --help` lists them in this order
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sdlab.commands.demo", "run the model organism: GRPO vs SDPO, evaluated in-domain and OOD"),
    "train": ("sdlab.commands.train", "train a causal LM with GRPO or SDPO from a YAML config"),
    "eval": ("sdlab.commands.eval", "evaluate a model on math benchmarks (avg@k, pass@k, length, epistemic words)"),
    "eval-recipe": ("sdlab.commands.eval_recipe", "run `sdlab eval` with the options of a YAML recipe (recipes/eval/)"),
    "epistemic": ("sdlab.commands.epistemic", "count epistemic words in saved responses"),
    "info": ("sdlab.commands.info", "the information lens: log p(y|x,c) - log p(y|x) per teacher context"),
    "sft": ("sdlab.commands.sft", "off-policy self-distillation: SFT on guided or unguided correct traces"),
    "sweep": ("sdlab.commands.sweep", "run a grid of training runs from a sweep file"),
    "report": ("sdlab.commands.report", "build an HTML report from a folder of runs"),
    "probe": ("sdlab.commands.probe", "sample the organism's base model and measure what its world promises"),
}
