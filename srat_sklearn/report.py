"""Writing evaluation results: a Markdown report and its figure."""

import json
from pathlib import Path

from .metrics._groups import REPORT_GROUPS
from .metrics._report import check_reports, markdown_cell, pct

__all__ = ["summary_table", "write_report"]

COLUMNS = tuple((kind, group) for kind in ("clean", "robust") for group in REPORT_GROUPS)


def summary_table(reports):
    """A Markdown table, one row per method: clean and robust accuracy overall / well / under.

    Parameters
    ----------
    reports : dict {method name: RobustReport}

    Returns
    -------
    str
    """
    check_reports(reports)
    header = "| method | " + " | ".join(f"{k} {g}" for k, g in COLUMNS) + " |"
    lines = [header, "|---" * (len(COLUMNS) + 1) + "|"]
    for name, report in reports.items():
        cells = [pct(report.groups[g][k]) for k, g in COLUMNS]
        lines.append(f"| {markdown_cell(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(reports, output_dir, *, title="SRAT report", description="", settings=None):
    """Write ``report.md``, ``report.json`` and ``accuracy.png`` into ``output_dir``.

    Parameters
    ----------
    reports : dict {method name: RobustReport}
    output_dir : str or Path
        Created if missing.
    title, description : str
        Heading and introductory text of the Markdown file.
    settings : dict, optional
        Recorded in ``report.json`` and listed in the Markdown file.

    Returns
    -------
    Path
        The path of ``report.md``.
    """
    # A Figure of its own, not pyplot's: the caller's backend and open figures stay as they are.
    from matplotlib.figure import Figure

    from .plotting import group_figure_size, plot_group_accuracy

    check_reports(reports)  # before the folder is made
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=group_figure_size(len(reports)))
    ax = plot_group_accuracy(reports, ax=figure.subplots())
    ax.figure.savefig(output_dir / "accuracy.png", dpi=120)

    first = next(iter(reports.values()))
    parts = [f"# {title}", ""]
    if description:
        parts += [description, ""]
    if settings:
        parts += ["Settings:", ""] + [f"- {k}: {v}" for k, v in settings.items()] + [""]
    under = ", ".join(map(str, first.to_dict()["under_represented"])) or "none"
    parts += [f"Accuracy in %; robust = under {first.describe_attack()}. \"well\" and "
              f"\"under\" are the means over the well- and under-represented classes ({under}).",
              "",
              summary_table(reports), "", "![accuracy by group](accuracy.png)", ""]
    for name, report in reports.items():
        parts += [f"## {name}", "", report.to_markdown(), ""]
    path = output_dir / "report.md"
    path.write_text("\n".join(parts))
    payload = {"settings": settings or {}, "reports": {k: r.to_dict() for k, r in reports.items()}}
    (output_dir / "report.json").write_text(json.dumps(payload, indent=2))
    return path
