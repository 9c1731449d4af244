"""One SRAT fit, single-process or data-parallel; run by ``tests/test_distributed.py``.

    python tests/ddp_fit.py single OUT_DIR WEIGHT_NORMALIZATION
    torchrun --nproc_per_node 2 tests/ddp_fit.py ddp OUT_DIR WEIGHT_NORMALIZATION

Digits, flattened and cut to 5 under-represented classes: 512 training rows (8 global
batches of 64) and 128 for validation. No shuffling and no random start, so that the
global batch of each step and its attack are the same in both runs: one process with
batch 64, or two with 32 each.
Each process writes ``rank<k>.json`` with its per-batch losses, the class counts and
weights it used, the learning rates, and the test accuracy.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch.callbacks import EpochScoring
from skorch.dataset import ValidSplit

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import make_imbalanced
from srat_sklearn.metrics import make_robust_scorer, robust_report

GLOBAL_BATCH = 64


def data():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    X_train, y_train = make_imbalanced(X_train, y_train, ratio=5,
                                       under_represented=[5, 6, 7, 8, 9], random_state=0)
    # The 5-fold validation split keeps 4/5: 512 training rows, 8 whole global batches.
    order = np.random.default_rng(0).permutation(len(y_train))[:640]
    return X_train[order], y_train[order], X_test, y_test


def main():
    mode, out_dir, weight_normalization = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    X_train, y_train, X_test, y_test = data()
    params = dict(
        module__hidden_units=(64,), optimizer=torch.optim.SGD, lr=0.05,
        optimizer__momentum=0.9, max_epochs=4, reweight_epoch=2, lambda_sep=1.0,
        epsilon=0.1, n_steps=3, random_start=False, iterator_train__shuffle=False,
        weight_normalization=weight_normalization,
        train_split=ValidSplit(5, stratified=True),
        callbacks=[("robust_valid", EpochScoring(
            make_robust_scorer(n_steps=5), name="valid_robust_acc", lower_is_better=False,
            use_caching=False))],
        random_state=0, verbose=0)
    if mode == "single":
        clf = SRATClassifier(batch_size=GLOBAL_BATCH, **params)
        rank = 0
    else:
        from accelerate import Accelerator

        from srat_sklearn.distributed import AcceleratedSRATClassifier

        accelerator = Accelerator(cpu=True)
        rank = accelerator.process_index
        clf = AcceleratedSRATClassifier(
            accelerator=accelerator, device=None,
            batch_size=GLOBAL_BATCH // accelerator.num_processes, **params)
    clf.fit(X_train, y_train)
    history = clf.history
    result = {
        "world_size": torch.distributed.get_world_size() if mode == "ddp" else 1,
        "losses": [[b["train_loss"] for b in epoch["batches"] if "train_loss" in b]
                   for epoch in history],
        "valid_robust_acc": history[:, "valid_robust_acc"],
        "class_counts": clf.class_counts_.tolist(),
        "class_weights": [float(w) for w in clf.criterion_.weight],
        "lr": [group["lr"] for group in clf.optimizer_.param_groups],
        "test_accuracy": float(np.mean(clf.predict(X_test) == y_test)),
    }
    report = robust_report(clf, X_test, y_test, attack=("pgd", "apgd-ce"), n_steps=3, verbose=0)
    result["robust_after"] = [accuracy["overall"] for accuracy in report.robust_after.values()]
    result["robust"] = report.groups["overall"]["robust"]
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    if mode == "ddp":
        # Without it, gloo's threads can abort the process at exit ("terminate called
        # without an active exception"), after the fit has finished.
        accelerator.end_training()


if __name__ == "__main__":
    main()
