"""How fast standard AutoAttack runs: the library's ways against each other and torchattacks.

    python benchmarks/bench_autoattack.py [--norm linf] [--repeats 3] [--output ...]
    python benchmarks/bench_autoattack.py --write-docs

Fits the AutoAttack benchmark's ``suite`` model (SmallCNN, SRAT on step-imbalanced digits,
seed 0) and runs standard AutoAttack (100 iterations, 9 targets, 5000 queries) on the 540
images of the balanced digits test split, every way once per round, in the same process
(``--repeats`` rounds, 3 by default, the order of the ways rotated from round to round):

- ``members over survivors``: what ``robust_predict`` does, each member on all the samples
  still standing, in near-equal batches of at most 250, with the estimator's default
  ``channels_last="auto"`` (on the CPU, a convolutional network's weights and inputs in
  channels-last memory order);
- ``batch by batch``: the whole ensemble inside each batch of 250 in turn (the library's way
  before, and what a loop over ``autoattack()`` calls does): the later members see the few
  survivors of each batch;
- ``contiguous``: the first, with the weights and the inputs in the contiguous (NCHW) order
  (``channels_last=False``, the default before "auto");
- ``targets together``: the first with batches of 9 x 250 rows, so that APGD-T and FAB-T attack
  all 9 targets of the samples still standing in one pass (what a GPU wants; on a CPU the
  cost per row grows with the batch);
- ``torchattacks``: its ``AutoAttack(version="standard")`` with its members set to the same
  iterations and targets (it defaults to 10 iterations), batches of 250 (the ``bench`` extra).

``--norm l2`` attacks at L2 epsilon 1 and writes ``bench_autoattack_l2.json``, whose table
follows the L-inf one. ``--device cuda`` fits and attacks on a GPU and writes
``bench_autoattack_cuda.json`` (``_l2_cuda.json`` at L2): there the estimator keeps the
contiguous order (its "auto" chooses channels last only on the CPU and in bfloat16), so the
``contiguous`` way, the same as the first, is left out.

It records each way's seconds in every round, their median, samples per second and robust
accuracy, and the median and range over rounds of its time over the first way's. The second
form regenerates, from the JSON files, the tables between the ``autoattack-speed`` and
``autoattack-speed-l2`` markers of ``docs/reliability.md``, the line between the
``autoattack-speed-summary`` markers of ``README.md``, and the GPU's table between the
``autoattack-speed-cuda`` markers of ``docs/performance.md``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from srat_sklearn.attacks import NORM_NAMES
from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.metrics import robust_predict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, write_docs  # noqa: E402
from _provenance import describe_cpu, machine  # noqa: E402
from _rounds import paired_ratios, rotated  # noqa: E402
from autoattack_eval import EPSILON, suite_model  # noqa: E402

DOC, MARKER, L2_MARKER = ROOT / "docs" / "reliability.md", "autoattack-speed", "autoattack-speed-l2"
GPU_DOC, GPU_MARKER = ROOT / "docs" / "performance.md", "autoattack-speed-cuda"
README, README_MARKER = ROOT / "README.md", "autoattack-speed-summary"
BUDGET = {"n_steps": 100, "n_targets": 9, "n_queries": 5000}
SMOKE = {"n_steps": 2, "n_targets": 2, "n_queries": 5}
BATCH = 250


def ours(model, X, y, epsilon, norm):
    return robust_predict(model, X, y, attack="autoattack", epsilon=epsilon, norm=norm,
                          batch_size=BATCH, verbose=0, **BUDGET)


def batch_by_batch(model, X, y, epsilon, norm):
    return np.concatenate([
        robust_predict(model, X[i:i + BATCH], y[i:i + BATCH], attack="autoattack",
                       epsilon=epsilon, norm=norm, batch_size=BATCH, verbose=0, **BUDGET)
        for i in range(0, len(y), BATCH)])


def targets_together(model, X, y, epsilon, norm):
    return robust_predict(model, X, y, attack="autoattack", epsilon=epsilon, norm=norm,
                          batch_size=BATCH * BUDGET["n_targets"], verbose=0, **BUDGET)


def contiguous(model, X, y, epsilon, norm):
    resolved = model.channels_last_
    model.module_.to(memory_format=torch.contiguous_format)
    model.channels_last_ = False  # the inputs follow
    try:
        return ours(model, X, y, epsilon, norm)
    finally:
        model.channels_last_ = resolved
        model.module_.to(memory_format=torch.channels_last if resolved
                         else torch.contiguous_format)


def torchattacks_autoattack(model, X, y, epsilon, norm):
    import torchattacks

    module = model.module_.eval()
    attack = torchattacks.AutoAttack(module, norm={"linf": "Linf", "l2": "L2"}[norm],
                                     eps=epsilon, version="standard", n_classes=10, seed=0)
    for member in attack._autoattack.attacks:
        if hasattr(member, "steps"):
            member.steps = BUDGET["n_steps"]
        if hasattr(member, "n_target_classes"):
            member.n_target_classes = BUDGET["n_targets"]
        if hasattr(member, "n_queries"):
            member.n_queries = BUDGET["n_queries"]
    X_t = torch.as_tensor(X, device=model.device).reshape(-1, 1, 8, 8)
    y_t = torch.as_tensor(y, device=model.device)
    X_adv = torch.cat([attack(X_t[i:i + BATCH], y_t[i:i + BATCH])
                       for i in range(0, len(y), BATCH)])
    with torch.no_grad():
        robust = module(X_adv).argmax(1).cpu().numpy()
        clean = module(X_t).argmax(1).cpu().numpy()
    return np.where(clean == y, robust, -1)  # a sample counts only if classified clean too


WAYS = {"members over survivors": ours, "batch by batch": batch_by_batch,
        "contiguous": contiguous, "targets together": targets_together,
        "torchattacks": torchattacks_autoattack}


def available_ways(model):
    """The ways this machine can run: torchattacks when installed, ``contiguous`` only where
    the estimator chose channels last."""
    ways = dict(WAYS)
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        ways.pop("torchattacks", None)
    if not model.channels_last_:
        ways.pop("contiguous", None)  # the first way already is
    return ways


def run(norm, n_test=None, max_epochs=None, device="cpu", repeats=3, on_round=None):
    """Each way once per round, ``repeats`` rounds, the order rotated from round to round: the
    machine's speed drifts over minutes, and a fixed order would hand the drift to the ways
    that run last. ``on_round(record)`` receives the record of the rounds so far after each
    round, so that a run stopped part-way keeps its finished rounds."""
    X_train, X_test, y_train, y_test = load_imbalanced_digits()
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    torch.manual_seed(0)
    model = suite_model().set_params(device=device)
    if max_epochs:
        model.set_params(max_epochs=max_epochs)
    model.fit(X_train, y_train)
    epsilon = EPSILON[norm]
    ways = available_ways(model)
    robust, seconds = {}, {name: [] for name in ways}
    for round_ in range(repeats):
        for name in rotated(list(ways), round_):
            torch.manual_seed(0)
            started = time.perf_counter()
            predicted = ways[name](model, X_test, y_test, epsilon, norm)
            seconds[name].append(time.perf_counter() - started)
            robust.setdefault(name, float(np.mean(predicted == y_test)))
            print(f"  round {round_ + 1}, {name}: {seconds[name][-1]:.0f} s, robust "
                  f"{100 * robust[name]:.1f}%", flush=True)
        record = summarise(norm, len(y_test), robust, seconds, device)
        if on_round is not None:
            on_round(record)
    return record


def summarise(norm, n_test, robust, seconds, device):
    """The record of the rounds in ``seconds``: each way's median time, samples per second
    and its time over the first way's, paired round by round."""
    reference = seconds["members over survivors"]
    record = {"norm": norm, "epsilon": EPSILON[norm], "n_test": int(n_test), **BUDGET,
              "batch_size": BATCH, "repeats": len(reference), "ways": {}}
    for name, times in seconds.items():
        median = float(np.median(times))
        ratio = paired_ratios(times, reference)
        record["ways"][name] = dict(
            robust=robust[name], seconds=round(median, 1),
            seconds_runs=[round(t, 1) for t in times],
            samples_per_second=round(n_test / median, 2), ratio=ratio["median"],
            ratio_range=ratio["range"])
    record["machine"] = machine(device)
    return record


def render(record):
    ways = record["ways"]
    lines = ["| way | time (s), median | samples / s | robust (%) | time / ours, median of "
             "rounds (range) |", "|---|---|---|---|---|"]
    for name, way in ways.items():
        low, high = way["ratio_range"]
        lines.append(f"| {name} | {way['seconds']:.0f} | {way['samples_per_second']:.1f} | "
                     f"{100 * way['robust']:.1f} | {way['ratio']:.2f} ({low:.2f} - "
                     f"{high:.2f}) |")
    norm = NORM_NAMES[record["norm"]]
    where = record["machine"].get("gpu") or describe_cpu(record["machine"])
    rounds = ("1 round" if record["repeats"] == 1 else
              f"{record['repeats']} rounds with the order of the ways rotated")
    return (f"Standard AutoAttack, {norm} epsilon {record['epsilon']:g}, {record['n_test']} "
            f"test images, SmallCNN, {where}, {rounds}, srat-sklearn "
            f"{record['machine']['srat_sklearn']}:\n\n"
            + "\n".join(lines))


def render_summary(record, l2_record=None, gpu_record=None):
    ways = record["ways"]
    seconds = {name: f"{way['seconds']:.0f} s" for name, way in ways.items()}
    norm = NORM_NAMES[record["norm"]]
    line = (f"Standard AutoAttack ({norm} epsilon {record['epsilon']:g}) on the "
            f"{record['n_test']} test images took "
            f"{seconds['members over survivors']} on this 2-core machine "
            f"({seconds['contiguous']} with `channels_last=False`; "
            f"{seconds['batch by batch']} when the whole ensemble ran batch by batch")
    if "torchattacks" in seconds:
        line += f"; torchattacks' AutoAttack at the same budgets {seconds['torchattacks']}"
    line += ")"
    if l2_record is not None and "torchattacks" in l2_record["ways"]:
        l2 = l2_record["ways"]
        line += (f"; at L2 epsilon {l2_record['epsilon']:g}, "
                 f"{l2['members over survivors']['seconds']:.0f} s against torchattacks' "
                 f"{l2['torchattacks']['seconds']:.0f} s")
    if gpu_record is not None and "torchattacks" in gpu_record["ways"]:
        gpu = gpu_record["ways"]
        line += (f"; on an {gpu_record['machine']['gpu']} at "
                 f"{NORM_NAMES[gpu_record['norm']]}, "
                 f"{gpu['members over survivors']['seconds']:.0f} s against torchattacks' "
                 f"{gpu['torchattacks']['seconds']:.0f} s")
    return line + ", from `benchmarks/bench_autoattack.py`; the times in the table above are " \
        "those of its own runs file."


def gpu_runs_file(path):
    """The GPU's runs file beside the CPU's ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_cuda{path.suffix}")


def norm_runs_file(path, norm):
    """The runs file of ``norm`` beside the L-inf one, ``path``."""
    path = Path(path)
    return path if norm == "linf" else path.with_name(f"{path.stem}_{norm}{path.suffix}")


def load_if_run(path):
    return json.loads(path.read_text()) if path.exists() else None


def generated_docs(path):
    record = json.loads(Path(path).read_text())
    gpu, l2 = load_if_run(gpu_runs_file(path)), load_if_run(norm_runs_file(path, "l2"))
    gpu_table = render(gpu) if gpu else (
        "Not run on a GPU yet: `python benchmarks/bench_autoattack.py --device cuda` writes "
        "this table's runs file.")
    l2_table = render(l2) if l2 else (
        "Not run at L2 yet: `python benchmarks/bench_autoattack.py --norm l2` writes this "
        "table's runs file.")
    doc = replace_block(DOC.read_text(), MARKER, render(record))
    return {DOC: replace_block(doc, L2_MARKER, l2_table),
            README: replace_block(README.read_text(), README_MARKER,
                                  render_summary(record, l2, gpu)),
            GPU_DOC: replace_block(GPU_DOC.read_text(), GPU_MARKER, gpu_table)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norm", default="linf", choices=list(EPSILON))
    parser.add_argument("--output", default=None,
                        help="default: benchmarks/bench_autoattack.json (_l2.json at L2), "
                             "_cuda.json on a GPU")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of all the ways, each in a rotated order")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda...)")
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the tables of docs/reliability.md and "
                             "docs/performance.md and the line of README.md")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budgets, 30 test images and 1 epoch: checks the script only")
    args = parser.parse_args()
    cpu_runs = HERE / "bench_autoattack.json"
    if args.write_docs:
        write_docs(generated_docs(args.output or cpu_runs), ROOT)
        return
    gpu = torch.device(args.device).type == "cuda"
    if gpu and not torch.cuda.is_available():
        parser.error("no CUDA device here")
    runs = norm_runs_file(cpu_runs, args.norm)
    output = args.output or (gpu_runs_file(runs) if gpu else runs)
    torch.set_num_threads(args.threads)
    if args.smoke:
        BUDGET.update(SMOKE)
    run(args.norm, device=args.device, repeats=1 if args.smoke else args.repeats,
        on_round=lambda record: Path(output).write_text(json.dumps(record, indent=1) + "\n"),
        **({"n_test": 30, "max_epochs": 1} if args.smoke else {}))


if __name__ == "__main__":
    sys.exit(main())
