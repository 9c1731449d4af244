"""Command line: srat-sklearn demo | train | evaluate.

demo trains NT, AT, AT-DRW and SRAT on step-imbalanced digits and writes a
report; train trains one method on a data set and saves the model and its
report; evaluate scores a saved model. See srat-sklearn COMMAND --help.

Only the commands import torch and the estimator, so that --help and --version
answer at once.
"""

import importlib

from ._arguments import build_parser

__all__ = ["main", "build_parser", "run_demo", "run_train", "run_evaluate", "load_data",
           "demo_data"]

_COMMANDS = {"run_demo": "_commands", "run_train": "_commands", "run_evaluate": "_commands",
             "demo_data": "_commands", "load_data": "_data"}


def __getattr__(name):
    if name not in _COMMANDS:
        raise AttributeError(f"module 'srat_sklearn.cli' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_COMMANDS[name]}", __name__), name)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import _commands

    run = {"demo": _commands.run_demo, "train": _commands.run_train,
           "evaluate": _commands.run_evaluate}[args.command]
    try:
        run(args)
    except KeyboardInterrupt:
        parser.exit(130, f"srat-sklearn {args.command}: interrupted; nothing was saved\n")
    except (ValueError, TypeError, OSError, ImportError) as error:
        # Bad data or paths, or a missing extra: one line, like argparse's usage errors.
        message = " ".join(str(error).split())
        parser.exit(2, f"srat-sklearn {args.command}: error: {message}\n")
    return 0
