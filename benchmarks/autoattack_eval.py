"""Standard AutoAttack against its members, PGD-20 and torchattacks, on two digits models.

    python benchmarks/autoattack_eval.py [--models suite study] [--norms linf l2]
    python benchmarks/autoattack_eval.py --write-docs

The first form evaluates each model under each norm and appends one JSON line per run to
``benchmarks/autoattack.jsonl`` (runs already there are skipped): clean and robust accuracy,
overall, per class and per group, and the time of every attack. The second regenerates the
tables between the ``autoattack`` markers of ``docs/reliability.md`` and ``README.md`` from
that file; nothing in them is typed by hand.

- Models: ``suite`` is the test suite's model (SRAT on step-imbalanced digits, 15 epochs, the
  demo's SGD recipe, seed 0); ``study`` is ``benchmarks/study.py``'s ``step`` SRAT model of
  seed 0 (30 epochs, learning rate x0.1 at epoch 20). Both are evaluated on the 540 images of
  the balanced test split, at L-inf eps 0.2 and L2 eps 1.0.
- Attacks: PGD-20 and each member of standard AutoAttack alone (APGD-CE, APGD-T, FAB-T,
  Square; 100 iterations, 9 target classes, 5000 queries), then the ensemble.
- torchattacks (the ``bench`` extra): its APGD, APGDT, FAB (multi-targeted) and Square with
  the same iterations, targets and queries (Square without its rescaled schedule, as in
  AutoAttack). A sample counts as robust only if it is classified correctly both clean and
  attacked, for every attack.
- The time of one training epoch of the suite model is recorded with every run, to compare
  machines.
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from srat_sklearn import SRATClassifier
from srat_sklearn.attacks import NORM_NAMES, describe_attack
from srat_sklearn.datasets import DIGITS_UNDER_REPRESENTED as UNDER
from srat_sklearn.datasets import load_imbalanced_digits
from srat_sklearn.methods import DIGITS_RECIPE
from srat_sklearn.metrics import robust_predict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, rounded, write_docs  # noqa: E402
from _provenance import describe_cpu, machine  # noqa: E402

EPSILON = {"linf": 0.2, "l2": 1.0}
MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square")
ATTACK_LABELS = {"pgd-20": "PGD-20", "apgd-ce": "APGD-CE", "apgd-t": "APGD-T",
                 "fab-t": "FAB-T", "square": "Square", "autoattack": "AutoAttack"}
MARKERS = {ROOT / "docs" / "reliability.md": "autoattack-tables",
           ROOT / "README.md": "autoattack-summary"}
#: The budgets of every attack; ``--smoke`` shrinks them (and the data) to check the script.
BUDGET = {"n_steps": 100, "n_targets": 9, "n_queries": 5000, "max_epochs": None,
          "n_test": None}
SMOKE = {"n_steps": 2, "n_targets": 2, "n_queries": 5, "max_epochs": 1, "n_test": 30}


def suite_model():
    return SRATClassifier(**DIGITS_RECIPE, max_epochs=15, reweight_epoch=10, random_state=0,
                          verbose=0)


def study_model():
    spec = importlib.util.spec_from_file_location("study", HERE / "study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    _, _, recipe, methods = study.settings()["step"]
    return study.build_model("step", recipe, methods["SRAT"], seed=0)[0]


MODELS = {"suite": suite_model, "study": study_model}


def epoch_seconds(X_train, y_train):
    """The time of one epoch of the suite model's training: a yardstick of the machine."""
    clf = suite_model().set_params(max_epochs=2, reweight_epoch=1)
    clf.fit(X_train, y_train)
    return float(np.mean([row["dur"] for row in clf.history]))


def summary(hits, y):
    return {"robust": float(hits.mean()),
            "per_class": [float(hits[y == c].mean()) for c in range(10)],
            "groups": {"well": float(np.mean([hits[y == c].mean() for c in range(10)
                                              if c not in UNDER])),
                       "under": float(np.mean([hits[y == c].mean() for c in UNDER]))}}


def torchattacks_runs(module, X, y, epsilon, norm, clean_hits):
    """torchattacks' members at AutoAttack's settings, or None without the bench extra."""
    try:
        import torchattacks
    except ImportError:
        return None
    norm_name = {"linf": "Linf", "l2": "L2"}[norm]
    common = dict(norm=norm_name, eps=epsilon, seed=0)
    steps = BUDGET["n_steps"]
    attacks = {
        "apgd-ce": torchattacks.APGD(module, steps=steps, loss="ce", **common),
        "apgd-t": torchattacks.APGDT(module, steps=steps, n_classes=10, **common),
        "fab-t": torchattacks.FAB(module, steps=steps, multi_targeted=True, n_classes=10,
                                  **common),
        "square": torchattacks.Square(module, n_queries=BUDGET["n_queries"],
                                      resc_schedule=False, **common),
    }
    attacks["apgd-t"].n_target_classes = attacks["fab-t"].n_target_classes = BUDGET["n_targets"]
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    runs = {}
    for name, attack in attacks.items():
        started = time.perf_counter()
        X_adv = torch.cat([attack(X_t[i:i + 250], y_t[i:i + 250]) for i in range(0, len(y), 250)])
        with torch.no_grad():
            hits = module(X_adv).argmax(1).numpy() == y
        runs[name] = {**summary(hits & clean_hits, y),
                      "seconds": round(time.perf_counter() - started, 1)}
        print(f"  torchattacks {name}: {100 * runs[name]['robust']:.1f}% "
              f"({runs[name]['seconds']:.0f} s)", flush=True)
    return runs


def evaluate(name, norm, data):
    X_train, X_test, y_train, y_test = data
    X_test, y_test = X_test[:BUDGET["n_test"]], y_test[:BUDGET["n_test"]]
    torch.manual_seed(0)
    model = MODELS[name]()
    if BUDGET["max_epochs"]:
        model.set_params(max_epochs=BUDGET["max_epochs"])
    model.fit(X_train, y_train)
    epsilon = EPSILON[norm]
    clean_hits = model.predict(X_test) == y_test
    record = {"model": name, "norm": norm, "epsilon": epsilon, "n_test": int(len(y_test)),
              "clean": summary(clean_hits, y_test), "attacks": {}}
    budgets = {"apgd-ce": ["n_steps"], "apgd-t": ["n_steps", "n_targets"],
               "fab-t": ["n_steps", "n_targets"], "square": ["n_queries"],
               "autoattack": ["n_steps", "n_targets", "n_queries"]}
    runs = {"pgd-20": dict(attack="pgd", n_steps=20),
            **{m: dict(attack=m, **{k: BUDGET[k] for k in budgets[m]})
               for m in (*MEMBERS, "autoattack")}}
    for label, kwargs in runs.items():
        started = time.perf_counter()
        hits = robust_predict(model, X_test, y_test, epsilon=epsilon, norm=norm, verbose=0,
                              **kwargs) == y_test
        record["attacks"][label] = {**summary(hits, y_test),
                                    "seconds": round(time.perf_counter() - started, 1)}
        print(f"  {label}: {100 * hits.mean():.1f}% "
              f"({record['attacks'][label]['seconds']:.0f} s)", flush=True)
    record["autoattack_settings"] = describe_attack(model.attack_settings(
        "autoattack", epsilon=epsilon, norm=norm, **{k: BUDGET[k] for k in budgets["autoattack"]}))
    record["torchattacks"] = torchattacks_runs(model.module_.eval(), X_test, y_test, epsilon,
                                               norm, clean_hits)
    record["epoch_seconds"] = round(epoch_seconds(X_train, y_train), 3)
    record["machine"] = machine()
    return record


# ----------------------------------------------------------------- the tables in the docs

def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pct(value):
    return f"{100 * value:.1f}"


def attack_table(record):
    theirs = record.get("torchattacks") or {}
    lines = ["| attack | robust | well | under | time (s) | torchattacks | its time (s) |",
             "|---|---|---|---|---|---|---|"]
    for label, run in record["attacks"].items():
        other = theirs.get(label)
        their_cells = f"{pct(other['robust'])} | {other['seconds']:.0f}" if other else "- | -"
        lines.append(f"| {ATTACK_LABELS[label]} | {pct(run['robust'])} | "
                     f"{pct(run['groups']['well'])} | {pct(run['groups']['under'])} | "
                     f"{run['seconds']:.0f} | {their_cells} |")
    return "\n".join(lines)


def per_class_table(record):
    attacks = record["attacks"]
    lines = ["| class | " + " | ".join(ATTACK_LABELS[a] for a in attacks) + " |",
             "|---" * (len(attacks) + 1) + "|"]
    for c in range(10):
        cells = [pct(run["per_class"][c]) for run in attacks.values()]
        lines.append(f"| {c}{' (under)' if c in UNDER else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks(record):
    """What the tables must show: AutoAttack at least as strong as each attack, per class
    too, and our members at most 0.5 points above torchattacks'."""
    attacks = record["attacks"]
    ours = attacks["autoattack"]
    overall = all(ours["robust"] <= run["robust"] + 1e-9 for run in attacks.values())
    per_class = sum(ours["per_class"][c] > run["per_class"][c] + 1e-9
                    for run in attacks.values() for c in range(10))
    theirs = record.get("torchattacks") or {}
    gaps = {m: 100 * (attacks[m]["robust"] - theirs[m]["robust"]) for m in theirs}
    return overall, per_class, gaps


def time_ratios(record):
    """torchattacks' time over ours, member by member (each alone on the test images)."""
    theirs = record.get("torchattacks") or {}
    return {m: theirs[m]["seconds"] / record["attacks"][m]["seconds"] for m in theirs
            if record["attacks"][m]["seconds"] > 0}


def render_reliability(records):
    parts = []
    for record in records:
        overall, per_class, gaps = checks(record)
        norm = NORM_NAMES[record["norm"]]
        gap_text = ", ".join(f"{ATTACK_LABELS[m]} {rounded(g, 1):+.1f}"
                             for m, g in gaps.items())
        ratio_text = ", ".join(f"{ATTACK_LABELS[m]} {r:.2f}x"
                               for m, r in time_ratios(record).items())
        parts += [
            f"**{record['model']} model, {norm}, epsilon {record['epsilon']:g}** "
            f"(clean {pct(record['clean']['robust'])}%, {record['n_test']} test images; "
            f"one training epoch took {record['epoch_seconds']:.2f} s on this machine, "
            f"{describe_cpu(record['machine'])}):", "",
            attack_table(record), "",
            f"AutoAttack at or below every attack overall: {'yes' if overall else 'NO'}; "
            f"(class, attack) pairs where it is above: {per_class}. Ours minus torchattacks, "
            f"in points: {gap_text or 'not run'}. torchattacks' time over ours: "
            f"{ratio_text or 'not run'}.", "",
            "<details><summary>Robust accuracy per class (%)</summary>", "",
            per_class_table(record), "", "</details>", ""]
    return "\n".join(parts).rstrip()


def render_summary(records):
    lines = ["| model | norm, epsilon | clean | PGD-20 | AutoAttack | well / under (AutoAttack) | "
             "AutoAttack time (s) |", "|---|---|---|---|---|---|---|"]
    for r in records:
        aa = r["attacks"]["autoattack"]
        lines.append(f"| {r['model']} | {r['norm']} {r['epsilon']:g} | "
                     f"{pct(r['clean']['robust'])} | {pct(r['attacks']['pgd-20']['robust'])} | "
                     f"{pct(aa['robust'])} | {pct(aa['groups']['well'])} / "
                     f"{pct(aa['groups']['under'])} | {aa['seconds']:.0f} |")
    return "\n".join(lines)


RENDERERS = {"autoattack-tables": render_reliability, "autoattack-summary": render_summary}


def generated_docs(runs_path):
    """``{path: text}`` of the files whose marked blocks the runs file determines."""
    records = load(runs_path)
    return {path: replace_block(path.read_text(), marker, RENDERERS[marker](records))
            for path, marker in MARKERS.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--norms", nargs="+", default=["linf", "l2"], choices=["linf", "l2"])
    parser.add_argument("--output", default=str(HERE / "autoattack.jsonl"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the tables of docs/reliability.md and README.md")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budgets, 30 test images and 1 epoch: checks the script only")
    args = parser.parse_args()
    output = Path(args.output)
    if args.smoke:
        BUDGET.update(SMOKE)
    if args.write_docs:
        write_docs(generated_docs(output), ROOT)
        return
    torch.set_num_threads(args.threads)
    done = {(r["model"], r["norm"]) for r in load(output)} if output.exists() else set()
    data = load_imbalanced_digits()
    for name in args.models:
        for norm in args.norms:
            if (name, norm) in done:
                continue
            print(f"{name} model, {norm}:", flush=True)
            record = evaluate(name, norm, data)
            with open(output, "a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
