"""Training and evaluation speed of SRATClassifier against a plain PyTorch loop doing the same work.

    python benchmarks/bench_fit.py [--epochs 3] [--repeats 5] [--threads 2]

Same data (step-imbalanced digits, 1x8x8), same network (SmallCNN) and initialisation, same
optimizer (SGD lr 0.05, momentum 0.9), batch 64, same L-inf PGD-10 (eps 0.2, step 0.05,
random start). Runs are interleaved (plain, estimator, plain, ...) after one warm-up each, and
the median of the repeats is reported as training samples per second and as the ratio to the
plain loop. Also: SRAT (lambda_sep=1, deferred class weights) against plain AT through the
estimator, and PGD-20 robust accuracy on the test split against a plain evaluation loop.
First measurements for the performance issue; memory and the other implementations
(torchattacks, ART) are not in it yet.
"""

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.datasets import load_digits_images, make_imbalanced
from srat_sklearn.models import SmallCNN

EPSILON, STEP, N_STEPS, BATCH, LR = 0.2, 0.05, 10, 64, 0.05


def data():
    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    X_train, y_train = make_imbalanced(X_train, y_train, ratio=10,
                                       under_represented=[5, 6, 7, 8, 9], random_state=0)
    return X_train, X_test, y_train, y_test


def pgd(model, X, y, n_steps):
    model.eval()
    X_adv = (X + torch.empty_like(X).uniform_(-EPSILON, EPSILON)).clamp(0, 1)
    for _ in range(n_steps):
        X_adv.requires_grad_(True)
        loss = F.cross_entropy(model(X_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, X_adv)
        X_adv = torch.min(torch.max(X_adv.detach() + STEP * grad.sign(), X - EPSILON),
                          X + EPSILON).clamp(0, 1)
    return X_adv


def plain_fit(X, y, epochs):
    torch.manual_seed(0)
    model = SmallCNN(1, 10, (8, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(epochs):
        for rows in torch.randperm(len(X)).split(BATCH):
            X_adv = pgd(model, X[rows], y[rows], N_STEPS)
            model.train()
            optimizer.zero_grad()
            F.cross_entropy(model(X_adv), y[rows]).backward()
            optimizer.step()
    return model


def estimator_fit(X, y, epochs, **params):
    clf = SRATClassifier(epsilon=EPSILON, step_size=STEP, n_steps=N_STEPS, batch_size=BATCH,
                         optimizer=torch.optim.SGD, lr=LR, optimizer__momentum=0.9,
                         max_epochs=epochs, verbose=0, random_state=0,
                         **{"lambda_sep": 0.0, "class_weight": None, **params})
    return clf.fit(X, y)


def plain_robust_accuracy(model, X, y):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    hits = 0
    for rows in torch.arange(len(X)).split(128):
        X_adv = pgd(model, X[rows], y[rows], 20)
        with torch.no_grad():
            hits += int((model(X_adv).argmax(1) == y[rows]).sum())
    return hits / len(X)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def compare(name, reference, candidate, samples, repeats):
    timed(reference), timed(candidate)  # warm-up
    ref_times, cand_times = [], []
    for _ in range(repeats):
        ref_times.append(timed(reference)[0])
        cand_times.append(timed(candidate)[0])
    ref, cand = statistics.median(ref_times), statistics.median(cand_times)
    print(f"| {name} | {samples / ref:.0f} | {samples / cand:.0f} | {ref / cand:.3f} |",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test = data()
    n = args.epochs * len(y_train)
    print(f"{len(y_train)} training images, {args.epochs} epochs per run, median of "
          f"{args.repeats} interleaved repeats, {args.threads} threads\n")
    print("| comparison | reference samples/s | candidate samples/s | candidate / reference |")
    print("|---|---|---|---|")
    compare("SRATClassifier AT vs plain loop", lambda: plain_fit(X_train, y_train, args.epochs),
            lambda: estimator_fit(X_train, y_train, args.epochs), n, args.repeats)
    compare("SRAT (lambda 1, DRW) vs AT, both estimator",
            lambda: estimator_fit(X_train, y_train, args.epochs),
            lambda: estimator_fit(X_train, y_train, args.epochs, lambda_sep=1.0,
                                  class_weight="balanced"), n, args.repeats)
    model = plain_fit(X_train, y_train, 1)
    clf = estimator_fit(X_train, y_train, 1)
    clf.module_.load_state_dict(model.state_dict())
    compare("PGD-20 evaluation vs plain loop",
            lambda: plain_robust_accuracy(model, X_test, y_test),
            lambda: robust_accuracy_score(clf, X_test, y_test, step_size=STEP), len(y_test),
            args.repeats)


if __name__ == "__main__":
    main()
