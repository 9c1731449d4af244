"""The command line's commands: ``demo``, ``train`` and ``evaluate``."""

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

from ..datasets import (
    DIGITS_UNDER_REPRESENTED,
    load_cifar10,
    load_digits_images,
    load_imbalanced_digits,
    load_svhn,
    make_imbalanced,
)
from ..estimator import SRATClassifier
from ..methods import DIGITS_RECIPE, PAPER_METHODS
from ..metrics import audit_robustness, robust_report
from ..report import summary_table, write_report
from ._arguments import CLI_METHODS, evaluation_request

DEMO_METHODS = ("NT", "AT", "AT-DRW", "SRAT-CE")
#: Default attack radius per data set, in the units the classifier sees.
DEFAULT_EPSILON = {"digits": 0.2, "cifar10": 8 / 255, "svhn": 8 / 255, "images": 8 / 255,
                   "tabular": 0.25}


class EpochProgress(Callback):
    """Advance a shared tqdm bar once per epoch (skorch's ProgressBar counts batches)."""

    def __init__(self, bar, method):
        self.bar = bar
        self.method = method

    def on_epoch_end(self, net, **kwargs):
        self.bar.set_postfix(method=self.method, train_loss=f"{net.history[-1, 'train_loss']:.3f}")
        self.bar.update(1)


def demo_data(seed=0):
    """Digits as images, stratified 70/30 split, training classes 5-9 cut to 1/10."""
    return load_imbalanced_digits(random_state=seed)


def run_demo(args, out=None):
    out = sys.stdout if out is None else out
    evaluation = evaluation_request(args)
    Path(args.output).mkdir(parents=True, exist_ok=True)  # fail before, not after, training
    X_train, X_test, y_train, y_test = demo_data(args.seed)
    print(f"Training samples per class: {np.bincount(y_train).tolist()} "
          f"(test: {len(y_test)} samples, balanced)", file=out)
    print(f"Training {', '.join(DEMO_METHODS)} for {args.max_epochs} epochs each", file=out,
          flush=True)
    recipe = {**DIGITS_RECIPE, "epsilon": args.epsilon, "step_size": args.epsilon / 4,
              "max_epochs": args.max_epochs, "reweight_epoch": 2 / 3,
              "random_state": args.seed, "verbose": 0}
    reports, started = {}, time.perf_counter()
    with tqdm(total=len(DEMO_METHODS) * args.max_epochs, unit="epoch",
              disable=args.no_progress) as bar:
        for name in DEMO_METHODS:
            clf = SRATClassifier(**{**recipe, **PAPER_METHODS[name]},
                                 callbacks=[EpochProgress(bar, name)])
            clf.fit(X_train, y_train)
            reports[name] = robust_report(clf, X_test, y_test,
                                          under_represented=DIGITS_UNDER_REPRESENTED,
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
    evaluation_request(args)  # a bad evaluation setting fails before, not after, training
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
    report = robust_report(model, X_test, y_test, **{**evaluation_request(args), "epsilon": epsilon,
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
    evaluation_request(args)
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


