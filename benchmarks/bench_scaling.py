"""What scaling out costs on this machine: a Dask search and a 2-process DDP fit.

    python benchmarks/bench_scaling.py [--output benchmarks/bench_scaling.json]
    python benchmarks/bench_scaling.py --write-docs

1. The same GridSearchCV (8 candidates x 3 folds of SRAT on flattened, imbalanced digits,
   robust scorer) serially (torch on 2 threads, then 1) and under
   ``joblib.parallel_backend("dask")`` on a LocalCluster of 2 single-threaded worker
   processes; wall times, and whether best_params_ and every score equal the serial search
   with the workers' thread count.
2. ``tests/ddp_fit.py`` (SRAT on the defaults, 4 epochs) on one process with 2 threads and
   on two processes with 1 thread each (``torchrun``), wall time including process start, and
   the largest difference of the per-step losses.

The first form writes its measurements to ``--output``; the second regenerates from that file
the table between the ``scaling-times`` markers of ``docs/scaling.md``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import load_digits_images, make_imbalanced
from srat_sklearn.metrics import make_robust_scorer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _docs import replace_block, write_docs  # noqa: E402
from _provenance import machine  # noqa: E402

DOC, MARKER = ROOT / "docs" / "scaling.md", "scaling-times"
SEARCH = "8 candidates x 3 folds of SRAT on imbalanced digits"
SERIAL = {2: "serial, torch on 2 threads", 1: "serial, torch on 1 thread"}
DASK = "Dask, 2 workers x 1 thread"


def search_times():
    from distributed import Client, LocalCluster

    X, y = load_digits_images()
    X, y = make_imbalanced(X.reshape(len(X), -1), y, ratio=10,
                           under_represented=[5, 6, 7, 8, 9], random_state=0)
    clf = SRATClassifier(max_epochs=10, epsilon=0.1, n_steps=5, random_state=0, verbose=0,
                         module__hidden_units=(64,))
    grid = {"lambda_sep": [0.0, 0.5, 1.0, 2.0], "class_weight": [None, "balanced"]}

    def search(n_jobs):
        return GridSearchCV(clf, grid, scoring=make_robust_scorer(n_steps=10),
                            cv=StratifiedKFold(3), n_jobs=n_jobs)

    times = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        started = time.perf_counter()
        serial = search(1).fit(X, y)
        times[SERIAL[threads]] = time.perf_counter() - started
    torch.set_num_threads(2)
    # Dask workers run torch with threads_per_worker threads: the results are bit-equal to
    # a serial search with as many threads (float sums depend on the thread count).
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        started = time.perf_counter()
        with parallel_backend("dask"):
            dask = search(-1).fit(X, y)
        times[DASK] = time.perf_counter() - started
    same = dask.best_params_ == serial.best_params_ and all(
        np.array_equal(dask.cv_results_[f"split{k}_test_score"],
                       serial.cv_results_[f"split{k}_test_score"]) for k in range(3))
    return times, same


def ddp_times():
    script = ROOT / "tests" / "ddp_fit.py"
    out = {}
    for n in (1, 2):
        folder = Path(tempfile.mkdtemp())
        command = ([sys.executable, str(script), "single", str(folder)] if n == 1 else
                   [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={n}", str(script), "ddp", str(folder)]) + ["weights"]
        started = time.perf_counter()
        # 2 threads for the single process (the 2 processes get 1 each from torchrun): the
        # same cores either way, whatever a LocalCluster left in this process's environment.
        env = {**os.environ, "OMP_NUM_THREADS": "2" if n == 1 else "1", "MKL_NUM_THREADS":
               "2" if n == 1 else "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        out[n] = (time.perf_counter() - started,
                  [json.loads((folder / f"rank{r}.json").read_text()) for r in range(n)])
    single = np.concatenate(out[1][1][0]["losses"])
    ddp = np.mean([np.concatenate(r["losses"]) for r in out[2][1]], axis=0)
    return out[1][0], out[2][0], float(np.abs(single - ddp).max())


def render(record):
    search, ddp = record["search_seconds"], record["ddp"]
    lines = [f"GridSearchCV, {SEARCH}, srat-sklearn {record['machine']['srat_sklearn']}, "
             f"torch {record['machine']['torch']}:", "", "| run | wall time |", "|---|---|"]
    for name, seconds in search.items():
        note = ""
        if name == DASK:
            note = " (results {} the 1-thread serial run)".format(
                "equal to" if record["dask_equal"] else "differ from")
        lines.append(f"| {name} | {seconds:.1f} s{note} |")
    lines += ["", f"The Dask search ran {search[SERIAL[1]] / search[DASK]:.2f}x as fast as the "
              "serial search on 1 thread.", "",
              f"DDP fit (`tests/ddp_fit.py`, 4 epochs, the default `weight_normalization`): "
              f"{ddp['single_seconds']:.1f} s on 1 process with 2 threads, "
              f"{ddp['ddp_seconds']:.1f} s on 2 processes with 1 thread each, process start "
              f"included; largest difference of the per-step losses "
              f"{ddp['max_loss_difference']:.1e}."]
    return "\n".join(lines)


def generated_docs(path):
    record = json.loads(Path(path).read_text())
    return {DOC: replace_block(DOC.read_text(), MARKER, render(record))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "bench_scaling.json"))
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the table of docs/scaling.md from --output")
    args = parser.parse_args()
    if args.write_docs:
        write_docs(generated_docs(args.output), ROOT)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads in this process")
    times, same = search_times()
    print(f"GridSearchCV, {SEARCH}:")
    for name, seconds in times.items():
        print(f"  {name}: {seconds:.1f} s")
    print(f"  Dask results equal to the serial 1-thread search: {same}")
    single_s, ddp_s, diff = ddp_times()
    print(f"DDP fit: 1 process {single_s:.1f} s, 2 processes {ddp_s:.1f} s, "
          f"max loss difference {diff:.1e}")
    record = {"search_seconds": times, "dask_equal": bool(same),
              "ddp": {"single_seconds": single_s, "ddp_seconds": ddp_s,
                      "max_loss_difference": diff},
              "machine": machine()}
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
