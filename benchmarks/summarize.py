"""Turn the study's JSON lines into ``docs/results.md`` and its plots.

    python benchmarks/summarize.py [--runs benchmarks/runs.jsonl] [--output docs/results.md]

Every number on the page comes from the runs file; nothing is typed by hand.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

COLUMNS = (("clean", "well"), ("clean", "under"), ("robust", "well"), ("robust", "under"),
           ("robust", "overall"))
REFERENCE = "AT-DRW"
REFERENCES = {"fast": "SRAT PGD-10"}
TITLES = {
    "step": "Step imbalance (digits, classes 5-9 keep 1/10)",
    "step-even": "Step imbalance, even classes under-represented",
    "exp": "Exponential imbalance (digits, ratio 20)",
    "tabular": "Tabular: breast cancer, malignant class cut to 1/10",
    "fraud": "Fraud-like table: mixed column types, only amount and hour perturbable",
    "lambda": "SRAT as lambda_sep varies (step setting)",
    "fast": "Cheaper training attacks (step setting, SRAT)",
    "tradeoff": "Trade-off: class weight of the under-represented classes, from epoch 0",
}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def value(run, kind, group):
    return 100 * run["groups"][group][kind]


def mean_std(values):
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.1f} ± {std:.1f}"


def by_method(runs):
    grouped = defaultdict(dict)
    for run in runs:
        grouped[run["method"]][run["seed"]] = run
    return grouped


def table(runs):
    grouped = by_method(runs)
    lines = ["| method | seeds | " + " | ".join(f"{k} {g}" for k, g in COLUMNS)
             + " | lowest clean overall | collapsed seeds |", "|---" * (len(COLUMNS) + 4) + "|"]
    for method, seeds in grouped.items():
        cells = [mean_std([value(r, k, g) for r in seeds.values()]) for k, g in COLUMNS]
        clean = [value(r, "clean", "overall") for r in seeds.values()]
        # Collapsed: clean accuracy less than a quarter of the way from chance to 100%, as
        # with dead penultimate features.
        chance = 100 / len(next(iter(seeds.values()))["train_counts"])
        collapsed = sum(c <= chance + (100 - chance) / 4 for c in clean)
        lines.append(f"| {method} | {len(seeds)} | " + " | ".join(cells)
                     + f" | {min(clean):.1f} | {collapsed} |")
    return "\n".join(lines)


def paired(runs, reference):
    grouped = by_method(runs)
    if reference not in grouped:
        return ""
    base = grouped[reference]
    lines = [f"Paired differences to {reference} (same seeds; mean ± std over seeds, points; "
             "fit time as a ratio):", "",
             "| method | seeds | robust well | robust under | robust overall | clean under | "
             "fit time |",
             "|---|---|---|---|---|---|---|"]
    for method, seeds in grouped.items():
        common = sorted(set(seeds) & set(base))
        if method == reference or not common:
            continue
        cells = []
        for kind, group in (("robust", "well"), ("robust", "under"), ("robust", "overall"),
                            ("clean", "under")):
            cells.append(mean_std([value(seeds[s], kind, group) - value(base[s], kind, group)
                                   for s in common]))
        times = [seeds[s]["fit_seconds"] / base[s]["fit_seconds"] for s in common]
        cells.append(f"{np.mean(times):.2f}x")
        lines.append(f"| {method} | {len(common)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def positive_share(runs, batch_size=64):
    """Chance that a training sample of an under-represented class has another sample of its
    class in a random batch (hypergeometric), averaged over those classes; with the clean view
    of ``separation_views="adversarial+clean"`` it is 1."""
    run = runs[0]
    counts = np.asarray(run["train_counts"], dtype=float)
    total = counts.sum()
    shares = []
    for c in run["under_represented"]:
        others = total - 1
        same = counts[c] - 1
        # P(no other sample of class c among the batch_size - 1 other draws)
        none = np.prod([(others - same - i) / (others - i) for i in range(batch_size - 1)])
        shares.append(1 - none)
    return 100 * float(np.mean(shares))


def target_line(runs, under=36.0, well=80.0):
    """Which methods reach the target of the evidence issue on the step setting."""
    reached = []
    for method, seeds in by_method(runs).items():
        mean_under = np.mean([value(r, "robust", "under") for r in seeds.values()])
        mean_well = np.mean([value(r, "robust", "well") for r in seeds.values()])
        if mean_under >= under and mean_well >= well:
            reached.append(f"{method} ({mean_well:.1f} / {mean_under:.1f})")
    return (f"Target: robust under >= {under:g} with robust well >= {well:g} (means over "
            f"seeds). Reached by: {', '.join(reached) if reached else 'none'}.")


def tradeoff_plot(runs, path):
    families = defaultdict(list)
    for method, seeds in by_method(runs).items():
        family, _, weight = method.partition(" w=")
        under = np.mean([value(r, "robust", "under") for r in seeds.values()])
        well = np.mean([value(r, "robust", "well") for r in seeds.values()])
        families[family].append((float(weight), under, well))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for family, points in families.items():
        points.sort()
        ax.plot([p[1] for p in points], [p[2] for p in points], marker="o", label=family)
        for weight, under, well in points:
            ax.annotate(f"{weight:g}", (under, well), textcoords="offset points", xytext=(4, 4),
                        fontsize="small")
    ax.set_xlabel("robust accuracy, under-represented classes (%)")
    ax.set_ylabel("robust accuracy, well-represented classes (%)")
    ax.set_title("Class weight of the rare classes (labels) vs robust accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def theory_section(theory):
    """The Gaussian-mixture analysis: closed-form and measured price of reweighting."""
    lines = [
        "## The theory: price of reweighting on the Gaussian mixture",
        "",
        f"`python examples/theory_gaussian_mixture.py --json benchmarks/theory.json --plot "
        f"docs/results-theory.png`: binary mixture, ratio {theory['ratio']:g}, "
        f"{theory['n_features']} features, {theory['n_train']} training samples, linear "
        f"models trained with SRATClassifier (AT: L-inf eps {theory['epsilon']:g}). The price "
        "is the majority error added per point of minority error removed by balanced "
        "reweighting (robust errors for AT); the example's docstring derives the closed form.",
        "",
        "| mu | method | error % major/minor, plain | error % major/minor, reweighted | "
        "price measured | price closed form | price climb -d price/d mu |",
        "|---|---|---|---|---|---|---|",
    ]
    means = sorted({row["mean"] for row in theory["rows"]})
    for row in theory["rows"]:
        slope = theory["slopes"][row["method"]][means.index(row["mean"])]
        plain, weighted = row["errors_plain"], row["errors_reweighted"]
        lines.append(f"| {row['mean']:g} | {row['method']} | {100 * plain[0]:.1f} / "
                     f"{100 * plain[1]:.1f} | {100 * weighted[0]:.1f} / "
                     f"{100 * weighted[1]:.1f} | {row['price_measured']:.3f} | "
                     f"{row['price_closed_form']:.3f} | {slope:.3f} |")
    return lines + ["", "![price of reweighting](results-theory.png)", ""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(Path(__file__).with_name("runs.jsonl")))
    parser.add_argument("--output", default=str(Path(__file__).parents[1] / "docs" /
                                                "results.md"))
    parser.add_argument("--theory", default=str(Path(__file__).with_name("theory.json")),
                        help="figures of examples/theory_gaussian_mixture.py")
    args = parser.parse_args()
    runs = load(args.runs)
    output = Path(args.output)
    by_setting = defaultdict(list)
    for run in runs:
        by_setting[run["setting"]].append(run)
    machine = runs[0]["machine"] if runs else {}
    parts = [
        "# Results",
        "",
        "Made by `python benchmarks/study.py` (one JSON line per run in `benchmarks/runs.jsonl`) "
        "and `python benchmarks/summarize.py`, which wrote this page: every number comes from "
        "the runs file. Accuracy in %, mean ± standard deviation over seeds; robust accuracy "
        "under L-inf PGD-20. \"well\" and \"under\" are the mean per-class accuracies of the "
        "well- and under-represented classes. The settings are described in "
        "`benchmarks/study.py`.",
        "",
        f"Machine: {machine.get('cpu', '?')}, torch {machine.get('torch', '?')} with "
        f"{machine.get('torch_threads', '?')} threads, srat-sklearn "
        f"{machine.get('srat_sklearn', '?')}.",
        "",
    ]
    order = [s for s in TITLES if s in by_setting] + [s for s in by_setting if s not in TITLES]
    for setting in order:
        setting_runs = by_setting[setting]
        seeds = sorted({r["seed"] for r in setting_runs})
        minutes = sum(r["fit_seconds"] + r["eval_seconds"] for r in setting_runs) / 60
        parts += [f"## {TITLES.get(setting, setting)}", "",
                  f"`python benchmarks/study.py --setting {setting} --seeds "
                  f"{' '.join(map(str, seeds))}`: {len(setting_runs)} runs, "
                  f"{minutes:.0f} minutes.", "", table(setting_runs), ""]
        if setting == "tradeoff":
            image = output.with_name("results-tradeoff.png")
            tradeoff_plot(setting_runs, image)
            parts += [f"![trade-off]({image.name})", ""]
        else:
            comparison = paired(setting_runs, REFERENCES.get(setting, REFERENCE))
            if comparison:
                parts += [comparison, ""]
            if setting == "step":
                parts += [target_line(setting_runs), ""]
            if setting not in ("tabular", "fraud", "fast"):
                parts += [f"In a batch of 64, a training sample of an under-represented class "
                          f"has another sample of its class to be pulled towards in "
                          f"{positive_share(setting_runs):.0f}% of the batches on average; the "
                          "others are left out of the paper's separation loss as anchors "
                          "(SRAT+clean gives each one its clean original as a positive).", ""]
    if Path(args.theory).exists():
        parts += theory_section(json.loads(Path(args.theory).read_text()))
    output.write_text("\n".join(parts))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
