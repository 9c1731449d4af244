"""Robust accuracy under PGD, APGD-CE, APGD-DLR and their worst case, by number of steps.

Trains the test suite's model (SRAT on step-imbalanced digits, 15 epochs) and prints a
Markdown table for ``docs/reliability.md``::

    python benchmarks/attack_strength.py [--norm linf|l2] [--epsilon 0.2] [--seed 0]
"""

import argparse
import time

import torch

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.methods import DIGITS_RECIPE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"])
    parser.add_argument("--epsilon", type=float, default=None,
                        help="default 0.2 for linf, 1.0 for l2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    epsilon = args.epsilon or {"linf": 0.2, "l2": 1.0}[args.norm]
    torch.set_num_threads(2)

    X_train, X_test, y_train, y_test = load_imbalanced_digits()
    clf = SRATClassifier(**DIGITS_RECIPE, max_epochs=15, reweight_epoch=10,
                         random_state=args.seed, verbose=0)
    clf.fit(X_train, y_train)

    steps = (5, 20, 50)
    print(f"clean accuracy {100 * clf.score(X_test, y_test):.1f}; {args.norm} eps {epsilon:g}; "
          f"{len(y_test)} test images; seed {args.seed}\n")
    print("| attack | " + " | ".join(f"{n} steps" for n in steps) + " |")
    print("|---" * (len(steps) + 1) + "|")
    rows = [("PGD", dict(attack="pgd")), ("APGD-CE", dict(attack="apgd-ce")),
            ("APGD-DLR", dict(attack="apgd-dlr")), ("worst case", dict(worst_case=True))]
    for name, kwargs in rows:
        cells = []
        for n_steps in steps:
            started = time.perf_counter()
            score = robust_accuracy_score(clf, X_test, y_test, norm=args.norm, epsilon=epsilon,
                                          n_steps=n_steps, **kwargs)
            cells.append(f"{100 * score:.1f} ({time.perf_counter() - started:.1f} s)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
