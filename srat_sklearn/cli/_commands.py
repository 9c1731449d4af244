"""The command line's commands: ``demo``, ``train`` and ``evaluate``."""

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from .._torch import check_device
from ..datasets import DIGITS_UNDER_REPRESENTED, UCI_MISSING_VALUES, load_imbalanced_digits
from ..estimator import SRATClassifier
from ..methods import DIGITS_RECIPE, METHODS, PAPER_METHODS
from ..metrics import audit_robustness, robust_report
from ..plotting import plot_per_class_accuracy
from ..report import summary_table, write_report
from ._arguments import CLI_METHODS, IMBALANCED_DATA_SETS, evaluation_request
from ._data import (
    DEFAULT_EPSILON,
    DEFAULT_EPSILON_WARMUP,
    EPSILON_UNITS,
    default_perturbable_features,
    load_data,
    make_imbalanced_split,
    missing_value_imputer,
    provenance,
)
from ._storage import jsonable_params, load_model, load_pickled, save_model, staged_folder
from ._storage import versions as package_versions

DEMO_METHODS = ("NT", "AT", "AT-DRW", "SRAT-CE")


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
    print(f"Report written to {path} ({elapsed:.1f} s)", file=out)
    return reports


def training_params(args, epsilon, device, *, perturbable_features=None, epsilon_warmup=None):
    """The estimator's parameters from the command line; ``perturbable_features`` and
    ``epsilon_warmup``: the data set's defaults, where the options are not given."""
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[args.optimizer]
    params = dict(epsilon=epsilon, norm=args.norm, n_steps=args.n_steps,
                  temperature=args.temperature, reweight_epoch=args.reweight_epoch,
                  lr_drop_epoch=args.reweight_epoch,  # one schedule, AT-RW's too
                  max_epochs=args.max_epochs, batch_size=args.batch_size, optimizer=optimizer,
                  lr=args.lr if args.lr is not None else {"sgd": 0.05, "adam": 1e-3}[
                      args.optimizer],
                  device=device, random_state=args.seed, verbose=0, loss="ce",
                  perturbable_features=args.perturbable_features
                  if args.perturbable_features is not None else perturbable_features)
    if args.optimizer == "sgd":
        params.update(optimizer__momentum=0.9, optimizer__weight_decay=5e-4)
    params.update(METHODS[CLI_METHODS[args.method]])  # nt sets epsilon=0
    warmup = args.epsilon_warmup if args.epsilon_warmup is not None else epsilon_warmup
    if warmup is not None:  # else the method's own, or none
        params["epsilon_warmup"] = warmup
    if params["lambda_sep"] > 0:
        params["lambda_sep"] = args.lambda_sep
    if args.loss is not None:
        params["loss"] = args.loss
    return params


def fit_until_interrupted(model, X, y):
    """Fit; a Ctrl-C, which skorch answers by ending the fit quietly, is raised again."""
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        model.fit(X, y)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def run_train(args, out=None):
    out = sys.stdout if out is None else out
    evaluation_request(args)  # a bad evaluation setting fails before, not after, training
    device = args.device
    check_device(device, name="--device")
    X_train, X_test, y_train, y_test, kind = load_data(
        args.data, root=args.data_root, download=args.download, test_size=args.test_size,
        seed=args.seed)
    imbalance = args.imbalance or ("none" if args.data in IMBALANCED_DATA_SETS else "step:10")
    X_train, y_train = make_imbalanced_split(X_train, y_train, imbalance, args.under, args.seed)
    epsilon = args.epsilon if args.epsilon is not None else (
        DEFAULT_EPSILON.get(args.data) or DEFAULT_EPSILON[kind])
    params = training_params(args, epsilon, device,
                             perturbable_features=default_perturbable_features(args.data),
                             epsilon_warmup=DEFAULT_EPSILON_WARMUP.get(args.data))
    with staged_folder(args.output, overwrite=args.overwrite) as staging:
        with tqdm(total=args.max_epochs, unit="epoch", disable=args.no_progress) as bar:
            clf = SRATClassifier(callbacks=[EpochProgress(bar, args.method)], **params)
            impute = [missing_value_imputer()] if args.data in UCI_MISSING_VALUES else []
            model = make_pipeline(*impute, StandardScaler(), clf) if kind == "tabular" else clf
            started = time.perf_counter()
            fit_until_interrupted(model, X_train, y_train)
            elapsed = time.perf_counter() - started
        # The progress bar holds its output stream, which does not pickle: rebuild callbacks_
        # without it (skorch's set_params would rebuild them from the old list).
        clf.callbacks = None
        clf.initialize_callbacks()
        config = {"command": " ".join(sys.argv[1:]) or "train", "versions": package_versions(),
                  "data": {**provenance(args.data, args.data_root, args.test_size, args.seed),
                           "imbalance": imbalance, "under": args.under, "kind": kind},
                  "method": args.method, "estimator": jsonable_params(params),
                  "evaluation": {"epsilon": epsilon, "norm": args.norm,
                                 "units": EPSILON_UNITS[kind]},
                  "training": {"samples": len(y_train), "epochs": len(clf.history),
                               "counts": {str(c): int(n) for c, n in
                                          zip(clf.classes_, clf.class_counts_)},
                               "fit_seconds": round(elapsed, 1)}}
        save_model(staging, model, config)
        report = _evaluate_and_print(model, X_test, y_test, args, epsilon, args.norm, staging,
                                     CLI_METHODS[args.method], config, out)
    print(f"Trained {CLI_METHODS[args.method]} on {args.data} ({len(y_train)} training samples) "
          f"in {elapsed:.1f} s; model and report saved in {args.output}", file=out)
    return report


def _evaluate_and_print(model, X_test, y_test, args, epsilon, norm, output, name, config, out):
    verbose = 0 if args.no_progress else 1
    report = robust_report(model, X_test, y_test, **{**evaluation_request(args),
                                                     "epsilon": epsilon, "norm": norm},
                           verbose=verbose)
    units = config.get("evaluation", {}).get("units")
    print("", report.to_markdown(), "", *([f"Epsilon is in {units}.", ""] if units else []),
          sep="\n", file=out)
    if output is not None:
        write_report({name: report}, output, title=f"{name} on {config['data']['name']}",
                     settings=config)
        ax = plot_per_class_accuracy(report, ax=_figure_axes())
        ax.figure.savefig(Path(output) / "per_class.png", dpi=120)
    if args.audit:
        audit = audit_robustness(model, X_test, y_test, epsilon=epsilon, norm=norm,
                                 n_steps=args.eval_steps or 20, n_queries=args.n_queries,
                                 verbose=verbose)
        print(audit.to_markdown(), "", sep="\n", file=out)
        if output is not None:
            (Path(output) / "audit.md").write_text(audit.to_markdown() + "\n")
            (Path(output) / "audit.json").write_text(json.dumps(audit.to_dict(), indent=2))
    return report


def _figure_axes():
    from matplotlib.figure import Figure  # not pyplot: the caller's backend stays as it is

    return Figure(figsize=(7, 4)).subplots()


def run_evaluate(args, out=None):
    out = sys.stdout if out is None else out
    evaluation_request(args)
    device = args.device
    check_device(device, name="--device")
    if args.pickle:
        model = load_pickled(args.model)
        folder = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
        config = json.loads((folder / "config.json").read_text()) \
            if (folder / "config.json").is_file() else {"data": {}, "evaluation": {}}
    else:
        model, config = load_model(args.model, device=device)
    source = config.get("data", {})
    name = args.data or source.get("name")
    if name is None:
        raise ValueError(f"{args.model} does not say which data it was trained on: pass --data.")
    if args.data is None and source.get("path"):
        name = source["path"]  # the .npz the model was trained on, from any folder
    _, X_test, _, y_test, _ = load_data(
        name, root=args.data_root if args.data or "root" not in source else source["root"],
        download=args.download,
        test_size=args.test_size if args.test_size is not None else source.get("test_size",
                                                                                  0.3),
        seed=args.seed if args.seed is not None else source.get("seed", 0))
    output = Path(args.output) if args.output else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    evaluation = config.get("evaluation", {})
    epsilon = args.epsilon if args.epsilon is not None else evaluation.get("epsilon")
    norm = args.norm if args.norm is not None else evaluation.get("norm")
    data = {**source, "name": args.data or source.get("name")}
    return _evaluate_and_print(model, X_test, y_test, args, epsilon, norm, output,
                               config.get("method", "model"), {**config, "data": data}, out)
