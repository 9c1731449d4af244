"""What SmallCNN gains by its ReLU after the max-pool: the same network, a quarter of the ReLU.

    python benchmarks/bench_small_cnn.py [--repeats 5] [--output benchmarks/bench_small_cnn.json]
    python benchmarks/bench_small_cnn.py --write-docs

``SmallCNN`` applies its second ReLU after the 2x2 max-pool. ReLU is monotone, so the network
is the same function as the textbook order (ReLU, then max-pool), with the same input
gradients, while the ReLU and its backward pass run on a quarter of the values. This script
times both orders with the same weights, in channels-last memory order (what the estimator
uses on a CPU), side by side in one process, every pair once per round in a rotated order:

1. the passes that training and the attacks repeat, on 1x8x8 digits and on 1x28x28
   MNIST-sized images, at the training batch (64) and the evaluation batch (250): a forward
   pass without gradients (Square's queries, predictions), an input gradient (PGD, APGD,
   FAB) and a training step's forward and backward pass; and checks that the two orders
   give equal logits and input gradients;
2. end to end on the digits: the suite's SRAT fit (SmallCNN, PGD-10, 15 epochs) and standard
   AutoAttack on the 540 test images of ``bench_autoattack.py``, with the weights of the fit
   in both orders; and whether the two fits end with equal weights and the two
   evaluations with equal predictions.

The first form writes its measurements to ``--output``; the second regenerates from that file
the table between the ``small-cnn-order`` markers of ``docs/performance.md``.
"""

import argparse
import json
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.metrics import robust_predict
from srat_sklearn.models import SmallCNN

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _docs import replace_block, write_docs  # noqa: E402
from _provenance import machine  # noqa: E402
from _rounds import paired_ratios, rotated  # noqa: E402
from autoattack_eval import EPSILON, suite_model  # noqa: E402

DOC, MARKER = ROOT / "docs" / "performance.md", "small-cnn-order"
ORDERS = ("pool, then ReLU", "ReLU, then pool")
SHAPES = {"digits 1x8x8": (8, 8), "MNIST-sized 1x28x28": (28, 28)}
BATCHES = (64, 250)
PASSES = ("forward, no gradient", "input gradient", "training forward and backward")


class ReluThenPool(SmallCNN):
    """SmallCNN in the textbook order: the second convolution's ReLU before the max-pool."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        layers = list(self.features)
        assert isinstance(layers[3], nn.MaxPool2d) and isinstance(layers[4], nn.ReLU)
        layers[3], layers[4] = layers[4], layers[3]
        self.features = nn.Sequential(*layers)


def both_orders(image_size):
    """The two orders with the same weights, in channels-last order."""
    torch.manual_seed(0)
    ours = SmallCNN(1, 10, image_size)
    textbook = ReluThenPool(1, 10, image_size)
    textbook.load_state_dict(ours.state_dict())
    return {name: model.to(memory_format=torch.channels_last)
            for name, model in zip(ORDERS, (ours, textbook))}


def passes(model, X, y):
    """The three passes of ``PASSES`` as functions of no argument."""
    def forward():
        with torch.no_grad():
            return model.eval()(X)

    def input_gradient():
        x = X.clone().requires_grad_(True)
        loss = F.cross_entropy(model.eval()(x), y, reduction="sum")
        return torch.autograd.grad(loss, x)[0]

    def training():
        model.train().zero_grad()
        F.cross_entropy(model(X), y).backward()

    return dict(zip(PASSES, (forward, input_gradient, training)))


def time_calls(function):
    """Milliseconds per call, over as many calls as take at least 0.2 s (``timeit``'s
    ``autorange``), after one call to warm up."""
    function()
    calls, seconds = timeit.Timer(function).autorange()
    return 1000 * seconds / calls


def pass_times(repeats):
    rows = []
    for shape_name, image_size in SHAPES.items():
        models = both_orders(image_size)
        for batch in BATCHES:
            generator = torch.Generator().manual_seed(0)
            X = torch.rand(batch, 1, *image_size, generator=generator).contiguous(
                memory_format=torch.channels_last)
            y = torch.randint(0, 10, (batch,), generator=generator)
            runs = {name: passes(model, X, y) for name, model in models.items()}
            equal = all(torch.equal(runs[ORDERS[0]][p](), runs[ORDERS[1]][p]())
                        for p in PASSES[:2])
            for pass_name in PASSES:
                ms = {name: [] for name in ORDERS}
                for round_ in range(repeats):
                    for name in rotated(list(ORDERS), round_):
                        ms[name].append(time_calls(runs[name][pass_name]))
                ratio = paired_ratios(ms[ORDERS[1]], ms[ORDERS[0]])
                rows.append({"images": shape_name, "batch": batch, "pass": pass_name,
                             "ms": {n: round(statistics.median(t), 3) for n, t in ms.items()},
                             "speedup": ratio["median"], "speedup_range": ratio["range"],
                             "equal": bool(equal)})
                print(f"  {shape_name}, batch {batch}, {pass_name}: " + ", ".join(
                    f"{n} {statistics.median(t):.2f} ms" for n, t in ms.items())
                    + f"; {ratio['median']:.2f}x", flush=True)
    return rows


def end_to_end_times(repeats, n_test=None, max_epochs=None, budget=None):
    """Seconds of the suite's fit and of standard AutoAttack in each order, per round; and
    whether the fits end with equal weights and the evaluations with equal predictions."""
    X_train, X_test, y_train, y_test = load_imbalanced_digits()
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    textbook = dict(module=ReluThenPool, module__in_channels=1, module__n_classes=10,
                    module__image_size=X_train.shape[2:])
    fit_s, attack_s = {n: [] for n in ORDERS}, {n: [] for n in ORDERS}
    models, predictions = {}, {}
    budget = budget or {}
    for round_ in range(repeats):
        for name in rotated(list(ORDERS), round_):
            model = suite_model().set_params(**(textbook if name == ORDERS[1] else {}))
            if max_epochs:
                model.set_params(max_epochs=max_epochs, reweight_epoch=max_epochs - 1)
            started = time.perf_counter()
            models[name] = model.fit(X_train, y_train)
            fit_s[name].append(time.perf_counter() - started)
            torch.manual_seed(0)
            started = time.perf_counter()
            predictions[name] = robust_predict(model, X_test, y_test, attack="autoattack",
                                               epsilon=EPSILON["linf"], batch_size=250,
                                               verbose=0, **budget)
            attack_s[name].append(time.perf_counter() - started)
            print(f"  round {round_ + 1}, {name}: fit {fit_s[name][-1]:.1f} s, AutoAttack "
                  f"{attack_s[name][-1]:.1f} s", flush=True)
    weights = [m.module_.state_dict() for m in models.values()]
    same_weights = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    rows = []
    for what, seconds in (("fit, SRAT with PGD-10", fit_s),
                          ("standard AutoAttack", attack_s)):
        ratio = paired_ratios(seconds[ORDERS[1]], seconds[ORDERS[0]])
        rows.append({"what": what, "seconds": {n: round(statistics.median(t), 2)
                                               for n, t in seconds.items()},
                     "speedup": ratio["median"], "speedup_range": ratio["range"]})
    return rows, {"weights": bool(same_weights), "robust_predictions": bool(
        np.array_equal(*predictions.values())), "n_test": int(len(y_test)),
        "max_epochs": models[ORDERS[0]].max_epochs}


def render(record):
    passes_table = ["| images | batch | pass | pool, then ReLU (ms) | ReLU, then pool (ms) | "
                    "speed-up, median (range) | equal |", "|---|---|---|---|---|---|---|"]
    for row in record["passes"]:
        low, high = row["speedup_range"]
        equal = "yes" if row["equal"] else "NO"
        passes_table.append(
            f"| {row['images']} | {row['batch']} | {row['pass']} | {row['ms'][ORDERS[0]]:.2f} "
            f"| {row['ms'][ORDERS[1]]:.2f} | {row['speedup']:.2f}x ({low:.2f} - {high:.2f}) "
            f"| {equal if row['pass'] != PASSES[2] else ''} |")
    end = record["end_to_end"]
    end_table = ["| run | pool, then ReLU (s) | ReLU, then pool (s) | speed-up, median (range) |",
                 "|---|---|---|---|"]
    for row in end["rows"]:
        low, high = row["speedup_range"]
        end_table.append(f"| {row['what']} | {row['seconds'][ORDERS[0]]:.1f} | "
                         f"{row['seconds'][ORDERS[1]]:.1f} | {row['speedup']:.2f}x ({low:.2f} "
                         f"- {high:.2f}) |")
    same = end["same"]
    m = record["machine"]
    return (f"{record['repeats']} rounds, the order rotated from round to round, "
            f"{m['torch_threads']} torch threads, channels-last, torch {m['torch']}, "
            f"srat-sklearn {m['srat_sklearn']}. Speed-up: the textbook order's time over "
            "SmallCNN's, per round; \"equal\": equal logits and input gradients.\n\n"
            + "\n".join(passes_table)
            + f"\n\nEnd to end on the digits ({same['max_epochs']} epochs; AutoAttack on "
            f"{same['n_test']} test images): the two fits end with "
            + ("equal" if same["weights"] else "DIFFERENT")
            + " weights, and AutoAttack's predictions are "
            + ("equal" if same["robust_predictions"] else "DIFFERENT") + ".\n\n"
            + "\n".join(end_table))


def generated_docs(path):
    record = json.loads(Path(path).read_text())
    return {DOC: replace_block(DOC.read_text(), MARKER, render(record))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "bench_small_cnn.json"))
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the table of docs/performance.md from --output")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds of the passes (the end-to-end runs: 3 at most)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: 2-epoch fits, AutoAttack on 20 images at a tiny budget")
    args = parser.parse_args(argv)
    if args.write_docs:
        write_docs(generated_docs(args.output), ROOT)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = pass_times(args.repeats)
    smoke = dict(n_test=20, max_epochs=2, budget={"n_steps": 2, "n_targets": 2,
                                                  "n_queries": 5}) if args.smoke else {}
    end_rows, same = end_to_end_times(min(args.repeats, 3), **smoke)
    record = {"repeats": args.repeats, "passes": rows,
              "end_to_end": {"rows": end_rows, "same": same}, "machine": machine()}
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    print(render(record))


if __name__ == "__main__":
    main()
