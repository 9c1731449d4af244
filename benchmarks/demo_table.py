"""The demo's table in docs/index.md, from a run of ``srat-sklearn demo`` kept in a runs file.

    python benchmarks/demo_table.py            # runs the demo, keeps benchmarks/demo.json
    python benchmarks/demo_table.py --write-docs

The first form runs ``srat-sklearn demo`` (its defaults: 30 epochs, PGD-20 on the balanced test
split, seed 0) and keeps its report and run time; the second writes the table between the
``demo-table`` markers of docs/index.md from that file.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _docs import replace_block, write_docs  # noqa: E402

INDEX = ROOT / "docs" / "index.md"
COLUMNS = [(kind, group) for kind in ("clean", "robust") for group in ("overall", "well", "under")]


def render(record):
    lines = ["| method | " + " | ".join(f"{k} {g}" for k, g in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for name, report in record["reports"].items():
        cells = [f"{100 * report['groups'][g][k]:.1f}" for k, g in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Seed {record['settings']['seed']}, one run of `srat-sklearn demo` "
              f"(srat-sklearn {record['version']}): {record['seconds']:.0f} s on 2 CPU cores "
              "for the four fits and their evaluation."]
    return "\n".join(lines)


def generated_docs(runs_path):
    return {INDEX: replace_block(INDEX.read_text(), "demo-table",
                                 render(json.loads(Path(runs_path).read_text())))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(HERE / "demo.json"))
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.write_docs:
        write_docs(generated_docs(args.output), ROOT)
        return
    import srat_sklearn
    from srat_sklearn.cli import main as cli

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        cli(["demo", "--output", folder, "--no-progress"])
        seconds = time.perf_counter() - started
        report = json.loads((Path(folder) / "report.json").read_text())
    record = {**report, "seconds": round(seconds, 1), "version": srat_sklearn.__version__}
    Path(args.output).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
