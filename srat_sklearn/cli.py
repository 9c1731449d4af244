"""Command line: ``srat-sklearn demo | train | evaluate``.

``demo`` trains NT, AT, AT-DRW and SRAT on step-imbalanced digits and writes a
report; ``train`` trains one method on a data set and saves the model and its
report; ``evaluate`` scores a saved model. See ``srat-sklearn COMMAND --help``.
"""

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from .attacks import ATTACKS
from .datasets import load_cifar10, load_digits_images, load_svhn, make_imbalanced
from .estimator import SRATClassifier
from .methods import PAPER_METHODS
from .metrics import audit_robustness, robust_report
from .metrics._robust import attack_request
from .report import summary_table, write_report

DEMO_METHODS = ("NT", "AT", "AT-DRW", "SRAT-CE")
UNDER_REPRESENTED = [5, 6, 7, 8, 9]
CLI_METHODS = {"nt": "NT", "at": "AT", "at-rw": "AT-RW", "at-drw": "AT-DRW", "srat": "SRAT-CE"}
DATA_SETS = ("digits", "breast-cancer", "cifar10", "svhn")
#: Default attack radius per data set, in the units the classifier sees.
DEFAULT_EPSILON = {"digits": 0.2, "cifar10": 8 / 255, "svhn": 8 / 255, "images": 8 / 255,
                   "tabular": 0.25}


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


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _fraction(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _fraction_or_epoch(text):
    try:
        return int(text)
    except ValueError:
        pass
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


def _data_name(text):
    if text in DATA_SETS or text.endswith(".npz"):
        return text
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(DATA_SETS)} or a .npz file, got {text!r}")


class EpochProgress(Callback):
    """Advance a shared tqdm bar once per epoch (skorch's ProgressBar counts batches)."""

    def __init__(self, bar, method):
        self.bar = bar
        self.method = method

    def on_epoch_end(self, net, **kwargs):
        self.bar.set_postfix(method=self.method, train_loss=f"{net.history[-1, 'train_loss']:.3f}")
        self.bar.update(1)


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
    parser = _Parser(prog="srat-sklearn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", formatter_class=_DefaultsFormatter, help="NT, AT, AT-DRW and SRAT on step-imbalanced digits, with a report",
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
        description="Train NT, AT, AT-RW, AT-DRW or SRAT on a data set made imbalanced, print "
                    "clean and robust accuracy per class on its test split, and save the model "
                    "(model.pkl, and params.pt / history.json from skorch's save_params), the "
                    "report (report.md, report.json, accuracy.png) and the settings "
                    "(config.json) in --output.")
    _add_data_arguments(train)
    train.add_argument("--method", choices=sorted(CLI_METHODS), default="srat",
                       help="nt: natural training; at: PGD adversarial training; at-rw: with "
                            "class weights from the start; at-drw: class weights from "
                            "--reweight-epoch; srat: at-drw plus the separation loss")
    train.add_argument("--loss", choices=["ce", "focal", "ldam"], default="ce",
                       help="classification loss")
    train.add_argument("--imbalance", type=_imbalance, default="step:10",
                       help="imbalance made on the training split: step:R (the classes of "
                            "--under keep 1/R of the largest class), exp:R (class c keeps "
                            "n_max * R^(-c/(C-1))) or none")
    train.add_argument("--under", type=_label_list, default=None,
                       help="comma-separated under-represented classes for step:R (default: "
                            "the last half of the classes)")
    train.add_argument("--epsilon", type=_non_negative_float, default=None,
                       help="attack radius for training and evaluation (default: 0.2 for "
                            "digits, 8/255 for cifar10, svhn and .npz images, 0.25 for "
                            "standardised tabular data)")
    train.add_argument("--norm", choices=["linf", "l2"], default="linf", help="threat model")
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
    _add_evaluation_arguments(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "evaluate", formatter_class=formatter,
        help="score a model saved by train on clean and adversarial test data",
        description="Load a model saved by 'srat-sklearn train' and print clean and robust "
                    "accuracy per class on the test split of a data set (by default the one "
                    "it was trained on, split the same way).")
    evaluate.add_argument("model", help="folder written by 'srat-sklearn train', or its "
                                        "model.pkl")
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
                        help="digits, breast-cancer, cifar10, svhn, or a .npz file with arrays "
                             "X and y (split here) or X_train, y_train, X_test, y_test"
                             + ("" if required else " (default: the model's data)"))
    parser.add_argument("--data-root", default="data",
                        help="folder of the cifar10 / svhn files")
    parser.add_argument("--download", action="store_true",
                        help="download cifar10 / svhn when missing (needs internet)")
    parser.add_argument("--test-size", type=_fraction, default=0.3,
                        help="test fraction for digits, breast-cancer and .npz without a split")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the imbalance and the training")


def _add_evaluation_arguments(parser, audit=True):
    parser.add_argument("--attack", choices=ATTACKS, default="pgd",
                        help="evaluation attack: autoattack is standard AutoAttack (APGD-CE, "
                             "APGD-T, FAB-T, Square), the evaluation to report; pgd is PGD-20, "
                             "quick")
    parser.add_argument("--eval-steps", type=_positive_int, default=None,
                        help="iterations of the evaluation attack (default: 20 for pgd and "
                             "--worst-case, 100 for the others)")
    parser.add_argument("--n-queries", type=_positive_int, default=None,
                        help="queries of square and autoattack (default: 5000)")
    parser.add_argument("--n-targets", type=_positive_int, default=None,
                        help="target classes of apgd-t, fab-t and autoattack (default: 9)")
    parser.add_argument("--n-restarts", type=_positive_int, default=1,
                        help="runs of each evaluation attack")
    parser.add_argument("--worst-case", action="store_true",
                        help="count a sample robust only if PGD, APGD-CE and APGD-DLR all fail "
                             "(instead of --attack)")
    if audit:
        parser.add_argument("--audit", action="store_true",
                            help="also run the robustness-evaluation checklist "
                                 "(srat_sklearn.metrics.audit_robustness) with --eval-steps "
                                 "(default 20) and --n-queries, and print its table")


def _evaluation(args):
    """The evaluation attack the arguments ask for, validated before any training."""
    if getattr(args, "audit", False) and args.eval_steps is not None and args.eval_steps < 4:
        raise ValueError("--audit needs --eval-steps of at least 4.")
    return attack_request(attack=args.attack, worst_case=args.worst_case,
                          n_steps=args.eval_steps, n_restarts=args.n_restarts,
                          n_queries=args.n_queries, n_targets=args.n_targets)


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
    evaluation = _evaluation(args)
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
                                          **{**evaluation, "epsilon": args.epsilon},
                                          verbose=0 if args.no_progress else 1)
    elapsed = time.perf_counter() - started
    print("", summary_table(reports), "", sep="\n", file=out)
    settings = {"data": "sklearn digits, 1x8x8 in [0, 1], stratified 70/30 split",
                "imbalance": "training classes 5-9 keep 1/10 of their samples",
                "training": f"SGD lr 0.05 momentum 0.9 wd 5e-4, batch 64, {args.max_epochs} "
                            f"epochs, L-inf PGD-10 eps {args.epsilon:g} step eps/4, class "
                            "weights and lr x0.1 at 2/3 of the epochs",
                "evaluation": f"{next(iter(reports.values())).describe_attack()}, on the "
                              "balanced test split",
                "seed": args.seed, "run time (s)": round(elapsed, 1)}
    path = write_report(reports, args.output, title="SRAT demo: imbalanced digits",
                        settings=settings)
    print(f"Report written to {path} ({elapsed:.0f} s)", file=out)
    return reports


def load_data(name, *, root="data", download=False, test_size=0.3, seed=0):
    """``(X_train, X_test, y_train, y_test, kind)`` of a data set named on the command line.

    ``kind`` is "images" (arrays in [0, 1]) or "tabular" (raw features; the
    model standardises them).
    """
    if name == "digits":
        X, y = load_digits_images()
        return (*train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed),
                "images")
    if name == "breast-cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return (*train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed),
                "tabular")
    if name == "cifar10":
        return (*_split_pairs(load_cifar10(root, train=True, download=download),
                              load_cifar10(root, train=False, download=download)), "images")
    if name == "svhn":
        return (*_split_pairs(load_svhn(root, split="train", download=download),
                              load_svhn(root, split="test", download=download)), "images")
    with np.load(name, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if {"X_train", "y_train", "X_test", "y_test"} <= set(arrays):
        X_train, y_train = arrays["X_train"], arrays["y_train"]
        X_test, y_test = arrays["X_test"], arrays["y_test"]
    elif {"X", "y"} <= set(arrays):
        X_train, X_test, y_train, y_test = train_test_split(
            arrays["X"], arrays["y"], test_size=test_size, stratify=arrays["y"],
            random_state=seed)
    else:
        raise ValueError(f"{name} must hold arrays X and y, or X_train, y_train, X_test and "
                         f"y_test; it holds {sorted(arrays)}.")
    kind = "images" if np.ndim(X_train) == 4 else "tabular"
    return X_train, X_test, y_train, y_test, kind


def _split_pairs(train, test):
    (X_train, y_train), (X_test, y_test) = train, test
    return X_train, X_test, y_train, y_test


def _make_imbalanced(X, y, imbalance, under, seed):
    if imbalance == "none":
        return X, y
    kind, _, ratio = imbalance.partition(":")
    return make_imbalanced(X, y, ratio=float(ratio), kind=kind, under_represented=under,
                           random_state=seed)


def run_train(args, out=None):
    out = sys.stdout if out is None else out
    _evaluation(args)  # a bad evaluation setting fails before, not after, training
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)  # fail before, not after, training
    X_train, X_test, y_train, y_test, kind = load_data(
        args.data, root=args.data_root, download=args.download, test_size=args.test_size,
        seed=args.seed)
    X_train, y_train = _make_imbalanced(X_train, y_train, args.imbalance, args.under, args.seed)
    default_epsilon = DEFAULT_EPSILON.get(args.data) or DEFAULT_EPSILON[kind]
    epsilon = default_epsilon if args.epsilon is None else args.epsilon
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[args.optimizer]
    optimizer_params = ({"optimizer__momentum": 0.9, "optimizer__weight_decay": 5e-4}
                        if args.optimizer == "sgd" else {})
    lr = args.lr if args.lr is not None else {"sgd": 0.05, "adam": 1e-3}[args.optimizer]
    params = dict(epsilon=epsilon, norm=args.norm, n_steps=args.n_steps,
                  temperature=args.temperature, reweight_epoch=args.reweight_epoch,
                  max_epochs=args.max_epochs, batch_size=args.batch_size, optimizer=optimizer,
                  lr=lr, device=args.device, random_state=args.seed, verbose=0, loss=args.loss,
                  **optimizer_params)
    params.update(PAPER_METHODS[CLI_METHODS[args.method]])  # nt sets epsilon=0
    if params["lambda_sep"] > 0:
        params["lambda_sep"] = args.lambda_sep
    params["loss"] = args.loss
    with tqdm(total=args.max_epochs, unit="epoch", disable=args.no_progress) as bar:
        clf = SRATClassifier(callbacks=[EpochProgress(bar, args.method)], **params)
        model = make_pipeline(StandardScaler(), clf) if kind == "tabular" else clf
        started = time.perf_counter()
        model.fit(X_train, y_train)
        elapsed = time.perf_counter() - started
    # The progress bar holds its output stream, which does not pickle: rebuild callbacks_
    # without it (skorch's set_params would rebuild them from the old list).
    clf.callbacks = None
    clf.initialize_callbacks()
    config = {"data": args.data, "data_root": args.data_root, "test_size": args.test_size,
              "seed": args.seed, "imbalance": args.imbalance, "under": args.under,
              "method": args.method, "loss": args.loss, "epsilon": epsilon, "norm": args.norm,
              "max_epochs": args.max_epochs, "train_samples": len(y_train),
              "train_counts": {str(c): int(n) for c, n in
                               zip(clf.classes_, clf.class_counts_)},
              "fit_seconds": round(elapsed, 1)}
    with open(output / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    clf.save_params(f_params=output / "params.pt", f_history=output / "history.json")
    (output / "config.json").write_text(json.dumps(config, indent=2))
    print(f"Trained {CLI_METHODS[args.method]} on {args.data} ({len(y_train)} training samples) "
          f"in {elapsed:.0f} s; model saved in {output}", file=out)
    return _evaluate_and_print(model, X_test, y_test, args, epsilon, args.norm, output,
                               CLI_METHODS[args.method], config, out)


def _evaluate_and_print(model, X_test, y_test, args, epsilon, norm, output, name, config, out):
    verbose = 0 if args.no_progress else 1
    report = robust_report(model, X_test, y_test, **{**_evaluation(args), "epsilon": epsilon,
                                                     "norm": norm}, verbose=verbose)
    print("", report.to_markdown(), "", sep="\n", file=out)
    if output is not None:
        path = write_report({name: report}, output, title=f"{name} on {config['data']}",
                            settings=config)
        print(f"Report written to {path}", file=out)
    if args.audit:
        audit = audit_robustness(model, X_test, y_test, epsilon=epsilon, norm=norm,
                                 n_steps=args.eval_steps or 20, n_queries=args.n_queries,
                                 verbose=verbose)
        print(audit.to_markdown(), "", sep="\n", file=out)
        if output is not None:
            (output / "audit.md").write_text(audit.to_markdown() + "\n")
            (output / "audit.json").write_text(json.dumps(audit.to_dict(), indent=2))
    return report


def run_evaluate(args, out=None):
    out = sys.stdout if out is None else out
    _evaluation(args)
    path = Path(args.model)
    folder = path if path.is_dir() else path.parent
    model_file = path / "model.pkl" if path.is_dir() else path
    if not model_file.is_file():
        raise FileNotFoundError(f"No model at {model_file}: pass the folder written by "
                                "'srat-sklearn train' or its model.pkl.")
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    data = args.data or config.get("data")
    if data is None:
        raise ValueError(f"{config_file} is missing: pass --data.")
    with open(model_file, "rb") as f:
        model = pickle.load(f)  # a file written by train: pickles run code, load only yours
    same_split = args.data is None
    _, X_test, _, y_test, _ = load_data(
        data, root=config.get("data_root", args.data_root) if same_split else args.data_root,
        download=args.download,
        test_size=config.get("test_size", args.test_size) if same_split else args.test_size,
        seed=config.get("seed", args.seed) if same_split else args.seed)
    output = Path(args.output) if args.output else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    epsilon = args.epsilon if args.epsilon is not None else config.get("epsilon")
    norm = args.norm if args.norm is not None else config.get("norm")
    return _evaluate_and_print(model, X_test, y_test, args, epsilon, norm, output,
                               config.get("method", "model"), {**config, "data": data}, out)


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


if __name__ == "__main__":
    sys.exit(main())
