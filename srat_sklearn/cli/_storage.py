"""A trained model's folder: its settings, parameters and fitted arrays.

``train`` writes the folder in a staging folder beside it and moves it into place at the end,
so that an interrupted or failed run leaves what was there. ``evaluate`` rebuilds the model
from ``config.json``, ``fitted.npz`` (read without pickles) and ``params.pt`` (read with
``torch.load(weights_only=True)``): no code from the folder runs. ``model.pkl`` is written
too, for Python users who trust it; loading it is opt-in.
"""

import json
import pickle
import platform
import shutil
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..estimator import SRATClassifier
from ._data import missing_value_imputer

SETTINGS, FITTED, PARAMS, HISTORY, PICKLE = (
    "config.json", "fitted.npz", "params.pt", "history.json", "model.pkl")
OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam}
PICKLE_WARNING = ("Unpickling model.pkl runs whatever code the file names: load only a model "
                  "you trained yourself.")


@contextmanager
def staged_folder(output, overwrite=False):
    """A fresh folder beside ``output`` that becomes ``output`` only if the block succeeds."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"--output {output} is a file, not a folder.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"--output {output} is not empty: pass --overwrite to replace "
                              "what is there, or choose another folder.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)


def versions():
    """The versions of Python and of the packages a model depends on."""
    names = ("srat-sklearn", "torch", "scikit-learn", "skorch", "imbalanced-learn", "numpy")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def jsonable_params(params):
    """The estimator's parameters as JSON: classes by name."""
    return {k: (v.__name__ if isinstance(v, type) else v) for k, v in params.items()
            if k != "callbacks"}


def save_model(folder, model, config):
    """Write the model's settings, fitted arrays, parameters and pickle into ``folder``."""
    folder = Path(folder)
    clf = model[-1] if hasattr(model, "steps") else model
    fitted = {"classes": clf.classes_, "sample_shape": np.asarray(clf.sample_shape_),
              "class_counts": clf.class_counts_, "class_prior": clf.class_prior_}
    if clf.bounds_ is not None:
        fitted["bounds_low"], fitted["bounds_high"] = (np.asarray(b) for b in clf.bounds_)
    if hasattr(model, "steps"):  # make_pipeline's step names, as run_train builds it
        scaler, imputer = (model.named_steps.get(name) for name in ("standardscaler",
                                                                    "simpleimputer"))
        fitted.update(scaler_mean=scaler.mean_, scaler_scale=scaler.scale_,
                      scaler_var=scaler.var_, scaler_samples=np.asarray(scaler.n_samples_seen_))
        if imputer is not None:
            fitted["imputer_medians"] = imputer.statistics_
    np.savez(folder / FITTED, **fitted)
    clf.save_params(f_params=folder / PARAMS, f_history=folder / HISTORY)
    (folder / SETTINGS).write_text(json.dumps(config, indent=2))
    with open(folder / PICKLE, "wb") as f:
        pickle.dump(model, f)


def read_settings(folder):
    path = Path(folder) / SETTINGS
    if not path.is_file():
        raise FileNotFoundError(f"No {SETTINGS} in {folder}: pass the folder written by "
                                "'srat-sklearn train'.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not the JSON that 'srat-sklearn train' writes: "
                         f"{error}") from None


def load_model(folder, device="cpu"):
    """Rebuild a model saved by :func:`save_model` without unpickling: ``(model, config)``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder: pass the folder written by "
                                 "'srat-sklearn train' (or its model.pkl with --pickle).")
    config = read_settings(folder)
    missing = [name for name in (FITTED, PARAMS) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: it is not a folder "
                                "written by 'srat-sklearn train'.")
    try:
        with np.load(folder / FITTED, allow_pickle=False) as data:
            fitted = {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{folder / FITTED} is damaged: {error}") from None
    params = dict(config["estimator"])
    params["optimizer"] = OPTIMIZERS[params["optimizer"]]
    bounds = ((fitted["bounds_low"], fitted["bounds_high"]) if "bounds_low" in fitted
              else None)
    clf = SRATClassifier(**{**params, "device": device, "verbose": 0},
                         classes=fitted["classes"],
                         input_shape=tuple(int(s) for s in fitted["sample_shape"]),
                         bounds=bounds, torch_load_kwargs={"weights_only": True}).initialize()
    try:
        clf.load_params(f_params=folder / PARAMS)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"{folder / PARAMS} is not a parameters file of this model: "
                         f"{str(error).splitlines()[0]}") from None
    # What the reports' groups are defined on; fit sets them, a rebuilt model takes them saved.
    clf.class_counts_, clf.class_prior_ = fitted["class_counts"], fitted["class_prior"]
    if "scaler_mean" not in fitted:
        return clf, config
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = (fitted["scaler_mean"], fitted["scaler_scale"],
                                                fitted["scaler_var"])
    scaler.n_features_in_, scaler.n_samples_seen_ = len(scaler.mean_), fitted["scaler_samples"]
    # An imputer fitted on the one row of its medians holds them, through its public API.
    impute = ([missing_value_imputer().fit(fitted["imputer_medians"][None, :])]
              if "imputer_medians" in fitted else [])
    return make_pipeline(*impute, scaler, clf), config


def load_pickled(path):
    """The model in a ``model.pkl`` (or a folder holding one), with a warning."""
    path = Path(path)
    model_file = path / PICKLE if path.is_dir() else path
    if not model_file.is_file():
        raise FileNotFoundError(f"No {PICKLE} at {model_file}.")
    warnings.warn(PICKLE_WARNING, UserWarning, stacklevel=2)
    try:
        with open(model_file, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise ValueError(f"{model_file} is not a pickled model: {error}") from None
