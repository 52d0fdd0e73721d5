"""`python -m sdlab.experiments.eval_recipe RECIPE.yaml ...`, the path `recipes/eval/*.yaml` and
the docs cite: the same as `sdlab eval-recipe` (`sdlab/commands/eval_recipe.py`), with the
`key=value` overrides allowed anywhere on the line."""

if __name__ == "__main__":  # an entry point only: the command lives in sdlab.commands.eval_recipe
    import argparse
    import sys

    from ..commands import eval_recipe as command
    from ..config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m sdlab.experiments.eval_recipe", description=command.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(parser)
    try:
        sys.exit(command.run(parser.parse_intermixed_args()))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
