"""What the non-finite-loss guard's snapshot before each step costs, against the deep copy it
replaced.

    python benchmarks/bench_snapshot.py [--repeats 5] [--device cpu] [--output ...]
    python benchmarks/bench_snapshot.py --write-docs

On an accelerator the guard copies the module's and the optimizer's state before every
training step (``srat_sklearn._loss_guard``). For ``resnet18_cifar`` and ``SmallCNN``, each
with SGD and momentum after one step, every round takes ``--snapshots`` snapshots each way,
in an order rotated from round to round:

- ``deep copy``: ``copy.deepcopy`` of the module's and the optimizer's ``state_dict()``, the
  guard's way before: a new tensor for each entry, through Python's copy protocol;
- ``buffers refilled``: ``TrainingSnapshot.take()``, the guard's way now: buffers allocated
  once, refilled with one fused copy per device and dtype.

It records the milliseconds per snapshot (median over rounds) and the median and range over
rounds of the deep copy's time over the refill's. On the CPU both include the copies
themselves, which memory bandwidth bounds; on a GPU those run on the device, and the host's
time per snapshot is what the training waits on. The first form writes ``--output``
(default ``benchmarks/bench_snapshot.json``, ``_cuda.json`` on a GPU); the second
regenerates from it the table between the ``snapshot-speed`` markers of
``docs/performance.md``, and from ``bench_snapshot_cuda.json`` the one between the
``snapshot-speed-cuda`` markers.
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from srat_sklearn._loss_guard import TrainingSnapshot
from srat_sklearn.models import SmallCNN, resnet18_cifar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, write_docs  # noqa: E402
from _provenance import describe_cpu, machine  # noqa: E402
from _rounds import paired_ratios, rotated  # noqa: E402

DOC, MARKER, RUNS = HERE.parent / "docs" / "performance.md", "snapshot-speed", \
    HERE / "bench_snapshot.json"
CUDA_MARKER, CUDA_RUNS = "snapshot-speed-cuda", HERE / "bench_snapshot_cuda.json"
NETWORKS = {"resnet18_cifar": (resnet18_cifar, (3, 32, 32)),
            "SmallCNN": (lambda: SmallCNN(in_channels=1, n_classes=10, image_size=(8, 8)),
                         (1, 8, 8))}


def deep_copy(module, optimizer, _):
    return copy.deepcopy(module.state_dict()), copy.deepcopy(optimizer.state_dict())


def refill(module, optimizer, snapshot):
    snapshot.take()


WAYS = {"deep copy": deep_copy, "buffers refilled": refill}


def trained(network, device):
    """The network and SGD with momentum after one step, so that the optimizer has state."""
    make, sample_shape = NETWORKS[network]
    torch.manual_seed(0)
    module = make().to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    module(torch.rand(4, *sample_shape, device=device)).sum().backward()
    optimizer.step()
    return module, optimizer


def run(device="cpu", repeats=5, snapshots=50, networks=tuple(NETWORKS)):
    device = torch.device(device)
    record = {"snapshots": snapshots, "repeats": repeats, "networks": {}}
    for network in networks:
        module, optimizer = trained(network, device)
        snapshot = TrainingSnapshot(module, optimizer)
        seconds = {name: [] for name in WAYS}
        for round_ in range(repeats):
            for name in rotated(list(WAYS), round_):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                for _ in range(snapshots):
                    WAYS[name](module, optimizer, snapshot)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[name].append((time.perf_counter() - started) / snapshots)
        ratio = paired_ratios(seconds["deep copy"], seconds["buffers refilled"])
        record["networks"][network] = {
            "tensors": len(snapshot._saved),
            "parameters": sum(p.numel() for p in module.parameters()),
            "ms": {name: round(1000 * statistics.median(times), 3)
                   for name, times in seconds.items()},
            "ratio": ratio["median"], "ratio_range": ratio["range"]}
    record["machine"] = machine(str(device))
    return record


def render(record):
    lines = ["| network | parameters | tensors copied | deep copy (ms) | buffers refilled (ms) "
             "| deep copy / refill, median (range) |", "|---|---|---|---|---|---|"]
    for network, row in record["networks"].items():
        low, high = row["ratio_range"]
        lines.append(f"| {network} | {row['parameters']:,} | {row['tensors']} | "
                     f"{row['ms']['deep copy']:.2f} | {row['ms']['buffers refilled']:.2f} | "
                     f"{row['ratio']:.2f}x ({low:.2f} - {high:.2f}) |")
    where = record["machine"].get("gpu") or describe_cpu(record["machine"])
    return (f"The guard's snapshot before a step, {record['snapshots']} snapshots per way and "
            f"round, {record['repeats']} rounds, {where}:\n\n" + "\n".join(lines))


def generated_docs(path=RUNS, cuda_path=CUDA_RUNS):
    """``docs/performance.md`` with the CPU table from ``path`` and the GPU table from
    ``cuda_path``, where a GPU has run."""
    text = replace_block(DOC.read_text(), MARKER, render(json.loads(Path(path).read_text())))
    cuda_path = Path(cuda_path)
    gpu_table = render(json.loads(cuda_path.read_text())) if cuda_path.exists() else (
        "Not run on a GPU yet: `python benchmarks/bench_snapshot.py --device cuda` writes "
        f"this table's runs file, `{cuda_path.name}`.")
    return {DOC: replace_block(text, CUDA_MARKER, gpu_table)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=50, help="snapshots per way and round")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--output", default=None)
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the table of docs/performance.md from --output")
    args = parser.parse_args(argv)
    for name in ("repeats", "snapshots"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.write_docs:
        write_docs(generated_docs(args.output or RUNS), HERE.parent)
        return
    torch.set_num_threads(args.threads)
    gpu = torch.device(args.device).type == "cuda"
    output = args.output or (CUDA_RUNS if gpu else RUNS)
    record = run(args.device, args.repeats, args.snapshots)
    Path(output).write_text(json.dumps(record, indent=1) + "\n")
    print(render(record))


if __name__ == "__main__":
    main()
