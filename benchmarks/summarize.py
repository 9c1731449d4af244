"""Turn the study's JSON lines into ``docs/results.md`` and its plots.

    python benchmarks/summarize.py [--runs benchmarks/runs.jsonl] [--output docs/results.md]

Every number on the page comes from the runs file; nothing is typed by hand.
"""

import argparse
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import ttest_rel

from srat_sklearn._budgets import class_radius_factors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import replace_block, rounded  # noqa: E402

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
    "page-blocks": "Real data: page-blocks (UCI, 5 classes, 4913 down to 28)",
    "yeast": "Real data: yeast (UCI, 10 classes, 463 down to 5)",
    "hypothyroid": "Real data: hypothyroid (UCI, 3012 negative, 151 hypothyroid)",
    "page-blocks-val": "Validation: page-blocks, its training split only",
    "yeast-val": "Validation: yeast, its training split only",
    "hypothyroid-val": "Validation: hypothyroid, its training split only",
    "mnist-step-val": "Validation: MNIST-5k step, its training split only",
    "mnist-exp-val": "Validation: MNIST-5k exponential, its training split only",
    "mnist-step": "Real data: MNIST-5k, classes 5-9 keep 1/10",
    "mnist-exp": "Real data: MNIST-5k, exponential imbalance of ratio 50",
}
#: The real-data settings' reference (today's baseline), the library's default configuration,
#: and the reference of its time and of its common classes.
BASELINE, DEFAULT, TIME_REFERENCE = "AT-BSL", "SRAT, weights-normalised", "AT-DRW"
#: The reference with RobustLT's plug-ins at the library's mixing weight; its variants with
#: other weights are named ``f"{ROBUSTLT_MIX}{weight}"``.
ROBUSTLT = f"{BASELINE}+RobustLT"
ROBUSTLT_MIX = f"{ROBUSTLT}, mix "
#: The methods the target compares with: a setting is judged only once all of them ran.
TARGET_REFERENCES = (BASELINE, ROBUSTLT, TIME_REFERENCE)
VALIDATION_SUFFIX = "-val"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def value(run, kind, group):
    return 100 * run["groups"][group][kind]


def mean_std(values):
    values = np.asarray(values, dtype=float)
    if len(values) < 2:  # one seed has no spread to show
        return f"{rounded(values.mean(), 1):.1f}"
    return f"{rounded(values.mean(), 1):.1f} ± {values.std(ddof=1):.1f}"


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


def evaluated(run, attack):
    """The part of a run of one attack: ``"pgd-20"`` (the run itself) or ``"autoattack"``."""
    return run if attack == "pgd-20" else run[attack]


def accuracy(run, attack, group, kind="robust"):
    """Accuracy in % of a group: "rare" and "common" are the mean per-class accuracies of the
    under- and well-represented classes, "balanced" the mean over all classes."""
    part = evaluated(run, attack)
    if group == "balanced":
        return 100 * float(np.mean([c[kind] for c in part["per_class"].values()]))
    return 100 * part["groups"]["under" if group == "rare" else "well"][kind]


#: Balanced robust accuracy under PGD-20 (%) below which a run has no robustness left.
NO_ROBUSTNESS = 5.0


def collapsed(run):
    """Clean balanced accuracy less than a quarter of the way from chance to 100%, or balanced
    robust accuracy under PGD-20 below :data:`NO_ROBUSTNESS`."""
    chance = 100 / len(run["train_counts"])
    return (accuracy(run, "pgd-20", "balanced", "clean") <= chance + (100 - chance) / 4
            or accuracy(run, "pgd-20", "balanced") < NO_ROBUSTNESS)


def class_budgets_line(runs):
    """The training radii that RobustLT's class-aware budgets gave the rare and the common
    classes of these runs (from their class counts), per mixing weight, against the
    evaluation's radius."""
    mixed = [r for r in runs if r["params"].get("class_epsilon_mix")]
    if not mixed:
        return ""
    radii = defaultdict(lambda: {"rare": [], "common": []})
    for run in mixed:
        epsilon, rare = run["params"]["epsilon"], set(run["under_represented"])
        mix = run["params"]["class_epsilon_mix"]
        for index, factor in enumerate(class_radius_factors(run["train_counts"], mix)):
            radii[mix]["rare" if index in rare else "common"].append(epsilon * factor)

    def span(values):
        return f"{min(values):.3g}" + (f"-{max(values):.3g}"
                                       if max(values) - min(values) >= 5e-4 else "")

    trained = "; ".join(f"{mix:g}: the rare classes at epsilon {span(by_group['rare'])} and "
                        f"the common classes at {span(by_group['common'])}"
                        for mix, by_group in sorted(radii.items(), reverse=True))
    return (f"RobustLT's class-aware budgets trained, per `class_epsilon_mix`, {trained} (from "
            f"the training split's class counts); the evaluation attacks every class at "
            f"{mixed[0]['params']['epsilon']:g}.")


def real_table(runs):
    lines = ["| method | seeds | clean balanced | PGD-20 rare | PGD-20 common | PGD-20 balanced "
             "| AA rare | AA common | AA balanced | fit s (median) | collapsed seeds |",
             "|---" * 11 + "|"]
    for method, seeds in by_method(runs).items():
        cells = [mean_std([accuracy(r, "pgd-20", "balanced", "clean") for r in seeds.values()])]
        cells += [mean_std([accuracy(r, attack, group) for r in seeds.values()])
                  for attack in ("pgd-20", "autoattack") for group in ("rare", "common",
                                                                        "balanced")]
        fit = np.median([r["fit_seconds"] for r in seeds.values()])
        lines.append(f"| {method} | {len(seeds)} | " + " | ".join(cells)
                     + f" | {fit:.0f} | {sum(map(collapsed, seeds.values()))} |")
    return "\n".join(lines)


def difference(seeds, base, common, group, attack="autoattack"):
    """Paired differences in points, mean ± std and the two-sided paired t-test's p-value."""
    ours = [accuracy(seeds[s], attack, group) for s in common]
    theirs = [accuracy(base[s], attack, group) for s in common]
    differences = np.subtract(ours, theirs)
    cell = mean_std(differences)
    if len(common) < 2 or np.allclose(differences, differences[0]):
        # the same difference on every seed leaves the t statistic without a spread to
        # divide by: scipy's p of 0 would claim a certainty that two seeds cannot give
        return cell
    with warnings.catch_warnings():  # nearly equal differences: scipy warns, p stays valid
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = ttest_rel(ours, theirs).pvalue
    # two decimals would print a p below 0.005 as "p 0.00", a certainty no test gives
    return f"{cell} (p < 0.005)" if p_value < 0.005 else f"{cell} (p {p_value:.2f})"


def mean_difference(ours, theirs, group, attack="autoattack"):
    """The mean over the seeds both ran of ``ours`` minus ``theirs`` ({seed: run} each), in
    points."""
    shared = sorted(set(ours) & set(theirs))
    return float(np.mean([accuracy(ours[s], attack, group) - accuracy(theirs[s], attack, group)
                          for s in shared]))


def real_paired(runs):
    grouped = by_method(runs)
    base = grouped.get(BASELINE)
    if base is None:
        return ""
    lines = [f"Paired differences to {BASELINE} under AutoAttack (same seeds; mean ± std over "
             "seeds in points, two-sided paired t-test, none where every seed differs by the "
             "same amount); fit time as the median over seeds of the ratio to "
             f"{TIME_REFERENCE}'s run of the same seed, made minutes to hours apart (the target "
             "takes the interleaved pairs of `bench_methods.py`, in the section on fit time "
             "below, where they ran):", "",
             "| method | seeds | AA rare | AA common | AA balanced | PGD-20 balanced | "
             f"fit time / {TIME_REFERENCE} |", "|---|---|---|---|---|---|---|"]
    for method, seeds in grouped.items():
        common = sorted(set(seeds) & set(base))
        if method == BASELINE or not common:
            continue
        cells = [difference(seeds, base, common, group) for group in ("rare", "common",
                                                                     "balanced")]
        cells.append(difference(seeds, base, common, "balanced", "pgd-20"))
        cells.append(time_ratio(seeds, grouped.get(TIME_REFERENCE, {})))
        lines.append(f"| {method} | {len(common)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_gap(runs, methods=(DEFAULT, BASELINE, "SRAT-BSL")):
    """Per class under AutoAttack: where the default's gap to the baseline lies."""
    grouped = by_method(runs)
    if not all(m in grouped for m in methods):
        return ""
    # The seeds every method ran: a gap between means over other seeds would be a seed's noise.
    seeds = sorted(set.intersection(*(set(grouped[m]) for m in methods)))
    if not seeds:
        return ""
    first = grouped[DEFAULT][seeds[0]]
    counts, rare = np.asarray(first["train_counts"]), set(first["under_represented"])
    classes = list(first["autoattack"]["per_class"])

    def mean(method, label, kind):
        return 100 * np.mean([grouped[method][seed]["autoattack"]["per_class"][label][kind]
                              for seed in seeds])

    lines = [f"Per class under AutoAttack (%, means over the {len(seeds)} seed"
             f"{'s' * (len(seeds) > 1)} that every method of the table ran). Balanced softmax "
             f"({BASELINE}) "
             "trains on logits shifted by the log class prior, so that at prediction a class "
             "of n_y training rows holds an extra logit margin of log(n_max / n_y) nats over "
             f"the most common class; the deferred class weights of {DEFAULT} scale the loss "
             "of the rare classes but shift no logit. Rare classes in bold.", "",
             f"| class | training rows | {BASELINE} margin (nats) | clean {DEFAULT} | "
             f"clean {BASELINE} | AA {' | AA '.join(methods)} | AA {DEFAULT} - {BASELINE} |",
             "|---" * (6 + len(methods)) + "|"]
    gaps = {}
    for index, label in enumerate(classes):
        name = f"**{label}**" if index in rare else label
        robust = [mean(m, label, "robust") for m in methods]
        gaps[index] = robust[0] - robust[1]
        lines.append(
            f"| {name} | {counts[index]} | {np.log(counts.max() / counts[index]):.1f} | "
            f"{mean(DEFAULT, label, 'clean'):.0f} | {mean(BASELINE, label, 'clean'):.0f} | "
            + " | ".join(f"{r:.0f}" for r in robust) + f" | {rounded(gaps[index]):+.0f} |")
    deficit = sum(gaps[i] for i in rare)
    if deficit < 0:
        worst = min(rare, key=gaps.get)
        lines += ["", f"{DEFAULT} trails {BASELINE} on the rare classes here by "
                  f"{-deficit / len(rare):.1f} points on average, "
                  f"{100 * gaps[worst] / deficit:.0f}% of it on class {classes[worst]} "
                  f"({counts[worst]} training rows; {BASELINE}'s margin "
                  f"{np.log(counts.max() / counts[worst]):.1f} nats): "
                  f"{rounded(gaps[worst]):+.0f} points "
                  f"under AutoAttack, at clean accuracies of "
                  f"{mean(DEFAULT, classes[worst], 'clean'):.0f}% ({DEFAULT}) and "
                  f"{mean(BASELINE, classes[worst], 'clean'):.0f}% ({BASELINE})."]
    return "\n".join(lines)


NORMALISED = ", weights-normalised"


def normalisation_paired(runs):
    """Each method divided by the sum of its batch's class weights against itself divided by
    the batch size (the issue's question: which normalisation of the weighted loss)."""
    grouped = by_method(runs)
    pairs = [(m[:-len(NORMALISED)], m) for m in grouped
             if m.endswith(NORMALISED) and m[:-len(NORMALISED)] in grouped]
    if not pairs:
        return ""
    lines = ["Normalisation of the class-weighted loss: dividing by the sum of the batch's "
             "class weights instead of its size, paired differences (weights-normalised minus "
             "the method as named, averaged over the batch as in the paper; same seeds; "
             "AutoAttack unless stated, points):", "",
             "| method | seeds | AA rare | AA common | AA balanced | PGD-20 balanced |",
             "|---|---|---|---|---|---|"]
    for plain, normalised in pairs:
        common = sorted(set(grouped[plain]) & set(grouped[normalised]))
        cells = [difference(grouped[normalised], grouped[plain], common, group)
                 for group in ("rare", "common", "balanced")]
        cells.append(difference(grouped[normalised], grouped[plain], common, "balanced",
                                "pgd-20"))
        lines.append(f"| {plain} | {len(common)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median_time_ratio(seeds, reference):
    """The median over common seeds of the fit-time ratio; None without common seeds."""
    common = sorted(set(seeds) & set(reference))
    if not common:
        return None
    return float(np.median([seeds[s]["fit_seconds"] / reference[s]["fit_seconds"]
                            for s in common]))


def time_ratio(seeds, reference):
    ratio = median_time_ratio(seeds, reference)
    return "-" if ratio is None else f"{ratio:.2f}x"


def fit_time_ratios(record):
    """``{setting: {method: median ratio}}`` of ``bench_methods.py``'s interleaved pairs."""
    return {setting: {method: float(np.median(row["ratios"])) for method, row in rows.items()}
            for setting, rows in record.get("settings", {}).items()}


def shown_apart(ours, theirs, margin=0.0):
    """``ours`` and ``theirs`` as text, with as many decimals (one to three) as it takes for
    ``ours < theirs - margin`` to read true: 92.4 < 92.4 says nothing."""
    for digits in (1, 2, 3):
        if round(ours, digits) < round(theirs, digits) - margin - 1e-9:
            break
    return f"{ours:.{digits}f}", f"{theirs:.{digits}f}"


def target_misses(runs, method, fit_times=None, robustlt=ROBUSTLT):
    """What keeps ``method`` from the target of the baselines issue on one setting (means over
    seeds under AutoAttack): rare-class robust accuracy at least AT-BSL's and AT-BSL+RobustLT's
    (``robustlt``: the variant of its mixing weight that :func:`tuned_robustlt` chose),
    balanced robust accuracy at most 1 point below AT-BSL's, common-class robust accuracy at
    least AT-DRW's, no collapsed seed, at most 1.25x AT-DRW's fit time.

    The fit time is the interleaved pairs' (``fit_times``, :func:`fit_time_ratios`) where they
    ran for the setting (a validation twin takes its setting's), else the study's own runs'."""
    grouped = by_method(runs)
    paired_ratios = (fit_times or {}).get(
        runs[0]["setting"].removesuffix(VALIDATION_SUFFIX), {})

    def mean(name, group):
        return np.mean([accuracy(r, "autoattack", group) for r in grouped[name].values()])

    def below(name, group, rival, margin=0.0):
        # Equal accuracies summed in another order differ in the last bits: not a miss.
        return mean(name, group) < mean(rival, group) - margin - 1e-9

    def shortfall(group, rival, margin=0.0):
        ours, theirs = shown_apart(mean(method, group), mean(rival, group), margin)
        return f"{group} {ours} < {rival} {theirs}" + (f" - {margin:g}" if margin else "")

    misses = []
    for rival in (BASELINE, robustlt):
        if rival in grouped and rival != method and below(method, "rare", rival):
            misses.append(shortfall("rare", rival))
    if BASELINE in grouped and below(method, "balanced", BASELINE, margin=1):
        misses.append(shortfall("balanced", BASELINE, margin=1))
    if TIME_REFERENCE in grouped and method != TIME_REFERENCE:
        if below(method, "common", TIME_REFERENCE):
            misses.append(shortfall("common", TIME_REFERENCE))
        ratio = paired_ratios.get(method)
        if ratio is None:
            ratio = median_time_ratio(grouped[method], grouped[TIME_REFERENCE])
        if ratio is not None and ratio > 1.25:
            misses.append(f"fit time {ratio:.2f}x {TIME_REFERENCE}'s")
    if any(map(collapsed, grouped[method].values())):
        misses.append("a collapsed seed")
    return misses


TARGET = (f"rare-class robust accuracy at least {BASELINE}'s and {ROBUSTLT}'s (at the mixing "
          "weight its validation twin chose, below), "
          f"balanced robust accuracy at most 1 point below {BASELINE}'s, common-class robust "
          f"accuracy at least {TIME_REFERENCE}'s, no collapsed seed, median fit time at most "
          f"1.25x {TIME_REFERENCE}'s (in the interleaved pairs of `bench_methods.py` where "
          "they ran, else over the study's runs)")


def fit_time_section(record):
    """The table of ``bench_methods.py``'s interleaved fit-time pairs."""
    if not record.get("settings"):
        return []
    reference = record["reference"]
    settings = list(record["settings"])
    rows = [row for methods in record["settings"].values() for row in methods.values()]
    methods = list(dict.fromkeys(m for by_method in record["settings"].values()
                                 for m in by_method))
    runs = []  # the distinct runs of the script that measured the pairs
    for row in rows:
        machine = row["machine"]
        run = (f"`{row['command']}` ({row['epochs']} epochs, {row['repeats']} pairs; "
               f"{machine.get('gpu', machine.get('cpu', '?'))}, "
               f"{machine.get('torch_threads', '?')} torch threads, commit "
               f"{machine.get('commit', '?')})")
        if run not in runs:
            runs.append(run)
    lines = [f"## Fit time against {reference}, in interleaved pairs", "",
             f"Each method trains on the setting's training split with the study's recipe, "
             f"shortened to a few epochs, in a pair with {reference} run right before or after "
             f"it; the median over the pairs of the method's fit time over {reference}'s, the "
             f"lowest and highest pair, and the fastest run of the method over the fastest of "
             f"{reference} (the machine only slows a run down). The study's own fit-time ratios "
             "compare runs made minutes to hours apart. Measured by " + "; ".join(runs) + ".",
             "", "| method | " + " | ".join(settings) + " |",
             "|---" * (len(settings) + 1) + "|"]
    for method in methods:
        cells = []
        for setting in settings:
            row = record["settings"][setting].get(method)
            cells.append("-" if row is None else
                         f"{np.median(row['ratios']):.2f}x ({min(row['ratios']):.2f}-"
                         f"{max(row['ratios']):.2f}; fastest "
                         f"{min(row['seconds']) / min(row['reference_seconds']):.2f}x)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def real_settings(by_setting, validation):
    """The settings evaluated with AutoAttack, the test splits' or their validation twins,
    that are complete: every method the target compares with has runs (else a method would
    meet the target against a reference that never ran), and so has every method on every
    seed that any of these settings ran (else a half-run setting would judge a few methods
    on a few seeds, and drop the methods it lacks from the ranking)."""
    return [s for s in evaluated_settings(by_setting, validation)
            if set(TARGET_REFERENCES) <= set(by_method(by_setting[s]))
            and not missing_runs(by_setting, s)]


def evaluated_settings(by_setting, validation):
    """The settings evaluated with AutoAttack: the validation twins or the test splits."""
    return [s for s in by_setting if "autoattack" in by_setting[s][0]
            and s.endswith(VALIDATION_SUFFIX) == validation]


def run_grid(by_setting, validation):
    """The (method, seed) pairs that any setting of the kind (test split or validation twin)
    ran: what each of them needs before the verdict judges it."""
    # A test split runs only the RobustLT weight that its twin chose, which it must have.
    return {(r["method"], r["seed"]) for s in evaluated_settings(by_setting, validation)
            for r in by_setting[s] if validation or not r["method"].startswith(ROBUSTLT_MIX)}


def required_runs(by_setting, setting):
    """The (method, seed) pairs ``setting`` needs before the verdict judges it: the
    ``run_grid`` of its kind, and for a test split the RobustLT weight its twin chose on
    every seed of it."""
    validation = setting.endswith(VALIDATION_SUFFIX)
    grid = run_grid(by_setting, validation)
    choice = None if validation else twin_choice(by_setting, setting)
    if choice is not None:
        grid |= {(choice, seed) for _, seed in grid}
    return grid


def missing_runs(by_setting, setting):
    """The pairs of ``required_runs`` that ``setting`` did not run, sorted by seed."""
    ran = {(r["method"], r["seed"]) for r in by_setting[setting]}
    return sorted(required_runs(by_setting, setting) - ran,
                  key=lambda pair: (pair[1], pair[0]))


def listed(items):
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]]))


def partial_line(by_setting, setting):
    """For a test split left out of the verdict: a line that says its tables are partial and
    which runs it lacks; "" for a complete one."""
    if setting in real_settings(by_setting, validation=False):
        return ""
    every = {method for method, _ in required_runs(by_setting, setting)}
    by_seed = defaultdict(list)
    for method, seed in missing_runs(by_setting, setting):
        by_seed[seed].append(method)
    whole = [seed for seed, methods in by_seed.items() if set(methods) == every]
    # Quoted: several method names hold a comma.
    lacks = [listed([f'"{m}"' for m in methods]) + f" on seed {seed}"
             for seed, methods in by_seed.items() if seed not in whole]
    if whole:
        lacks.append(f"every method on seed{'s' * (len(whole) > 1)} "
                     f"{', '.join(map(str, whole))}")
    return ("Partial: this setting has not run every method on every seed yet"
            + (f" (it lacks {'; '.join(lacks)})" if lacks else "")
            + ", so the verdict below leaves it out and its figures may still move.")


def robustlt_variants(grouped):
    """The runs' variants of the RobustLT reference: names ``ROBUSTLT`` and
    ``f"{ROBUSTLT}, mix {weight}"``."""
    return [name for name in grouped if name == ROBUSTLT or name.startswith(ROBUSTLT_MIX)]


def twin_choice(by_setting, setting):
    """RobustLT's mixing weight tuned as a baseline's hyper-parameter is: the variant of the
    highest balanced AutoAttack accuracy (mean over the seeds every variant ran, so that a
    variant with more seeds is not judged on others) on the validation twin of ``setting``
    (or on ``setting``, a twin itself), the library's weight on a tie; None without runs
    of the library's weight on the twin."""
    twin = setting if setting.endswith(VALIDATION_SUFFIX) else setting + VALIDATION_SUFFIX
    grouped = by_method(by_setting.get(twin, []))
    if ROBUSTLT not in grouped:
        return None
    variants = robustlt_variants(grouped)
    shared = set.intersection(*(set(grouped[name]) for name in variants))
    if not shared:
        return ROBUSTLT
    scores = {name: np.mean([accuracy(grouped[name][seed], "autoattack", "balanced")
                             for seed in shared])
              for name in variants}
    return max(scores, key=lambda name: (scores[name], name == ROBUSTLT))


def tuned_robustlt(by_setting, setting):
    """The RobustLT reference of ``setting``: its twin's choice (:func:`twin_choice`) where
    that ran on ``setting``, else :data:`ROBUSTLT`."""
    chosen = twin_choice(by_setting, setting)
    return chosen if chosen in by_method(by_setting.get(setting, [])) else ROBUSTLT


def judged_methods(by_setting, settings):
    """Every method that ran on any of ``settings``, in the order the settings first list it:
    a RobustLT weight that only one setting's twin chose is judged on that setting, and shows
    "-" elsewhere."""
    return list(dict.fromkeys(m for setting in settings for m in by_method(by_setting[setting])))


def target_cells(by_setting, settings, method, fit_times=None):
    """``(one cell per setting, settings met, criteria missed)`` of ``method``'s misses of the
    target; a method run on only some of a setting's seeds (an optional RobustLT weight) is
    not judged there, since its mean would stand against the references' over every seed."""
    cells, met, missed = [], 0, 0
    for setting in settings:
        grouped = by_method(by_setting[setting])
        if method not in grouped:
            cells.append("-")
            continue
        seeds = {run["seed"] for run in by_setting[setting]}
        if len(grouped[method]) < len(seeds):
            cells.append(f"{len(grouped[method])} of {len(seeds)} seeds, not judged")
            continue
        misses = target_misses(by_setting[setting], method, fit_times,
                               tuned_robustlt(by_setting, setting))
        met += not misses
        missed += len(misses)
        cells.append("met" if not misses else "; ".join(misses))
    return cells, met, missed


def robustlt_tuning(by_setting):
    """RobustLT's mixing weight on each validation twin, and the reference it makes."""
    rows, notes = [], []
    for twin in [s for s in TITLES if s.endswith(VALIDATION_SUFFIX) and s in by_setting]:
        grouped = by_method(by_setting[twin])
        variants = robustlt_variants(grouped)
        if len(variants) < 2:
            continue
        chosen = twin_choice(by_setting, twin)
        mixes = {name: next(iter(grouped[name].values()))["params"]["class_epsilon_mix"]
                 for name in variants}
        for name in sorted(variants, key=mixes.get, reverse=True):
            seeds, mix = grouped[name].values(), mixes[name]
            cells = [mean_std([accuracy(r, "autoattack", group) for r in seeds])
                     for group in ("rare", "common", "balanced")]
            rows.append(f"| {twin} | {mix:g} | {len(seeds)} | " + " | ".join(cells)
                        + f" | {sum(map(collapsed, seeds))} | {'yes' * (name == chosen)} |")
        setting = twin.removesuffix(VALIDATION_SUFFIX)
        if chosen != ROBUSTLT and setting in by_setting:
            used = tuned_robustlt(by_setting, setting)
            notes.append(f"{setting}'s twin chose {chosen}; " + (
                "its test split compares with it." if used == chosen else
                f"it has not run on the test split yet; until it does, the target there compares "
                f"with {used}."))
    if not rows:
        return []
    return ["## RobustLT's mixing weight, tuned on the validation twins", "",
            f"{ROBUSTLT}'s mixing weight (`class_epsilon_mix`: how far the class-aware budgets "
            "move from the common epsilon) is this library's choice, 0.5; the target compares "
            "with the weight of the highest balanced AutoAttack accuracy on each validation "
            "twin (the table's means are over each weight's seeds, the choice is on the seeds "
            "every weight ran; 0.5 on a tie), as a baseline's hyper-parameter is tuned. "
            "AutoAttack, %:", "",
            "| twin | mix | seeds | AA rare | AA common | AA balanced | collapsed seeds "
            "| chosen |", "|---" * 8 + "|", *rows, "", *notes, ""]


def real_summary(by_setting, fit_times=None):
    """Which configuration meets the target on most real-data settings."""
    settings = real_settings(by_setting, validation=False)
    if not settings:
        return []
    methods = judged_methods(by_setting, settings)
    lines = ["## Real data: which configuration wins", "",
             f"The target of the baselines issue, per setting, under AutoAttack (means over "
             f"seeds): {TARGET}. {DEFAULT} is the estimator's default configuration.", "",
             "| method | " + " | ".join(settings) + " | settings met |",
             "|---" * (len(settings) + 2) + "|"]
    met = {}
    for method in methods:
        cells, met[method], _ = target_cells(by_setting, settings, method, fit_times)
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {met[method]} of {len(settings)} |")
    lines += ["", " ".join(filter(None, [defaults_verdict(met, len(settings)),
                                         rule_on_test_splits(by_setting, settings, fit_times),
                                         robustlt_trade(by_setting, settings, fit_times)]))]
    waiting = not_run_yet(settings)
    if waiting:
        lines += ["", f"{waiting}; the table judges only the settings above."]
    return lines + [""]


def defaults_verdict(met, n_settings):
    """On how many of ``n_settings`` the defaults meet the target, and the most that any
    configuration meets (with those that do), from ``met``: {method: settings met}."""
    best = max(met.values())
    leaders = "; ".join(m for m in met if met[m] == best)
    return (f"The defaults meet the target on {met.get(DEFAULT, 0)} of {n_settings} settings; "
            + (f"no configuration of the study's {len(met)} meets it on any."
               if best == 0 else
               f"the most that any of the study's {len(met)} configurations meets is {best} "
               f"({leaders})."))


def rule_on_test_splits(by_setting, settings, fit_times=None):
    """What the rule that chose the default on the validation twins would rank first on the
    test splits, where that is not the defaults; "" otherwise."""
    ranking = validation_ranking(by_setting, settings, fit_times)
    ours = [row for row in ranking if row[0] == DEFAULT]
    if not ranking or not ours or ranking[0][0] == DEFAULT:
        return ""
    (first, _, met, missed, _), (_, _, our_met, our_missed, _) = ranking[0], ours[0]
    return (f"The rule that chose the default on the validation twins (below), applied to "
            f"these test splits, would rank {first} first ({met} settings met, {missed} "
            f"criteria missed; the defaults {our_met} and {our_missed}); the default is never "
            "chosen on a test split.")


def robustlt_trade(by_setting, settings, fit_times=None):
    """Where the defaults trail the tuned RobustLT reference on the rare classes: what that
    reference gives up on the common classes for it; "" where they never do."""
    trades = []
    for setting in settings:
        grouped = by_method(by_setting[setting])
        reference = tuned_robustlt(by_setting, setting)
        if DEFAULT not in grouped or reference not in grouped:
            continue
        rare, common = (mean_difference(grouped[reference], grouped[DEFAULT], group)
                        for group in ("rare", "common"))
        if rare > 0:
            trades.append(f"{setting} ({reference}) rare {rounded(rare, 1):+.1f}, "
                          f"common {rounded(common, 1):+.1f}")
    if not trades:
        return ""
    return ("Where the defaults trail the RobustLT reference on the rare classes, its lead and "
            f"its difference on the common classes, in points: {'; '.join(trades)}. Where they "
            f"trail {BASELINE}, the per-class table of the setting shows the classes and "
            f"{BASELINE}'s logit margin on them.")


def not_run_yet(settings):
    """The clause naming the real-data test splits other than ``settings`` (those not run yet
    on every method and seed), or "" when there are none."""
    missing = [s for s in TITLES if s + VALIDATION_SUFFIX in TITLES and s not in settings]
    return (f"Not run yet on every method and seed: {', '.join(missing)} (their command and "
            "cost are in `benchmarks/study.py`)" if missing else "")


#: The README's block that answers the baselines issue's question from the runs file.
README = Path(__file__).parents[1] / "README.md"
README_BLOCK = "real-data-summary"


def readme_summary(by_setting, fit_times=None):
    """The README's answer to a user choosing a method: on each real-data test split that ran
    every method and seed, the defaults against AT-BSL, AT-BSL+RobustLT (at its twin's
    mixing weight) and AT-DRW under AutoAttack, whether each meets the target, and on how
    many settings the defaults and the study's best configuration meet it."""
    settings = real_settings(by_setting, validation=False)
    waiting = not_run_yet(settings)
    if not settings:
        return waiting + "."
    # (one cell per setting, "met" or the misses; settings met) of each method
    judged = {m: target_cells(by_setting, settings, m, fit_times)[:2]
              for m in judged_methods(by_setting, settings)}
    rows, gaps = [], []
    for index, setting in enumerate(settings):
        grouped = by_method(by_setting[setting])
        for method in (DEFAULT, BASELINE, tuned_robustlt(by_setting, setting), TIME_REFERENCE):
            seeds = list(grouped[method].values())
            cells = [f"{np.mean([accuracy(r, 'autoattack', g) for r in seeds]):.1f}"
                     for g in ("rare", "common", "balanced")]
            name = "SRAT-W (the defaults)" if method == DEFAULT else method
            met_here = judged[method][0][index] == "met"
            rows.append(f"| {setting} | {name} | {len(seeds)} | " + " | ".join(cells)
                        + f" | {'yes' if met_here else 'no'} |")
        gaps.append(f"{setting} " + " / ".join(
            f"{rounded(mean_difference(grouped[DEFAULT], grouped[BASELINE], group), 1):+.1f}"
            for group in ("rare", "common", "balanced")))
    lines = [
        "Robust accuracy (%) under standard AutoAttack on the test splits, means over seeds: "
        "\"rare\" and \"common\" average the per-class accuracies of the under- and "
        "well-represented classes, \"balanced\" all classes. SRAT-W is the library's defaults "
        f"(\"{DEFAULT}\" in the study); {ROBUSTLT} runs at the mixing weight its validation "
        "split chose. \"target\": rare classes at least as robust as under both AT-BSL "
        f"variants, balanced at most 1 point below {BASELINE}, common classes at least as "
        f"robust as under {TIME_REFERENCE}, no collapsed seed, at most 1.25x "
        f"{TIME_REFERENCE}'s fit time. Every method, paired test and the reasons per class "
        "are in [docs/results.md](docs/results.md#real-data-which-configuration-wins).",
        "",
        "| setting | method | seeds | rare | common | balanced | target |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"SRAT-W minus {BASELINE}, rare / common / balanced, in points: {'; '.join(gaps)}. "
        + defaults_verdict({m: count for m, (_, count) in judged.items()}, len(settings)),
    ]
    return "\n".join(lines + (["", waiting + "."] if waiting else []))


def validation_ranking(by_setting, settings, fit_times=None):
    """The candidates for the default, best first, by the rule of :func:`validation_choice`:
    ``[(method, per-setting cells, settings met, criteria missed, balanced gain)]``, where
    the gain is the mean over settings of the AutoAttack balanced accuracy minus
    ``BASELINE``'s (means over seeds)."""
    groups = [by_method(by_setting[s]) for s in settings]
    candidates = [m for m in groups[0] if all(m in g for g in groups)]
    rows = []
    for method in candidates:
        cells, met, missed = target_cells(by_setting, settings, method, fit_times)
        gain = np.mean([np.mean([accuracy(r, "autoattack", "balanced")
                                 for r in g[method].values()])
                        - np.mean([accuracy(r, "autoattack", "balanced")
                                   for r in g[BASELINE].values()]) for g in groups])
        rows.append((method, cells, met, missed, float(gain)))
    return sorted(rows, key=lambda row: (-row[2], row[3], -row[4]))


def validation_choice(by_setting, fit_times=None):
    """The default chosen on the validation twins of the real-data settings, never on a test
    split."""
    settings = real_settings(by_setting, validation=True)
    if not settings:
        return []
    ranking = validation_ranking(by_setting, settings, fit_times)
    lines = ["## Choosing the default on validation splits", "",
             "The configuration of the library's defaults is chosen without the test splits: "
             "on the validation twins of the real-data settings (each setting's training split "
             "split again, stratified 75/25; the models train on the 75%), with the target "
             f"above ({TARGET}; AutoAttack, means over seeds). The rule: most settings met; "
             "then fewest criteria missed over all settings; then the highest mean over the "
             f"settings of the balanced AutoAttack accuracy minus {BASELINE}'s. Best first:",
             "", "| method | " + " | ".join(settings) + " | settings met | criteria missed | "
             f"AA balanced - {BASELINE} |", "|---" * (len(settings) + 4) + "|"]
    for method, cells, met, missed, gain in ranking:
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {met} of {len(settings)} | {missed} | {rounded(gain, 1):+.1f} |")
    chosen = ranking[0][0]
    ranked = [row[0] for row in ranking]
    verdict = (f"{chosen} comes first: it is the estimator's default configuration."
               if chosen == DEFAULT else
               f"{chosen} comes first; the estimator's default configuration is {DEFAULT}, "
               + (f"ranked {ranked.index(DEFAULT) + 1} of {len(ranking)}." if DEFAULT in ranked
                  else "not run on every twin."))
    missing = [s for s in TITLES if s.endswith(VALIDATION_SUFFIX) and s not in settings]
    if missing:
        verdict += (f" Not run yet on every method and seed: {', '.join(missing)}; the "
                    "default changes only on a choice over the validation twins of every "
                    "setting of the target.")
    return lines + ["", verdict, ""]


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
    ax.set_xlabel("PGD-20 robust accuracy, under-represented classes (%)")
    ax.set_ylabel("PGD-20 robust accuracy, well-represented classes (%)")
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


def section_heading(by_setting, setting):
    """The lines above a setting's table: its title, the command and cost of its runs, and
    for a test split not yet run on every method and seed, the line saying so."""
    setting_runs = by_setting[setting]
    seeds = sorted({r["seed"] for r in setting_runs})
    minutes = sum(r["fit_seconds"] + r["eval_seconds"]
                  + r.get("autoattack", {}).get("eval_seconds", 0) for r in setting_runs) / 60
    n_runs = len(setting_runs)
    lines = [f"## {TITLES.get(setting, setting)}", "",
             f"`python benchmarks/study.py --setting {setting} --seeds "
             f"{' '.join(map(str, seeds))}`: {n_runs} run{'s' * (n_runs != 1)}, "
             f"{minutes:.0f} minutes.", ""]
    test_split = "autoattack" in setting_runs[0] and not setting.endswith(VALIDATION_SUFFIX)
    partial = partial_line(by_setting, setting) if test_split else ""
    return lines + [partial, ""] if partial else lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(Path(__file__).with_name("runs.jsonl")))
    parser.add_argument("--output", default=str(Path(__file__).parents[1] / "docs" /
                                                "results.md"))
    parser.add_argument("--fit-times", default=str(Path(__file__).with_name(
        "bench_methods.json")), help="fit-time pairs of benchmarks/bench_methods.py")
    parser.add_argument("--theory", default=str(Path(__file__).with_name("theory.json")),
                        help="figures of examples/theory_gaussian_mixture.py")
    parser.add_argument("--readme", default=str(README),
                        help=f"the file whose <!-- {README_BLOCK} --> block gets the summary")
    args = parser.parse_args(argv)
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
        "well- and under-represented classes. The real-data settings are evaluated with "
        "standard AutoAttack (AA) too, and report the rare (under-represented) and common "
        "classes and the balanced accuracy, the mean over all classes. A seed of these "
        "settings counts as collapsed when its clean balanced accuracy is less than a quarter "
        "of the way from chance to 100%, or its balanced robust accuracy under PGD-20 is below "
        f"{NO_ROBUSTNESS:g}%. The settings are described in `benchmarks/study.py`.",
        "",
        f"Machine: {machine.get('cpu', '?')}, torch {machine.get('torch', '?')} with "
        f"{machine.get('torch_threads', '?')} threads, srat-sklearn "
        f"{machine.get('srat_sklearn', '?')}.",
        "",
    ]
    order = [s for s in TITLES if s in by_setting] + [s for s in by_setting if s not in TITLES]
    for setting in order:
        setting_runs = by_setting[setting]
        parts += section_heading(by_setting, setting) + [table(setting_runs), ""]
        if setting == "tradeoff":
            image = output.with_name("results-tradeoff.png")
            tradeoff_plot(setting_runs, image)
            parts += [f"![trade-off]({image.name})", ""]
        else:
            real = "autoattack" in setting_runs[0]
            if real:
                parts[-2] = real_table(setting_runs)
            comparison = real_paired(setting_runs) if real else \
                paired(setting_runs, REFERENCES.get(setting, REFERENCE))
            if comparison:
                parts += [comparison, ""]
            budgets = class_budgets_line(setting_runs) if real else ""
            if budgets:
                parts += [budgets, ""]
            # The validation twins serve the choice of the default: their tables only.
            detailed = real and not setting.endswith(VALIDATION_SUFFIX)
            normalisation = normalisation_paired(setting_runs) if detailed else ""
            if normalisation:
                parts += [normalisation, ""]
            gap = per_class_gap(setting_runs) if detailed else ""
            if gap:
                parts += [gap, ""]
            if setting == "step":
                parts += [target_line(setting_runs), ""]
            if setting not in ("tabular", "fraud", "fast") and not real:
                parts += [f"In a batch of 64, a training sample of an under-represented class "
                          f"has another sample of its class to be pulled towards in "
                          f"{positive_share(setting_runs):.0f}% of the batches on average; the "
                          "others are left out of the paper's separation loss as anchors "
                          "(SRAT+clean gives each one its clean original as a positive).", ""]
    fit_record = json.loads(Path(args.fit_times).read_text()) \
        if Path(args.fit_times).exists() else {}
    fit_times = fit_time_ratios(fit_record)
    parts += fit_time_section(fit_record)
    parts += robustlt_tuning(by_setting)
    parts += real_summary(by_setting, fit_times)
    parts += validation_choice(by_setting, fit_times)
    if Path(args.theory).exists():
        parts += theory_section(json.loads(Path(args.theory).read_text()))
    output.write_text("\n".join(parts))
    print(f"wrote {output}")
    readme = Path(args.readme)
    readme.write_text(replace_block(readme.read_text(), README_BLOCK,
                                    readme_summary(by_setting, fit_times)))
    print(f"wrote {readme}")


if __name__ == "__main__":
    main()
