"""The evidence study: methods x seeds x settings through the public estimator.

Every run appends one JSON line to the output file (default ``benchmarks/runs.jsonl``); runs
already in the file are skipped, so the study can be stopped and continued. Then
``python benchmarks/summarize.py`` turns the lines into ``docs/results.md``. The runs record
their fit times (each process first fits every setting once for 2 epochs, untimed, so that
its warm-up counts against no method), but runs of one setting lie far apart in time; the
target's fit-time criterion reads ``benchmarks/bench_methods.py``'s interleaved pairs where
they ran.

    python benchmarks/study.py --setting step --seeds 0 1 2 3 4
    python benchmarks/study.py --setting tradeoff --seeds 0 1 2
    python benchmarks/study.py --list
    python benchmarks/study.py --setting mnist-step mnist-exp --device cuda --jobs 12 \
        --threads 1 --eval-batch-size 2048

``--time-limit SECONDS`` starts no run after that time and lets the runs under way finish,
for a machine held for a fixed time (a batch job's slot, say). ``--eval-batch-size N`` attacks
up to N test images together (the evaluation's default is 250): on a GPU, where a pass costs
about as much for 250 rows as for thousands, Square's 5000 queries then run on all the images
still standing at once instead of on one part after another.

Settings (all evaluated with L-inf PGD-20 on a balanced or stratified test split):

- ``step``: digits as 1x8x8 images in [0, 1], stratified 70/30 split (random_state 0),
  classes 5-9 of the training split keep 1/10 of their samples; SmallCNN, SGD lr 0.05,
  momentum 0.9, weight decay 5e-4, batch 64, 30 epochs, lr x0.1 from epoch 20 (all methods)
  and class weights from epoch 20 (deferred methods); L-inf PGD-10, eps 0.2, step eps/4 for
  training.
- ``step-even``: the same with the even classes under-represented.
- ``exp``: the same digits with an exponential (long-tailed) imbalance of ratio 20.
- ``tabular``: breast cancer, standardised in a pipeline, the malignant class of the training
  split cut to 1/10; the default MLP and Adam, 60 epochs (lr x0.1 and deferred weights
  from epoch 45), eps 0.25 (standard deviations).
- ``fraud``: the synthetic card-payment table of ``srat_sklearn.datasets.make_fraud_like``
  (3000 rows, 5% fraud, stratified 70/30 split): a ColumnTransformer scales amount, age and
  account age, one-hot encodes country and channel, passes hour and past disputes through;
  only amount and hour are perturbable (hour by whole hours), eps 0.3 standard deviations of
  each; the default MLP and Adam, 40 epochs (lr x0.1 and deferred weights from epoch 30);
  AT-DRW, SRAT and AT-BSL.
- ``page-blocks``, ``yeast``, ``hypothyroid``: real UCI/KEEL tables (``load_uci``, the ``data``
  extra) with their natural imbalance, a stratified 70/30 split (random_state 0), features
  min-max scaled to [0, 1] in a pipeline (hypothyroid's missing values imputed by the median
  first); the default MLP and Adam, 40 epochs (lr x0.1 and deferred weights from epoch 30).
  Budget: L-inf, a quarter of each perturbable feature's training standard deviation
  (``epsilon_scale="std"``, eps 0.25), as for breast cancer: small next to the spread of a
  feature and to the measurement error of lab values and page-segmentation counts, yet
  enough to cost a naturally trained model accuracy. Indicator columns are fixed (a
  flag does not move by a quarter): yeast's two near-binary columns (erl, pox), and all of
  hypothyroid's t/f, y/n and sex columns, whose lab values (age, TSH, T3, TT4, T4U, FTI, TBG)
  stay perturbable. The under-represented classes are the library's rule (below the
  geometric mean of the largest and the smallest training count). Evaluated with PGD-20 and
  with standard AutoAttack.
- ``mnist-step``, ``mnist-exp``: MNIST's 5000-image sample (``load_mnist_5k``), stratified
  70/30 split (random_state 0), the training split made imbalanced: classes 5-9 keep 1/10, or
  an exponential imbalance of ratio 50; the digits recipe on SmallCNN with L-inf eps 0.3 (the
  MNIST standard), step eps/4, 30 epochs (lr x0.1 and deferred weights from epoch 20), the
  budget warmed up linearly over the first 10 epochs for every method (RobustLT's variant
  included): at eps 0.3 from the first epoch, AT collapsed to predicting one class.
  Evaluated with PGD-20 and with standard AutoAttack. On this project's 2-core CPUs one
  test-split run of mnist-exp (SRAT, weights-normalised, seed 0, run apart from the runs
  file) took 96 s of training, 9 s of PGD-20 and 1,124 s of standard AutoAttack on the 1,500
  test images (67.7% robust): about 20 minutes, so the 110 runs of the two settings need
  about 40 CPU-hours (mnist-step trains on twice the images). These settings are sized for a
  GPU (``--device cuda``), where ``--jobs`` runs several of these
  small models side by side, one process each, and ``--eval-batch-size`` attacks the test
  images still standing together (the command above; not yet measured on one).
- ``page-blocks-val``, ``yeast-val``, ``hypothyroid-val``, ``mnist-step-val``,
  ``mnist-exp-val``: the validation twins, for the choice of the library's default without the
  test split: the training split of the setting of that name split again, stratified 75/25
  (random_state the seed: one split per seed); the models train on the 75% and are evaluated
  on the 25% as above. Their methods are the candidates for the default and the references of
  the target (``VALIDATION_METHODS``); SRAT with RobustLT's plug-ins is a candidate on these
  twins only (``VALIDATION_CANDIDATES``), the test splits see only what the twins choose.
  So is AT-BSL+RobustLT at the mixing weights 0.25 and 0.1 (``ROBUSTLT_MIXES``) beside the
  library's 0.5: the target's RobustLT reference is the weight its twin chose
  (``summarize.tuned_robustlt``), and a test split runs that weight once a twin chooses it.
- ``tradeoff``: ``step`` with the class weight of the under-represented classes swept from 1 to
  20 from epoch 0, for AT and SRAT.
- ``lambda``: ``step`` with SRAT's lambda_sep in {0, 0.1, 0.5, 1, 2}.
- ``fast``: ``step`` with SRAT trained on cheaper attacks: PGD-3 (step eps/2), PGD-2 (step
  0.75 eps), FGSM with random start (step 1.25 eps, Wong et al. 2020) with the
  catastrophic-overfitting guard, and PGD-2 (step eps/2) started from each sample's
  perturbation of the previous epoch (``reuse_perturbations``, Zheng et al. 2020); and PGD-10
  as the reference.
"""

import argparse
import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from time import monotonic

import numpy as np
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import MultiStepLR

from srat_sklearn import SRATClassifier, robust_report
from srat_sklearn.callbacks import CatastrophicOverfittingGuard
from srat_sklearn.datasets import (
    FRAUD_LIKE_PERTURBABLE,
    UCI_MEASURED_COLUMNS,
    load_imbalanced_digits,
    load_mnist_5k,
    load_uci,
    make_fraud_like,
    make_imbalanced,
)
from srat_sklearn.methods import BASELINES, PAPER_METHODS, RECOMMENDED
from srat_sklearn.methods import DIGITS_RECIPE as SHARED_DIGITS_RECIPE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import machine  # noqa: E402
from summarize import ROBUSTLT, ROBUSTLT_MIX, load, twin_choice  # noqa: E402

# Every method gets the same learning-rate schedule (x0.1 at LR_DECAY_EPOCH, from a skorch
# LRScheduler), so the deferred reweighting itself leaves the learning rate alone
# (reweight_lr_factor=1); methods that reweight from epoch 0 get the decay too.
DIGITS_RECIPE = {**SHARED_DIGITS_RECIPE, "max_epochs": 30, "reweight_epoch": 20,
                 "reweight_lr_factor": 1.0}
TABULAR_RECIPE = dict(epsilon=0.25, n_steps=10, batch_size=64, max_epochs=60,
                      reweight_epoch=45, reweight_lr_factor=1.0)
FRAUD_RECIPE = dict(epsilon=0.3, epsilon_scale="std", perturbable_features=FRAUD_LIKE_PERTURBABLE,
                    integer_features=["hour"], n_steps=10, batch_size=64, max_epochs=40,
                    reweight_epoch=30, reweight_lr_factor=1.0)
UCI_RECIPE = dict(epsilon=0.25, epsilon_scale="std", n_steps=10, batch_size=64, max_epochs=40,
                  reweight_epoch=30, reweight_lr_factor=1.0)
#: The perturbable columns of each UCI table (None: all); indicator columns stay fixed.
UCI_PERTURBABLE = UCI_MEASURED_COLUMNS
#: The settings of the baselines issue's target; each has a validation twin, on its training
#: split only, for the choice of the default (``validation_split``).
TARGET_SETTINGS = (*UCI_PERTURBABLE, "mnist-step", "mnist-exp")
VALIDATION_SUFFIX = "-val"
UCI_SETTINGS = (*UCI_PERTURBABLE, *(name + VALIDATION_SUFFIX for name in UCI_PERTURBABLE))
MNIST_RECIPE = {**DIGITS_RECIPE, "epsilon": 0.3, "step_size": 0.075, "epsilon_warmup": 10}
LR_DECAY_EPOCH = {"digits": 20, "tabular": 45, "fraud": 30, **dict.fromkeys(UCI_SETTINGS, 30)}
#: The tabular baselines: deferred reweighting, SRAT, and the balanced-softmax AT of 2024.
FRAUD_METHODS = {"AT-DRW": PAPER_METHODS["AT-DRW"], "SRAT": PAPER_METHODS["SRAT-CE"],
                 "AT-BSL": BASELINES["AT-BSL"]}

#: The methods of the main tables; the paper's, and the library's variants of SRAT.
METHODS = {
    "NT": PAPER_METHODS["NT"],
    "AT": PAPER_METHODS["AT"],
    "AT-RW": PAPER_METHODS["AT-RW"],
    "AT-DRW": PAPER_METHODS["AT-DRW"],
    "SRAT": PAPER_METHODS["SRAT-CE"],
    "SRAT+clean": {**PAPER_METHODS["SRAT-CE"], "separation_views": "adversarial+clean"},
    # The paper's networks have no normalisation before the penultimate ReLU.
    "SRAT, no LayerNorm": {**PAPER_METHODS["SRAT-CE"], "module__layer_norm": False},
    "AT-DRW, no LayerNorm": {**PAPER_METHODS["AT-DRW"], "module__layer_norm": False},
}
#: SRAT on cheaper training attacks (eps 0.2 in the digits recipe).
FAST_METHODS = {
    "SRAT PGD-10": PAPER_METHODS["SRAT-CE"],
    "SRAT PGD-3": {**PAPER_METHODS["SRAT-CE"], "n_steps": 3, "step_size": 0.1},
    "SRAT PGD-2": {**PAPER_METHODS["SRAT-CE"], "n_steps": 2, "step_size": 0.15},
    "SRAT FGSM-RS + guard": {**PAPER_METHODS["SRAT-CE"], "n_steps": 1, "step_size": 0.25,
                             "guard": True},
    "SRAT PGD-2, reused": {**PAPER_METHODS["SRAT-CE"], "n_steps": 2, "step_size": 0.1,
                           "reuse_perturbations": True},
}
#: RobustLT's plug-ins as AT-BSL+RobustLT has them.
ROBUSTLT_PLUGINS = {key: BASELINES["AT-BSL+RobustLT"][key]
                    for key in ("class_epsilon_mix", "epsilon_warmup")}
#: The methods of the real-data settings: today's baselines, SRAT (the paper's loss), its
#: variants, and the library's defaults ("SRAT, weights-normalised", chosen on the validation
#: twins).
REAL_METHODS = {
    "AT": PAPER_METHODS["AT"],
    "AT-DRW": PAPER_METHODS["AT-DRW"],
    "AT-BSL": BASELINES["AT-BSL"],
    "AT-BSL+RobustLT": BASELINES["AT-BSL+RobustLT"],
    "TRADES": BASELINES["TRADES"],
    "SRAT": PAPER_METHODS["SRAT-CE"],
    "SRAT-BSL": BASELINES["SRAT-BSL"],
    "SRAT+clean": METHODS["SRAT+clean"],
    # The class-weighted loss divided by the sum of the batch's weights, not by its size.
    "AT-DRW, weights-normalised": {**PAPER_METHODS["AT-DRW"], "weight_normalization": "weights"},
    "SRAT, weights-normalised": RECOMMENDED["SRAT-W"],
}
#: Candidates for the default tried on the validation twins only: RobustLT's plug-ins
#: (larger budgets for rarer classes, the epsilon warm-up) on SRAT, for the margin that
#: AT-BSL+RobustLT buys the rare classes with SRAT's common-class accuracy.
VALIDATION_CANDIDATES = {f"{name}+RobustLT": {**REAL_METHODS[name], **ROBUSTLT_PLUGINS}
                         for name in ("SRAT", "SRAT-BSL", "SRAT, weights-normalised")}
#: RobustLT's mixing weight is this library's choice (0.5), not the paper's: smaller ones, for
#: a reference tuned on the twins as any hyper-parameter is. A test split runs the one its twin
#: chose (:func:`default_methods`).
ROBUSTLT_MIXES = (0.25, 0.1)
ROBUSTLT_VARIANTS = {
    f"{ROBUSTLT_MIX}{mix:g}": {**BASELINES[ROBUSTLT], "class_epsilon_mix": mix}
    for mix in ROBUSTLT_MIXES}
VALIDATION_CANDIDATES.update(ROBUSTLT_VARIANTS)
#: The validation twins' methods: the candidates for the default and the target's references
#: (AT and TRADES, far behind on every real setting, and the normalisation study's AT-DRW, left
#: out).
VALIDATION_METHODS = ("AT-DRW", "AT-BSL", "AT-BSL+RobustLT", "SRAT", "SRAT-BSL", "SRAT+clean",
                      "SRAT, weights-normalised", "SRAT+RobustLT", "SRAT-BSL+RobustLT",
                      "SRAT, weights-normalised+RobustLT",
                      *ROBUSTLT_VARIANTS)


def mnist_methods(methods):
    """MNIST's methods: one warm-up for all, in place of RobustLT's shorter own."""
    return {name: {**params, "epsilon_warmup": MNIST_RECIPE["epsilon_warmup"]}
            for name, params in methods.items()}


#: The methods a test split may run: its own and RobustLT's weights that a twin may choose.
REAL_SPLIT_METHODS = {**REAL_METHODS, **ROBUSTLT_VARIANTS}
MNIST_SPLIT_METHODS = mnist_methods(REAL_SPLIT_METHODS)
#: Settings evaluated with standard AutoAttack as well as PGD-20.
AUTOATTACK_SETTINGS = (*TARGET_SETTINGS, *(name + VALIDATION_SUFFIX for name in TARGET_SETTINGS))
TRADEOFF_WEIGHTS = (1, 2, 5, 10, 20)
LAMBDAS = (0.0, 0.1, 0.5, 1.0, 2.0)


def digits_data(under, kind="step", ratio=10):
    return load_imbalanced_digits(ratio=ratio, kind=kind, under_represented=under)


def breast_cancer_data():
    X, y = load_breast_cancer(return_X_y=True)  # 0 = malignant
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    X_train, y_train = make_imbalanced(X_train, y_train, ratio=10, under_represented=[0],
                                       random_state=0)
    return X_train, X_test, y_train, y_test


def fraud_data():
    X, y = make_fraud_like(3000, positive_rate=0.05, random_state=0)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def uci_data(name):
    X, y = load_uci(name)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def validation_split(data, seed):
    """The training split of ``data`` split again, stratified 75/25, into training and
    validation rows: the test split stays unseen. Each seed draws its own split, so that the
    mean over seeds does not rest on the few rare rows of one validation split."""
    X_train, _, y_train, _ = data
    return train_test_split(X_train, y_train, test_size=0.25, stratify=y_train,
                            random_state=seed)


def uci_front(setting):
    """Min-max scaling to [0, 1], after a median imputation where values are missing."""
    return make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler()) \
        if setting.removesuffix(VALIDATION_SUFFIX) == "hypothyroid" else MinMaxScaler()


def mnist_data(kind):
    X, y = load_mnist_5k()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    under = [5, 6, 7, 8, 9] if kind == "step" else None
    X_train, y_train = make_imbalanced(X_train, y_train, ratio=10 if kind == "step" else 50,
                                       kind=kind, under_represented=under, random_state=0)
    return X_train, X_test, y_train, y_test


def fraud_columns():
    """Scaled numeric columns, one-hot categories, whole numbers passed through, named."""
    return ColumnTransformer(
        [("num", StandardScaler(), ["amount", "age", "account_days"]),
         ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
          ["country", "channel"])],
        remainder="passthrough", verbose_feature_names_out=False).set_output(transform="pandas")


def settings():
    """``{name: (data function, under-represented classes, recipe, {method: params})}``."""
    step_under = [5, 6, 7, 8, 9]
    tradeoff = {}
    for weight in TRADEOFF_WEIGHTS:
        weights = {c: (float(weight) if c in step_under else 1.0) for c in range(10)}
        for name, lambda_sep in (("AT", 0.0), ("SRAT", 1.0)):
            tradeoff[f"{name} w={weight}"] = dict(lambda_sep=lambda_sep, class_weight=weights,
                                                  reweight_epoch=0,
                                                  weight_normalization="samples")
    table = {
        "step": (lambda: digits_data(step_under), step_under, DIGITS_RECIPE, METHODS),
        "step-even": (lambda: digits_data([0, 2, 4, 6, 8]), [0, 2, 4, 6, 8], DIGITS_RECIPE,
                      METHODS),
        "exp": (lambda: digits_data(None, kind="exp", ratio=20), None, DIGITS_RECIPE, METHODS),
        "tabular": (breast_cancer_data, [0], TABULAR_RECIPE, METHODS),
        "fraud": (fraud_data, [1], FRAUD_RECIPE, FRAUD_METHODS),
        **{name: (lambda name=name: uci_data(name), None,
                  {**UCI_RECIPE, "perturbable_features": perturbable}, REAL_SPLIT_METHODS)
           for name, perturbable in UCI_PERTURBABLE.items()},
        "mnist-step": (lambda: mnist_data("step"), step_under, MNIST_RECIPE,
                       MNIST_SPLIT_METHODS),
        "mnist-exp": (lambda: mnist_data("exp"), None, MNIST_RECIPE, MNIST_SPLIT_METHODS),
        "tradeoff": (lambda: digits_data(step_under), step_under, DIGITS_RECIPE, tradeoff),
        "lambda": (lambda: digits_data(step_under), step_under, DIGITS_RECIPE,
                   {f"SRAT lambda={lam:g}": {**PAPER_METHODS["SRAT-CE"], "lambda_sep": lam}
                    for lam in LAMBDAS}),
        "fast": (lambda: digits_data(step_under), step_under, DIGITS_RECIPE, FAST_METHODS),
    }
    for name in TARGET_SETTINGS:
        make_data, under, recipe, methods = table[name]
        candidates = {**methods, **(mnist_methods(VALIDATION_CANDIDATES)
                                    if methods is MNIST_SPLIT_METHODS else VALIDATION_CANDIDATES)}
        # The data of a twin is a function of the seed.
        table[name + VALIDATION_SUFFIX] = (lambda seed, make_data=make_data: validation_split(
            make_data(), seed), under, recipe, {m: candidates[m] for m in VALIDATION_METHODS})
    return table


def jsonable(params):
    return {k: (v.__name__ if isinstance(v, type) else v) for k, v in params.items()}


def build_model(setting, recipe, params, seed, device="cpu"):
    """``(model, classifier)`` of one run, unfitted; the model is a pipeline for tabular data."""
    decay = LRScheduler(policy=MultiStepLR, milestones=[
        LR_DECAY_EPOCH.get(setting, LR_DECAY_EPOCH["digits"])], gamma=0.1)
    params = dict(params)
    callbacks = [("lr_decay", decay)]
    if params.pop("guard", False):
        callbacks.append(("guard", CatastrophicOverfittingGuard()))
    clf = SRATClassifier(**{**recipe, **params}, callbacks=callbacks, random_state=seed,
                         device=device, verbose=0)
    fronts = {"tabular": StandardScaler, "fraud": fraud_columns,
              **dict.fromkeys(UCI_SETTINGS, lambda: uci_front(setting))}
    front = fronts.get(setting)
    return (clf if front is None else make_pipeline(front(), clf)), clf


def evaluation(model, X_test, y_test, under, epsilon, **attack):
    """The groups and per-class accuracies of one attack, and its time."""
    started = time.perf_counter()
    report = robust_report(model, X_test, y_test, under_represented=under, epsilon=epsilon,
                           **attack)
    return report, {
        "groups": report.groups,
        "per_class": {str(c): {"clean": a, "robust": r}
                      for c, a, r in zip(report.classes, report.clean, report.robust)},
        "under_represented": [str(c) for c in report.under_represented],
        "eval_seconds": round(time.perf_counter() - started, 2)}


#: The recipe's parameters that count epochs (ints) or fractions of training (floats < 1).
EPOCH_PARAMS = ("reweight_epoch", "epsilon_warmup")


def shortened(params, max_epochs, epochs):
    """``params`` for ``epochs`` epochs: epoch counts scaled from ``max_epochs``."""
    params = {**params, "max_epochs": epochs}
    for name in EPOCH_PARAMS:
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            # Still inside training, so that the deferred phase is timed too.
            params[name] = max(1, min(epochs - 1, round(value * epochs / max_epochs)))
    return params


#: The (setting, device) pairs this process has fitted. The first fit of a study process
#: took 100-107 s where the others took 60-80 s; timed, that would count against one method.
_WARMED_UP = set()


def warm_up(setting, recipe, params, data, device="cpu"):
    """An untimed 2-epoch fit, the first time this process fits ``setting`` on ``device``.
    Fits are seeded from their own ``random_state``, so it leaves the timed run as it was."""
    if (setting, device) in _WARMED_UP:
        return
    X_train, _, y_train, _ = data
    model, _ = build_model(setting, {}, shortened({**recipe, **params}, recipe["max_epochs"], 2),
                           0, device)
    model.fit(X_train, y_train)
    _WARMED_UP.add((setting, device))


def run_one(setting, method, seed, data, under, recipe, params, device="cpu",
            eval_batch_size=None):
    X_train, X_test, y_train, y_test = data
    warm_up(setting, recipe, params, data, device)
    model, clf = build_model(setting, recipe, params, seed, device)
    params = {k: v for k, v in params.items() if k != "guard"}
    started = time.perf_counter()
    model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - started
    report, pgd = evaluation(model, X_test, y_test, under, recipe["epsilon"], n_steps=20,
                             batch_size=eval_batch_size)
    record = {
        "setting": setting, "method": method, "seed": seed,
        "params": jsonable({**recipe, **params}),
        "groups": pgd["groups"], "per_class": pgd["per_class"],
        # Indices into the classes (and train_counts); the labels may be strings.
        "under_represented": np.searchsorted(np.asarray(report.classes),
                                             report.under_represented).tolist(),
        "train_counts": [int(n) for n in clf.class_counts_],
        "final_train_loss": float(clf.history[-1, "train_loss"]),
        "epochs_run": len(clf.history),
        "fit_seconds": round(fit_seconds, 2),
        "eval_seconds": pgd["eval_seconds"],
        "machine": machine(device),
    }
    if eval_batch_size is not None:
        record["eval_batch_size"] = eval_batch_size
    if setting in AUTOATTACK_SETTINGS:
        record["autoattack"] = evaluation(model, X_test, y_test, under, recipe["epsilon"],
                                          attack="autoattack", batch_size=eval_batch_size,
                                          verbose=0)[1]
    return record


def run_spec(setting, method, seed, device="cpu", threads=None, eval_batch_size=None):
    """One run, named rather than given its data and parameters, so that a worker process
    can run it: each builds its own data (a twin's from the seed)."""
    if threads is not None:
        torch.set_num_threads(threads)
    make_data, under, recipe, methods = settings()[setting]
    data = make_data(seed) if setting.endswith(VALIDATION_SUFFIX) else make_data()
    return run_one(setting, method, seed, data, under, recipe, methods[method], device,
                   eval_batch_size)


def save(record, output):
    """Append a run to the runs file and say how it went."""
    with open(output, "a") as f:
        f.write(json.dumps(record) + "\n")
    g = record["groups"]
    print(f"{record['setting']:9s} {record['method']:16s} seed {record['seed']}: clean well/under "
          f"{100 * g['well']['clean']:.1f}/{100 * g['under']['clean']:.1f}, robust "
          f"well/under {100 * g['well']['robust']:.1f}/"
          f"{100 * g['under']['robust']:.1f} ({record['fit_seconds']:.0f} s)", flush=True)


def done_runs(path):
    if not path.exists():
        return set()
    with open(path) as f:
        return {(r["setting"], r["method"], r["seed"]) for r in map(json.loads, f) if r}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", nargs="+", default=["step"], help="settings to run")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="methods of the setting to run (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--output", default=str(Path(__file__).with_name("runs.jsonl")))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu", help="torch device of the models (cuda...)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each in its own process with --threads threads "
                             "(a GPU runs many small models side by side)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="start no run after this many seconds; runs under way finish "
                             "(for a machine held for a fixed time)")
    parser.add_argument("--eval-batch-size", type=int, default=None, metavar="N",
                        help="test images attacked together (default: the evaluation's 250; "
                             "more on a GPU)")
    parser.add_argument("--list", action="store_true", help="list settings and methods")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.eval_batch_size is not None and args.eval_batch_size < 1:
        parser.error("--eval-batch-size must be at least 1")
    if args.time_limit is not None and not args.time_limit >= 0:
        parser.error("--time-limit must be a number of seconds, at least 0")
    torch.set_num_threads(args.threads)
    table = settings()
    if args.list:
        for name, (_, _, _, methods) in table.items():
            print(f"{name}: {', '.join(methods)}")
        return
    # Named here, before any data is built or run started, rather than as a KeyError later.
    unknown = [name for name in args.setting if name not in table]
    if unknown:
        parser.error(f"no settings {unknown}; there are {', '.join(table)}")
    for setting in args.setting:
        unknown = [name for name in args.methods or () if name not in table[setting][3]]
        if unknown:
            parser.error(f"{setting} has no methods {unknown}; it has "
                         f"{', '.join(table[setting][3])}")
    output = Path(args.output)
    done = done_runs(output)
    deadline = monotonic() + (np.inf if args.time_limit is None else args.time_limit)
    pending = [(setting, method, seed) for setting in args.setting
               for seed in args.seeds
               for method in (args.methods or default_methods(setting, table, output))
               if (setting, method, seed) not in done]
    if args.jobs > 1:
        started = run_in_parallel(pending, args.jobs, args.device, args.threads, output,
                                  deadline, args.eval_batch_size)
    else:
        started = run_in_order(pending, table, args.device, output, deadline,
                               args.eval_batch_size)
    if started < len(pending):
        print(f"--time-limit reached: {len(pending) - started} of {len(pending)} runs not "
              "started; the same command continues with them.", flush=True)


def default_methods(setting, table, output):
    """The methods a setting runs unless ``--methods`` names them: a test split runs
    RobustLT's mixing weights other than the library's only once its twin chose one (from the
    runs in ``output``), as the test splits see only what the twins choose."""
    methods = list(table[setting][3])
    if setting.endswith(VALIDATION_SUFFIX) or not set(ROBUSTLT_VARIANTS) & set(methods):
        return methods
    runs = load(output) if output.exists() else []
    by_setting = {name: [r for r in runs if r["setting"] == name]
                  for name in (setting, setting + VALIDATION_SUFFIX)}
    chosen = twin_choice(by_setting, setting)
    return [m for m in methods if m not in ROBUSTLT_VARIANTS or m == chosen]


def run_in_order(pending, table, device, output, deadline, eval_batch_size=None):
    """Runs one after the other in this process, each data set built once; how many started."""
    data = {}
    for started, (setting, method, seed) in enumerate(pending):
        if monotonic() >= deadline:
            return started
        make_data, under, recipe, methods = table[setting]
        # The data of a twin is a function of the seed.
        key = (setting, seed) if setting.endswith(VALIDATION_SUFFIX) else setting
        if key not in data:
            data = {key: make_data(seed) if isinstance(key, tuple) else make_data()}
        save(run_one(setting, method, seed, data[key], under, recipe, methods[method], device,
                     eval_batch_size), output)
    return len(pending)


def run_in_parallel(pending, jobs, device, threads, output, deadline, eval_batch_size=None):
    """Runs in ``jobs`` worker processes, a new one started as another ends while time is
    left; how many started."""
    queue, running, started = iter(pending), set(), 0
    # spawn, not fork: a forked child cannot use CUDA once the parent has.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        while True:
            while len(running) < jobs and started < len(pending) and monotonic() < deadline:
                running.add(pool.submit(run_spec, *next(queue), device, threads,
                                        eval_batch_size))
                started += 1
            if not running:
                return started
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for run in finished:
                save(run.result(), output)


if __name__ == "__main__":
    main()
