"""Training and evaluation speed of SRATClassifier against a plain PyTorch loop doing the same work.

    python benchmarks/bench_fit.py [--epochs 3] [--repeats 9] [--threads 2] [--system-malloc]
    python benchmarks/bench_fit.py --write-docs
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
and PGD-20 robust accuracy on the test split against a plain evaluation loop that does the
estimator's work (the attack on the images classified correctly, in batches of up to 250), on
a model trained without attacks, which classifies most test images correctly. When
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

The first form writes its measurements to ``benchmarks/bench_fit.json`` (``--output``); the
second regenerates from that file the tables between the ``fit-speed``, ``fit-overhead``,
``fit-memory``, ``fit-scaling`` and ``cheap-attacks`` markers of ``docs/performance.md``, the
last one with the accuracy of the study's ``fast`` setting from ``benchmarks/runs.jsonl``.
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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.callbacks import CatastrophicOverfittingGuard
from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.models import SmallCNN

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, rounded, write_docs  # noqa: E402
from _provenance import machine  # noqa: E402
from _rounds import paired_ratios  # noqa: E402

DOC = HERE.parent / "docs" / "performance.md"

EPSILON, STEP, N_STEPS, BATCH, LR = 0.2, 0.05, 10, 64, 0.05
EVALUATION_BATCH = 250  # the estimator's evaluation batch, as AutoAttack's
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
    """PGD-20 robust accuracy as the estimator evaluates it: clean predictions first, then the
    attack on the samples classified correctly (the others count as wrong anyway), in
    near-equal batches of at most ``EVALUATION_BATCH``, and predictions on their adversarial
    examples."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model.eval()

    def parts(rows):
        return rows.tensor_split(-(-len(rows) // EVALUATION_BATCH)) if len(rows) else ()

    with torch.no_grad():
        correct = torch.cat([model(X[rows]).argmax(1) == y[rows]
                             for rows in parts(torch.arange(len(X)))])
    hits = 0
    for rows in parts(correct.nonzero().squeeze(1)):
        X_adv = pgd(model, X[rows], y[rows], 20)
        with torch.no_grad():
            hits += int((model(X_adv).argmax(1) == y[rows]).sum())
    return hits / len(X)


def evaluation_pair(X, y, epochs, make_model=new_model):
    """A plain model and an estimator holding the same weights, trained without attacks: a
    few epochs of PGD training leave too few test images classified correctly for the
    evaluation's attack to have its usual work."""
    model = plain_fit(X, y, epochs, attack=lambda model: lambda X_b, y_b: X_b,
                      make_model=make_model)
    clf = estimator_fit(X, y, 1, make_model=make_model)
    clf.module_.load_state_dict(model.state_dict())
    return model, clf


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
    ratio = paired_ratios(ref_times, cand_times)
    row = {"comparison": name,
           "reference_samples_per_second": samples / statistics.median(ref_times),
           "candidate_samples_per_second": samples / statistics.median(cand_times),
           "ratio": ratio["median"], "ratio_range": ratio["range"],
           "fastest_ratio": min(ref_times) / min(cand_times)}
    print(speed_row(row), flush=True)
    return row


def speed_row(row):
    low, high = row["ratio_range"]
    return (f"| {row['comparison']} | {row['reference_samples_per_second']:.0f} | "
            f"{row['candidate_samples_per_second']:.0f} | {row['ratio']:.3f} | "
            f"{low:.3f} - {high:.3f} | {row['fastest_ratio']:.3f} |")


def fastest_ms(reference, candidate, repeats, per=1):
    """The fastest of ``repeats`` interleaved runs of each, in ms divided by ``per``."""
    timed(reference), timed(candidate)
    times = ([], [])
    for repeat in range(repeats):
        for side in ((0, 1) if repeat % 2 == 0 else (1, 0)):
            times[side].append(timed((reference, candidate)[side])[0] * 1e3 / per)
    return min(times[0]), min(times[1])


#: The models of the overhead table: one whose kernels cost next to nothing, and the real one.
MODELS = {"linear (64 -> 10)": linear_model, "SmallCNN": new_model}
WORK = {"training": "training, per batch", "evaluation": "PGD-20 evaluation of the test set",
        "separation": "SRAT over AT (separation loss, class weights), per batch"}


def overhead_table(X_train, X_test, y_train, y_test, epochs, repeats):
    """What the estimator adds, in milliseconds: with a linear model, whose kernels cost almost
    nothing, the difference is the estimator's own cost, free of the machine's drift that
    blurs the ratios above; with the SmallCNN it is that cost against the real work."""
    batches = epochs * -(-len(y_train) // BATCH)
    rows = []

    def add(work, model, plain_ms, estimator_ms, reference="plain"):
        rows.append({"work": work, "model": model, "reference": reference,
                     "plain_ms": plain_ms, "estimator_ms": estimator_ms})
        print(overhead_row(rows[-1]), flush=True)

    for name, make_model in MODELS.items():
        add("training", name, *fastest_ms(
            lambda: plain_fit(X_train, y_train, epochs, make_model=make_model),
            lambda: estimator_fit(X_train, y_train, epochs, make_model=make_model),
            repeats, per=batches))
    for name, make_model in MODELS.items():
        model, clf = evaluation_pair(X_train, y_train, epochs, make_model)
        add("evaluation", name, *fastest_ms(
            lambda: plain_robust_accuracy(model, X_test, y_test),
            lambda: robust_accuracy_score(clf, X_test, y_test, step_size=STEP), repeats))
    add("separation", "SmallCNN", *fastest_ms(
        lambda: estimator_fit(X_train, y_train, epochs),
        lambda: estimator_fit(X_train, y_train, epochs, lambda_sep=1.0, class_weight="balanced"),
        repeats, per=batches), reference="AT")
    return rows


def overhead_row(row):
    digits = 1 if row["work"] == "evaluation" else 2
    own = row["estimator_ms"] - row["plain_ms"]
    reference = "" if row["reference"] == "plain" else f" ({row['reference']})"
    return (f"| {WORK[row['work']]} | {row['model']} | {row['plain_ms']:.{digits}f}{reference} | "
            f"{row['estimator_ms']:.{digits}f} | {own:.{digits}f} | "
            f"{own / row['estimator_ms']:.1%} |")


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
    """The median peak of each implementation, in MiB above its start, over interleaved runs."""
    peaks = {name: [] for name in MEMORY_RUNS}
    for _ in range(repeats):
        for name in MEMORY_RUNS:
            peaks[name].append(peak_memory(name, epochs, threads))
    medians = {name: statistics.median(values) for name, values in peaks.items()}
    print("\n" + render_memory(medians), flush=True)
    return medians


# ----------------------------------------------------------------- scaling and cheaper attacks

def scaling_table(X, y, epochs, repeats):
    """The estimator's seconds per epoch (fastest run) at the data set and twice its size."""
    sizes = {len(y): (X, y), 2 * len(y): (np.concatenate([X, X]), np.concatenate([y, y]))}
    rows = []
    for n, (X_n, y_n) in sizes.items():
        for steps in (1, 5, 10):
            run = lambda: estimator_fit(X_n, y_n, epochs, n_steps=steps,  # noqa: E731
                                        step_size=2.5 * EPSILON / steps)
            timed(run)
            seconds = min(timed(run)[0] for _ in range(repeats)) / epochs
            rows.append({"samples": n, "steps": steps, "seconds_per_epoch": seconds})
            print(scaling_row(rows[-1]), flush=True)
    return rows


def scaling_row(row):
    per_pass = 1e6 * row["seconds_per_epoch"] / (row["samples"] * (row["steps"] + 1))
    return (f"| {row['samples']} | {row['steps']} | {row['seconds_per_epoch']:.3f} | "
            f"{per_pass:.1f} |")


CHEAP_ATTACKS = {
    "PGD-3, step eps/2": dict(n_steps=3, step_size=EPSILON / 2),
    "PGD-2, step 0.75 eps": dict(n_steps=2, step_size=0.75 * EPSILON),
    "FGSM-RS, step 1.25 eps, + guard": dict(
        n_steps=1, step_size=1.25 * EPSILON,
        callbacks=[("guard", CatastrophicOverfittingGuard())]),
    "PGD-2 reusing perturbations, step eps/2": dict(n_steps=2, step_size=EPSILON / 2,
                                                    reuse_perturbations=True),
}
#: The same attacks in the study's ``fast`` setting, and its PGD-10 reference.
STUDY_NAMES = {"PGD-3, step eps/2": "SRAT PGD-3", "PGD-2, step 0.75 eps": "SRAT PGD-2",
               "FGSM-RS, step 1.25 eps, + guard": "SRAT FGSM-RS + guard",
               "PGD-2 reusing perturbations, step eps/2": "SRAT PGD-2, reused"}
STUDY_REFERENCE = "SRAT PGD-10"
#: A cheaper attack is worth having within this many points of PGD-10's robust overall
#: accuracy (mean over seeds) at no more than this share of its time (benchmark).
CHEAP_GOAL = (2.0, 0.35)
SPEED_HEADER = ["| comparison | reference samples/s | candidate samples/s | "
                "candidate / reference | range over pairs | fastest / fastest |",
                "|---|---|---|---|---|---|"]
OVERHEAD_HEADER = ["| work | model | plain ms | estimator ms | estimator's own cost, ms | "
                   "share |", "|---|---|---|---|---|---|"]
SCALING_HEADER = ["| training samples | attack steps | s per epoch | microseconds per sample "
                  "and pass |", "|---|---|---|---|"]
SMOKE_IMAGES = 128


# ----------------------------------------------------------------- the docs' tables

def provenance(record):
    settings, where = record["settings"], record["machine"]
    return (f"{settings['training_images']} training images (1x8x8), {settings['epochs']} "
            f"epochs per run, {settings['repeats']} interleaved pairs after a warm-up, "
            f"{where['torch_threads']} torch threads, {settings['malloc']} malloc thresholds, "
            f"torch {where['torch']}, srat-sklearn {where['srat_sklearn']}")


def render_speed(record):
    rows = {row["comparison"]: row for row in record["comparisons"]}
    lines = [provenance(record) + ":", "",
             f"Largest weight difference after {record['settings']['epochs']} epochs, plain "
             f"loop vs estimator: {record['weight_difference']:.1e}.", "", *SPEED_HEADER,
             *(speed_row(row) for row in record["comparisons"])]
    art = [(name, rows.get(f"SRATClassifier AT vs ART {name}")) for name in
           ("AdversarialTrainerMadryPGD", "AdversarialTrainer + PGD")]
    if all(row for _, row in art):
        lines += ["", "Against ART the estimator is " + " and ".join(
            f"**{row['ratio']:.2f}x** as fast as `{name}` ({row['fastest_ratio']:.2f}x on the "
            "fastest runs)" for name, row in art) + "."]
    return "\n".join(lines)


def render_overhead(record):
    rows = record["overhead"]
    lines = [*OVERHEAD_HEADER, *(overhead_row(row) for row in rows)]
    cell = {(row["work"], row["model"]): row for row in rows}
    linear, cnn = MODELS
    try:
        train_own, eval_own = (cell[work, linear] for work in ("training", "evaluation"))
        train_cnn, eval_cnn = (cell[work, cnn] for work in ("training", "evaluation"))
    except KeyError:
        return "\n".join(lines)
    batch = train_own["estimator_ms"] - train_own["plain_ms"]
    evaluation = eval_own["estimator_ms"] - eval_own["plain_ms"]
    lines += ["", f"The linear model's own costs, {batch:.2f} ms per batch and "
              f"{evaluation:.1f} ms per evaluation, are {batch / train_cnn['plain_ms']:.1%} "
              f"and {evaluation / eval_cnn['plain_ms']:.1%} of the SmallCNN's plain "
              f"{train_cnn['plain_ms']:.1f} ms batch and {eval_cnn['plain_ms']:.0f} ms "
              f"evaluation: from these steady costs, **the estimator trains at about "
              f"{train_cnn['plain_ms'] / (train_cnn['plain_ms'] + batch):.3f} and evaluates at "
              f"about {eval_cnn['plain_ms'] / (eval_cnn['plain_ms'] + evaluation):.3f} of the "
              "plain loop's speed**. The SmallCNN rows themselves give "
              f"{train_cnn['plain_ms'] / train_cnn['estimator_ms']:.3f} and "
              f"{eval_cnn['plain_ms'] / eval_cnn['estimator_ms']:.3f}; the evaluation's "
              "includes a forward pass over every test image, where the plain loop predicts "
              "only the images it attacked."]
    return "\n".join(lines)


def render_memory(medians):
    plain = medians["plain loop"]
    return "\n".join(["| implementation | peak memory above start (MiB) | vs plain loop |",
                      "|---|---|---|", *(f"| {name} | {median:.1f} | {median / plain:.2f} |"
                                         for name, median in medians.items())])


def render_scaling(rows):
    lines = [*SCALING_HEADER, *(scaling_row(row) for row in rows)]
    at = {(row["samples"], row["steps"]): row["seconds_per_epoch"] for row in rows}
    small, large = sorted({row["samples"] for row in rows})[:2] if len(at) == 6 else (None,) * 2
    if small is None:
        return "\n".join(lines)

    def per_pass(n, steps):
        return at[n, steps] / (n * (steps + 1))

    step_cost = (at[small, 10] - at[small, 1]) / 9
    lines += ["", f"- Doubling the samples changes the cost per sample and pass by "
              f"{rounded(per_pass(large, 1) / per_pass(small, 1) - 1, 3):+.1%} at 1 step and "
              f"{rounded(per_pass(large, 10) / per_pass(small, 10) - 1, 3):+.1%} at 10 steps.",
              f"- Each extra step adds {step_cost:.3f} s per epoch at {small} samples: the line "
              f"through 1 and 10 steps predicts {at[small, 1] + 4 * step_cost:.3f} s at 5 steps;"
              f" the measurement is {at[small, 5]:.3f} s."]
    return "\n".join(lines)


def render_cheap(record, runs):
    """The cheaper training attacks: time from this benchmark's pairs and from the study's
    ``fast`` runs (paired by seed), robust accuracy from those runs."""
    import summarize

    grouped = summarize.by_method([run for run in runs if run["setting"] == "fast"])
    reference = grouped.get(STUDY_REFERENCE, {})
    speed = {row["comparison"]: row for row in record["comparisons"]}
    lines = ["| training attack | time vs PGD-10 (benchmark) | time vs PGD-10 (study) | "
             "robust overall, difference to PGD-10 (points) | robust under | per seed, "
             "overall | within the goal |", "|---|---|---|---|---|---|---|"]
    points, share = CHEAP_GOAL
    for name, study_name in STUDY_NAMES.items():
        row = speed.get(f"{name} vs PGD-10, both estimator")
        seeds = grouped.get(study_name, {})
        common = sorted(set(seeds) & set(reference))
        if row is None or not common:
            continue
        overall, under = ([summarize.value(seeds[s], "robust", group)
                           - summarize.value(reference[s], "robust", group) for s in common]
                          for group in ("overall", "under"))
        study_time = np.mean([seeds[s]["fit_seconds"] / reference[s]["fit_seconds"]
                              for s in common])
        met = np.mean(overall) >= -points and 1 / row["ratio"] <= share
        per_seed = ", ".join(f"{rounded(d, 1):+.1f}" for d in overall)
        lines.append(f"| {name} | {1 / row['ratio']:.2f}x | {study_time:.2f}x | "
                     f"{summarize.mean_std(overall)} | {summarize.mean_std(under)} | "
                     f"{per_seed} | {'yes' if met else 'no'} |")
    if reference:
        base = [summarize.value(run, "robust", "overall") for run in reference.values()]
        lines += ["", f"PGD-10's robust overall accuracy: {summarize.mean_std(base)} "
                  f"({len(base)} seeds). The goal: within {points:g} points of it on the mean "
                  f"over seeds, at no more than {share:.2f}x its time in the benchmark."]
    return "\n".join(lines)


def generated_docs(path, runs=HERE / "runs.jsonl"):
    import summarize

    record = json.loads(Path(path).read_text())
    text = DOC.read_text()
    for marker, block in (("fit-speed", render_speed(record)),
                          ("fit-overhead", render_overhead(record)),
                          ("fit-memory", render_memory(record["memory"])),
                          ("fit-scaling", render_scaling(record["scaling"])),
                          ("cheap-attacks", render_cheap(record, summarize.load(runs)))):
        text = replace_block(text, marker, block)
    return {DOC: text}


# ----------------------------------------------------------------- the run

def run(args):
    torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test = data()
    if args.smoke:
        X_train, y_train = X_train[:SMOKE_IMAGES], y_train[:SMOKE_IMAGES]
    n = args.epochs * len(y_train)
    record = {"settings": {"training_images": len(y_train), "epochs": args.epochs,
                           "repeats": args.repeats,
                           "malloc": "system" if args.system_malloc else "fixed"}}
    print(provenance({**record, "machine": machine()}) + "\n")
    estimator = lambda: estimator_fit(X_train, y_train, args.epochs)  # noqa: E731
    record["weight_difference"] = max((p - q).abs().max().item() for p, q in zip(
        plain_fit(X_train, y_train, args.epochs).parameters(), estimator().module_.parameters()))
    print(f"Largest weight difference after {args.epochs} epochs, plain loop vs estimator: "
          f"{record['weight_difference']:.1e}\n")
    print("\n".join(SPEED_HEADER))
    comparisons = record["comparisons"] = []
    comparisons.append(compare(
        "SRATClassifier AT vs plain loop", lambda: plain_fit(X_train, y_train, args.epochs),
        estimator, n, args.repeats))
    comparisons.append(compare(
        "SRAT (lambda 1, DRW) vs AT, both estimator", estimator,
        lambda: estimator_fit(X_train, y_train, args.epochs, lambda_sep=1.0,
                              class_weight="balanced"), n, args.repeats))
    model, clf = evaluation_pair(X_train, y_train, args.epochs)
    comparisons.append(compare(
        "PGD-20 evaluation vs plain loop", lambda: plain_robust_accuracy(model, X_test, y_test),
        lambda: robust_accuracy_score(clf, X_test, y_test, step_size=STEP), len(y_test),
        args.repeats))
    if installed("torchattacks"):
        comparisons.append(compare(
            "SRATClassifier AT vs torchattacks.PGD in the plain loop",
            lambda: plain_fit(X_train, y_train, args.epochs, attack=torchattacks_pgd),
            estimator, n, args.repeats))
    if installed("art"):
        comparisons.append(compare(
            "SRATClassifier AT vs ART AdversarialTrainer + PGD",
            lambda: art_fit(X_train, y_train, args.epochs), estimator, n, args.repeats))
        comparisons.append(compare(
            "SRATClassifier AT vs ART AdversarialTrainerMadryPGD",
            lambda: art_madry_fit(X_train, y_train, args.epochs), estimator, n, args.repeats))
    for name, params in CHEAP_ATTACKS.items():
        comparisons.append(compare(
            f"{name} vs PGD-10, both estimator", estimator,
            lambda: estimator_fit(X_train, y_train, args.epochs, **params), n, args.repeats))
    record["missing"] = [name for name in ("torchattacks", "art") if not installed(name)]
    if record["missing"]:
        print(f"not installed: {', '.join(record['missing'])} (pip install -e '.[bench]')")
    print("\n" + "\n".join(OVERHEAD_HEADER))
    record["overhead"] = overhead_table(X_train, X_test, y_train, y_test, args.epochs,
                                        args.repeats)
    record["memory"] = memory_table(args.epochs, args.repeats, args.threads)
    print("\n" + "\n".join(SCALING_HEADER))
    record["scaling"] = scaling_table(X_train, y_train, args.epochs, max(1, args.repeats // 2))
    record["machine"] = machine()
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default thresholds (noisier timings)")
    parser.add_argument("--output", default=str(HERE / "bench_fit.json"))
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the tables of docs/performance.md from --output")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_IMAGES} training images: checks the script only")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_docs:
        write_docs(generated_docs(args.output), HERE.parent)
        return
    if not (args.system_malloc or args.memory_child):
        restart_keeping_freed_memory()
    if args.memory_child:
        return peak_memory_child(args.memory_child, args.epochs, args.threads)
    record = run(args)
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
