"""The demo command and its errors."""

import subprocess
import sys

import pytest

from srat_sklearn.cli import main


def test_demo_prints_table_and_writes_report(tmp_path, capsys):
    main(["demo", "--max-epochs", "1", "--output", str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    for method in ("NT", "AT", "AT-DRW", "SRAT-CE"):
        assert f"| {method} |" in printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| SRAT-CE |" in report and "robust under" in report
    png = (tmp_path / "out" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("args", [["demo", "--max-epochs", "0"], ["demo", "--epsilon", "-1"],
                                  ["demo", "--max-epochs", "many"], ["fly"], []])
def test_bad_arguments_exit_2_with_one_line(args):
    result = subprocess.run([sys.executable, "-m", "srat_sklearn.cli", *args],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("srat-sklearn") and "error:" in result.stderr


def test_unusable_output_path_exits_2_before_training(tmp_path, capsys):
    blocker = tmp_path / "report"
    blocker.write_text("a file where the report folder should go")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output", str(blocker), "--no-progress"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "demo: error:" in captured.err
    assert "Training" not in captured.out
