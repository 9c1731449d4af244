"""Command line: ``srat-sklearn demo | train | evaluate``.

``demo`` trains NT, AT, AT-DRW and SRAT on step-imbalanced digits and writes a
report; ``train`` trains one method on a data set and saves the model and its
report; ``evaluate`` scores a saved model. See ``srat-sklearn COMMAND --help``.
"""

from ._arguments import build_parser
from ._commands import demo_data, load_data, run_demo, run_evaluate, run_train

__all__ = ["main", "build_parser", "run_demo", "run_train", "run_evaluate", "load_data",
           "demo_data"]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(args)
        elif args.command == "train":
            run_train(args)
        elif args.command == "evaluate":
            run_evaluate(args)
    except (ValueError, TypeError, OSError) as error:
        # Bad data or paths: one line, like argparse's usage errors, not a traceback.
        message = " ".join(str(error).split())
        parser.exit(2, f"srat-sklearn {args.command}: error: {message}\n")
    return 0
