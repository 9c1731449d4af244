"""One SRAT fit on imbalanced digits: robust, and the rare classes are not sacrificed."""

from srat_sklearn import robust_report


def test_srat_on_digits_is_robust_and_keeps_rare_classes(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    report = robust_report(trained_digits, X_test, y_test)
    groups = report.groups
    assert groups["overall"]["clean"] > 0.8  # 0.85 to 0.91 over seeds 0-3
    assert groups["overall"]["robust"] > 0.35  # chance is 0.10
    assert groups["overall"]["robust"] <= groups["overall"]["clean"]
    # Rare classes are not sacrificed: 1/10 of the samples, yet most are classified right.
    assert groups["under"]["clean"] > 0.65  # 0.71 to 0.83 over seeds 0-3
    assert groups["under"]["robust"] > 0.15
