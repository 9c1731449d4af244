"""Plots, group scorers and the imbalanced classification report."""

import json
import re

import matplotlib
import numpy as np
import pytest
from imblearn.pipeline import make_pipeline
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from srat_sklearn import SRATClassifier, robust_report
from srat_sklearn.metrics import make_group_scorer, robust_classification_report
from srat_sklearn.plotting import (
    plot_group_accuracy,
    plot_per_class_accuracy,
    plot_tradeoff,
    plot_training_curves,
)
from srat_sklearn.report import summary_table, write_report

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def search(tabular):
    X, y = tabular
    pipe = make_pipeline(StandardScaler(), SRATClassifier(
        max_epochs=2, epsilon=0.2, n_steps=2, random_state=0, verbose=0,
        module__hidden_units=(16,)))
    scoring = {name: make_group_scorer(group, epsilon=0.2, n_steps=5, random_start=False)
               for name, group in (("robust_well", "well"), ("robust_under", "under"))}
    grid = {"sratclassifier__lambda_sep": [0.0, 1.0, 2.0],
            "sratclassifier__class_weight": [None, "balanced"]}
    return GridSearchCV(pipe, grid, scoring=scoring, refit=False,
                        cv=StratifiedKFold(2)).fit(X, y)


@pytest.fixture(scope="module")
def fitted(tabular):
    return SRATClassifier(max_epochs=4, reweight_epoch=2, epsilon=0.2, n_steps=2, verbose=0,
                          random_state=0, module__hidden_units=(16,)).fit(*tabular)


def test_group_scorers_match_the_report(fitted, tabular):
    X, y = tabular
    report = robust_report(fitted, X, y, random_start=False, epsilon=0.2)
    for group in ("well", "under"):
        scorer = make_group_scorer(group, epsilon=0.2, random_start=False)
        assert scorer(fitted, X, y) == pytest.approx(report.groups[group]["robust"])
        clean = make_group_scorer(group, robust=False)
        assert clean(fitted, X, y) == pytest.approx(report.groups[group]["clean"])


def test_group_scorer_with_named_classes(fitted, tabular):
    X, y = tabular
    scorer = make_group_scorer("under", robust=False, under_represented=[0])
    assert scorer(fitted, X, y) == pytest.approx(np.mean(fitted.predict(X)[y == 0] == 0))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(group="rare"), ValueError, "group"),
    (dict(group="under", robust="yes"), TypeError, "robust"),
    (dict(group="under", n_steps=0), ValueError, "n_steps"),
])
def test_group_scorer_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_group_scorer(**kwargs)


def test_tradeoff_plot_has_one_line_per_class_weight(search):
    ax = plot_tradeoff(search, "sratclassifier__lambda_sep")
    assert len(ax.lines) == 2  # class_weight None and "balanced"
    results = search.cv_results_
    for line in ax.lines:
        assert len(line.get_xdata()) == 3  # lambda 0, 1, 2
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            match = np.isclose(100 * results["mean_test_robust_under"], x) & \
                np.isclose(100 * results["mean_test_robust_well"], y)
            assert match.any()
    assert sorted(t.get_text() for t in ax.texts) == ["0.0", "0.0", "1.0", "1.0", "2.0", "2.0"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(param="sratclassifier__lr"), "not a searched parameter"),
    (dict(param="sratclassifier__lambda_sep", x="robust_rare"), "no score 'robust_rare'"),
])
def test_tradeoff_plot_rejects(search, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_tradeoff(search, **kwargs)


def test_per_class_bars_hatch_the_rare_classes(fitted, tabular):
    report = robust_report(fitted, *tabular, under_represented=[2])
    ax = plot_per_class_accuracy(report)
    bars = [bar for container in ax.containers for bar in container]
    assert len(bars) == 2 * 3
    heights = sorted(round(b.get_height(), 6) for b in bars)
    expected = sorted(round(100 * v, 6) for v in report.clean + report.robust)
    assert heights == expected
    assert [b.get_hatch() or "" for b in bars[:3]] == ["", "", "//"]


def test_training_curves_mark_the_reweighting_epoch(fitted):
    ax = plot_training_curves(fitted)
    labels = [line.get_label() for line in ax.lines]
    assert "train_loss" in labels and "class weights on" in labels
    switch = [line for line in ax.lines if line.get_label() == "class weights on"][0]
    assert switch.get_xdata()[0] == 3  # skorch's 1-based epoch 3 is 0-based epoch 2


def test_training_curves_unknown_column(fitted):
    with pytest.raises(ValueError, match="no column"):
        plot_training_curves(fitted, keys=["valid_loss"])


def test_classification_report_on_clean_and_adversarial_inputs(fitted, tabular):
    X, y = tabular
    text = robust_classification_report(fitted, X, y, epsilon=0.5)
    assert text.startswith("Clean inputs") and "Adversarial inputs" in text
    reports = robust_classification_report(fitted, X, y, epsilon=0.5, output_dict=True)
    assert set(reports) == {"clean", "adversarial", "attack"}
    assert reports["attack"].startswith("PGD: 20 steps")
    clean_recall_0 = reports["clean"]["0"]["rec"]  # imbalanced-learn keys classes by str
    assert clean_recall_0 == pytest.approx(np.mean(fitted.predict(X)[y == 0] == 0))
    assert reports["adversarial"]["avg_rec"] <= reports["clean"]["avg_rec"]


def test_group_plot_of_one_method_is_readable(fitted, tabular):
    X, y = tabular
    ax = plot_group_accuracy({"SRAT": robust_report(fitted, X, y, epsilon=0.1, verbose=0)})
    width, _ = ax.figure.get_size_inches()
    assert width >= 6
    ax.figure.canvas.draw()
    title = ax.title.get_window_extent()
    figure = ax.figure.bbox
    assert figure.x0 <= title.x0 and title.x1 <= figure.x1  # the title is not cut


def test_training_curves_plot_losses_on_whole_epochs(fitted):
    ax = plot_training_curves(fitted)
    labels = {line.get_label() for line in ax.lines}
    assert "train_loss" in labels and not any(label.endswith("_batch_count")
                                              for label in labels)
    ticks = ax.xaxis.get_major_locator()()
    assert np.allclose(ticks, np.round(ticks))


def test_per_class_plot_shades_the_rare_classes(fitted, tabular):
    report = robust_report(fitted, *tabular, under_represented=[1, 2])
    ax = plot_per_class_accuracy(report)
    bars = {id(bar) for container in ax.containers for bar in container}
    spans = [patch for patch in ax.patches if id(patch) not in bars]
    # A span is a Rectangle from matplotlib 3.9 on, a Polygon before: read its vertices.
    span_xs = [patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
               for patch in spans]
    assert sorted(round((xs.min() + xs.max()) / 2, 6) for xs in span_xs) == [1, 2]


@pytest.mark.parametrize("plot", ["group", "per_class"])
def test_every_bar_states_its_value(fitted, tabular, plot):
    report = robust_report(fitted, *tabular, under_represented=[2])
    ax = (plot_group_accuracy({"SRAT": report}) if plot == "group"
          else plot_per_class_accuracy(report))
    bars = [bar for container in ax.containers for bar in container]
    assert [text.get_text() for text in ax.texts] == [f"{bar.get_height():.0f}" for bar in bars]


@pytest.fixture(scope="module")
def report(fitted, tabular):
    X, y = tabular
    return robust_report(fitted, X, y, epsilon=0.1, n_steps=2, verbose=0)


@pytest.mark.parametrize("make", ["plot", "table", "write"])
@pytest.mark.parametrize("wrap, error, match", [
    (lambda r: [r], TypeError, r"must be a dict \{method name: RobustReport\}, got list"),
    (lambda r: r, TypeError, r"got RobustReport; for one report: \{'model': report\}"),
    (lambda r: {"SRAT": r.to_dict()}, TypeError, r"maps \['SRAT'\] to something other"),
    (lambda r: {}, ValueError, "reports is empty"),
])
def test_report_collections_say_what_to_pass(report, tmp_path, make, wrap, error, match):
    run = {"plot": plot_group_accuracy, "table": summary_table,
           "write": lambda reports: write_report(reports, tmp_path / "out")}[make]
    with pytest.raises(error, match=match):
        run(wrap(report))
    assert not (tmp_path / "out").exists()


def test_the_classification_report_dict_goes_to_json(fitted, tabular):
    # imbalanced-learn's dict holds NumPy numbers, which json cannot write.
    X, y = tabular
    report = robust_classification_report(fitted, X, y, epsilon=0.1, n_steps=2,
                                          output_dict=True, verbose=0)
    assert json.loads(json.dumps(report))["adversarial"]["avg_rec"] == \
        pytest.approx(report["adversarial"]["avg_rec"])


def test_a_label_with_a_pipe_stays_in_its_markdown_cell(tabular, fast_params):
    X, y = tabular
    labels = np.array(["benign|a", "b", "c"])[y]
    clf = SRATClassifier(**fast_params).fit(X, labels)
    report = robust_report(clf, X, labels, epsilon=0.1, n_steps=2, verbose=0)
    rows = [*report.to_markdown().splitlines(),
            *summary_table({"SRAT|W": report}).splitlines()]
    for row in (r for r in rows if "|a" in r or "|W" in r):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) in (5, 7) and ("benign\\|a" in row or "SRAT\\|W" in row)
