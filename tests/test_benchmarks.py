"""The benchmarks compare like with like, and the docs show what they measured."""

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CUDA, load_benchmark

from srat_sklearn import SRATClassifier, robust_accuracy_score

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"


load_script = load_benchmark


@pytest.fixture(scope="module")
def bench_fit():
    return load_script("bench_fit")


@pytest.mark.parametrize("model", ["new_model", "linear_model"])
def test_plain_loop_does_the_estimators_work(bench_fit, digits_split, model):
    # Same initial weights, batches, random starts and arithmetic: the same weights after
    # two epochs, so a timing difference is the estimator's own cost.
    X_train, _, y_train, _ = digits_split
    X, y = X_train[:200], y_train[:200]
    make_model = getattr(bench_fit, model)
    plain = bench_fit.plain_fit(X, y, 2, make_model=make_model)
    estimator = bench_fit.estimator_fit(X, y, 2, make_model=make_model).module_
    for p, q in zip(plain.parameters(), estimator.parameters()):
        assert torch.equal(p, q)


def test_plain_evaluation_attacks_what_the_estimator_attacks(bench_fit, digits_split):
    # The estimator attacks only the images it classifies correctly; a plain loop that
    # attacked all of them timed more work (a 6x "speed-up" of a barely trained model).
    X_train, X_test, y_train, y_test = digits_split
    model, clf = bench_fit.evaluation_pair(X_train[:300], y_train[:300], 2)
    attacked = {}
    for name, module in (("plain", model), ("estimator", clf.module_)):
        rows = attacked[name] = []
        module.register_forward_pre_hook(
            lambda m, inputs, rows=rows: rows.append(len(inputs[0]))
            if torch.is_grad_enabled() else None)
    bench_fit.plain_robust_accuracy(model, X_test, y_test)
    robust_accuracy_score(clf, X_test, y_test, step_size=bench_fit.STEP)
    correct = int((clf.predict(X_test) == y_test).sum())
    assert 0 < correct < len(y_test)
    assert sum(attacked["plain"]) == sum(attacked["estimator"]) == 20 * correct
    assert sorted(set(attacked["plain"])) == sorted(set(attacked["estimator"]))


AUTOATTACK = SCRIPT.with_name("autoattack_eval.py")


@pytest.fixture(scope="module")
def autoattack_eval():
    return load_script("autoattack_eval")


def test_autoattack_tables_in_the_docs_come_from_the_runs_file(autoattack_eval):
    runs = AUTOATTACK.with_name("autoattack.jsonl")
    for path, text in autoattack_eval.generated_docs(runs).items():
        assert path.read_text() == text, (
            f"{path.name} differs from its runs file: python benchmarks/autoattack_eval.py "
            "--write-docs")


def test_autoattack_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "runs.jsonl"
    subprocess.run([sys.executable, str(AUTOATTACK), "--smoke", "--models", "suite", "--norms",
                    "linf", "--output", str(output)], check=True, capture_output=True)
    (record,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert set(record["attacks"]) == {"pgd-20", "apgd-ce", "apgd-t", "fab-t", "square",
                                      "autoattack"}
    assert record["autoattack_settings"].startswith("AutoAttack, standard")


@pytest.mark.parametrize("script, runs", [("bench_autoattack", "bench_autoattack.json"),
                                          ("bench_compile", "bench_compile.json"),
                                          ("bench_fit", "bench_fit.json"),
                                          ("bench_scaling", "bench_scaling.json"),
                                          ("bench_small_cnn", "bench_small_cnn.json"),
                                          ("demo_table", "demo.json"),
                                          ("gpu_check", "gpu_check_cuda.md"),
                                          ("bench_snapshot", "bench_snapshot.json")])
def test_tables_in_the_docs_come_from_their_runs(script, runs):
    runs = SCRIPT.with_name(runs)
    for path, text in load_script(script).generated_docs(runs).items():
        assert path.read_text() == text, f"python benchmarks/{script}.py --write-docs"


@pytest.mark.parametrize("script, runs, marker", [
    ("gpu_check", "gpu_check_cuda.md", "gpu-check-compiled"),
    ("bench_snapshot", "bench_snapshot.json", "snapshot-speed-cuda"),
])
def test_a_gpu_table_without_its_runs_file_says_so(script, runs, marker, tmp_path):
    # A clone with no GPU run yet: the page names the command that writes the table.
    (text,) = load_script(script).generated_docs(SCRIPT.with_name(runs),
                                                 tmp_path / "missing.json").values()
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    assert block.strip().startswith("Not run on a GPU yet: `python benchmarks/")


def test_fit_benchmark_runs_end_to_end(tmp_path, bench_fit):
    output = tmp_path / "fit.json"
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--epochs", "1", "--repeats", "1",
                    "--output", str(output)], check=True, capture_output=True)
    record = json.loads(output.read_text())
    assert record["weight_difference"] == 0.0 and record["settings"]["training_images"] == 128
    names = [row["comparison"] for row in record["comparisons"]]
    assert names[0] == "SRATClassifier AT vs plain loop"
    assert sum(name.endswith("vs PGD-10, both estimator") for name in names) == 4
    assert set(record["memory"]) == set(bench_fit.MEMORY_RUNS)
    assert {(row["samples"], row["steps"]) for row in record["scaling"]} == {
        (n, steps) for n in (128, 256) for steps in (1, 5, 10)}
    docs = bench_fit.generated_docs(output)[bench_fit.DOC]
    speed = docs.split("<!-- fit-speed:start -->")[1].split("<!-- fit-speed:end -->")[0]
    assert speed.startswith("\n128 training images (1x8x8), 1 epochs per run")
    assert speed.count("\n| ") == 1 + len(names)  # the header and a row per comparison


def test_small_cnn_order_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "small_cnn.json"
    subprocess.run([sys.executable, str(SCRIPT.with_name("bench_small_cnn.py")), "--smoke",
                    "--repeats", "1", "--output", str(output)], check=True, capture_output=True)
    record = json.loads(output.read_text())
    assert len(record["passes"]) == 2 * 2 * 3 and all(row["equal"] for row in record["passes"])
    assert record["end_to_end"]["same"] == {"weights": True, "robust_predictions": True,
                                            "n_test": 20, "max_epochs": 2}


def fast_run(method, seed, overall, under, seconds):
    return {"setting": "fast", "method": method, "seed": seed, "fit_seconds": seconds,
            "groups": {"overall": {"robust": overall / 100}, "under": {"robust": under / 100}}}


def test_cheap_attacks_are_judged_on_their_mean_difference_and_benchmark_time(bench_fit):
    def speed(name, ratio):
        return {"comparison": f"{name} vs PGD-10, both estimator", "ratio": ratio}

    record = {"comparisons": [speed("PGD-3, step eps/2", 2.5),  # 0.40x: too slow
                              speed("PGD-2 reusing perturbations, step eps/2", 3.0)]}
    runs = [fast_run("SRAT PGD-10", s, 60.0, 40.0, 10.0) for s in (0, 1)]
    runs += [fast_run("SRAT PGD-3", s, 59.0, 39.0, 4.0) for s in (0, 1)]
    runs += [fast_run("SRAT PGD-2, reused", 0, 57.0, 38.0, 3.0),
             fast_run("SRAT PGD-2, reused", 1, 59.4, 40.0, 3.4)]
    table = bench_fit.render_cheap(record, runs).splitlines()
    assert table[2] == "| PGD-3, step eps/2 | 0.40x | 0.40x | -1.0 ± 0.0 | -1.0 ± 0.0 | " \
                       "-1.0, -1.0 | no |"
    # Mean -1.8: within 2 points although one seed is not.
    assert table[3] == "| PGD-2 reusing perturbations, step eps/2 | 0.33x | 0.32x | " \
                       "-1.8 ± 1.7 | -1.0 ± 1.4 | -3.0, -0.6 | yes |"
    assert table[5].startswith("PGD-10's robust overall accuracy: 60.0 ± 0.0 (2 seeds).")


def test_autoattack_speed_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(SCRIPT.with_name("bench_autoattack.py")), "--smoke",
                    "--output", str(output)], check=True, capture_output=True)
    record = json.loads(output.read_text())
    assert {"members over survivors", "batch by batch", "contiguous",
            "targets together"} <= set(record["ways"])
    assert record["n_test"] == 30 and record["n_steps"] == 2 and record["repeats"] == 1
    assert all(way["samples_per_second"] > 0 and len(way["seconds_runs"]) == 1
               for way in record["ways"].values())


def test_autoattack_speed_rounds_rotate_the_ways_and_pair_them_by_round(monkeypatch):
    # Run once each in a fixed order, the last way took the machine's slow-down for its own.
    bench = load_script("bench_autoattack")
    calls, now = [], [0.0]
    durations = {("a", 0): 1, ("b", 0): 2, ("a", 1): 4, ("b", 1): 4, ("a", 2): 2, ("b", 2): 3}

    def way(name):
        def run(model, X, y, epsilon, norm):  # takes its duration of the round on the clock
            calls.append(name)
            now[0] += durations[name, calls.count(name) - 1]
            return y
        return run

    monkeypatch.setattr(bench, "WAYS", {"members over survivors": way("a"), "b": way("b")})
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    record = bench.run("linf", n_test=10, max_epochs=1, repeats=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    b = record["ways"]["b"]
    assert b["seconds_runs"] == [2, 4, 3] and b["seconds"] == 3
    assert b["ratio"] == 1.5 and b["ratio_range"] == [1.0, 2.0]  # 2/1, 4/4, 3/2


def test_rounds_rotate_the_runs_and_pair_their_ratios_by_round():
    rounds = load_script("_rounds")
    assert [rounds.rotated(["a", "b", "c"], r) for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert rounds.paired_ratios([2.0, 4.0, 3.0], [1.0, 4.0, 2.0]) == {"median": 1.5,
                                                                    "range": [1.0, 2.0]}


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_autoattack_speed_benchmark_runs_on_a_gpu(tmp_path, device):
    output = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(SCRIPT.with_name("bench_autoattack.py")), "--smoke",
                    "--device", device, "--output", str(output)], check=True,
                   capture_output=True)
    record = json.loads(output.read_text())
    assert record["machine"]["gpu"] == torch.cuda.get_device_name()
    assert "contiguous" not in record["ways"]  # the estimator's order on a GPU already


def test_autoattack_speed_on_a_gpu_has_its_own_table(tmp_path):
    bench = load_script("bench_autoattack")
    cpu = json.loads(SCRIPT.with_name("bench_autoattack.json").read_text())
    gpu = {**cpu, "ways": {k: v for k, v in cpu["ways"].items() if k != "contiguous"},
           "machine": {**cpu["machine"], "gpu": "Some GPU"}}
    runs = tmp_path / "bench_autoattack.json"
    runs.write_text(json.dumps(cpu))
    l2 = bench.norm_runs_file(SCRIPT.with_name("bench_autoattack.json"), "l2")
    bench.norm_runs_file(runs, "l2").write_text(l2.read_text())
    assert "Not run on a GPU yet" in bench.generated_docs(runs)[bench.GPU_DOC]
    bench.gpu_runs_file(runs).write_text(json.dumps(gpu))
    docs = bench.generated_docs(runs)
    gpu_table = docs[bench.GPU_DOC].split("autoattack-speed-cuda:start")[1]
    assert "SmallCNN, Some GPU," in gpu_table and "| targets together |" in gpu_table
    assert docs[bench.DOC] == bench.DOC.read_text()  # the CPU's table stays the CPU's


def test_autoattack_speed_at_l2_has_its_own_table(tmp_path):
    bench = load_script("bench_autoattack")
    linf = json.loads(SCRIPT.with_name("bench_autoattack.json").read_text())
    runs = tmp_path / "bench_autoattack.json"
    runs.write_text(json.dumps(linf))
    assert "Not run at L2 yet" in bench.generated_docs(runs)[bench.DOC]
    bench.norm_runs_file(runs, "l2").write_text(json.dumps({**linf, "norm": "l2",
                                                            "epsilon": 1.0}))
    l2_table = bench.generated_docs(runs)[bench.DOC].split("autoattack-speed-l2:start")[1]
    assert l2_table.startswith(" -->\nStandard AutoAttack, L2 epsilon 1,")
    assert bench.norm_runs_file(runs, "linf") == runs


def test_compile_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "compile.json"
    # dynamo's "eager" backend: the same code path, without the C++ compiler's minute
    subprocess.run([sys.executable, str(SCRIPT.with_name("bench_compile.py")), "--smoke",
                    "--backend", "eager", "--output", str(output)], check=True,
                   capture_output=True)
    record = json.loads(output.read_text())
    rows = record["rows"]
    assert rows["plain loop, eager"]["speedup"] == 1.0
    compiled = rows["estimator, compile=True, contiguous"]
    assert compiled["eager"] == "estimator, eager, contiguous" and compiled["eager"] in rows
    assert compiled["compile_seconds"] is not None and compiled["speedup_over_eager"] > 0
    assert compiled["compile_seconds_warm_cache"] is not None
    assert sum(record["profile"]["shares"].values()) == pytest.approx(1, abs=0.01)
    assert all(row["seconds_per_epoch"] > 0 for row in record["rows"].values())


def test_records_name_the_commit_they_ran(monkeypatch):
    provenance = load_script("_provenance")
    if not (provenance.ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{12}(\+changes)?", provenance.machine()["commit"])
    monkeypatch.setattr(provenance, "ROOT", provenance.ROOT / "no-such-directory")
    assert provenance.code_version() is None


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout with a module and a runs file, committed; the provenance's root."""
    provenance = load_script("_provenance")
    for path in ("srat_sklearn/module.py", "benchmarks/study.py", "benchmarks/runs.jsonl",
                 "docs/results.md"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("first\n")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                        "user.email=t@t", *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    return provenance, tmp_path


@pytest.mark.parametrize("changed, claims_changes", [
    ([], False), (["benchmarks/runs.jsonl", "docs/results.md"], False),
    (["srat_sklearn/module.py"], True), (["benchmarks/study.py"], True)],
    ids=["clean", "outputs", "library", "benchmark-script"])
def test_a_record_claims_changes_only_for_changed_code(checkout, changed, claims_changes):
    # Regression: a study's records after its first said "+changes", as it had appended to
    # its own runs file.
    provenance, root = checkout
    for path in changed:
        (root / path).write_text("second\n")
    assert provenance.code_version().endswith("+changes") is claims_changes


def test_records_name_the_instruction_set_of_torchs_cpu_kernels():
    # The same seed trains a different model on AVX2 and on AVX-512 (docs/user_guide.md):
    # the record states the set torch's kernels use, not the CPU's flags.
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); import _provenance; "
            "print(json.dumps(_provenance.machine()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=SCRIPT.parents[1], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "ATEN_CPU_CAPABILITY": "default"}).stdout
    assert json.loads(out)["cpu_capability"] == "DEFAULT"


@pytest.mark.parametrize("machine, text", [
    ({"torch_threads": 2, "cpu_capability": "AVX2"}, "2 torch threads, AVX2 kernels"),
    ({"torch_threads": 2}, "2 torch threads"),  # records from before cpu_capability
])
def test_tables_state_the_kernels_where_the_record_does(machine, text):
    assert load_script("_provenance").describe_cpu(machine) == text


def test_records_name_a_gpu_only_for_cuda_devices():
    provenance = load_script("_provenance")
    assert "gpu" not in provenance.machine("cpu") and "gpu" not in provenance.machine()


@pytest.fixture(scope="module")
def study():
    return load_script("study")


@pytest.mark.parametrize("setting", ["mnist-step", "mnist-exp", "mnist-step-val"])
def test_mnist_settings_warm_every_methods_budget_up_alike(study, setting):
    # At eps 0.3 from the first epoch AT collapsed to one class; RobustLT's own warm-up
    # (a tenth of training) would give one method a shorter one.
    _, _, recipe, methods = study.settings()[setting]
    assert {name: {**recipe, **params}["epsilon_warmup"] for name, params in methods.items()} \
        == dict.fromkeys(methods, 10)


def test_the_pages_default_is_the_estimators_and_srat_the_papers(study, summarize):
    defaults = SRATClassifier().get_params()
    default = study.REAL_METHODS[summarize.DEFAULT]
    assert {key: defaults[key] for key in default} == default
    assert study.REAL_METHODS["SRAT"]["weight_normalization"] == "samples"


@pytest.mark.parametrize("base", ["SRAT", "SRAT-BSL", "SRAT, weights-normalised"])
def test_robustlt_variants_add_only_the_plug_ins_that_at_bsl_gets(study, base):
    methods = study.REAL_METHODS
    plug_ins = {k: v for k, v in methods["AT-BSL+RobustLT"].items()
                if methods["AT-BSL"].get(k) != v}
    assert plug_ins and study.VALIDATION_CANDIDATES[base + "+RobustLT"] == \
        {**methods[base], **plug_ins}


@pytest.mark.parametrize("mix", [0.25, 0.1])
def test_robustlt_mix_variants_change_only_the_mix_of_the_reference(study, mix):
    reference = study.REAL_METHODS["AT-BSL+RobustLT"]
    variant = study.settings()["yeast-val"][3][f"AT-BSL+RobustLT, mix {mix:g}"]
    assert variant == {**reference, "class_epsilon_mix": mix} != reference


def test_study_models_run_on_the_requested_device(study):
    _, _, recipe, methods = study.settings()["page-blocks"]
    model, clf = study.build_model("page-blocks", recipe, methods["SRAT"], seed=0,
                                   device="cuda")
    assert clf.device == "cuda" and model.steps[-1][1] is clf


@pytest.mark.parametrize("setting, seed", [("yeast-val", 1), ("yeast", 3)])
def test_a_worker_builds_the_data_of_its_run(study, monkeypatch, setting, seed):
    monkeypatch.setattr(study, "run_one", lambda setting, method, seed, data, *rest: data)
    make_data = study.settings()[setting][0]
    expected = make_data(seed) if setting.endswith("-val") else make_data()
    built = study.run_spec(setting, "SRAT", seed)
    assert all(np.array_equal(a, b) for a, b in zip(built, expected))


class FitRecorder:
    """``build_model`` whose models fit nothing and record the setting, device and parameters
    of each fit."""

    def __init__(self):
        self.fits = []

    def __call__(self, setting, recipe, params, seed, device="cpu"):
        recorder = self

        class Model:
            def fit(self, X, y):
                recorder.fits.append((setting, device, {**recipe, **params}))

        return Model(), None


def test_warm_up_fits_once_per_setting_and_device_for_two_epochs(study, monkeypatch):
    recorder = FitRecorder()
    monkeypatch.setattr(study, "build_model", recorder)
    monkeypatch.setattr(study, "_WARMED_UP", set())
    recipe = {"max_epochs": 40, "reweight_epoch": 30}
    data = (np.zeros((4, 2)), None, np.zeros(4), None)
    for setting, device in [("yeast", "cpu"), ("yeast", "cpu"), ("yeast", "cuda"),
                            ("yeast-val", "cpu")]:
        study.warm_up(setting, recipe, {"lambda_sep": 1.0}, data, device)
    assert [(setting, device) for setting, device, _ in recorder.fits] == [
        ("yeast", "cpu"), ("yeast", "cuda"), ("yeast-val", "cpu")]
    assert recorder.fits[0][2] == {"max_epochs": 2, "reweight_epoch": 1, "lambda_sep": 1.0}


def test_warm_up_leaves_the_timed_run_as_it_was(study, monkeypatch):
    make_data, under, recipe, methods = study.settings()["tabular"]
    recipe = study.shortened(recipe, recipe["max_epochs"], 3)
    data = make_data()

    def run(warm_up_first):
        monkeypatch.setattr(study, "_WARMED_UP", set() if warm_up_first else
                            {("tabular", "cpu")})
        record = study.run_one("tabular", "SRAT", 0, data, under, recipe, methods["SRAT"])
        assert study._WARMED_UP == {("tabular", "cpu")}
        return {key: record[key] for key in ("groups", "per_class", "final_train_loss")}

    # The run without a warm-up first: a warm-up that changed the shared data would show.
    without = run(warm_up_first=False)
    assert run(warm_up_first=True) == without


class InProcessPool:
    """A process pool that runs its work in this process and records what each worker got."""

    def __init__(self, jobs, mp_context):
        assert mp_context.get_start_method() == "spawn"
        self.jobs, self.submitted = jobs, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, function, *args):
        self.submitted.append(args)
        future = Future()
        future.set_result(function(*args))
        return future


class FakeRuns:
    """The study's runs without training: each takes 6 s of a clock that stands still
    otherwise, and the process pools it opens run in this process."""

    def __init__(self):
        self.now, self.pools, self.eval_batch_sizes = 0.0, [], []

    def monotonic(self):
        return self.now

    def run_one(self, setting, method, seed, *rest):
        self.eval_batch_sizes.append(rest[-1])
        self.now += 6.0
        groups = {g: {"clean": 1.0, "robust": 1.0} for g in ("well", "under")}
        return {"setting": setting, "method": method, "seed": seed, "groups": groups,
                "fit_seconds": 1.0}

    def pool(self, jobs, mp_context):
        self.pools.append(InProcessPool(jobs, mp_context))
        return self.pools[-1]


@pytest.fixture
def fake_runs(study, monkeypatch):
    fake = FakeRuns()
    for name in ("monotonic", "run_one"):
        monkeypatch.setattr(study, name, getattr(fake, name))
    monkeypatch.setattr(study, "ProcessPoolExecutor", fake.pool)
    return fake


def test_parallel_study_sends_each_pending_run_to_a_worker(study, fake_runs, tmp_path):
    output = tmp_path / "runs.jsonl"
    output.write_text(json.dumps({"setting": "tabular", "method": "AT", "seed": 0}) + "\n")
    study.main(["--setting", "tabular", "--methods", "AT", "SRAT", "--seeds", "0", "1",
                "--jobs", "3", "--threads", "1", "--output", str(output)])
    (pool,) = fake_runs.pools
    assert pool.jobs == 3
    assert pool.submitted == [("tabular", "SRAT", 0, "cpu", 1, None),
                              ("tabular", "AT", 1, "cpu", 1, None),
                              ("tabular", "SRAT", 1, "cpu", 1, None)]
    assert study.done_runs(output) == {("tabular", m, s) for m in ("AT", "SRAT") for s in (0, 1)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_study_hands_its_eval_batch_size_to_every_run(study, fake_runs, tmp_path, jobs):
    study.main(["--setting", "tabular", "--methods", "AT", "SRAT", "--seeds", "0",
                "--jobs", str(jobs), "--eval-batch-size", "2048",
                "--output", str(tmp_path / "runs.jsonl")])
    assert fake_runs.eval_batch_sizes == [2048, 2048]


def test_a_runs_eval_batch_size_reaches_both_of_its_evaluations(study, monkeypatch):
    make_data, under, recipe, methods = study.settings()["yeast"]
    recipe = study.shortened(recipe, recipe["max_epochs"], 1)
    monkeypatch.setattr(study, "_WARMED_UP", {("yeast", "cpu")})
    real_report, attacked = study.robust_report, []

    def one_step_report(model, X, y, **attack):
        attacked.append((attack.get("attack", "pgd"), attack["batch_size"]))
        return real_report(model, X, y, **{**attack, "attack": "pgd", "n_steps": 1})

    monkeypatch.setattr(study, "robust_report", one_step_report)
    record = study.run_one("yeast", "AT", 0, make_data(), under, recipe, methods["AT"],
                           eval_batch_size=64)
    assert attacked == [("pgd", 64), ("autoattack", 64)]
    assert record["eval_batch_size"] == 64


def test_study_refuses_an_eval_batch_size_below_one(study, capsys):
    with pytest.raises(SystemExit):
        study.main(["--setting", "tabular", "--eval-batch-size", "0"])
    assert "--eval-batch-size must be" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [1, 2])
def test_study_starts_no_run_after_its_time_limit(study, fake_runs, tmp_path, jobs):
    output = tmp_path / "runs.jsonl"
    study.main(["--setting", "tabular", "--methods", "AT", "SRAT", "--seeds", "0", "1",
                "--jobs", str(jobs), "--time-limit", "10", "--output", str(output)])
    # Runs start at 0 s and 6 s; at 12 s the limit has passed. The runs that finished are
    # in the file, for the next call to skip.
    assert study.done_runs(output) == {("tabular", "AT", 0), ("tabular", "SRAT", 0)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_study_with_no_time_left_starts_nothing(study, fake_runs, tmp_path, capsys, jobs):
    output = tmp_path / "runs.jsonl"
    study.main(["--setting", "tabular", "--methods", "AT", "--seeds", "0", "--jobs", str(jobs),
                "--time-limit", "0", "--output", str(output)])
    assert not output.exists()
    assert "1 of 1 runs not started" in capsys.readouterr().out


def test_study_refuses_a_negative_time_limit(study, capsys):
    with pytest.raises(SystemExit):
        study.main(["--setting", "tabular", "--time-limit", "-5"])
    assert "--time-limit must be" in capsys.readouterr().err


def test_study_runs_in_parallel_processes_and_resumes(tmp_path):
    output = tmp_path / "runs.jsonl"
    command = [sys.executable, str(SCRIPT.with_name("study.py")),
               "--setting", "tabular", "--methods", "AT", "--seeds", "0", "1", "--jobs", "2",
               "--threads", "1", "--output", str(output)]
    for _ in range(2):  # the second finds both runs done
        subprocess.run(command, check=True, capture_output=True)
        records = [json.loads(line) for line in output.read_text().splitlines()]
        assert sorted((r["setting"], r["method"], r["seed"]) for r in records) == \
            [("tabular", "AT", 0), ("tabular", "AT", 1)]


@pytest.mark.parametrize("name", ["page-blocks", "yeast", "hypothyroid"])
def test_validation_twins_never_see_the_test_split(study, name):
    X_train, _, y_train, _ = study.uci_data(name)
    rows = {tuple(np.nan_to_num(row, nan=-1.0)) for row in X_train}
    for seed in (0, 1):
        X_fit, X_val, _, y_val = study.settings()[name + "-val"][0](seed)
        assert len(X_fit) + len(X_val) == len(X_train)
        assert all(tuple(np.nan_to_num(row, nan=-1.0)) in rows
                   for row in np.vstack([X_fit, X_val]))
        assert set(np.unique(y_val)) == set(np.unique(y_train))  # stratified: every class seen


def test_each_seed_of_a_validation_twin_draws_its_own_split(study):
    make_data = study.settings()["yeast-val"][0]
    first, again, second = (make_data(seed)[1] for seed in (0, 0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, second)


@pytest.mark.parametrize("name", ["page-blocks", "hypothyroid"])
def test_validation_twins_train_as_their_setting(study, name):
    def build(setting):
        _, _, recipe, methods = study.settings()[setting]
        model, clf = study.build_model(setting, recipe, methods["SRAT"], seed=0)
        params = {k: v for k, v in clf.get_params(deep=False).items() if k != "callbacks"}
        decay = dict(clf.callbacks)["lr_decay"].kwargs
        return params, decay, str(model[:-1])

    assert build(name + "-val") == build(name)


def run_of(method, seed, rare, common, fit_seconds=10.0):
    """A study record with AutoAttack accuracies of one rare and one common class (in %)."""
    per_class = {"0": {"clean": 0.9, "robust": rare / 100},
                 "1": {"clean": 0.9, "robust": common / 100}}
    part = {"groups": {"under": {"robust": rare / 100}, "well": {"robust": common / 100}},
            "per_class": per_class}
    return {"setting": "s-val", "method": method, "seed": seed, "train_counts": [10, 100],
            "fit_seconds": fit_seconds, **part, "autoattack": part}


@pytest.fixture(scope="module")
def summarize():
    return load_script("summarize")


def ranked(summarize, accuracies):
    runs = [run_of(method, seed, rare, common) for method, (rare, common) in accuracies.items()
            for seed in (0, 1)]
    return [row[0] for row in summarize.validation_ranking({"s-val": runs}, ["s-val"])]


def test_default_is_chosen_by_the_target_before_the_balanced_accuracy(summarize):
    # "wide" has the best balanced accuracy but loses the common classes against AT-DRW.
    order = ranked(summarize, {"AT-DRW": (50, 60), "AT-BSL": (60, 55), "AT-BSL+RobustLT":
                               (60, 50), "wide": (80, 59), "fits": (61, 60)})
    assert order[:2] == ["fits", "wide"]


def test_default_ties_go_to_the_higher_balanced_accuracy(summarize):
    order = ranked(summarize, {"AT-DRW": (50, 60), "AT-BSL": (60, 55), "AT-BSL+RobustLT":
                               (60, 50), "first": (62, 61), "second": (61, 61)})
    assert order[:2] == ["first", "second"]


@pytest.mark.parametrize("fit_times, srat_seconds, missed", [
    ({"s": {"SRAT": 1.0}}, 20.0, False),  # the pairs clear what far-apart runs would fail
    ({"s": {"SRAT": 1.3}}, 10.0, True),  # and fail what they would clear
    ({}, 20.0, True),  # without pairs for the setting, the study's runs decide
])
def test_target_reads_the_fit_time_from_interleaved_pairs(summarize, fit_times, srat_seconds,
                                                          missed):
    runs = [run_of(method, seed, 60, 60, fit_seconds=srat_seconds if method == "SRAT" else 10.0)
            for method in ("AT-DRW", "AT-BSL", "SRAT") for seed in (0, 1)]
    misses = summarize.target_misses(runs, "SRAT", fit_times)
    assert any(miss.startswith("fit time") for miss in misses) == missed


@pytest.mark.parametrize("rare, common, expected", [(2, 0, True), (40, 60, False)])
def test_a_seed_without_robustness_counts_as_collapsed(summarize, rare, common, expected):
    # Clean accuracy 90%: only the robust accuracy can make it collapsed.
    assert summarize.collapsed(run_of("AT", 0, rare, common)) is expected


def test_class_budgets_line_gives_each_groups_training_radius(summarize):
    run = {**run_of("AT-BSL+RobustLT", 0, 50, 50), "train_counts": [100, 100, 10, 10],
           "under_represented": [2, 3], "params": {"epsilon": 0.2, "class_epsilon_mix": 0.5}}
    line = summarize.class_budgets_line([run, {**run_of("AT", 0, 50, 50), "params": {}}])
    # Half the classes rare: the common ones at 0.5 epsilon, the rare ones at 1.5 epsilon.
    assert "0.5: the rare classes at epsilon 0.3 and the common classes at 0.1 " in line
    assert summarize.class_budgets_line([{**run, "params": {"epsilon": 0.2}}]) == ""


def test_target_table_names_the_test_splits_not_run_yet(summarize):
    runs = [run_of(method, seed, 60, 60) for method in ("AT-DRW", "AT-BSL", "AT-BSL+RobustLT")
            for seed in (0, 1)]
    lines = summarize.real_summary({"yeast": runs, "mnist-step": runs[:1]})
    header = next(line for line in lines if line.startswith("| method |"))
    assert "yeast" in header and "mnist-step" not in header
    missing = lines[-2].split("Not run yet")[1]
    assert "mnist-step," in missing and "page-blocks" in missing and "yeast" not in missing


def test_target_table_judges_every_configuration_the_readme_counts(summarize):
    # As when only yeast's twin chooses mix 0.1: that weight runs on yeast alone, which is not
    # the first setting.
    by_setting = {"page-blocks": real_setting("page-blocks", REFERENCE_ACCURACIES),
                  "yeast": real_setting("yeast", {**REFERENCE_ACCURACIES,
                                                  "AT-BSL+RobustLT, mix 0.1": (70, 62)})}
    lines = summarize.real_summary(by_setting)
    start = next(i for i, line in enumerate(lines) if line.startswith("| method |")) + 2
    rows = lines[start:lines.index("", start)]
    assert "| AT-BSL+RobustLT, mix 0.1 | - | met | 1 of 2 |" in rows
    assert f"the study's {len(rows)} configurations" in summarize.readme_summary(by_setting)


def test_target_table_judges_no_method_on_part_of_a_settings_seeds(summarize):
    # As mix 0.25 on mnist-exp: an optional weight run on one of the setting's two seeds.
    yeast = real_setting("yeast", REFERENCE_ACCURACIES)
    yeast += [run for run in real_setting("yeast", {"AT-BSL+RobustLT, mix 0.25": (10, 10)})
              if run["seed"] == 0]
    cells, met, missed = summarize.target_cells({"yeast": yeast}, ["yeast"],
                                                "AT-BSL+RobustLT, mix 0.25")
    assert (cells, met, missed) == (["1 of 2 seeds, not judged"], 0, 0)


def test_twin_without_a_reference_is_not_judged(summarize):
    def runs(methods):
        return [run_of(method, seed, 60, 60) for method in methods for seed in (0, 1)]

    # On hypothyroid-val AT-BSL+RobustLT never ran: SRAT would "meet" its rare-class bar.
    lines = summarize.validation_choice({
        "yeast-val": runs(["AT-DRW", "AT-BSL", "AT-BSL+RobustLT", "SRAT"]),
        "hypothyroid-val": runs(["AT-DRW", "AT-BSL", "SRAT"])})
    header = next(line for line in lines if line.startswith("| method |"))
    assert "yeast-val" in header and "hypothyroid-val" not in header
    assert "hypothyroid-val" in lines[-2].split("Not run yet")[1]


def test_twin_run_on_part_of_its_grid_is_not_judged(summarize):
    def runs(methods, seeds):
        return [run_of(method, seed, 60, 60) for method in methods for seed in seeds]

    references = ["AT-DRW", "AT-BSL", "AT-BSL+RobustLT"]
    # mnist-step-val has every reference, but on one seed and without SRAT-BSL: judged, it
    # would rank the methods on one seed and drop SRAT-BSL from the ranking.
    lines = summarize.validation_choice({
        "yeast-val": runs(references + ["SRAT", "SRAT-BSL"], (0, 1)),
        "mnist-step-val": runs(references + ["SRAT"], (0,))})
    header = next(line for line in lines if line.startswith("| method |"))
    assert "yeast-val" in header and "mnist-step-val" not in header
    assert any(line.startswith("| SRAT-BSL |") for line in lines)
    assert "mnist-step-val" in lines[-2].split("Not run yet")[1]


def test_equal_accuracies_summed_in_another_order_miss_nothing(summarize):
    rare = 100 * (0.1 + 0.2)  # 30.000000000000004
    runs = [run_of("AT-DRW", 0, 30, 60), run_of("AT-BSL", 0, rare, 60),
            run_of("AT-BSL+RobustLT", 0, 30, 60), run_of("SRAT", 0, 30, 60)]
    assert summarize.target_misses(runs, "SRAT") == []


@pytest.mark.parametrize("ours, theirs, margin, expected", [
    (43.3, 44.7, 1, ("43.3", "44.7")),
    (92.38, 92.43, 0, ("92.38", "92.43")),  # both 92.4 at one decimal
    (43.66, 44.7, 1, ("43.66", "44.70")),  # 43.7 < 44.7 - 1 would read false
])
def test_a_shortfall_is_shown_with_the_decimals_that_tell_it(summarize, ours, theirs, margin,
                                                             expected):
    assert summarize.shown_apart(ours, theirs, margin) == expected


def test_target_miss_between_means_that_round_alike_reads_true(summarize):
    runs = [run_of(method, seed, 60, common) for seed in (0, 1)
            for method, common in (("AT-DRW", 92.43), ("SRAT", 92.38))]
    assert summarize.target_misses(runs, "SRAT") == ["common 92.38 < AT-DRW 92.43"]


@pytest.mark.parametrize("rare_by_seed, expected", [
    ((60, 80), "15.0 ± 7.1 (p 0.20)"),  # differences of 10 and 20 points
    ((60, 70), "10.0 ± 0.0"),  # 10 points on both seeds: no spread, no t-test
    ((50, 60), "0.0 ± 0.0"),  # equal accuracies
])
def test_paired_difference_tests_only_differences_that_vary(summarize, rare_by_seed, expected):
    ours = {seed: run_of("SRAT", seed, rare, 60) for seed, rare in enumerate(rare_by_seed)}
    theirs = {seed: run_of("AT-BSL", seed, rare, 60) for seed, rare in enumerate((50, 60))}
    assert summarize.difference(ours, theirs, [0, 1], "rare") == expected


def test_paired_difference_states_a_tiny_p_as_a_bound(summarize):
    ours = {seed: run_of("SRAT", seed, rare, 60) for seed, rare in enumerate((60, 70.1))}
    theirs = {seed: run_of("AT-BSL", seed, rare, 60) for seed, rare in enumerate((50, 60))}
    cell = summarize.difference(ours, theirs, [0, 1], "rare")  # 10.0 and 10.1 points: p 0.003
    assert cell.endswith("(p < 0.005)")


def test_paired_difference_claims_no_bound_for_an_undefined_p(summarize):
    ours = {seed: run_of("SRAT", seed, rare, 60) for seed, rare in enumerate((60, np.nan))}
    theirs = {seed: run_of("AT-BSL", seed, rare, 60) for seed, rare in enumerate((50, 60))}
    assert summarize.difference(ours, theirs, [0, 1], "rare").endswith("(p nan)")


def twin_and_test(accuracies, test_methods):
    """Runs of "s-val" (``{method: (rare, common)}``) and of its test split "s" (the methods
    ``test_methods`` at 60/60), on two seeds."""
    twin = [run_of(method, seed, *accuracy) for method, accuracy in accuracies.items()
            for seed in (0, 1)]
    test = [{**run_of(method, seed, 60, 60), "setting": "s"} for method in test_methods
            for seed in (0, 1)]
    return {"s-val": twin, "s": test}


@pytest.mark.parametrize("tuned_rare, chosen", [
    (70, "AT-BSL+RobustLT, mix 0.1"),  # the better weight becomes the reference
    (60, "AT-BSL+RobustLT"),  # a tie keeps the library's weight
])
def test_robustlt_reference_is_the_mix_its_twin_chose(summarize, tuned_rare, chosen):
    by_setting = twin_and_test({"AT-BSL+RobustLT": (60, 60),
                                "AT-BSL+RobustLT, mix 0.1": (tuned_rare, 60)}, [])
    assert summarize.tuned_robustlt(by_setting, "s-val") == chosen


def test_target_compares_rare_classes_with_the_tuned_robustlt(summarize):
    references = {"AT-DRW": (50, 60), "AT-BSL": (60, 60), "AT-BSL+RobustLT": (60, 60)}
    by_setting = twin_and_test({**references, "AT-BSL+RobustLT, mix 0.1": (70, 60),
                                "SRAT": (65, 60)}, [])
    cells, met, _ = summarize.target_cells(by_setting, ["s-val"], "SRAT")
    assert met == 0 and cells == ["rare 65.0 < AT-BSL+RobustLT, mix 0.1 70.0"]


def test_twin_chooses_the_mix_on_the_seeds_every_weight_ran(summarize):
    # mix 0.1 leads on seeds 0-1, the ones all weights share; its extra seed 2 (0 %) would
    # pull its mean over all its seeds to 40, below mix 0.25's 45, and must not count.
    by_setting = twin_and_test({"AT-BSL+RobustLT": (0, 0), "AT-BSL+RobustLT, mix 0.25": (45, 45),
                                "AT-BSL+RobustLT, mix 0.1": (60, 60)}, [])
    by_setting["s-val"].append(run_of("AT-BSL+RobustLT, mix 0.1", 2, 0, 0))
    assert summarize.twin_choice(by_setting, "s-val") == "AT-BSL+RobustLT, mix 0.1"


def test_twin_without_a_seed_every_weight_ran_keeps_the_library_weight(summarize):
    by_setting = {"s-val": [run_of("AT-BSL+RobustLT", 0, 0, 0),
                            run_of("AT-BSL+RobustLT, mix 0.1", 1, 60, 60)]}
    assert summarize.twin_choice(by_setting, "s-val") == "AT-BSL+RobustLT"


@pytest.mark.parametrize("test_methods, reference", [
    (["AT-BSL+RobustLT", "AT-BSL+RobustLT, mix 0.1"], "AT-BSL+RobustLT, mix 0.1"),
    (["AT-BSL+RobustLT"], "AT-BSL+RobustLT"),  # the twin's choice never ran on the test split
])
def test_test_split_takes_the_mix_its_twin_chose(summarize, test_methods, reference):
    by_setting = twin_and_test({"AT-BSL+RobustLT": (60, 60),
                                "AT-BSL+RobustLT, mix 0.1": (70, 60)}, test_methods)
    assert summarize.tuned_robustlt(by_setting, "s") == reference


def test_test_split_is_judged_once_it_ran_the_weight_its_twin_chose(summarize):
    references = {"AT-DRW": (50, 60), "AT-BSL": (60, 60), "AT-BSL+RobustLT": (60, 60)}
    by_setting = twin_and_test({**references, "AT-BSL+RobustLT, mix 0.1": (70, 60)},
                               list(references))
    # "t" has no twin with other weights: a weight run on "s" alone leaves its grid complete.
    by_setting["t"] = [{**run, "setting": "t"} for run in by_setting["s"]]
    assert summarize.real_settings(by_setting, validation=False) == ["t"]
    by_setting["s"] += [{**run, "method": "AT-BSL+RobustLT, mix 0.1"}
                        for run in by_setting["s"] if run["method"] == "AT-BSL"]
    assert summarize.real_settings(by_setting, validation=False) == ["s", "t"]


def test_test_split_needs_the_weight_its_twin_chose_on_every_seed(summarize):
    references = {"AT-DRW": (50, 60), "AT-BSL": (60, 60), "AT-BSL+RobustLT": (60, 60)}
    by_setting = twin_and_test({**references, "AT-BSL+RobustLT, mix 0.1": (70, 60)},
                               [*references, "AT-BSL+RobustLT, mix 0.1"])
    by_setting["s"] = [run for run in by_setting["s"]
                       if not (run["method"].endswith("mix 0.1") and run["seed"] == 1)]
    assert summarize.real_settings(by_setting, validation=False) == []
    assert '(it lacks "AT-BSL+RobustLT, mix 0.1" on seed 1),' in summarize.partial_line(
        by_setting, "s")


@pytest.mark.parametrize("setting, runs_on_file, expected", [
    ("yeast", True, ["AT-BSL+RobustLT, mix 0.1"]),
    ("yeast", False, []),  # no twin run yet: the library's weight only
    ("yeast-val", False, ["AT-BSL+RobustLT, mix 0.25", "AT-BSL+RobustLT, mix 0.1"]),
])
def test_study_runs_on_a_test_split_the_robustlt_weight_its_twin_chose(
        study, tmp_path, setting, runs_on_file, expected):
    output = tmp_path / "runs.jsonl"
    if runs_on_file:
        twin = {"AT-BSL+RobustLT": (60, 60), "AT-BSL+RobustLT, mix 0.25": (55, 60),
                "AT-BSL+RobustLT, mix 0.1": (70, 60)}
        output.write_text("".join(
            json.dumps({**run_of(method, seed, *accuracy), "setting": "yeast-val"}) + "\n"
            for method, accuracy in twin.items() for seed in (0, 1)))
    methods = study.default_methods(setting, study.settings(), output)
    assert [m for m in methods if ", mix " in m] == expected
    assert "AT-BSL+RobustLT" in methods


def test_results_page_and_readme_summary_are_written_from_the_runs_file(summarize, tmp_path):
    output, readme = tmp_path / "results.md", tmp_path / "README.md"
    readme.write_text(summarize.replace_block(summarize.README.read_text(),
                                              summarize.README_BLOCK, ""))
    summarize.main(["--output", str(output), "--readme", str(readme)])
    docs = Path(summarize.__file__).parents[1] / "docs" / "results.md"
    assert output.read_text() == docs.read_text()
    assert readme.read_text() == summarize.README.read_text()


def real_setting(setting, accuracies, seeds=(0, 1)):
    """Runs of a test split with ``{method: (rare, common)}`` AutoAttack accuracies."""
    return [{**run_of(method, seed, rare, common), "setting": setting}
            for method, (rare, common) in accuracies.items() for seed in seeds]


@pytest.mark.parametrize("default, met, verdict", [
    ((70, 62), "yes", "The defaults meet the target on 1 of 1 settings; the most that any of "
                      "the study's 4 configurations meets is 1 (SRAT, weights-normalised)."),
    ((50, 62), "no", "The defaults meet the target on 0 of 1 settings; no configuration of "
                     "the study's 4 meets it on any."),
], ids=["default-wins", "default-loses-the-rare-classes"])
def test_readme_summary_judges_the_defaults_against_the_baselines(summarize, default, met,
                                                                  verdict):
    runs = real_setting("yeast", {"SRAT, weights-normalised": default, "AT-BSL": (60, 55),
                                  "AT-BSL+RobustLT": (60, 50), "AT-DRW": (50, 60)})
    text = summarize.readme_summary({"yeast": runs})
    row = next(line for line in text.splitlines() if line.startswith("| yeast | SRAT-W"))
    assert row == f"| yeast | SRAT-W (the defaults) | 2 | {default[0]:.1f} | {default[1]:.1f} " \
                  f"| {(default[0] + default[1]) / 2:.1f} | {met} |"
    rare, common = default[0] - 60, default[1] - 55
    assert f"SRAT-W minus AT-BSL, rare / common / balanced, in points: yeast {rare:+.1f} / " \
           f"{common:+.1f} / {(rare + common) / 2:+.1f}." in text
    assert verdict in text


REFERENCE_ACCURACIES = {"AT-BSL": (60, 55), "AT-BSL+RobustLT": (60, 50), "AT-DRW": (50, 60),
                        "SRAT, weights-normalised": (70, 62)}


@pytest.mark.parametrize("default, first", [((58, 62), "other"), ((70, 62), None)],
                         ids=["ranked-below-other", "ranked-first"])
def test_target_verdict_names_what_the_rule_would_rank_first_on_the_test_splits(
        summarize, default, first):
    # At (58, 62) the defaults miss both rare-class bars; "other" misses only the common one.
    runs = real_setting("yeast", {**REFERENCE_ACCURACIES, "SRAT, weights-normalised": default,
                                  "other": (65, 58)})
    text = summarize.rule_on_test_splits({"yeast": runs}, ["yeast"])
    if first is None:
        assert text == ""
    else:
        assert f"would rank {first} first (0 settings met, 1 criteria missed; the defaults 0 " \
               "and 2)" in text


@pytest.mark.parametrize("robustlt, trade", [
    ((75, 50), "yeast (AT-BSL+RobustLT) rare +5.0, common -12.0"),
    ((60, 50), None),  # it leads no rare class: nothing to explain
])
def test_target_verdict_states_what_robustlt_gives_for_its_rare_class_lead(summarize, robustlt,
                                                                           trade):
    runs = real_setting("yeast", {**REFERENCE_ACCURACIES, "AT-BSL+RobustLT": robustlt})
    text = summarize.robustlt_trade({"yeast": runs}, ["yeast"])
    assert (text == "") if trade is None else (f"in points: {trade}." in text)


def test_target_table_ends_with_the_defaults_verdict(summarize):
    lines = summarize.real_summary({"yeast": real_setting("yeast", REFERENCE_ACCURACIES)})
    table_end = lines.index("", next(i for i, line in enumerate(lines) if line.startswith("|")))
    assert lines[table_end + 1].startswith(
        "The defaults meet the target on 1 of 1 settings; the most that any of the study's 4 "
        "configurations meets is 1 (SRAT, weights-normalised).")


@pytest.mark.parametrize("half_run, lacks", [
    (lambda runs: runs, None),
    (lambda runs: [r for r in runs if r["seed"] == 0], "every method on seed 1"),
    (lambda runs: [r for r in runs if r["seed"] == 0 and r["method"] != "AT-DRW"],
     '"AT-DRW" on seed 0; every method on seed 1'),
    (lambda runs: [r for r in runs if r["seed"] == 0 and r["method"].startswith("SRAT")],
     '"AT-BSL", "AT-BSL+RobustLT" and "AT-DRW" on seed 0; every method on seed 1'),
    (lambda runs: [r for r in runs if r["seed"] == 0 or r["method"] != "SRAT, weights-"
                   "normalised"], '"SRAT, weights-normalised" on seed 1'),
], ids=["complete", "one-seed", "one-seed-less-a-method", "one-seed-less-three-methods",
        "a-method-on-a-seed"])
def test_partial_test_split_says_which_runs_it_lacks(summarize, half_run, lacks):
    yeast = real_setting("yeast", REFERENCE_ACCURACIES)
    by_setting = {"yeast": yeast, "mnist-step": half_run(real_setting("mnist-step",
                                                                      REFERENCE_ACCURACIES))}
    line = summarize.partial_line(by_setting, "mnist-step")
    if lacks is None:
        assert line == ""
    else:
        assert line.startswith("Partial:") and f"(it lacks {lacks})," in line


def test_per_class_gap_averages_only_the_seeds_every_method_ran(summarize):
    runs = [{**run_of(method, seed, rare, 80), "under_represented": [0]}
            for method, rare, seeds in (("SRAT, weights-normalised", 60, (0,)),
                                        ("SRAT, weights-normalised", 10, (1,)),
                                        ("AT-BSL", 50, (0,)), ("SRAT-BSL", 55, (0,)))
            for seed in seeds]
    text = summarize.per_class_gap(runs)
    rows = {line.split(" | ")[0]: line for line in text.splitlines()}
    # Seed 1 of the defaults has no AT-BSL run beside it: the rare class's gap is seed 0's.
    assert rows["| **0**"].endswith(" | 60 | 50 | 55 | +10 |")
    assert "means over the 1 seed that every method" in text


def test_per_class_gap_prints_no_negative_zero(summarize):
    # the defaults 0.4 points below AT-BSL on the rare class: the gap rounds to zero
    runs = [{**run_of(method, 0, rare, 80), "under_represented": [0]}
            for method, rare in (("SRAT, weights-normalised", 59.6), ("AT-BSL", 60),
                                 ("SRAT-BSL", 55))]
    row = next(line for line in summarize.per_class_gap(runs).splitlines()
               if line.startswith("| **0** |"))
    assert row.endswith(" | +0 |")


@pytest.mark.parametrize("values, expected", [
    ([-0.02], "0.0"), ([-0.04, 0.02], "0.0 ± 0.0"), ([-0.06], "-0.1"), ([0.5, 1.5], "1.0 ± 0.7")])
def test_mean_std_prints_no_negative_zero(summarize, values, expected):
    assert summarize.mean_std(values) == expected


def test_readme_summary_prints_no_negative_zero(summarize):
    # the defaults 0.04 points below AT-BSL on the rare classes, 0.04 above on the common ones
    runs = real_setting("yeast", {"SRAT, weights-normalised": (59.96, 55.04),
                                  "AT-BSL": (60, 55), "AT-BSL+RobustLT": (60, 50),
                                  "AT-DRW": (50, 60)})
    assert "yeast +0.0 / +0.0 / +0.0." in summarize.readme_summary({"yeast": runs})


def test_validation_choice_prints_no_negative_zero(summarize):
    accuracies = {"AT-DRW": (50, 60), "AT-BSL": (60, 60), "AT-BSL+RobustLT": (60, 50),
                  "SRAT": (59.96, 60), "SRAT-BSL": (70, 70)}
    row = next(line for line in summarize.validation_choice(
                   {"yeast-val": real_setting("yeast-val", accuracies)})
               if line.startswith("| SRAT |"))
    assert row.endswith(" | +0.0 |")


def test_attack_gaps_to_torchattacks_print_no_negative_zero(autoattack_eval):
    record = json.loads(AUTOATTACK.with_name("autoattack.jsonl").read_text().splitlines()[0])
    # ours 0.02 points below torchattacks' APGD-CE: the gap rounds to zero
    record["torchattacks"]["apgd-ce"]["robust"] = record["attacks"]["apgd-ce"]["robust"] + 2e-4
    text = autoattack_eval.render_reliability([record])
    assert "in points: APGD-CE +0.0, " in text


def test_cheap_attack_differences_per_seed_print_no_negative_zero(bench_fit):
    record = {"comparisons": [{"comparison": "PGD-3, step eps/2 vs PGD-10, both estimator",
                               "ratio": 2.5}]}
    runs = [fast_run("SRAT PGD-10", s, 60.0, 40.0, 10.0) for s in (0, 1)]
    # seed 0 0.02 points below PGD-10: its difference rounds to zero
    runs += [fast_run("SRAT PGD-3", seed, overall, 40.0, 4.0)
             for seed, overall in ((0, 59.98), (1, 61.0))]
    row = bench_fit.render_cheap(record, runs).splitlines()[2]
    assert " | +0.0, +1.0 | " in row


def test_scaling_summary_prints_no_negative_zero(bench_fit):
    # twice the samples at 0.04% less time per sample and pass: a change that rounds to zero
    rows = [{"samples": n, "steps": steps,
             "seconds_per_epoch": 1e-3 * n * (steps + 1) * (1 - 4e-4 * (n == 200))}
            for n in (100, 200) for steps in (1, 5, 10)]
    assert "by +0.0% at 1 step and +0.0% at 10 steps." in bench_fit.render_scaling(rows)


@pytest.mark.parametrize("setting, partial", [
    ("mnist-step", True), ("yeast", False), ("mnist-step-val", False)])
def test_partial_test_split_is_marked_above_its_table(summarize, setting, partial):
    by_setting = {name: [{**run, "eval_seconds": 1.0} for run in
                         real_setting(name, REFERENCE_ACCURACIES, seeds)]
                  for name, seeds in (("yeast", (0, 1)), ("mnist-step", (0,)),
                                      ("mnist-step-val", (0,)))}
    heading = summarize.section_heading(by_setting, setting)
    assert heading[0] == f"## {summarize.TITLES[setting]}"
    # The table follows the heading: the line must be its last paragraph.
    assert heading[-2].startswith("Partial:") is partial
    assert sum(line.startswith("Partial:") for line in heading) == partial


def test_readme_summary_waits_for_settings_that_have_not_run(summarize):
    runs = real_setting("yeast", {"AT-BSL": (60, 55), "AT-BSL+RobustLT": (60, 50),
                                  "AT-DRW": (50, 60)})
    text = summarize.readme_summary({"yeast": runs[:1]})
    assert text.startswith("Not run yet on every method and seed: page-blocks, yeast,")
    assert "| setting |" not in text


@pytest.fixture(scope="module")
def bench_methods():
    return load_script("bench_methods")


@pytest.mark.parametrize("epochs, expected", [(8, {"reweight_epoch": 6, "epsilon_warmup": 1}),
                                              (2, {"reweight_epoch": 1, "epsilon_warmup": 1})])
def test_shortened_training_keeps_both_phases_of_the_deferred_methods(study, epochs, expected):
    params = {"max_epochs": 40, "reweight_epoch": 30, "epsilon_warmup": 4, "lr": 0.1}
    assert study.shortened(params, 40, epochs) == {**params, "max_epochs": epochs, **expected}


def test_fraction_of_training_is_not_scaled(study):
    params = {"max_epochs": 40, "reweight_epoch": 0.75, "epsilon_warmup": 0.1}
    assert study.shortened(params, 40, 8) == {**params, "max_epochs": 8}


def test_fit_time_pairs_run_end_to_end_and_add_to_the_file(bench_methods, tmp_path):
    output = tmp_path / "pairs.json"
    for method, repeats in (("SRAT", 2), ("AT", 1)):  # the second run keeps the first's pairs
        bench_methods.main(["--settings", "yeast", "--methods", method, "--epochs", "2",
                            "--repeats", str(repeats), "--output", str(output)])
    rows = json.loads(output.read_text())["settings"]["yeast"]
    assert [len(rows[m]["ratios"]) for m in ("SRAT", "AT")] == [2, 1]
    assert rows["SRAT"]["ratios"] == pytest.approx(
        [s / r for s, r in zip(rows["SRAT"]["seconds"], rows["SRAT"]["reference_seconds"])])
    assert rows["AT"]["repeats"] == 1


def test_fit_time_pairs_record_a_command_that_reruns_them(bench_methods, tmp_path):
    argv = ["--settings", "yeast", "--methods", "SRAT, weights-normalised", "--epochs", "2",
            "--repeats", "1", "--output", str(tmp_path / "pairs.json")]
    bench_methods.main(argv)
    row = json.loads((tmp_path / "pairs.json").read_text())["settings"]["yeast"][argv[3]]
    assert shlex.split(row["command"]) == ["python", "benchmarks/bench_methods.py", *argv]


def test_fit_time_pairs_refuse_a_method_the_setting_lacks(bench_methods, tmp_path):
    with pytest.raises(ValueError, match="no methods"):
        bench_methods.measure("yeast", 2, 1, ["SRAT-LDAM"])


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check")


@pytest.fixture
def tiny_images(gpu_check):
    """``--tiny``'s sizes and its training images, on the CPU."""
    sizes = gpu_check.SIZES["tiny"]
    return sizes, gpu_check.synthetic_data(sizes["n_train"], sizes["image_size"],
                                           torch.device("cpu"))


def test_gpu_check_runs_its_code_path_on_the_cpu(tmp_path):
    output = tmp_path / "gpu-check.md"
    load_script("gpu_check").main(["--tiny", "--skip-tests", "--precisions", "fp32",
                                   "--memory-formats", "contiguous", "--repeats", "1",
                                   "--output", str(output)])
    text = output.read_text()
    rows = [line.split(" | ") for line in text.splitlines()
            if line.startswith(("| plain loop", "| estimator"))]
    assert [row[0] for row in rows] == ["| plain loop, AT", "| estimator, AT",
                                        "| estimator, SRAT"]
    assert all(float(row[4]) > 0 for row in rows)  # samples/s, not an error message
    assert [row[7] for row in rows] == ["-", "2", "2"]  # host reads per training batch
    assert "AutoAttack (standard, 2 iterations, 10 queries) on 4 images" in text
    assert "one target at a time" in text and "all targets together" in text


def test_snapshot_benchmark_times_both_ways(tmp_path):
    output = tmp_path / "snapshot.json"
    load_script("bench_snapshot").main(["--repeats", "1", "--snapshots", "1", "--output",
                                        str(output)])
    record = json.loads(output.read_text())
    assert set(record["networks"]) == {"resnet18_cifar", "SmallCNN"}
    for row in record["networks"].values():
        assert set(row["ms"]) == {"deep copy", "buffers refilled"}
        assert all(ms > 0 for ms in row["ms"].values()) and row["ratio"] > 0


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--snapshots", "0"]])
def test_snapshot_benchmark_refuses_an_empty_run(argv):
    with pytest.raises(SystemExit):
        load_script("bench_snapshot").main(argv)


def test_autoattack_speed_keeps_each_finished_round(monkeypatch):
    # A machine held for a fixed time may stop the benchmark in its last round.
    bench = load_script("bench_autoattack")
    monkeypatch.setattr(bench, "available_ways", lambda model: dict.fromkeys(
        ("members over survivors", "torchattacks"), lambda model, X, y, epsilon, norm: y))
    records = []
    bench.run("linf", n_test=30, max_epochs=1, repeats=2, on_round=records.append)
    assert [record["repeats"] for record in records] == [1, 2]
    assert [len(way["seconds_runs"]) for way in records[-1]["ways"].values()] == [2, 2]


def test_gpu_check_starts_no_configuration_after_its_time_limit(tmp_path):
    output = tmp_path / "gpu-check.md"
    load_script("gpu_check").main(["--tiny", "--skip-tests", "--time-limit", "0",
                                   "--output", str(output)])
    text = output.read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| plain", "| estimator"))]
    assert len(rows) == 3 * 2 * 2  # implementations x precisions x memory formats
    assert all("not run (--time-limit)" in row for row in rows)
    assert "AutoAttack" not in text  # no eager float32 model to attack


@pytest.mark.parametrize("counts, shown", [([1, 1, 1], "1"), ([7, 4, 4, 4, 4], "4 (at most 7)"),
                                           (None, "-")])
def test_gpu_check_shows_the_typical_batch_and_the_worst(counts, shown):
    # The first batch initialises libraries and the optimizer's state: its count is no
    # batch's usual one.
    assert load_script("gpu_check").per_batch(counts) == shown


def test_gpu_check_hands_over_the_rows_after_each_configuration(gpu_check, tiny_images):
    sizes, (X, y) = tiny_images
    seen = []
    gpu_check.training_rows(X, y, torch.device("cpu"), sizes, 1, (False,), ["fp32"],
                            ["contiguous"], on_rows=lambda rows: seen.append(len(rows)))
    assert seen == [3]


def test_gpu_check_times_autoattack_before_the_next_configuration(gpu_check, tiny_images):
    # A run stopped part-way (the lease's end, say) keeps the AutoAttack timing.
    sizes, (X, y) = tiny_images
    events = []
    gpu_check.training_rows(X, y, torch.device("cpu"), sizes, 1, (False,), ["fp32"],
                            ["contiguous", "channels-last"],
                            on_rows=lambda rows: events.append(len(rows)),
                            on_model=lambda clf: events.append(type(clf).__name__))
    assert events == [3, "SRATClassifier", 6]


def test_gpu_check_profiles_the_first_configuration(tmp_path):
    output, profile = tmp_path / "gpu-check.md", tmp_path / "profile.txt"
    load_script("gpu_check").main(["--tiny", "--skip-tests", "--precisions", "fp32",
                                   "--memory-formats", "contiguous", "--repeats", "1",
                                   "--output", str(output), "--profile", str(profile)])
    text = profile.read_text()
    headers = [line for line in text.splitlines() if line.startswith("## ")]
    assert [line.split(":")[0] for line in headers] == [
        "## plain loop, AT", "## estimator, AT", "## estimator, SRAT"]
    assert all("one epoch of 10 samples" in line for line in headers)  # 10 batches of 10 asked
    assert "aten::convolution" in text  # the operators, not an empty table


def test_gpu_check_profiles_the_batches_asked_for(gpu_check, tiny_images, tmp_path):
    sizes, (X, y) = tiny_images
    runner = gpu_check.PlainLoop(torch.device("cpu"), "fp32", False, False, sizes, (X, y))
    gpu_check.profile_epochs({"plain": runner}, torch.device("cpu"), tmp_path / "p.txt", 4)
    assert "## plain: one epoch of 4 samples" in (tmp_path / "p.txt").read_text()
    assert runner.data[0] is X  # the whole data back for the rows that follow


def test_gpu_check_refuses_a_negative_profile_size():
    with pytest.raises(SystemExit):
        load_script("gpu_check").main(["--tiny", "--profile-batches", "-1"])


@pytest.mark.parametrize("files, site", [
    ([("skorch/net.py", 10, "fit"), ("srat_sklearn/estimator.py", 20, "train_step"),
      ("torch/optim/sgd.py", 30, "step")], "srat_sklearn/estimator.py:20 (train_step)"),
    ([("skorch/net.py", 10, "fit"), ("torch/nn/modules/module.py", 30, "__call__")],
     "skorch/net.py:10 (fit)"),
    ([("torch/nn/modules/module.py", 30, "__call__")], "torch"),
    ([("script.py", 5, "<module>")], "script.py:5 (<module>)"),
])
def test_gpu_check_names_the_call_site_of_a_synchronisation(files, site):
    import traceback
    stack = [traceback.FrameSummary(str(Path("/site-packages", name)), line, function,
                                    lookup_line=False) for name, line, function in files]
    assert load_script("gpu_check").call_site(stack) == site


@pytest.fixture(scope="module")
def replace_block():
    return load_script("_docs").replace_block


@pytest.mark.parametrize("block", ["", "old table\n", "old\ntable\n"])
def test_replace_block_fills_empty_and_full_blocks(replace_block, block):
    text = f"intro\n<!-- t:start -->\n{block}<!-- t:end -->\noutro\n"
    assert replace_block(text, "t", "new table") == \
        "intro\n<!-- t:start -->\nnew table\n<!-- t:end -->\noutro\n"


def test_replace_block_needs_its_markers(replace_block):
    with pytest.raises(ValueError, match="no <!-- t:start/end --> markers"):
        replace_block("no markers here", "t", "table")


def test_gpu_check_counts_each_synchronisation_at_its_call_site():
    # CUDA's sync debug mode warns from inside the synchronising operation; a CPU has none,
    # so the warning is given by hand, from this test's own line.
    counter = load_script("gpu_check").SyncsPerBatch().initialize()
    counter._batch_syncs = 0
    for message in ("called a synchronizing CUDA operation", "an unrelated warning"):
        counter.note_warning(message, UserWarning, __file__, 1)
    assert counter._batch_syncs == 1
    [(site, count)] = counter.sources.items()
    assert site.startswith("test_benchmarks.py:") and site.endswith(
        "(test_gpu_check_counts_each_synchronisation_at_its_call_site)") and count == 1


def test_gpu_check_reports_a_compile_fallback_instead_of_its_speed(gpu_check, tiny_images):
    sizes, (X, y) = tiny_images
    runner = gpu_check.EstimatorEpochs(torch.device("cpu"), "fp32", False, True, sizes,
                                       (X.numpy(), y.numpy()), method="AT")
    def broken_backend(graph, example_inputs):
        raise RuntimeError("this backend cannot compile")

    runner.clf.set_params(compile__backend=broken_backend)
    runner.syncs.max_batches = 0  # Dynamo runs eagerly under the counter's dispatch mode
    with pytest.warns(UserWarning, match="compile=True: torch.compile failed"):
        runner.epoch()
    assert gpu_check.compile_fallback(runner).startswith("ran eagerly, compile failed: ")
    assert "this backend cannot compile" in gpu_check.compile_fallback(runner)
    assert gpu_check.compile_fallback(gpu_check.PlainLoop(
        torch.device("cpu"), "fp32", False, False, sizes, (X, y))) is None


@pytest.mark.parametrize("modes, compiled", [(["compiled"], {"yes"}), (["eager"], {"no"}),
                                             ([], {"no"})])
def test_gpu_check_runs_the_modes_asked_for(tmp_path, modes, compiled):
    # A short lease runs the compiled rows alone; --tiny defaults to eager.
    output = tmp_path / "gpu-check.md"
    load_script("gpu_check").main(["--tiny", "--skip-tests", "--time-limit", "0", "--output",
                                   str(output)] + (["--modes", *modes] if modes else []))
    rows = [line.split(" | ") for line in output.read_text().splitlines()
            if line.startswith(("| plain", "| estimator"))]
    assert len(rows) == 3 * 2 * 2 and {row[1] for row in rows} == compiled


@pytest.mark.parametrize("mode, shown", [("default", "yes"),
                                         ("max-autotune-no-cudagraphs",
                                          "yes, max-autotune-no-cudagraphs")])
def test_gpu_check_compiles_both_sides_in_the_mode_asked_for(tmp_path, monkeypatch, mode,
                                                             shown):
    # The GPU is launch-bound at this size: CUDA graphs (reduce-overhead) are the next try.
    gpu_check = load_script("gpu_check")
    modes = []
    compile = torch.compile

    def recording(target, **options):
        modes.append(options.get("mode"))
        return compile(target, **{**options, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", recording)
    output = tmp_path / "gpu-check.md"
    gpu_check.main(["--tiny", "--skip-tests", "--modes", "compiled", "--precisions", "fp32",
                    "--memory-formats", "contiguous", "--repeats", "1", "--compile-mode", mode,
                    "--output", str(output)])
    rows = [line.split(" | ") for line in output.read_text().splitlines()
            if line.startswith(("| plain", "| estimator"))]
    assert {row[1] for row in rows} == {shown} and all(float(row[4]) > 0 for row in rows)
    # The plain loop's module, then each estimator's training forward pass and ascent step.
    assert modes == [None if mode == "default" else mode] * 5


@pytest.mark.parametrize("n_samples, expected", [(10_000, 10 * 128 + 16), (5120, 10 * 128),
                                                 (1000, 1000)])
def test_gpu_check_warms_up_on_ten_batches_and_the_last_batch_size(gpu_check, n_samples,
                                                                    expected):
    # The last, smaller batch of an epoch makes a compiled runner compile once more: the
    # warm-up ends with one of its size, so that no timed epoch compiles.
    assert gpu_check.warm_up_size(n_samples, 128) == expected


def test_gpu_check_warm_up_sees_only_its_samples(gpu_check, tiny_images):
    sizes, (X, y) = tiny_images
    seen = []

    class Runner:
        data = (X, y)

        def epoch(self):
            seen.append(len(self.data[0]))

    gpu_check.measure({"runner": Runner()}, len(X), torch.device("cpu"), 2, warm_up_samples=4)
    assert seen == [4, len(X), len(X)]


def test_gpu_check_reports_a_runner_failing_in_a_timed_epoch(gpu_check, tiny_images):
    # Once, a compiled SRAT failed after its warm-up and took the whole run down with it.
    sizes, (X, y) = tiny_images

    class Runner:
        data = (X, y)

        def __init__(self, fail_after):
            self.epochs, self.fail_after = 0, fail_after

        def epoch(self):
            self.epochs += 1
            if self.epochs > self.fail_after:
                raise IndexError("list index out of range")

    runners = {"sound": Runner(fail_after=9), "failing": Runner(fail_after=1)}
    speed, _, errors, _ = gpu_check.measure(runners, len(X), torch.device("cpu"), 3)
    assert set(speed) == {"sound"} and runners["sound"].epochs == 4
    assert errors == {"failing": "IndexError: list index out of range"}
    assert runners["failing"].epochs == 2  # not tried again after it failed


def test_gpu_check_compiled_srat_runs_after_the_compiled_plain_loop(gpu_check, tiny_images):
    # The plain loop's torch.compile(model) caches graphs of the network class's forward
    # without the separation term's feature hook; the estimator's compiled SRAT once picked
    # them up and found no features (IndexError), in every compiled row of the GPU check.
    sizes, (X, y) = tiny_images
    cpu = torch.device("cpu")
    plain = gpu_check.PlainLoop(cpu, "fp32", False, False, sizes, (X, y))
    plain.model = torch.compile(plain.model, backend="eager")
    plain.epoch()
    srat = gpu_check.EstimatorEpochs(cpu, "fp32", False, True, sizes, (X.numpy(), y.numpy()),
                                     method="SRAT")
    srat.syncs.max_batches = 0  # dynamo runs eagerly under the counter's dispatch mode
    srat.clf.set_params(compile__backend="eager")
    srat.epoch()
    assert gpu_check.compile_fallback(srat) is None and np.isfinite(
        srat.clf.history[-1, "train_loss"])


@pytest.mark.parametrize("argv, message", [
    (["--setting", "no-such-setting"], "no settings ['no-such-setting']"),
    (["--setting", "tabular", "--methods", "AT", "SRAT,TRADES"],
     "tabular has no methods ['SRAT,TRADES']"),
])
def test_study_names_an_unknown_setting_or_method_before_running(study, tmp_path, capsys,
                                                                 argv, message):
    output = tmp_path / "runs.jsonl"
    with pytest.raises(SystemExit):
        study.main([*argv, "--seeds", "0", "--output", str(output)])
    assert message in capsys.readouterr().err
    assert not output.exists()
