"""GridSearchCV over lambda_sep and class_weight with robust scorers, and the trade-off plot.

Each candidate is scored on clean balanced accuracy, robust balanced accuracy,
and the robust accuracy of the well- and under-represented classes; the search
refits the candidate with the best robust balanced accuracy. The plot shows how
the two groups trade off as lambda_sep varies, one line per class weight: the
paper's central picture. Writes ``tradeoff.png``. A few minutes on 2 CPU cores
(``n_jobs=2``)::

    python examples/grid_search_tradeoff.py
"""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from imblearn.pipeline import make_pipeline  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from srat_sklearn import SRATClassifier  # noqa: E402
from srat_sklearn.datasets import load_imbalanced_digits  # noqa: E402
from srat_sklearn.metrics import make_group_scorer, make_robust_scorer  # noqa: E402
from srat_sklearn.plotting import plot_tradeoff  # noqa: E402

X_train, X_test, y_train, y_test = load_imbalanced_digits(ratio=10)
X_train = X_train.reshape(len(X_train), -1)  # rows, reshaped back by input_shape

pipe = make_pipeline(
    FunctionTransformer(),  # stands for any preprocessing step
    SRATClassifier(input_shape=(1, 8, 8), epsilon=0.2, step_size=0.05, n_steps=5,
                   optimizer=torch.optim.SGD, lr=0.05, optimizer__momentum=0.9,
                   batch_size=32, max_epochs=20, reweight_epoch=14, random_state=0, verbose=0),
)
attack = dict(epsilon=0.2, n_steps=10)
scoring = {
    "clean": "balanced_accuracy",
    "robust": make_robust_scorer(balanced_accuracy_score, **attack),
    "robust_well": make_group_scorer("well", **attack),
    "robust_under": make_group_scorer("under", **attack),
}
search = GridSearchCV(
    pipe,
    {"sratclassifier__lambda_sep": [0.0, 0.5, 1.0],
     "sratclassifier__class_weight": [None, "balanced"]},
    scoring=scoring, refit="robust", cv=StratifiedKFold(2, shuffle=True, random_state=0),
    n_jobs=2,
)
search.fit(X_train, y_train)

print("best:", search.best_params_)
for i, params in enumerate(search.cv_results_["params"]):
    row = ", ".join(f"{name} {search.cv_results_[f'mean_test_{name}'][i]:.3f}"
                    for name in scoring)
    print(f"{params}: {row}")
X_test_rows = X_test.reshape(len(X_test), -1)
print(f"refitted best on the test split: robust balanced accuracy "
      f"{scoring['robust'](search.best_estimator_, X_test_rows, y_test):.3f}")

ax = plot_tradeoff(search, "sratclassifier__lambda_sep")
ax.figure.savefig("tradeoff.png", dpi=120)
print("wrote tradeoff.png")
