"""Command line: ``srat-sklearn demo``.

The demo trains NT, AT, AT-DRW and SRAT on step-imbalanced digits and writes a
report; see ``srat-sklearn demo --help``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from .datasets import load_digits_images, make_imbalanced
from .estimator import SRATClassifier
from .methods import PAPER_METHODS
from .metrics import robust_report
from .report import summary_table, write_report

DEMO_METHODS = ("NT", "AT", "AT-DRW", "SRAT-CE")
UNDER_REPRESENTED = [5, 6, 7, 8, 9]


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class EpochProgress(Callback):
    """Advance a shared tqdm bar once per epoch (skorch's ProgressBar counts batches)."""

    def __init__(self, bar, method):
        self.bar = bar
        self.method = method

    def on_epoch_end(self, net, **kwargs):
        self.bar.set_postfix(method=self.method, train_loss=f"{net.history[-1, 'train_loss']:.3f}")
        self.bar.update(1)


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line on stderr and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="srat-sklearn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="NT, AT, AT-DRW and SRAT on step-imbalanced digits, with a report",
        description="Train NT, AT, AT-DRW and SRAT on sklearn's digits (1x8x8 images in [0, 1]) "
                    "whose classes 5-9 keep 1/10 of their training samples; print clean and "
                    "robust accuracy and write a report.")
    demo.add_argument("--max-epochs", type=_positive_int, default=30)
    demo.add_argument("--epsilon", type=_positive_float, default=0.2,
                      help="L-inf radius for training and evaluation (default 0.2)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default="srat-report", help="report folder (default srat-report)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def demo_data(seed=0):
    """Digits as images, stratified 70/30 split, training classes 5-9 cut to 1/10."""
    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    X_train, y_train = make_imbalanced(X_train, y_train, ratio=10,
                                       under_represented=UNDER_REPRESENTED, random_state=seed)
    return X_train, X_test, y_train, y_test


def run_demo(args, out=None):
    out = sys.stdout if out is None else out
    Path(args.output).mkdir(parents=True, exist_ok=True)  # fail before, not after, training
    X_train, X_test, y_train, y_test = demo_data(args.seed)
    print(f"Training samples per class: {np.bincount(y_train).tolist()} "
          f"(test: {len(y_test)} samples, balanced)", file=out)
    print(f"Training {', '.join(DEMO_METHODS)} for {args.max_epochs} epochs each", file=out,
          flush=True)
    recipe = dict(
        epsilon=args.epsilon, step_size=args.epsilon / 4, n_steps=10,
        optimizer=torch.optim.SGD, lr=0.05, optimizer__momentum=0.9,
        optimizer__weight_decay=5e-4, batch_size=64, max_epochs=args.max_epochs,
        reweight_epoch=2 / 3, random_state=args.seed, verbose=0,
    )
    reports, started = {}, time.perf_counter()
    with tqdm(total=len(DEMO_METHODS) * args.max_epochs, unit="epoch",
              disable=args.no_progress) as bar:
        for name in DEMO_METHODS:
            clf = SRATClassifier(**{**recipe, **PAPER_METHODS[name]},
                                 callbacks=[EpochProgress(bar, name)])
            clf.fit(X_train, y_train)
            reports[name] = robust_report(clf, X_test, y_test,
                                          under_represented=UNDER_REPRESENTED,
                                          epsilon=args.epsilon, n_steps=20)
    elapsed = time.perf_counter() - started
    print("", summary_table(reports), "", sep="\n", file=out)
    settings = {"data": "sklearn digits, 1x8x8 in [0, 1], stratified 70/30 split",
                "imbalance": "training classes 5-9 keep 1/10 of their samples",
                "training": f"SGD lr 0.05 momentum 0.9 wd 5e-4, batch 64, {args.max_epochs} "
                            f"epochs, L-inf PGD-10 eps {args.epsilon:g} step eps/4, class "
                            "weights and lr x0.1 at 2/3 of the epochs",
                "evaluation": "PGD-20 on the balanced test split",
                "seed": args.seed, "run time (s)": round(elapsed, 1)}
    path = write_report(reports, args.output, title="SRAT demo: imbalanced digits",
                        settings=settings)
    print(f"Report written to {path} ({elapsed:.0f} s)", file=out)
    return reports


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(args)
    except (ValueError, TypeError, OSError) as error:
        # Bad data or paths: one line, like argparse's usage errors, not a traceback.
        message = " ".join(str(error).split())
        parser.exit(2, f"srat-sklearn {args.command}: error: {message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
