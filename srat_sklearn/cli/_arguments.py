"""The command line's parser: its commands, options, their types and their help."""

import argparse

from .. import __version__
from .._packaged_data import UCI_MEASURED_COLUMNS  # NumPy only: --help imports no torch

#: srat_sklearn.attacks.ATTACKS, spelled out: --help must not import torch (a test checks).
ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "autoattack", "trades")
CLI_METHODS = {"nt": "NT", "at": "AT", "at-rw": "AT-RW", "at-drw": "AT-DRW", "srat": "SRAT-W",
               "srat-ce": "SRAT-CE", "at-bsl": "AT-BSL", "srat-bsl": "SRAT-BSL", "trades": "TRADES",
               "srat-trades": "SRAT-TRADES", "at-bsl-robustlt": "AT-BSL+RobustLT"}
DATA_SETS = ("digits", "breast-cancer", "mnist-5k", "page-blocks", "yeast", "hypothyroid",
             "cifar10", "svhn")
#: The tables that are imbalanced as they come.
IMBALANCED_DATA_SETS = tuple(UCI_MEASURED_COLUMNS)


def _number(convert, accept, expected):
    """An argparse type: ``convert(text)``, refused unless ``accept(value)``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def _fraction(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _fraction_or_epoch(text):
    try:
        epoch = int(text)
    except ValueError:
        pass
    else:
        if epoch < 0:
            raise argparse.ArgumentTypeError(f"expected an epoch >= 0, got {text!r}")
        return epoch
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an epoch (int) or a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected an epoch (int) or a fraction in [0, 1), got {text!r}")
    return value


def _imbalance(text):
    if text == "none":
        return text
    kind, _, ratio = text.partition(":")
    try:
        value = float(ratio)
    except ValueError:
        value = None
    if kind not in ("step", "exp") or value is None or not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected step:R, exp:R (R >= 1) or none, got {text!r}")
    return text


def _label_list(text):
    labels = [t.strip() for t in text.split(",") if t.strip()]
    if not labels:
        raise argparse.ArgumentTypeError(f"expected comma-separated labels, got {text!r}")
    return [int(t) if t.lstrip("-").isdigit() else t for t in labels]


def _feature_indices(text):
    try:
        return [int(t) for t in text.split(",") if t.strip()] or None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated feature indices, got {text!r}") from None


def _data_name(text):
    if text in DATA_SETS or text.endswith(".npz"):
        return text
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(DATA_SETS)} or a .npz file, got {text!r}")


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: ...)" to options whose help does not state their default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line on stderr and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="srat-sklearn", description="Separable Reweighted Adversarial "
                     "Training for class-imbalanced data: demo, train, evaluate")
    parser.add_argument("--version", action="version", version=f"srat-sklearn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", formatter_class=_DefaultsFormatter,
        help="NT, AT, AT-DRW and SRAT on step-imbalanced digits, with a report",
        description="Train NT, AT, AT-DRW and SRAT on sklearn's digits (1x8x8 images in [0, 1]) "
                    "whose classes 5-9 keep 1/10 of their training samples; print clean and "
                    "robust accuracy and write a report.")
    demo.add_argument("--max-epochs", type=_positive_int, default=30,
                      help="training epochs of each method")
    demo.add_argument("--epsilon", type=_positive_float, default=0.2,
                      help="L-inf radius for training and evaluation")
    demo.add_argument("--seed", type=int, default=0, help="seed of the imbalance and training")
    demo.add_argument("--output", default="srat-report", help="report folder")
    _add_evaluation_arguments(demo, audit=False)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    formatter = _DefaultsFormatter
    train = commands.add_parser(
        "train", formatter_class=formatter,
        help="train one method on a data set; save the model and its report",
        description="Train one method (--method: " + ", ".join(CLI_METHODS.values())
                    + ") on a data set, imbalanced as it comes or made so (--imbalance), print "
                    "clean and robust accuracy per class on its test split, and save in "
                    "--output every setting (config.json), the fitted arrays (fitted.npz), the "
                    "network's parameters (params.pt, history.json), the report (report.md, "
                    "report.json, accuracy.png, per_class.png) and a pickle of the model for "
                    "Python (model.pkl). The folder appears only when training succeeded.")
    _add_data_arguments(train)
    train.add_argument("--method", choices=sorted(CLI_METHODS), default="srat",
                       help="nt: natural training; at: PGD adversarial training; at-rw: with "
                            "class weights from the start; at-drw: class weights from "
                            "--reweight-epoch; srat: at-drw plus the separation loss, its class-"
                            "weighted loss divided by the sum of the batch's weights (the "
                            "library's defaults); srat-ce: the paper's, that loss averaged "
                            "over the batch; at-bsl: "
                            "PGD adversarial training with the balanced-softmax loss (Yue et "
                            "al., 2024); srat-bsl: at-bsl plus the separation loss; trades: "
                            "TRADES (Zhang et al., 2019); srat-trades: trades with the "
                            "separation loss and class weights from --reweight-epoch; at-bsl-"
                            "robustlt: at-bsl with class-aware budgets and an epsilon "
                            "warm-up (RobustLT, Zhang et al., 2026); every "
                            "method drops the learning rate x0.1 at --reweight-epoch")
    train.add_argument("--loss", choices=["ce", "focal", "ldam", "bsl"], default=None,
                       help="classification loss (default: bsl for the methods built on "
                            "at-bsl, else ce)")
    train.add_argument("--imbalance", type=_imbalance, default=None,
                       help="imbalance made on the training split: step:R (the classes of "
                            "--under keep 1/R of the largest class), exp:R (class c keeps "
                            "n_max * R^(-c/(C-1))) or none (default: none for "
                            + ", ".join(IMBALANCED_DATA_SETS) + ", which come imbalanced; "
                            "step:10 for the others)")
    train.add_argument("--under", type=_label_list, default=None,
                       help="comma-separated under-represented classes for step:R (default: "
                            "the last half of the classes)")
    train.add_argument("--epsilon", type=_non_negative_float, default=None,
                       help="attack radius for training and evaluation (default: 0.2 for "
                            "digits, 0.3 for mnist-5k, 8/255 for cifar10, svhn and .npz images, "
                            "0.25 for standardised tabular data)")
    train.add_argument("--norm", choices=["linf", "l2"], default="linf", help="threat model")
    train.add_argument("--epsilon-warmup", type=_fraction_or_epoch, default=None,
                       help="epochs over which the training radius grows linearly to "
                            "--epsilon, or a fraction of --max-epochs (default: 1/3 for "
                            "mnist-5k, where adversarial training at 0.3 from the first epoch "
                            "collapses to one class; the method's own for at-bsl-robustlt; "
                            "else 0)")
    train.add_argument("--perturbable-features", type=_feature_indices, default=None,
                       help="tabular data: comma-separated indices of the features attacks may "
                            "change, e.g. 0,3,4 (default: the measured columns of yeast and "
                            "hypothyroid, whose flags stay fixed; all for the others)")
    train.add_argument("--n-steps", type=_positive_int, default=10, help="PGD steps in training")
    train.add_argument("--lambda-sep", type=_non_negative_float, default=1.0,
                       help="weight of the separation loss (srat only)")
    train.add_argument("--temperature", type=_positive_float, default=0.1,
                       help="temperature of the separation loss")
    train.add_argument("--reweight-epoch", type=_fraction_or_epoch, default=0.75,
                       help="epoch at which the class weights switch on (at-drw, srat): an int, "
                            "or a fraction of --max-epochs")
    train.add_argument("--max-epochs", type=_positive_int, default=30, help="training epochs")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="batch size")
    train.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                       help="sgd has momentum 0.9 and weight decay 5e-4")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default: 0.05 for sgd, 0.001 for adam)")
    train.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    train.add_argument("--output", default="srat-model", help="folder for the model and report")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a non-empty --output folder (when training succeeds)")
    _add_evaluation_arguments(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "evaluate", formatter_class=formatter,
        help="score a model saved by train on clean and adversarial test data",
        description="Load a model saved by 'srat-sklearn train' and print clean and robust "
                    "accuracy per class on the test split of a data set (by default the one "
                    "it was trained on, split the same way).")
    evaluate.add_argument("model", help="folder written by 'srat-sklearn train'")
    evaluate.add_argument("--pickle", action="store_true",
                          help="load the folder's model.pkl instead (or the model.pkl given as "
                               "MODEL). Unpickling runs code from the file: only for models you "
                               "trained yourself")
    evaluate.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    _add_data_arguments(evaluate, required=False)
    evaluate.add_argument("--epsilon", type=_non_negative_float, default=None,
                          help="attack radius (default: the one the model was trained and "
                               "evaluated with)")
    evaluate.add_argument("--norm", choices=["linf", "l2"], default=None,
                          help="threat model (default: the model's)")
    _add_evaluation_arguments(evaluate)
    evaluate.add_argument("--output", default=None,
                          help="also write report.md / report.json / accuracy.png here "
                               "(default: print only)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_data_arguments(parser, required=True):
    parser.add_argument("--data", required=required, type=_data_name,
                        help=", ".join(DATA_SETS) + " (mnist-5k and the UCI tables "
                             "page-blocks, yeast and hypothyroid need pip install "
                             "'srat-sklearn[data]'), or a .npz file with arrays X and y (split "
                             "here) or X_train, y_train, X_test, y_test"
                             + ("" if required else " (default: the model's data)"))
    parser.add_argument("--data-root", default="data",
                        help="folder of the cifar10 / svhn files")
    parser.add_argument("--download", action="store_true",
                        help="download cifar10 / svhn when missing (needs internet)")
    parser.add_argument("--test-size", type=_fraction, default=0.3 if required else None,
                        help="test fraction of the data sets without a test split of their "
                             "own (all but cifar10 and svhn) and .npz without a split"
                             + ("" if required else " (default: the model's)"))
    parser.add_argument("--seed", type=int, default=0 if required else None,
                        help="seed of the split, the imbalance and the training"
                             + ("" if required else " (default: the model's)"))


#: The options of the evaluation attack, shared by demo, train and evaluate.
EVALUATION_OPTIONS = {
    "--attack": dict(choices=ATTACKS, default="pgd",
                     help="evaluation attack: autoattack is standard AutoAttack (APGD-CE, "
                          "APGD-T, FAB-T, Square), the evaluation to report; pgd is PGD-20, "
                          "quick"),
    "--eval-steps": dict(type=_positive_int, default=None,
                         help="iterations of the evaluation attack (default: 20 for pgd and "
                              "--worst-case, 100 for the others)"),
    "--n-queries": dict(type=_positive_int, default=None,
                        help="queries of square and autoattack (default: 5000)"),
    "--n-targets": dict(type=_positive_int, default=None,
                        help="target classes of apgd-t, fab-t and autoattack (default: 9)"),
    "--n-restarts": dict(type=_positive_int, default=1, help="runs of each evaluation attack"),
    "--worst-case": dict(action="store_true",
                         help="count a sample robust only if PGD, APGD-CE and APGD-DLR all fail "
                              "(instead of --attack)"),
}
AUDIT_OPTION = dict(action="store_true",
                    help="also run the robustness-evaluation checklist "
                         "(srat_sklearn.metrics.audit_robustness) with --eval-steps (default "
                         "20) and --n-queries, and print its table")


def _add_evaluation_arguments(parser, audit=True):
    for flag, settings in EVALUATION_OPTIONS.items():
        parser.add_argument(flag, **settings)
    if audit:
        parser.add_argument("--audit", **AUDIT_OPTION)


def evaluation_request(args):
    """The evaluation attack the arguments ask for, validated before any training."""
    from ..metrics._robust import attack_request  # imports torch: not for --help
    if getattr(args, "audit", False) and args.eval_steps is not None and args.eval_steps < 4:
        raise ValueError("--audit needs --eval-steps of at least 4.")
    return attack_request(attack=args.attack, worst_case=args.worst_case,
                          n_steps=args.eval_steps, n_restarts=args.n_restarts,
                          n_queries=args.n_queries, n_targets=args.n_targets)


