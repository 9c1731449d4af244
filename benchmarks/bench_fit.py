"""Training and evaluation speed of SRATClassifier against a plain PyTorch loop doing the same work.

    python benchmarks/bench_fit.py [--epochs 3] [--repeats 9] [--threads 2] [--system-malloc]
    pip install -e ".[bench]"   # adds torchattacks and ART to the comparison

Same data (step-imbalanced digits, 1x8x8), same network (SmallCNN), optimizer (SGD lr 0.05,
momentum 0.9), batch 64 and L-inf PGD-10 (eps 0.2, step 0.05, random start). The plain loop
draws the estimator's initial weights, batches and random starts from the same seeds, so both
end with the same weights (printed first; a test checks it): the timings compare the same work,
not two training runs that drift apart. Runs are interleaved in pairs, alternating which side
goes first, after one warm-up each; the table gives the median samples per second, and the
median and range of the per-pair ratios, and the ratio of each side's fastest run (the machine
only ever slows a run down, as ``timeit`` assumes). Unless ``--system-malloc`` is given, the
script restarts itself with glibc's malloc told to keep freed memory
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``): by default it returns large blocks to
the kernel and faults them in again, which made single runs 10-20% slower at random on the
project's machine. Both sides run under the same setting.

Also: SRAT (lambda_sep=1, deferred class weights) against plain AT through the estimator,
and PGD-20 robust accuracy on the test split against a plain evaluation loop. When
installed, torchattacks' PGD inside the plain loop and ART's adversarial trainers run the
same training for comparison.

Then, each measured in the same way:

- peak memory: each implementation trains in a fresh subprocess, which reports how far
  its resident memory peaked above what it held just before training (data loaded, model
  built); median of the repeats;
- scaling: the estimator's time per epoch (fastest run) at the training set and at twice its
  size, with 1, 5 and 10 attack steps, divided by samples x (steps + 1) forward-backward
  passes;
- cheaper training attacks: PGD-3, PGD-2, FGSM with random start plus the
  catastrophic-overfitting guard, and PGD-2 started from each sample's previous perturbation
  (``reuse_perturbations=True``), against PGD-10 (their accuracy is in the study's ``fast``
  setting).
"""

import os

# ART's trainers draw progress bars; tqdm reads this when it is first imported.
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402 (after the environment variable)
import json  # noqa: E402
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.callbacks import CatastrophicOverfittingGuard
from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.models import SmallCNN

EPSILON, STEP, N_STEPS, BATCH, LR = 0.2, 0.05, 10, 64, 0.05
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def restart_keeping_freed_memory():
    """Restart this script with malloc keeping freed memory (``MALLOC_ENV``); no-op once it has.

    glibc otherwise hands freed memory back to the kernel and faults it in again, at a cost
    that varied by 10-20% between runs on this project's machines.
    """
    if MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


def data():
    return load_imbalanced_digits()


def pgd(model, X, y, n_steps):
    model.eval()
    X_adv = (X + torch.empty_like(X).uniform_(-EPSILON, EPSILON)).clamp(0, 1)
    for _ in range(n_steps):
        X_adv.requires_grad_(True)
        loss = F.cross_entropy(model(X_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, X_adv)
        X_adv = X_adv.detach() + STEP * grad.sign()
        X_adv = (X + (X_adv - X).clamp(-EPSILON, EPSILON)).clamp(0, 1)
    return X_adv


def seeds(random_state=0):
    """The estimator's seeds for ``random_state``: one for the initial weights, one per epoch."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return seed, lambda epoch: int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def epoch_order(n):
    """A random permutation, drawn as the DataLoader's RandomSampler draws it."""
    torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base seed
    generator = torch.Generator()
    generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
    return torch.randperm(n, generator=generator)


def new_model(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(1, 10, (8, 8))


def linear_model(seed=0):
    """A model whose kernels cost next to nothing: what is left is each loop's own cost."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


def plain_fit(X, y, epochs, attack=None, make_model=new_model):
    """The same training as :func:`estimator_fit`, written out: same initial weights, batches,
    random starts and arithmetic, so the two end with the same weights (checked in main)."""
    with torch.random.fork_rng():
        init_seed, epoch_seed = seeds()
        model = make_model(init_seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        X, y = torch.as_tensor(X), torch.as_tensor(y)
        attack = attack(model) if attack else (lambda X_b, y_b: pgd(model, X_b, y_b, N_STEPS))
        for epoch in range(1, epochs + 1):
            torch.manual_seed(epoch_seed(epoch))
            for rows in epoch_order(len(X)).split(BATCH):
                X_adv = attack(X[rows], y[rows])
                model.train()
                optimizer.zero_grad()
                F.cross_entropy(model(X_adv), y[rows]).backward()
                optimizer.step()
    return model


def estimator_fit(X, y, epochs, make_model=None, **params):
    if make_model is not None:
        with torch.random.fork_rng():
            params["module"] = make_model(seeds()[0])
    clf = SRATClassifier(**{
        "epsilon": EPSILON, "step_size": STEP, "n_steps": N_STEPS, "batch_size": BATCH,
        "optimizer": torch.optim.SGD, "lr": LR, "optimizer__momentum": 0.9,
        "max_epochs": epochs, "verbose": 0, "random_state": 0, "lambda_sep": 0.0,
        "class_weight": None, "reweight_lr_factor": 1.0,
        # The plain loop's memory order, so that both do the same arithmetic.
        "channels_last": False, **params})
    return clf.fit(X, y)


def torchattacks_pgd(model):
    import torchattacks

    return torchattacks.PGD(model, eps=EPSILON, alpha=STEP, steps=N_STEPS, random_start=True)


def art_classifier(model):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                             optimizer=torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9),
                             input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0))


def art_fit(X, y, epochs):
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainer

    classifier = art_classifier(new_model())
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=EPSILON, eps_step=STEP,
                                      max_iter=N_STEPS, num_random_init=1, batch_size=BATCH,
                                      verbose=False)
    AdversarialTrainer(classifier, attacks=attack, ratio=1.0).fit(X, y, nb_epochs=epochs,
                                                                   batch_size=BATCH)


def art_madry_fit(X, y, epochs):
    from art.defences.trainer import AdversarialTrainerMadryPGD

    trainer = AdversarialTrainerMadryPGD(art_classifier(new_model()), nb_epochs=epochs,
                                         batch_size=BATCH, eps=EPSILON, eps_step=STEP,
                                         max_iter=N_STEPS, num_random_init=1)
    trainer.fit(X, y)


def installed(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def plain_robust_accuracy(model, X, y):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    hits = 0
    for rows in torch.arange(len(X)).split(BATCH):  # the estimator's batch_size
        X_adv = pgd(model, X[rows], y[rows], 20)
        with torch.no_grad():
            hits += int((model(X_adv).argmax(1) == y[rows]).sum())
    return hits / len(X)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def compare(name, reference, candidate, samples, repeats):
    """Interleaved timings; the ratio is the median over repeats of each pair's ratio, with
    the lowest and highest pair, because the machine's speed drifts between pairs. Pairs
    alternate which side runs first, so that a steady drift favours neither."""
    timed(reference), timed(candidate)  # warm-up
    ref_times, cand_times = [], []
    for repeat in range(repeats):
        if repeat % 2:
            cand_times.append(timed(candidate)[0])
            ref_times.append(timed(reference)[0])
        else:
            ref_times.append(timed(reference)[0])
            cand_times.append(timed(candidate)[0])
    ratios = sorted(r / c for r, c in zip(ref_times, cand_times))
    ref, cand = statistics.median(ref_times), statistics.median(cand_times)
    print(f"| {name} | {samples / ref:.0f} | {samples / cand:.0f} | "
          f"{statistics.median(ratios):.3f} | {ratios[0]:.3f} - {ratios[-1]:.3f} | "
          f"{min(ref_times) / min(cand_times):.3f} |", flush=True)
    return ref, cand


def fastest_ms(reference, candidate, repeats, per=1):
    """The fastest of ``repeats`` interleaved runs of each, in ms divided by ``per``."""
    timed(reference), timed(candidate)
    times = ([], [])
    for repeat in range(repeats):
        for side in ((0, 1) if repeat % 2 == 0 else (1, 0)):
            times[side].append(timed((reference, candidate)[side])[0] * 1e3 / per)
    return min(times[0]), min(times[1])


def overhead_table(X_train, X_test, y_train, y_test, epochs, repeats):
    """What the estimator adds, in milliseconds: with a linear model, whose kernels cost almost
    nothing, the difference is the estimator's own cost, free of the machine's drift that
    blurs the ratios above; with the SmallCNN it is that cost against the real work."""
    batches = epochs * -(-len(y_train) // BATCH)
    print("\n| work | model | plain ms | estimator ms | estimator's own cost, ms | share |")
    print("|---|---|---|---|---|---|")
    for name, make_model in (("linear (64 -> 10)", linear_model), ("SmallCNN", new_model)):
        plain_ms, est_ms = fastest_ms(
            lambda: plain_fit(X_train, y_train, epochs, make_model=make_model),
            lambda: estimator_fit(X_train, y_train, epochs, make_model=make_model),
            repeats, per=batches)
        print(f"| training, per batch | {name} | {plain_ms:.2f} | {est_ms:.2f} | "
              f"{est_ms - plain_ms:.2f} | {(est_ms - plain_ms) / est_ms:.1%} |", flush=True)
    for name, make_model in (("linear (64 -> 10)", linear_model), ("SmallCNN", new_model)):
        model = plain_fit(X_train, y_train, 1, make_model=make_model)
        clf = estimator_fit(X_train, y_train, 1, make_model=make_model)
        clf.module_.load_state_dict(model.state_dict())
        plain_ms, est_ms = fastest_ms(
            lambda: plain_robust_accuracy(model, X_test, y_test),
            lambda: robust_accuracy_score(clf, X_test, y_test, step_size=STEP), repeats)
        print(f"| PGD-20 evaluation of the test set | {name} | {plain_ms:.1f} | {est_ms:.1f} | "
              f"{est_ms - plain_ms:.1f} | {(est_ms - plain_ms) / est_ms:.1%} |", flush=True)
    at_ms, srat_ms = fastest_ms(
        lambda: estimator_fit(X_train, y_train, epochs),
        lambda: estimator_fit(X_train, y_train, epochs, lambda_sep=1.0, class_weight="balanced"),
        repeats, per=batches)
    print(f"| SRAT over AT (separation loss, class weights), per batch | SmallCNN | {at_ms:.2f} "
          f"(AT) | {srat_ms:.2f} | {srat_ms - at_ms:.2f} | {(srat_ms - at_ms) / srat_ms:.1%} |",
          flush=True)


# ----------------------------------------------------------------- peak memory

MEMORY_RUNS = {
    "plain loop": lambda X, y, epochs: plain_fit(X, y, epochs),
    "SRATClassifier AT": lambda X, y, epochs: estimator_fit(X, y, epochs),
    "SRATClassifier SRAT": lambda X, y, epochs: estimator_fit(
        X, y, epochs, lambda_sep=1.0, class_weight="balanced"),
}


def peak_memory_child(name, epochs, threads):
    """In a fresh process: resident-memory peak of one training run above its start."""
    torch.set_num_threads(threads)
    X_train, _, y_train, _ = data()
    plain_fit(X_train[:BATCH], y_train[:BATCH], 1)  # load torch's kernels first
    estimator_fit(X_train[:BATCH], y_train[:BATCH], 1)
    before = resident_kib()
    MEMORY_RUNS[name](X_train, y_train, epochs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_above_start_mib": max(peak - before, 0) / 1024}))


def resident_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError("no VmRSS in /proc/self/status")


def peak_memory(name, epochs, threads):
    out = subprocess.run([sys.executable, __file__, "--memory-child", name, "--epochs",
                          str(epochs), "--threads", str(threads)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_above_start_mib"]


def memory_table(epochs, repeats, threads):
    print("\n| implementation | peak memory above start (MiB) | vs plain loop |")
    print("|---|---|---|")
    peaks = {name: [] for name in MEMORY_RUNS}
    for _ in range(repeats):  # interleaved
        for name in MEMORY_RUNS:
            peaks[name].append(peak_memory(name, epochs, threads))
    plain = statistics.median(peaks["plain loop"])
    for name, values in peaks.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / plain:.2f} |", flush=True)


# ----------------------------------------------------------------- scaling and cheaper attacks

def scaling_table(X, y, epochs, repeats):
    print("\n| training samples | attack steps | s per epoch | microseconds per sample and "
          "pass |")
    print("|---|---|---|---|")
    sizes = {len(y): (X, y), 2 * len(y): (np.concatenate([X, X]), np.concatenate([y, y]))}
    for n, (X_n, y_n) in sizes.items():
        for steps in (1, 5, 10):
            run = lambda: estimator_fit(X_n, y_n, epochs, n_steps=steps,  # noqa: E731
                                        step_size=2.5 * EPSILON / steps)
            timed(run)
            seconds = min(timed(run)[0] for _ in range(repeats)) / epochs  # fastest run
            print(f"| {n} | {steps} | {seconds:.3f} | "
                  f"{1e6 * seconds / (n * (steps + 1)):.1f} |", flush=True)


CHEAP_ATTACKS = {
    "PGD-3, step eps/2": dict(n_steps=3, step_size=EPSILON / 2),
    "PGD-2, step 0.75 eps": dict(n_steps=2, step_size=0.75 * EPSILON),
    "FGSM-RS, step 1.25 eps, + guard": dict(
        n_steps=1, step_size=1.25 * EPSILON,
        callbacks=[("guard", CatastrophicOverfittingGuard())]),
    "PGD-2 reusing perturbations, step eps/2": dict(n_steps=2, step_size=EPSILON / 2,
                                                    reuse_perturbations=True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default thresholds (noisier timings)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.system_malloc or args.memory_child):
        restart_keeping_freed_memory()
    if args.memory_child:
        return peak_memory_child(args.memory_child, args.epochs, args.threads)
    torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test = data()
    n = args.epochs * len(y_train)
    print(f"{len(y_train)} training images, {args.epochs} epochs per run, median of "
          f"{args.repeats} interleaved repeats, {args.threads} threads, "
          f"{'system' if args.system_malloc else 'fixed'} malloc thresholds\n")
    print("| comparison | reference samples/s | candidate samples/s | candidate / reference | "
          "range over pairs | fastest / fastest |")
    print("|---|---|---|---|---|---|")
    estimator = lambda: estimator_fit(X_train, y_train, args.epochs)  # noqa: E731
    difference = max((p - q).abs().max().item() for p, q in zip(
        plain_fit(X_train, y_train, args.epochs).parameters(), estimator().module_.parameters()))
    print(f"Largest weight difference after {args.epochs} epochs, plain loop vs estimator: "
          f"{difference:.1e}\n")
    compare("SRATClassifier AT vs plain loop", lambda: plain_fit(X_train, y_train, args.epochs),
            estimator, n, args.repeats)
    compare("SRAT (lambda 1, DRW) vs AT, both estimator", estimator,
            lambda: estimator_fit(X_train, y_train, args.epochs, lambda_sep=1.0,
                                  class_weight="balanced"), n, args.repeats)
    model = plain_fit(X_train, y_train, 1)
    clf = estimator_fit(X_train, y_train, 1)
    clf.module_.load_state_dict(model.state_dict())
    compare("PGD-20 evaluation vs plain loop",
            lambda: plain_robust_accuracy(model, X_test, y_test),
            lambda: robust_accuracy_score(clf, X_test, y_test, step_size=STEP), len(y_test),
            args.repeats)
    if installed("torchattacks"):
        compare("SRATClassifier AT vs torchattacks.PGD in the plain loop",
                lambda: plain_fit(X_train, y_train, args.epochs, attack=torchattacks_pgd),
                estimator, n, args.repeats)
    else:
        print("| torchattacks not installed (pip install -e '.[bench]') | | | | | |")
    if installed("art"):
        compare("SRATClassifier AT vs ART AdversarialTrainer + PGD",
                lambda: art_fit(X_train, y_train, args.epochs), estimator, n, args.repeats)
        compare("SRATClassifier AT vs ART AdversarialTrainerMadryPGD",
                lambda: art_madry_fit(X_train, y_train, args.epochs), estimator, n,
                args.repeats)
    else:
        print("| ART not installed (pip install -e '.[bench]') | | | | | |")
    for name, params in CHEAP_ATTACKS.items():
        compare(f"{name} vs PGD-10, both estimator", estimator,
                lambda: estimator_fit(X_train, y_train, args.epochs, **params), n,
                args.repeats)
    overhead_table(X_train, X_test, y_train, y_test, args.epochs, args.repeats)
    memory_table(args.epochs, args.repeats, args.threads)
    scaling_table(X_train, y_train, args.epochs, max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
