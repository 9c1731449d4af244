"""Fit time of the study's real-data methods against AT-DRW's, from interleaved pairs.

    python benchmarks/bench_methods.py [--settings page-blocks yeast hypothyroid]
                                       [--epochs 8] [--repeats 7] [--threads 2]

The target of the baselines study allows the recommended configuration at most 1.25x AT-DRW's
fit time. The study records every run's fit time, but the runs of one setting lie minutes to
hours apart, and this project's machines slowed single runs by up to 1.8x in between, so a
study's ratio of two fit times mixes the methods' cost with the machine's mood. Here each
method of a setting (its test split's and its validation twin's) trains on the setting's
training split with the study's recipe and model, in a pair with AT-DRW run right before or
after it (the order alternates with the repeat), after one warm-up fit of each; the ratio of
each pair, and its median over repeats, is the method's fit time over AT-DRW's. Training is
shortened to ``--epochs`` epochs, each of the recipe's epoch counts (the deferred reweighting,
the epsilon warm-up) scaled with it, so both phases of the deferred methods are timed. Like
``bench_fit.py``, the script restarts itself with glibc's malloc told to keep freed memory.

Adds its pairs to ``benchmarks/bench_methods.json``, each (setting, method) with the command,
machine and schedule that measured it, replacing only those it measured again (a run on the
MNIST settings keeps the UCI ones); ``summarize.py`` reads the file for the fit-time criterion
of the target and the table on ``docs/results.md``.
"""

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402
from _provenance import machine  # noqa: E402
from bench_fit import restart_keeping_freed_memory, timed  # noqa: E402

REFERENCE = "AT-DRW"


def setting_methods(setting):
    """The methods of a setting's test split and of its validation twin, with its recipe."""
    table = study.settings()
    make_data, _, recipe, methods = table[setting]
    twin = table.get(setting + study.VALIDATION_SUFFIX)
    return make_data, recipe, {**methods, **(twin[3] if twin else {})}


def fit_seconds(setting, recipe, params, data, epochs, seed, device="cpu"):
    X_train, _, y_train, _ = data
    merged = study.shortened({**recipe, **params}, recipe["max_epochs"], epochs)
    model, _ = study.build_model(setting, {}, merged, seed, device)
    return timed(lambda: model.fit(X_train, y_train))[0]


def measure(setting, epochs, repeats, names=None, device="cpu"):
    """``{method: {"seconds", "reference_seconds", "ratios"}}`` of one setting's methods
    (``names``; None: all), against ``REFERENCE``."""
    make_data, recipe, methods = setting_methods(setting)
    names = [m for m in (names or methods) if m != REFERENCE]
    unknown = set(names) - set(methods)
    if unknown:
        raise ValueError(f"{setting} has no methods {sorted(unknown)}; it has {list(methods)}")
    data = make_data()
    for method in (REFERENCE, *names):  # warm-up
        fit_seconds(setting, recipe, methods[method], data, 2, 0, device)
    rows = {}
    for method in names:
        params = methods[method]
        seconds, reference = [], []
        for repeat in range(repeats):
            pair = [(reference, methods[REFERENCE]), (seconds, params)]
            for times, run_params in (pair if repeat % 2 == 0 else pair[::-1]):
                times.append(fit_seconds(setting, recipe, run_params, data, epochs, repeat,
                                         device))
        rows[method] = {"seconds": seconds, "reference_seconds": reference,
                        "ratios": [s / r for s, r in zip(seconds, reference)]}
        print(f"{setting:12s} {method:34s} {statistics.median(rows[method]['ratios']):.2f}x "
              f"{REFERENCE} ({min(rows[method]['ratios']):.2f}-"
              f"{max(rows[method]['ratios']):.2f})", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(study.UCI_PERTURBABLE))
    parser.add_argument("--methods", nargs="+", default=None,
                        help="methods to pair with AT-DRW (default: all of each setting)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device of the models (cuda...)")
    parser.add_argument("--output", default=str(HERE / "bench_methods.json"))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the deferred methods switch in between")
    if argv is None:
        restart_keeping_freed_memory()
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    record = json.loads(output.read_text()) if output.exists() else {}
    record.setdefault("reference", REFERENCE)
    record.setdefault("settings", {})
    # quoted, so that a method named with spaces and commas reruns from the recorded line
    provenance = {"command": shlex.join(["python", "benchmarks/bench_methods.py", *(
        argv if argv is not None else sys.argv[1:])]), "epochs": args.epochs,
        "repeats": args.repeats, "machine": machine(args.device)}
    for setting in args.settings:
        rows = measure(setting, args.epochs, args.repeats, args.methods, args.device)
        record["settings"].setdefault(setting, {}).update(
            {method: {**row, **provenance} for method, row in rows.items()})
        output.write_text(json.dumps(record, indent=1) + "\n")  # a stopped run keeps these
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
