"""Plots of robust evaluation results (matplotlib)."""

import numpy as np

__all__ = ["plot_group_accuracy"]

GROUPS = ("overall", "well", "under")


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
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("reports is empty: pass {method name: RobustReport}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 + 1.6 * len(reports), 4))
    series = [(f"{kind} {group}", kind, group) for kind in ("clean", "robust") for group in GROUPS]
    methods = list(reports)
    width = 0.8 / len(series)
    x = np.arange(len(methods))
    colors = plt.get_cmap("tab20").colors
    for i, (label, kind, group) in enumerate(series):
        values = [100 * reports[m].groups[group][kind] for m in methods]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label,
               color=colors[(i % 3) * 2 + (i // 3)])
    ax.set_xticks(x, methods)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize="small", ncols=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Clean and robust accuracy by class group")
    ax.figure.tight_layout()
    return ax
