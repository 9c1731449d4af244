"""The GPU path in one run: the suite's CUDA tests, then the estimator against a plain PyTorch
loop on CIFAR-sized data, written as a Markdown table.

    python benchmarks/gpu_check.py --output gpu-check.md          # a CUDA GPU (not yet timed whole)
    python benchmarks/gpu_check.py --tiny --skip-tests             # the same code, CPU, seconds

1. ``pytest -m cuda tests``: the tests marked ``cuda`` (skipped without a GPU) fit, attack,
   evaluate and pickle with ``device="cuda"``, and count the host reads of a training batch.
2. Synthetic data of CIFAR-10's size: 3x32x32 images in [0, 1], 10 classes, 10,000 training
   images (``--n-train``); ``resnet18_cifar``; L-inf PGD-10 (eps 8/255, step 2/255, random
   start), SGD lr 0.1, momentum 0.9, batch 128. For each precision (float32, bfloat16 autocast)
   and memory format (contiguous, channels-last), and eagerly or under ``torch.compile``
   (``--modes``; the plain loop compiles its module, the estimator is given skorch's
   ``compile=True``; ``--compile-mode`` sets torch.compile's mode of both, ``reduce-overhead``
   for CUDA graphs): a warm-up epoch on the first 10 batches (and a last one the size of an
   epoch's last batch, which a compiled runner compiles for), then timed epochs of the plain
   loop (PGD-10 adversarial training written out, its data on the device), the estimator doing
   the same work (AT: ``lambda_sep=0``, no class weights) and the estimator's SRAT (separation
   loss, class weights from the start), both given NumPy arrays in host memory, interleaved:
   the order alternates over ``--repeats``. Per row: samples per second (median), its ratio to
   the plain loop of the same row, peak GPU memory of the timed epochs, and the host reads per
   training batch (``.item()`` and the like, counted at the dispatcher; on a GPU also the
   synchronisations that CUDA's sync debug mode reports), in the first batches of the untimed
   warm-up epoch only.
3. AutoAttack (standard: 100 iterations, 9 targets, 5000 queries) on ``--n-eval`` images of
   the float32 estimator, in batches of 250 samples: samples per second with APGD-T's and
   FAB-T's targets one at a time, and with all 9 of them in one pass.

``--tiny`` shrinks every size (10 images of 3x8x8, PGD-1, AutoAttack on 4 images with 2
iterations and 10 queries) so that the whole code path runs on a CPU in seconds; its numbers
mean nothing.
Failures of a configuration (a compiler error, say) are written into its row, not raised.
``python benchmarks/gpu_check.py --write-docs`` puts the table of a GPU's run, kept as
``benchmarks/gpu_check_cuda.md``, between the ``gpu-check`` markers of ``docs/performance.md``,
and that of a run of the compiled rows alone (``--modes compiled``), kept as
``benchmarks/gpu_check_cuda_compiled.md``, between the ``gpu-check-compiled`` markers.
``--output`` is rewritten after each configuration, so a run stopped part-way keeps the rows it
finished; the AutoAttack timing follows the eager float32 contiguous configuration, before the
compiled ones; ``--time-limit SECONDS`` starts no configuration after that many seconds (their
rows say so), for a machine held for a fixed time. ``--profile FILE`` profiles one more epoch
of each implementation of the first configuration, of its first ``--profile-batches`` batches
(:mod:`torch.profiler`, operators by their own host and device time). The log shows each
implementation's warm-up (compiling included) as it ends.
"""

import argparse
import platform
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from skorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

import srat_sklearn
from srat_sklearn import SRATClassifier
from srat_sklearn._compiled import describe_failure
from srat_sklearn.attacks import autoattack
from srat_sklearn.models import resnet18_cifar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, write_docs  # noqa: E402

DOC, MARKER, RUNS = HERE.parent / "docs" / "performance.md", "gpu-check", HERE / "gpu_check_cuda.md"
COMPILED_MARKER, COMPILED_RUNS = "gpu-check-compiled", HERE / "gpu_check_cuda_compiled.md"
EPSILON, STEP, LR, MOMENTUM = 8 / 255, 2 / 255, 0.1, 0.9
#: Training batches of the warm-up epoch in which the estimator's host reads and CUDA
#: synchronisations are counted; the timed epochs run without the counter.
COUNTED_BATCHES = 5
#: Full batches of the warm-up epoch: enough to compile, count and fill the optimizer's
#: state, without an untimed pass over all the data.
WARM_UP_BATCHES = 10
#: SRAT's class weights: the synthetic classes are balanced, so "balanced" would weigh each
#: class 1 (and warn at every fit); these cost the same and change the loss.
SRAT_WEIGHTS = {c: 1.0 + c % 2 for c in range(10)}
SIZES = {"full": dict(n_train=10_000, n_eval=500, image_size=32, batch_size=128, n_steps=10,
                      aa_steps=100, aa_queries=5000),
         "tiny": dict(n_train=10, n_eval=4, image_size=8, batch_size=10, n_steps=1, aa_steps=2,
                      aa_queries=10)}


class OperatorCounts(TorchDispatchMode):
    """Counts the operators dispatched while it is on (``operators``), and among them the
    reads of a tensor's value by the host (``reads``: ``.item()``, ``bool(tensor)``, ...)."""

    def __init__(self):
        super().__init__()
        self.operators = self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.operators += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def call_site(stack):
    """Where a synchronisation came from: the innermost frame of ``stack`` (a list of
    :class:`traceback.FrameSummary`, outermost first) outside torch and the warnings
    machinery, as ``package/module.py:line (function)`` from the package's folder on."""
    for frame in reversed(stack):
        parts = Path(frame.filename).parts
        if "torch" in parts or frame.filename == warnings.__file__ or \
                Path(frame.filename).resolve() == Path(__file__).resolve():
            continue
        for package in ("srat_sklearn", "skorch"):
            if package in parts:
                parts = parts[len(parts) - 1 - parts[::-1].index(package):]
                break
        else:
            parts = parts[-1:]
        return f"{'/'.join(parts)}:{frame.lineno} ({frame.name})"
    return "torch"


class SyncsPerBatch(Callback):
    """Host reads, operators and (on a GPU) CUDA synchronisations inside each training batch,
    its optimizer step included, and the call sites of the synchronisations (``sources``:
    call site -> count, see :func:`call_site`).

    The counting routes every operation through Python: ``max_batches`` counts only the first
    training batches of the net's life (the untimed warm-up epoch), so that the timed epochs
    run uninstrumented; ``None`` counts them all."""

    def __init__(self, max_batches=None):
        self.max_batches = max_batches

    def initialize(self):
        self.reads, self.operators, self.syncs, self.sources = [], [], [], Counter()
        self._mode = None
        return self

    def note_warning(self, message, *args, **kwargs):
        """``warnings.showwarning`` while a batch is counted: CUDA's sync debug mode warns
        from inside the operation that synchronises, so the stack shows its caller."""
        if "synchroniz" in str(message):
            self._batch_syncs += 1
            self.sources[call_site(traceback.extract_stack()[:-1])] += 1

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if not training or (self.max_batches is not None
                            and len(self.reads) >= self.max_batches):
            return
        self._mode = OperatorCounts()
        self._mode.__enter__()
        self._caught = None
        if torch.device(net.device).type == "cuda":
            self._batch_syncs = 0
            self._caught = warnings.catch_warnings()
            self._caught.__enter__()
            warnings.simplefilter("always")
            warnings.showwarning = self.note_warning
            torch.cuda.set_sync_debug_mode("warn")

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if not training or self._mode is None:
            return
        mode, self._mode = self._mode, None
        mode.__exit__(None, None, None)
        self.reads.append(mode.reads)
        self.operators.append(mode.operators)
        if self._caught is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._caught.__exit__(None, None, None)
            self.syncs.append(self._batch_syncs)


def synthetic_data(n, image_size, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, image_size, image_size, generator=generator)
    y = (torch.arange(n) % 10)[torch.randperm(n, generator=generator)]  # every class, if n >= 10
    return X.to(device), y.to(device)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device, precision):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def pgd(model, X, y, n_steps, precision):
    """L-inf PGD with a random start, in eval mode, as the estimator attacks."""
    model.eval()
    X_adv = (X + torch.empty_like(X).uniform_(-EPSILON, EPSILON)).clamp(0, 1)
    for _ in range(n_steps):
        X_adv.requires_grad_(True)
        with autocast(X.device, precision):
            logits = model(X_adv)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, X_adv)
        X_adv = X_adv.detach() + STEP * grad.sign()
        X_adv = (X + (X_adv - X).clamp(-EPSILON, EPSILON)).clamp(0, 1)
    return X_adv


def compile_options(compiled):
    """torch.compile's keyword arguments for a row's ``compiled``: True or "default" (the
    default mode), or the name of another mode."""
    return {} if compiled in (True, "default") else {"mode": compiled}


class PlainLoop:
    """PGD adversarial training written out in PyTorch: the reference of each row. ``data``:
    ``(X, y)`` as tensors on the device, one epoch per call of :meth:`epoch`."""

    def __init__(self, device, precision, channels_last, compiled, sizes, data):
        self.device, self.precision, self.sizes, self.data = device, precision, sizes, data
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        torch.manual_seed(0)
        model = resnet18_cifar().to(device, memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        self.model = torch.compile(model, **compile_options(compiled)) if compiled else model

    def epoch(self):
        X, y = self.data
        order = torch.randperm(len(X), device=X.device)
        for rows in order.split(self.sizes["batch_size"]):
            X_b = X[rows].contiguous(memory_format=self.memory_format)
            X_adv = pgd(self.model, X_b, y[rows], self.sizes["n_steps"], self.precision)
            self.model.train()
            self.optimizer.zero_grad()
            with autocast(self.device, self.precision):
                logits = self.model(X_adv)
            F.cross_entropy(logits.float(), y[rows]).backward()
            self.optimizer.step()


class EstimatorEpochs:
    """SRATClassifier doing the plain loop's work (AT) or SRAT's, one epoch per call.

    ``data``: ``(X, y)`` as a scikit-learn user passes them, NumPy arrays in host memory, of
    which skorch moves each batch to the device."""

    def __init__(self, device, precision, channels_last, compiled, sizes, data, method):
        srat = method == "SRAT"
        self.data = data
        self.syncs = SyncsPerBatch(max_batches=COUNTED_BATCHES)
        self.clf = SRATClassifier(
            module=resnet18_cifar, epsilon=EPSILON, step_size=STEP, n_steps=sizes["n_steps"],
            batch_size=sizes["batch_size"], optimizer=torch.optim.SGD, lr=LR,
            optimizer__momentum=MOMENTUM, max_epochs=1, lambda_sep=1.0 if srat else 0.0,
            class_weight=SRAT_WEIGHTS if srat else None, reweight_epoch=0, reweight_lr_factor=1.0,
            bounds=(0.0, 1.0), mixed_precision=precision if precision == "bf16" else None,
            channels_last=channels_last, device=str(device), random_state=0, verbose=0,
            callbacks=[("syncs", self.syncs)], **({"compile": True, **{
                f"compile__{k}": v for k, v in compile_options(compiled).items()}}
                if compiled else {}))
        self.fitted = False

    def epoch(self):
        if self.fitted:
            self.clf.partial_fit(*self.data)
        else:
            self.clf.fit(*self.data)
            self.fitted = True


@contextmanager
def on_first_samples(runner, n_samples):
    """``runner`` working on the first ``n_samples`` samples of its data (all if None)."""
    data = runner.data
    runner.data = tuple(a[:n_samples] for a in data)
    try:
        yield runner
    finally:
        runner.data = data


def warm_up_size(n_samples, batch_size, batches=WARM_UP_BATCHES):
    """The warm-up's samples: ``batches`` full batches and then the smaller last batch of an
    epoch of ``n_samples``, for which a compiled runner compiles once more."""
    return min(n_samples, batches * batch_size + n_samples % batch_size)


def measure(runners, n_samples, device, repeats, warm_up_samples=None):
    """Samples per second, peak memory and the warm-up's seconds (compiling included) of each
    runner: a warm-up epoch on the first ``warm_up_samples`` samples (all if None), then
    ``repeats`` timed epochs each, the order alternating so that no side always goes first."""
    times = {name: [] for name in runners}
    peaks = dict.fromkeys(runners, None)
    errors, first = {}, {}
    for name, runner in runners.items():
        try:
            started = time.perf_counter()
            with on_first_samples(runner, warm_up_samples):
                runner.epoch()
            synchronize(device)
            first[name] = time.perf_counter() - started
            print(f"{name}: warm-up {first[name]:.1f} s", file=sys.stderr, flush=True)
        except Exception as error:  # a configuration that fails is reported in its row
            errors[name] = describe_failure(error)[:200]
            traceback.print_exc()
    live = [name for name in runners if name not in errors]
    for repeat in range(repeats):
        for name in (live if repeat % 2 == 0 else live[::-1]):
            if name in errors:
                continue
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            started = time.perf_counter()
            try:
                runners[name].epoch()
            except Exception as error:  # as in the warm-up: the row says so, the rest runs
                errors[name] = describe_failure(error)[:200]
                traceback.print_exc()
                continue
            synchronize(device)
            times[name].append(time.perf_counter() - started)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
                peaks[name] = max(peaks[name] or 0.0, peak)
    speed = {name: n_samples / statistics.median(times[name]) for name in live
             if name not in errors}
    return speed, peaks, errors, first


IMPLEMENTATIONS = ("plain loop, AT", "estimator, AT", "estimator, SRAT")


def training_rows(X, y, device, sizes, repeats, compile_modes, precisions, memory_formats,
                  deadline=float("inf"), on_rows=None, on_model=None, profile=None):
    """The table's rows.

    No configuration starts after ``deadline`` (a ``time.monotonic()`` value): its rows say
    so. ``on_rows(rows)`` is called with the rows so far after each configuration;
    ``on_model(clf)`` with the eager float32 contiguous estimator (AT) right after its
    configuration, for the AutoAttack timing, before the compiled rows, which take longest;
    ``profile(runners)`` with the first configuration's runners after their rows are handed
    over (profiling a compiled epoch can outlast a lease)."""
    rows = []
    host = X.cpu().numpy(), y.cpu().numpy()
    for compiled in compile_modes:
        for precision in precisions:
            for channels_last in (f == "channels-last" for f in memory_formats):
                config = (device, precision, channels_last, compiled, sizes)
                if time.monotonic() >= deadline:
                    rows += [{"implementation": name, "compiled": compiled,
                              "precision": precision, "channels_last": channels_last,
                              "error": "not run (--time-limit)"} for name in IMPLEMENTATIONS]
                    continue
                runners = dict(zip(IMPLEMENTATIONS, (
                    PlainLoop(*config, data=(X, y)),
                    EstimatorEpochs(*config, data=host, method="AT"),
                    EstimatorEpochs(*config, data=host, method="SRAT"))))
                began = time.monotonic()
                speed, peaks, errors, first = measure(
                    runners, len(X), device, repeats, warm_up_size(len(X), sizes["batch_size"]))
                print(f"{'compiled' if compiled else 'eager'} {precision} "
                      f"{'channels-last' if channels_last else 'contiguous'}: "
                      f"{time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
                reference = speed.get("plain loop, AT")
                for name, runner in runners.items():
                    # A runner whose fit failed before skorch initialised it counted nothing.
                    syncs = getattr(runner, "syncs", None)
                    error = errors.get(name) or compile_fallback(runner)
                    rows.append({
                        "implementation": name, "compiled": compiled, "precision": precision,
                        "channels_last": channels_last, "samples_per_second": speed.get(name),
                        "ratio": speed[name] / reference if name in speed and reference
                        else None,
                        "peak_mib": peaks.get(name), "error": error,
                        "warm_up_s": first.get(name),
                        "host_reads": getattr(syncs, "reads", None) or None,
                        "cuda_syncs": getattr(syncs, "syncs", None) or None,
                        "sync_sources": getattr(syncs, "sources", None) or None})
                if on_rows is not None:
                    on_rows(rows)
                if profile is not None and len(rows) == len(IMPLEMENTATIONS):
                    profile({name: runners[name] for name in runners if name not in errors})
                if on_model is not None and not compiled and precision == "fp32" \
                        and not channels_last and "estimator, AT" not in errors:
                    on_model(runners["estimator, AT"].clf)
    return rows


def compile_fallback(runner):
    """What the row says of an estimator whose ``compile=True`` fell back to eager (it warns
    and trains on), so that no eager speed passes for a compiled one; else None."""
    steps = getattr(runner, "clf", None) and runner.clf.__dict__.get("_compiled")
    failure = getattr(steps, "failure", None)
    if failure is None:
        return None
    return f"ran eagerly, compile failed: {describe_failure(failure)[:200]}"


def profile_epochs(runners, device, path, n_samples=None):
    """One more epoch of each runner under :mod:`torch.profiler`, on its first ``n_samples``
    samples (all if None), its operators by their own time on the host and on the device:
    where the time goes. ``path`` is rewritten after each runner, so that a run stopped
    part-way keeps the runners it profiled."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    sections = []
    for name, runner in runners.items():
        synchronize(device)
        started = time.perf_counter()
        with on_first_samples(runner, n_samples), \
                torch.profiler.profile(activities=activities) as prof:
            runner.epoch()
            synchronize(device)
        wall = time.perf_counter() - started
        averages = prof.key_averages()
        sections += [f"## {name}: one epoch of {len(runner.data[0][:n_samples])} samples, "
                     f"{wall:.2f} s under the profiler", "",
                     averages.table(sort_by="self_cpu_time_total", row_limit=25), ""]
        if sort != "self_cpu_time_total":
            sections += [averages.table(sort_by=sort, row_limit=25), ""]
        Path(path).write_text("\n".join(sections))


#: AutoAttack's batches of 250 samples: APGD-T's and FAB-T's 9 targets one after the other,
#: or all together in one pass (9 x 250 rows).
AA_BATCHES = {"one target at a time": 250, "all targets together": 9 * 250}


def autoattack_speed(clf, X, y, sizes, device):
    """Samples per second of standard AutoAttack, for each of :data:`AA_BATCHES`."""
    model = clf.module_.eval()
    speeds = {}
    for name, batch_size in AA_BATCHES.items():
        synchronize(device)
        started = time.perf_counter()
        autoattack(model, X, y, epsilon=EPSILON, n_steps=sizes["aa_steps"],
                   n_queries=sizes["aa_queries"], bounds=(0.0, 1.0), batch_size=batch_size)
        synchronize(device)
        speeds[name] = len(X) / (time.perf_counter() - started)
    return speeds


def per_batch(counts):
    """The median count per batch, and the most in one batch where that differs
    (the first batches initialise libraries and the optimizer's state)."""
    if not counts:
        return "-"
    median, most = statistics.median(counts), max(counts)
    return f"{median:g}" + ("" if most == median else f" (at most {most})")


def compiled_cell(compiled):
    """A row's ``compiled``, torch.compile's mode named unless it is the default."""
    return "no" if not compiled else f"yes, {compiled}" if compile_options(compiled) else "yes"


def cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def markdown(rows, aa, device, sizes, test_result):
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        (platform.processor() or platform.machine())
    lines = [f"Device: {name} ({device.type}); torch {torch.__version__}, srat-sklearn "
             f"{srat_sklearn.__version__}. {sizes['n_train']} training images "
             f"3x{sizes['image_size']}x{sizes['image_size']}, "
             f"resnet18_cifar, PGD-{sizes['n_steps']}, batch {sizes['batch_size']}.", "",
             f"CUDA tests (`pytest -m cuda tests`): {test_result}.", "",
             "| implementation | compiled | precision | channels-last | samples/s | "
             "vs plain loop | peak MiB | host reads / batch | CUDA syncs / batch | "
             "warm-up (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speed = row["error"] or cell(row["samples_per_second"], ".1f")
        lines.append(
            f"| {row['implementation']} | {compiled_cell(row['compiled'])} | "
            f"{row['precision']} | {'yes' if row['channels_last'] else 'no'} | {speed} | "
            f"{cell(row.get('ratio'), '.2f')} | {cell(row.get('peak_mib'), '.0f')} | "
            f"{per_batch(row.get('host_reads'))} | {per_batch(row.get('cuda_syncs'))} | "
            f"{cell(row.get('warm_up_s'), '.1f')} |")
    sources, batches = Counter(), 0
    for row in rows:
        sources.update(row.get("sync_sources") or {})
        batches += len(row.get("cuda_syncs") or ())
    if sources:
        lines += ["", f"CUDA synchronisations in the {batches} counted batches of the estimator "
                      "rows, by call site (the innermost frame outside torch): "
                      + "; ".join(f"`{site}` {count}" for site, count in sources.most_common())
                      + "."]
    if aa is not None:
        lines += ["", f"AutoAttack (standard, {sizes['aa_steps']} iterations, "
                      f"{sizes['aa_queries']} queries) on {sizes['n_eval']} images of the "
                      f"float32 estimator, batches of 250 samples: "
                      + "; ".join(f"{name} {speed:.1f} samples/s" for name, speed in aa.items())
                      + "."]
    return "\n".join(lines) + "\n"


def generated_docs(path=RUNS, compiled_path=COMPILED_RUNS):
    """``docs/performance.md`` with the tables of the GPU runs kept at ``path`` (the whole
    check) and ``compiled_path`` (the compiled rows, from a run of ``--modes compiled``)."""
    text = DOC.read_text()
    for marker, runs in ((MARKER, Path(path)), (COMPILED_MARKER, Path(compiled_path))):
        table = runs.read_text() if runs.exists() else (
            f"Not run on a GPU yet: `python benchmarks/gpu_check.py --output "
            f"benchmarks/{runs.name}` writes this table's runs file.")
        text = replace_block(text, marker, table)
    return {DOC: text}


def run_cuda_tests():
    tests = Path(__file__).resolve().parents[1] / "tests"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", str(tests)],
                          capture_output=True, text=True)
    print(done.stdout[-4000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    lines = done.stdout.strip().splitlines()
    return lines[-1].strip("= ") if lines else f"pytest exited with {done.returncode}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--skip-tests", action="store_true", help="skip pytest -m cuda")
    parser.add_argument("--modes", nargs="+", choices=("eager", "compiled"), default=None,
                        help="eager and/or compiled rows (default: both, eager with --tiny)")
    parser.add_argument("--compile-mode", default="default",
                        choices=("default", "reduce-overhead", "max-autotune",
                                 "max-autotune-no-cudagraphs"),
                        help="torch.compile's mode of the compiled rows, the plain loop's and "
                             "the estimator's (compile__mode); reduce-overhead: CUDA graphs")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-eval", type=int, default=None)
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--memory-formats", nargs="+", choices=("contiguous", "channels-last"),
                        default=["contiguous", "channels-last"])
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per row")
    parser.add_argument("--output", default=None, help="Markdown file to write")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="start no configuration after this many seconds")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="profile one more epoch of each implementation of the first "
                             "configuration, written to FILE")
    parser.add_argument("--profile-batches", type=int, default=10, metavar="N",
                        help="batches of the profiled epoch (default 10; 0: all)")
    parser.add_argument("--write-docs", action="store_true",
                        help="put the tables of benchmarks/gpu_check_cuda.md (or --output) "
                             "and gpu_check_cuda_compiled.md into docs/performance.md")
    args = parser.parse_args(argv)
    if args.write_docs:
        write_docs(generated_docs(args.output or RUNS), HERE.parent)
        return
    if args.time_limit is not None and not args.time_limit >= 0:
        parser.error("--time-limit must be a number of seconds, at least 0")
    if args.profile_batches < 0:
        parser.error("--profile-batches must be at least 0 (0: the whole epoch)")
    started = time.monotonic()
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    sizes.update({k: v for k, v in (("n_train", args.n_train), ("n_eval", args.n_eval)) if v})
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: run with --tiny to try the code path on the CPU.")
    modes = args.modes or (["eager"] if args.tiny else ["eager", "compiled"])
    compile_modes = tuple(args.compile_mode if mode == "compiled" else False for mode in modes)

    def log(done):
        print(f"{done} at {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    test_result = "skipped (--skip-tests)" if args.skip_tests else run_cuda_tests()
    log("tests")
    X, y = synthetic_data(sizes["n_train"], sizes["image_size"], device)

    def write(rows, aa=None):
        text = markdown(rows, aa, device, sizes, test_result)
        if args.output:
            Path(args.output).write_text(text)
        return text

    deadline = started + (float("inf") if args.time_limit is None else args.time_limit)
    rows, aa = [], None

    def time_autoattack(clf):
        nonlocal aa
        X_eval, y_eval = synthetic_data(sizes["n_eval"], sizes["image_size"], device, seed=1)
        aa = autoattack_speed(clf, X_eval, y_eval, sizes, device)
        write(rows, aa)
        log("AutoAttack timing")

    def keep(rows_so_far):
        rows[:] = rows_so_far
        write(rows, aa)

    def profile(runners):
        profile_epochs(runners, device, args.profile,
                       args.profile_batches * sizes["batch_size"] or None)
        log("profile")

    rows[:] = training_rows(X, y, device, sizes, args.repeats, compile_modes, args.precisions,
                            args.memory_formats, deadline, keep, time_autoattack,
                            profile if args.profile else None)
    print(write(rows, aa))

if __name__ == "__main__":
    main()
