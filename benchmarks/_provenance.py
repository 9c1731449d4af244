"""What a benchmark record states about where it ran: the machine, the libraries and the code.

Every runs file of ``benchmarks/`` stores this under ``"machine"``, so that a number can be
traced back to the commit that produced it.
"""

import platform
import subprocess
from pathlib import Path

import torch

import srat_sklearn

ROOT = Path(__file__).resolve().parents[1]


def is_output(path):
    """Whether ``path`` (relative to the checkout) is something the benchmarks write, a runs
    file or a page of results, rather than code that decides what they measure."""
    return path == "README.md" or path.startswith("docs/") or (
        path.startswith("benchmarks/") and not path.endswith(".py"))


def code_version():
    """The checkout's commit, with ``+changes`` when tracked files other than outputs
    (:func:`is_output`) differ from it; None outside a git checkout.

    A study appends to its runs file as it goes: that alone does not make its later records
    claim code other than the commit's."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("diff", "--name-only", "HEAD").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if any(not is_output(path) for path in changed) else "")


def machine(device=None):
    """``{"cpu", "cpu_capability", "torch_threads", "torch", "srat_sklearn", "commit"}`` of
    this run, and ``"gpu"``, its name, when ``device`` is a CUDA device.

    ``cpu_capability`` is the instruction set of torch's CPU kernels ("AVX2", "AVX512", ...):
    CPUs that differ in it round differently, so the same seed trains a different model.
    """
    record = {"cpu": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "srat_sklearn": srat_sklearn.__version__, "commit": code_version()}
    if device is not None and torch.device(device).type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def describe_cpu(record):
    """``"2 torch threads"`` of a record's ``machine``, with the instruction set of torch's
    kernels where the record states it (``"2 torch threads, AVX512 kernels"``)."""
    text = f"{record['torch_threads']} torch threads"
    capability = record.get("cpu_capability")
    return f"{text}, {capability} kernels" if capability else text
