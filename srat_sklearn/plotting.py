"""Plots of robust evaluation results (matplotlib)."""

import numpy as np

from .attacks import DISPLAY_NAMES, NORM_NAMES
from .metrics._groups import REPORT_GROUPS
from .metrics._report import check_reports

__all__ = ["plot_group_accuracy", "plot_per_class_accuracy", "plot_tradeoff",
           "plot_training_curves"]

GROUPS = REPORT_GROUPS


def plot_group_accuracy(reports, ax=None):
    """Bar chart of clean and robust accuracy per group of classes, one cluster per method.

    Parameters
    ----------
    reports : dict {method name: RobustReport}
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_group_accuracy({"AT": report_at, "SRAT": report_srat})  # doctest: +SKIP
    >>> ax.figure.savefig("accuracy.png")  # doctest: +SKIP
    """
    import matplotlib

    check_reports(reports)
    ax = _axes(ax, group_figure_size(len(reports)))
    series = [(f"{kind} {group}", kind, group) for kind in ("clean", "robust") for group in GROUPS]
    methods = list(reports)
    width = 0.8 / len(series)
    x = np.arange(len(methods))
    colors = matplotlib.colormaps["tab20"].colors
    for i, (label, kind, group) in enumerate(series):
        values = [100 * reports[m].groups[group][kind] for m in methods]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label,
                      color=colors[(i % 3) * 2 + (i // 3)])
        _label_values(ax, bars)
    ax.set_xticks(x, methods)
    ax.set_ylim(0, 105)  # room for the numbers on bars at 100 %
    ax.set_ylabel("accuracy (%)")
    # Below the bars, so that the plot keeps its width whatever the number of methods.
    ax.legend(fontsize="small", ncols=len(GROUPS), loc="upper center",
              bbox_to_anchor=(0.5, -0.08))
    ax.set_title("Clean and robust accuracy by class group")
    ax.figure.tight_layout()
    return ax


def _label_values(ax, bars):
    # A bar of 0 % is invisible: its number says that it is there.
    ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)


def group_figure_size(n_methods):
    """Width and height (inches) of :func:`plot_group_accuracy`'s figure for ``n_methods``:
    wide enough for the title and the legend, and 1.5 inches more per method."""
    return max(6.0, 2.0 + 1.5 * n_methods), 5.0


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_per_class_accuracy(report, ax=None):
    """Clean and robust accuracy of every class, the under-represented ones shaded and hatched.

    Parameters
    ----------
    report : RobustReport
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_per_class_accuracy(robust_report(clf, X_test, y_test))  # doctest: +SKIP
    """
    ax = _axes(ax, (1.5 + 0.6 * len(report.classes), 4))
    x = np.arange(len(report.classes))
    under = {str(c) for c in report.under_represented}
    rare = np.array([str(c) in under for c in report.classes], dtype=bool)
    hatches = np.where(rare, "//", "")
    for n, i in enumerate(np.flatnonzero(rare)):
        # Shaded, so that the group shows where the bars are at 0 % too.
        ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0,
                   label="under-represented" if n == 0 else None)
    for offset, values, label, color in ((-0.2, report.clean, "clean", "tab:blue"),
                                         (0.2, report.robust, "robust", "tab:orange")):
        bars = ax.bar(x + offset, 100 * np.asarray(values), 0.4, label=label, color=color)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        _label_values(ax, bars)
    ax.set_xticks(x, [str(c) for c in report.classes])
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_ylim(0, 105)
    ax.set_xlabel("class (shaded and hatched: under-represented)")
    ax.set_ylabel("accuracy (%)")
    members = report.settings.get("members") or [report.attack]
    attack = "AutoAttack" if report.attack == "autoattack" else " + ".join(
        DISPLAY_NAMES.get(m, str(m)) for m in members)
    norm = NORM_NAMES.get(report.norm, report.norm)
    ax.set_title(f"Per-class accuracy under {attack}, {norm}, epsilon {report.epsilon:g}")
    ax.legend(fontsize="small")
    return ax


def plot_tradeoff(search, param, *, x="robust_under", y="robust_well", ax=None):
    """Trade-off between two scores of a fitted search as ``param`` varies.

    One line per combination of the search's other parameters, one point per
    value of ``param``, labelled with it: for example robust accuracy of the
    well- against the under-represented classes as ``lambda_sep`` or the
    class weight changes, the paper's central picture.

    Parameters
    ----------
    search : fitted GridSearchCV or RandomizedSearchCV
        Scored with (at least) the scorers named ``x`` and ``y``, such as
        :func:`~srat_sklearn.metrics.make_group_scorer`.
    param : str
        A key of ``search.cv_results_["params"]``, e.g.
        ``"sratclassifier__lambda_sep"``.
    x, y : str, default "robust_under", "robust_well"
        Scorer names; their ``mean_test_<name>`` columns are plotted.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_tradeoff(search, "sratclassifier__lambda_sep")  # doctest: +SKIP
    """
    results = getattr(search, "cv_results_", None)
    if results is None:
        raise ValueError("search must be a fitted GridSearchCV or RandomizedSearchCV.")
    for name in (x, y):
        if f"mean_test_{name}" not in results:
            scores = sorted(k[len("mean_test_"):] for k in results if k.startswith("mean_test_"))
            raise ValueError(f"The search has no score {name!r}; it has {scores}.")
    params = results["params"]
    if not any(param in p for p in params):
        raise ValueError(f"{param!r} is not a searched parameter; the search varies "
                         f"{sorted({k for p in params for k in p})}.")
    lines = {}
    for i, p in enumerate(params):
        others = tuple(sorted((k, repr(v)) for k, v in p.items() if k != param))
        lines.setdefault(others, []).append(i)
    ax = _axes(ax, (5.5, 4.5))
    for others, rows in lines.items():
        rows = sorted(rows, key=lambda i: _sort_key(params[i].get(param)))
        xs = 100 * np.asarray(results[f"mean_test_{x}"])[rows]
        ys = 100 * np.asarray(results[f"mean_test_{y}"])[rows]
        label = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in others) or None
        ax.plot(xs, ys, marker="o", label=label)
        for xi, yi, i in zip(xs, ys, rows):
            ax.annotate(f"{params[i].get(param)}", (xi, yi), textcoords="offset points",
                        xytext=(4, 4), fontsize="small")
    ax.set_xlabel(f"{x} (%)")
    ax.set_ylabel(f"{y} (%)")
    ax.set_title(f"Trade-off as {param.split('__')[-1]} varies")
    if any(others for others in lines):
        ax.legend(fontsize="small")
    return ax


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, repr(value))


def plot_training_curves(history, keys=None, ax=None):
    """Per-epoch values from a skorch history, with the reweighting switch marked.

    Parameters
    ----------
    history : skorch History, or a fitted SRATClassifier
    keys : list of str, optional
        History columns to plot; default the losses and scores: every numeric
        per-epoch column except ``epoch``, ``dur`` and the batch counts.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_training_curves(clf)  # doctest: +SKIP
    """
    from matplotlib.ticker import MaxNLocator

    history = getattr(history, "history", history)
    if not len(history):
        raise ValueError("The history is empty: fit the estimator first.")
    if keys is None:
        keys = [k for k, v in history[-1].items()
                if k not in ("epoch", "dur") and not k.endswith("_batch_count")
                and isinstance(v, (int, float)) and not isinstance(v, bool)]
    ax = _axes(ax, (6, 4))
    epochs = np.asarray(history[:, "epoch"])
    for key in keys:
        try:
            values = history[:, key]
        except KeyError:
            raise ValueError(f"The history has no column {key!r}.") from None
        ax.plot(epochs, values, label=key)
    switches = [row["epoch"] for prev, row in zip(history[:-1], history[1:])
                if row.get("class_weights_on") and not prev.get("class_weights_on")]
    if len(history) and history[0].get("class_weights_on"):
        switches.insert(0, history[0]["epoch"])
    for epoch in switches:
        ax.axvline(epoch, color="grey", linestyle="--", label="class weights on")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    ax.set_title("Training curves")
    return ax
