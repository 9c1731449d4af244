"""The Sphinx documentation builds without a warning (what ``make docs`` runs)."""

from pathlib import Path

import pytest

sphinx_cmd = pytest.importorskip("sphinx.cmd.build")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path):
    status = sphinx_cmd.build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                                    str(tmp_path / "html")])
    assert status == 0
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("SRATClassifier", "apgd_attack", "autoattack", "fab_attack", "square_attack",
                 "audit_robustness", "make_robust_scorer", "load_cifar10", "resnet18_cifar",
                 "plot_tradeoff"):
        assert name in api
