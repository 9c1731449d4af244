"""Quickstart: SRAT on class-imbalanced digits, with a robustness report.

scikit-learn's 8x8 digits as 1x8x8 images in [0, 1]; classes 5-9 of the training
split keep 1/10 of their samples. SRATClassifier trains on PGD adversarial
examples with the separation loss and deferred class weights, and the report
gives clean and robust accuracy (PGD-20, and the worst case of PGD, APGD-CE and
APGD-DLR) for the well- and under-represented classes. The number to publish is
standard AutoAttack's (the commented line at the end; a few minutes on a CPU).
About a minute on 2 CPU cores::

    python examples/quickstart_digits.py
"""

import torch

from srat_sklearn import SRATClassifier, robust_accuracy_score, robust_report
from srat_sklearn.datasets import load_imbalanced_digits

# Digits as 1x8x8 images in [0, 1], stratified 70/30 split; classes 5-9 of the training
# split keep 1/10 of their samples, the test split stays balanced.
X_train, X_test, y_train, y_test = load_imbalanced_digits(ratio=10)

clf = SRATClassifier(
    epsilon=0.2,              # L-inf radius, in the units of X (pixels in [0, 1])
    step_size=0.05,
    lambda_sep=1.0,           # weight of the feature separation loss
    class_weight="balanced",  # switched on at reweight_epoch ...
    reweight_epoch=20,        # ... with the learning rate x reweight_lr_factor
    optimizer=torch.optim.SGD, lr=0.05, optimizer__momentum=0.9,
    optimizer__weight_decay=5e-4, max_epochs=30, random_state=0,
)
clf.fit(X_train, y_train)

print(f"clean accuracy {clf.score(X_test, y_test):.3f}")
print(f"robust accuracy (PGD-20) {robust_accuracy_score(clf, X_test, y_test):.3f}")
print(robust_report(clf, X_test, y_test, worst_case=True))
# For a paper or a review: standard AutoAttack (docs/reliability.md).
# print(robust_report(clf, X_test, y_test, attack="autoattack"))
