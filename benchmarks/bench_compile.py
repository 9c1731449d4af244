"""``compile=True`` against eager training: the estimator's compiled steps and a plain loop.

    python benchmarks/bench_compile.py [--epochs 3] [--repeats 9] [--backend inductor]
    python benchmarks/bench_compile.py --write-docs

The work of ``benchmarks/bench_fit.py`` (its plain loop and estimator: step-imbalanced digits,
SmallCNN, SGD, batch 64, L-inf PGD-10), in four implementations timed side by side in one
process (with bench_fit's malloc settings), each repeat running all of them in a rotated
order after one warm-up run each:

- ``plain loop, eager``: the reference, ``bench_fit.plain_fit``;
- ``plain loop, torch.compile(model)``: the same loop with its module compiled, as a user (or
  skorch's own ``compile=True``) would do it;
- ``estimator, eager, contiguous``: ``SRATClassifier`` doing the plain loop's work in the
  loop's memory order;
- ``estimator, compile=True, contiguous``: the same with its ascent step and training
  forward pass compiled (:mod:`srat_sklearn._compiled`);
- ``estimator, eager, channels-last`` and ``estimator, compile=True, channels-last``: the
  same two in the memory order that ``channels_last="auto"`` picks on a CPU.

Each row gives the median seconds per epoch and the median over repeats of the reference's
time divided by the row's (and, for a compiled row, of its eager row's). The compile time of
a compiled row is its first epoch less its second, both in a fresh process: once with
inductor's on-disk cache empty (a first fit), once with the cache that run filled (a later
process); "pays off after" divides each by the time a compiled epoch saves over its eager
row. Last, torch.profiler shows where one epoch of the compiled channels-last estimator
spends its time. The second form
regenerates, from the JSON file, the tables between the ``compile-speed`` markers of
``docs/performance.md``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, write_docs  # noqa: E402
from _provenance import machine  # noqa: E402
from _rounds import paired_ratios, rotated  # noqa: E402
from bench_fit import (  # noqa: E402
    data,
    estimator_fit,
    new_model,
    plain_fit,
    restart_keeping_freed_memory,
)

DOC, MARKER = ROOT / "docs" / "performance.md", "compile-speed"
# Six implementations share one network's code in this process; torch's default limit of 8
# graphs per function would send the later ones back to eager mode. torch 2.5, the oldest
# release allowed, knows the limit only by its former name.
LIMIT = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") \
    else "cache_size_limit"
setattr(torch._dynamo.config, LIMIT, 64)
REFERENCE = "plain loop, eager"
PROFILED = "estimator, compile=True, channels-last"
SMOKE_ROWS = ("estimator, eager, contiguous", "estimator, compile=True, contiguous")


def implementations(X, y, backend):
    """``{name: (run(epochs), eager counterpart)}``; ``run`` trains from scratch, and a
    compiled row names the eager row it is compared with (None: not compiled)."""
    def compiled_model(seed):
        return torch.compile(new_model(seed), backend=backend)

    def estimator(memory_format, **params):
        return lambda e: estimator_fit(X, y, e, channels_last=memory_format == "channels-last",
                                       **params)

    compiled = dict(compile=True, compile__backend=backend)
    return {
        REFERENCE: (lambda e: plain_fit(X, y, e), None),
        "plain loop, torch.compile(model)": (
            lambda e: plain_fit(X, y, e, make_model=compiled_model), REFERENCE),
        "estimator, eager, contiguous": (estimator("contiguous"), None),
        "estimator, compile=True, contiguous": (estimator("contiguous", **compiled),
                                                "estimator, eager, contiguous"),
        "estimator, eager, channels-last": (estimator("channels-last"), None),
        "estimator, compile=True, channels-last": (estimator("channels-last", **compiled),
                                                   "estimator, eager, channels-last"),
    }


def timed(run, epochs):
    started = time.perf_counter()
    run(epochs)
    return time.perf_counter() - started


def compile_time_child(name, backend, threads, smoke):
    """In a fresh process: the first epoch of ``name`` (compiling) and the second."""
    torch.set_num_threads(threads)
    X, y = training_data(smoke)
    run = implementations(X, y, backend)[name][0]
    print(json.dumps({"first": timed(run, 1), "steady": timed(run, 1)}))


def compile_seconds(name, backend, threads, smoke):
    """The compile time of ``name``, ``(cold, warm)``: its first epoch in a fresh process less
    a steady one, with inductor's on-disk cache empty, then filled by the cold run."""
    command = [sys.executable, __file__, "--compile-time-child", name, "--backend", backend,
               "--threads", str(threads)] + (["--smoke"] if smoke else [])
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in ("cold", "warm"):
            output = subprocess.run(command, check=True, capture_output=True, text=True,
                                    env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}).stdout
            child = json.loads(output.strip().splitlines()[-1])
            times.append(round(child["first"] - child["steady"], 1))
    return tuple(times)


def training_data(smoke):
    X, _, y, _ = data()
    return (X[:100], y[:100]) if smoke else (X, y)


def measure(X, y, epochs, repeats, backend, threads, smoke=False):
    sides = implementations(X, y, backend)
    if smoke:  # one compiled row and its eager row: the code paths, in a few seconds
        sides = {name: sides[name] for name in (REFERENCE, *SMOKE_ROWS)}
    compile_times = {name: compile_seconds(name, backend, threads, smoke)
                     for name, (_, eager) in sides.items() if eager is not None}
    for run, _ in sides.values():  # the warm-up, which compiles here too
        timed(run, 1)
    times = {name: [] for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        for name in rotated(names, repeat):
            times[name].append(timed(sides[name][0], epochs) / epochs)
    rows = {}
    for name, (_, eager) in sides.items():
        epoch = statistics.median(times[name])
        speedup = paired_ratios(times[REFERENCE], times[name])
        rows[name] = {"seconds_per_epoch": round(epoch, 4),
                      "speedup": round(speedup["median"], 3),
                      "speedup_range": [round(r, 3) for r in speedup["range"]],
                      "eager": eager, "compile_seconds": None}
        if eager is not None:
            rows[name]["compile_seconds"], rows[name]["compile_seconds_warm_cache"] = \
                compile_times[name]
            rows[name]["speedup_over_eager"] = round(
                paired_ratios(times[eager], times[name])["median"], 3)
        print(f"  {name}: {epoch:.3f} s per epoch, x{rows[name]['speedup']:.2f}", flush=True)
    return rows


#: The profile's groups of operators, by the name torch.profiler gives them.
PROFILE_GROUPS = {
    "convolutions, forward and backward (oneDNN kernels the compiled code calls)":
        lambda k: k in ("aten::mkldnn_convolution", "aten::convolution_backward"),
    "matrix products (the linear layers)": lambda k: k in ("aten::mm", "aten::addmm"),
    "the compiled code's own fused kernels": lambda k: k.startswith("## Call CompiledFxGraph"),
    "dynamo's guard checks before each compiled call":
        lambda k: k == "TorchDynamo Cache Lookup",
}


def profile(X, y, backend, name):
    """Shares of one compiled epoch's CPU time (self time of each operator), by group."""
    run = implementations(X, y, backend)[name][0]
    run(1)  # compiles, if this process has not yet
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(1)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {group: sum(e.self_cpu_time_total for e in events if matches(e.key)) / total
              for group, matches in PROFILE_GROUPS.items()}
    shares["everything else"] = 1 - sum(shares.values())
    return {"implementation": name, "shares": {k: round(v, 3) for k, v in shares.items()}}


def render(record):
    rows = record["rows"]
    lines = ["| implementation | s per epoch | vs the plain eager loop (median, range) | "
             "vs its eager row | compile time, empty / filled disk cache (s) | "
             "pays off after |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        low, high = row["speedup_range"]
        cells = ["", "", ""]
        if row["eager"] is not None:
            saved = rows[row["eager"]]["seconds_per_epoch"] - row["seconds_per_epoch"]
            cold, warm = row["compile_seconds"], row["compile_seconds_warm_cache"]
            cells = [f"{row['speedup_over_eager']:.2f}x", f"{cold:.0f} / {warm:.0f}",
                     f"{cold / saved:.0f} / {warm / saved:.0f} epochs" if saved > 0
                     else "never"]
        lines.append(f"| {name} | {row['seconds_per_epoch']:.3f} | {row['speedup']:.2f}x "
                     f"({low:.2f} - {high:.2f}) | " + " | ".join(cells) + " |")
    machine = record["machine"]
    text = (f"SmallCNN, L-inf PGD-10, {record['n_train']} training images, "
            f"{record['epochs']} epochs per run, {record['repeats']} repeats, "
            f"{machine['torch_threads']} torch threads, backend {record['backend']}, "
            f"torch {machine['torch']}, srat-sklearn {machine['srat_sklearn']}:\n\n"
            + "\n".join(lines))
    if "profile" in record:
        text += (f"\n\nWhere one epoch of \"{record['profile']['implementation']}\" spends its "
                 "CPU time (torch.profiler, self time of each operator):\n\n"
                 "| operators | share |\n|---|---|\n" + "\n".join(
                     f"| {group} | {100 * share:.0f}% |"
                     for group, share in record["profile"]["shares"].items()))
    return text


def generated_docs(path):
    record = json.loads(Path(path).read_text())
    return {DOC: replace_block(DOC.read_text(), MARKER, render(record))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--backend", default="inductor", help="torch.compile's backend")
    parser.add_argument("--output", default=str(HERE / "bench_compile.json"))
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the table of docs/performance.md")
    parser.add_argument("--smoke", action="store_true",
                        help="100 images, 1 epoch, 1 repeat, 3 rows: checks the script only")
    parser.add_argument("--compile-time-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile_time_child:
        return compile_time_child(args.compile_time_child, args.backend, args.threads,
                                  args.smoke)
    if args.write_docs:
        write_docs(generated_docs(args.output), ROOT)
        return
    restart_keeping_freed_memory()  # as bench_fit: steadier timings
    torch.set_num_threads(args.threads)
    X_train, y_train = training_data(args.smoke)
    if args.smoke:
        args.epochs, args.repeats = 1, 1
    rows = measure(X_train, y_train, args.epochs, args.repeats, args.backend, args.threads,
                   args.smoke)
    record = {"n_train": int(len(y_train)), "epochs": args.epochs, "repeats": args.repeats,
              "backend": args.backend, "rows": rows,
              "profile": profile(X_train, y_train, args.backend,
                                 SMOKE_ROWS[1] if args.smoke else PROFILED),
              "machine": machine()}
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
