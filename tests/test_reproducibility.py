"""The same random_state gives the same model in another process, on CPU."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from srat_sklearn import SRATClassifier


def test_same_model_across_processes(tabular, fast_params, tmp_path):
    X, y = tabular
    clf = SRATClassifier(**fast_params).fit(X, y)
    out = tmp_path / "run.npz"
    script = textwrap.dedent(f"""
        import numpy as np
        from sklearn.datasets import make_classification
        from srat_sklearn import SRATClassifier
        X, y = make_classification(n_samples=240, n_features=8, n_informative=5, n_classes=3,
                                   weights=[0.6, 0.3, 0.1], random_state=0)
        clf = SRATClassifier(**{fast_params!r}).fit(X.astype(np.float64), y)
        np.savez({str(out)!r}, proba=clf.predict_proba(X),
                 loss=np.array(clf.history[:, "train_loss"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    other = np.load(out)
    assert np.array_equal(other["proba"], clf.predict_proba(X))
    assert np.array_equal(other["loss"], np.array(clf.history[:, "train_loss"]))
