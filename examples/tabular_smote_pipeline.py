"""Tabular data: SMOTE and SRAT in an imbalanced-learn pipeline on breast cancer.

The malignant class of scikit-learn's breast cancer data is cut to 1/10 in the
training split. The pipeline standardises the features, oversamples the rare
class with SMOTE (at fit only; imbalanced-learn skips samplers at prediction
time) and trains SRATClassifier on the result. Robustness is measured in the
standardised space where the classifier works: epsilon 0.25 is a quarter of a
standard deviation per feature. Under a minute on 2 CPU cores::

    python examples/tabular_smote_pipeline.py
"""

from imblearn.metrics import geometric_mean_score
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import make_pipeline
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import make_imbalanced
from srat_sklearn.metrics import make_robust_scorer, robust_classification_report

X, y = load_breast_cancer(return_X_y=True)  # 0 = malignant, 1 = benign
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
X_train, y_train = make_imbalanced(X_train, y_train, ratio=10, under_represented=[0],
                                   random_state=0)
print(f"training samples: {len(y_train)}, malignant: {int((y_train == 0).sum())}")

pipe = make_pipeline(
    StandardScaler(),
    SMOTE(random_state=0),
    SRATClassifier(epsilon=0.25, lambda_sep=1.0, class_weight=None, max_epochs=40,
                   random_state=0, verbose=0),
)
pipe.fit(X_train, y_train)

for name, metric in (("balanced accuracy", balanced_accuracy_score),
                     ("geometric mean", geometric_mean_score)):
    robust = make_robust_scorer(metric, epsilon=0.25)(pipe, X_test, y_test)
    print(f"{name}: clean {metric(y_test, pipe.predict(X_test)):.3f}, robust {robust:.3f}")

print(robust_classification_report(pipe, X_test, y_test, epsilon=0.25,
                                   target_names=["malignant", "benign"]))
