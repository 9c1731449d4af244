"""``SRATClassifier``: skorch's ``NeuralNetClassifier`` trained with SRAT.

The estimator composes the pieces of the package: the PGD attack
(:mod:`srat_sklearn.attacks`), the losses (:mod:`srat_sklearn.losses`), the
class weights and their schedule (:mod:`srat_sklearn.weighting`) and the
default networks (:mod:`srat_sklearn.models`). skorch runs the training loop;
this class only hooks into it:

- ``train_step`` replaces the batch by its PGD adversarial examples and, when
  ``lambda_sep > 0``, records the penultimate features of the same forward
  pass that computes the logits;
- ``get_loss`` adds ``lambda_sep`` times the supervised contrastive loss of
  those features to the class-weighted loss;
- the ``reweighting`` callback switches the class weights on in place.
"""

import numbers
import warnings
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np
import torch
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import unpack_data
from skorch.utils import is_dataset, to_numpy, to_tensor
from tqdm.auto import tqdm

from ._validation import check_int, check_option, check_real
from .attacks import (DISPLAY_NAMES, attack_settings, check_attack, check_attack_params,
                      random_perturbation, run_attack)
from .datasets import dataset_labels, make_loader
from .losses import LOSSES, ReweightedLoss, supervised_contrastive_loss
from .models import capture_features, default_module, find_feature_layer
from .weighting import (SAMPLERS, DeferredReweighting, balanced_sampler, check_class_prior,
                        check_class_weight, compute_class_weights, resolve_class_prior,
                        resolve_reweight_epoch)

__all__ = ["SRATClassifier", "NonFiniteLossError"]

MIXED_PRECISIONS = ("bf16",)
#: Samples attacked together in an evaluation, unless given: AutoAttack's 250.
EVALUATION_BATCH_SIZE = 250
SEPARATION_VIEWS = ("adversarial", "adversarial+clean")


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite, before the optimizer step."""


def _encoded_accuracy(net, X, y):
    # skorch scores the validation split with encoded labels; compare indices, not labels.
    return accuracy_score(to_numpy(y), net.predict_proba(X).argmax(axis=1))


class SRATClassifier(NeuralNetClassifier):
    """Separable Reweighted Adversarial Training (Wang et al., 2021) as an sklearn classifier.

    Each training batch is replaced by PGD adversarial examples; the loss is
    the class-weighted classification loss plus ``lambda_sep`` times a
    supervised contrastive loss on the L2-normalised penultimate features of
    the adversarial examples; the class weights are all ones until
    ``reweight_epoch`` and on from it, when the learning rate is also
    multiplied by ``reweight_lr_factor``.

    ``epsilon=0`` is natural training; ``lambda_sep=0, class_weight=None`` is
    plain PGD adversarial training (Madry et al.).

    Parameters
    ----------
    module : torch.nn.Module class or instance, or None, default=None
        A network that maps a batch to logits of shape (n, n_classes). ``None``
        builds :class:`~srat_sklearn.models.MLP` for 2-D input and
        :class:`~srat_sklearn.models.SmallCNN` for images, sized from the data
        at fit; their options are set with ``module__hidden_units=...`` etc.
    epsilon : float, default=8/255
        Radius of the training threat model, in the units of X.
    step_size : float or None, default=None
        PGD step; ``None`` uses ``2.5 * epsilon / n_steps``.
    n_steps : int, default=10
        PGD steps per training batch.
    norm : {"linf", "l2"}, default="linf"
    random_start : bool, default=True
        Start PGD from a random point of the ball.
    reuse_perturbations : bool, default=False
        Start each training sample's attack from its own adversarial
        perturbation of the previous epoch instead of a random point (ATTA,
        Zheng et al., 2020). The perturbations add up over the epochs, so a
        few steps per batch reach about the strength of many: in the digits
        study, PGD-2 this way came within 1.4 points (mean of 5 seeds) of
        PGD-10's robust accuracy at a third of its time (docs/performance.md).
        Keeps one perturbation per training sample on the device, as much
        memory as the training inputs. Meant for data without random
        augmentation: a perturbation found for one random crop does not fit
        the next.
    bounds : "auto", None or tuple (low, high), default="auto"
        Valid range of the inputs. ``"auto"``: the per-feature minimum and
        maximum of the training data for 2-D X, the global minimum and maximum
        for images. ``None``: unbounded.
    lambda_sep : float, default=1.0
        Weight of the feature separation loss.
    temperature : float, default=0.1
        Temperature of the separation loss.
    separation_views : {"adversarial", "adversarial+clean"}, default="adversarial"
        Features the separation loss contrasts. "adversarial" is the paper's:
        the adversarial batch only, where a sample of a rare class often has
        no other sample of its class to be pulled towards. "adversarial+clean"
        adds the clean batch as a second view (one more forward pass), so that
        every adversarial example has at least its clean original as a
        positive.
    class_weight : None, "balanced", "effective" or dict, default="balanced"
        Class weights switched on at ``reweight_epoch``; see
        :func:`~srat_sklearn.weighting.compute_class_weights`. Computed from
        ``class_prior`` (by default the class counts of the training split)
        and normalised to mean 1.
    class_prior : None, array-like of shape (n_classes,) or dict, default=None
        Class counts (or frequencies) of the data *before any resampling*,
        in the order of the sorted labels, or as ``{label: count}``. The class
        weights, the LDAM margins and the default under-represented group of
        the reports come from them. ``None`` counts the training split. Set
        it when a sampler in a pipeline balances the data in front of the
        estimator: the estimator then sees equal counts, which would make
        every class weight 1 (it warns when that happens).
    beta : float, default=0.9999
        ``beta`` of the effective number of samples (``class_weight="effective"``).
    reweight_epoch : int or float, default=0.75
        Epoch (0-based) from which the class weights are on; a float in
        [0, 1) is a fraction of ``max_epochs``. ``0`` weights from the start.
    reweight_lr_factor : float, default=0.1
        Learning-rate factor applied at ``reweight_epoch`` when it is > 0.
    sampler : None or "balanced", default=None
        ``"balanced"`` draws the training batches with every class equally
        likely, anew each epoch (:func:`~srat_sklearn.weighting.balanced_sampler`);
        usually with ``class_weight=None``, since the two correct the same
        imbalance.
    loss : {"ce", "focal", "ldam"}, default="ce"
        Classification loss.
    focal_gamma : float, default=1.0
        ``gamma`` of the focal loss.
    ldam_max_margin : float, default=0.5
        Margin of the rarest class in the LDAM loss.
    ldam_scale : float, default=1.0
        Scale ``s`` of the LDAM logits (30 suits cosine classifiers).
    feature_layer : str or None, default=None
        Where the separation loss takes its features: ``None`` is the input of
        the module's last ``nn.Linear``; a submodule name takes its flattened
        output.
    input_shape : tuple of int or None, default=None
        Shape of one sample, e.g. ``(1, 8, 8)``: rows of a 2-D X are reshaped
        to it, so that samplers that only take 2-D arrays can sit in front
        (X whose samples have this shape already is taken as it is).
    mixed_precision : {None, "bf16"}, default=None
        ``"bf16"`` runs the forward passes of training, attacks and prediction
        under ``torch.autocast`` in bfloat16 on the estimator's device; losses,
        gradients with respect to the input, and predicted probabilities stay
        float32. bfloat16 needs no loss scaling. For float16 on older GPUs,
        use ``AcceleratedSRATClassifier`` with ``Accelerator(mixed_precision="fp16")``.
    channels_last : bool, default=False
        Keep the module's 4-D weights and the image batches in channels-last
        memory order, which convolutions on recent GPUs (and oneDNN on CPUs)
        run faster; no effect on tabular data.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, batch shuffling and the attacks' random
        starts, without changing torch's global random state.
    optimizer, lr, max_epochs, batch_size, train_split, callbacks, device, ...
        As in :class:`skorch.NeuralNetClassifier`. The defaults differ: Adam
        with ``lr=1e-3`` (it converges on unscaled tabular data too; the
        CIFAR recipe is ``optimizer=torch.optim.SGD, lr=0.1,
        optimizer__momentum=0.9, optimizer__weight_decay=5e-4``),
        ``max_epochs=30``, ``batch_size=64``, no internal validation split
        (``train_split=None``, so rare classes keep all their samples) and
        shuffled training batches (``iterator_train__shuffle=True``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in fit.
    class_counts_ : ndarray of shape (n_classes,)
        Training samples per class in the training split.
    class_prior_ : ndarray of shape (n_classes,)
        Class frequencies the weights and the groups are computed from:
        ``class_prior`` normalised, or the training split's.
    class_weights_ : ndarray of shape (n_classes,)
        Class weights used from ``reweight_epoch_`` on.
    reweight_epoch_ : int
        The resolved reweighting epoch.
    bounds_ : tuple (low, high) or None
        The data bounds used by the attacks.
    sample_shape_ : tuple
        Shape of one sample as the module sees it.
    perturbations_ : torch.Tensor of shape (n_training_samples, ...)
        With ``reuse_perturbations=True``: each training sample's latest
        adversarial perturbation (shaped like a sample, ``sample_shape_``), on
        the device. Drawn anew by each ``fit``,
        continued by ``partial_fit``, not pickled.
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SRATClassifier(max_epochs=2, epsilon=0.1, verbose=0, random_state=0)
    >>> clf.fit(X / 16, y).predict(X[:3] / 16).shape
    (3,)
    """

    def __init__(
        self,
        module=None,
        *args,
        criterion=ReweightedLoss,
        train_split=None,
        classes=None,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=30,
        batch_size=64,
        epsilon=8 / 255,
        step_size=None,
        n_steps=10,
        norm="linf",
        random_start=True,
        reuse_perturbations=False,
        bounds="auto",
        lambda_sep=1.0,
        temperature=0.1,
        separation_views="adversarial",
        class_weight="balanced",
        class_prior=None,
        beta=0.9999,
        reweight_epoch=0.75,
        reweight_lr_factor=0.1,
        sampler=None,
        loss="ce",
        focal_gamma=1.0,
        ldam_max_margin=0.5,
        ldam_scale=1.0,
        feature_layer=None,
        input_shape=None,
        mixed_precision=None,
        channels_last=False,
        random_state=None,
        **kwargs,
    ):
        # skorch does not shuffle by default; SGD on sorted or grouped rows trains badly.
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(
            module,
            *args,
            criterion=criterion,
            train_split=train_split,
            classes=classes,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            **kwargs,
        )
        self.epsilon = epsilon
        self.step_size = step_size
        self.n_steps = n_steps
        self.norm = norm
        self.random_start = random_start
        self.reuse_perturbations = reuse_perturbations
        self.bounds = bounds
        self.lambda_sep = lambda_sep
        self.temperature = temperature
        self.separation_views = separation_views
        self.class_weight = class_weight
        self.class_prior = class_prior
        self.beta = beta
        self.reweight_epoch = reweight_epoch
        self.reweight_lr_factor = reweight_lr_factor
        self.sampler = sampler
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.ldam_max_margin = ldam_max_margin
        self.ldam_scale = ldam_scale
        self.feature_layer = feature_layer
        self.input_shape = input_shape
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.random_state = random_state

    def _get_param_names(self):
        # skorch lists private bookkeeping such as _params_to_validate as a parameter;
        # clone() and set_params() must not copy or overwrite it.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def set_params(self, **kwargs):
        """Set parameters (see skorch); if that fails, the estimator is left as it was.

        skorch re-initialises callbacks, modules or the optimizer as soon as
        their parameters change, which can raise half-way through.
        """
        state = dict(self.__dict__)
        try:
            return super().set_params(**kwargs)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    # ------------------------------------------------------------------ callbacks

    @property
    def _default_callbacks(self):
        callbacks = []
        for name, callback in super()._default_callbacks:
            if name == "valid_acc":
                callback = EpochScoring(_encoded_accuracy, name="valid_acc",
                                        lower_is_better=False)
            callbacks.append((name, callback))
        # Before print_log, so the epoch's row shows whether the weights are on.
        callbacks.insert(len(callbacks) - 1, ("reweighting", DeferredReweighting()))
        return callbacks

    # ------------------------------------------------------------------ validation

    def _check_params(self):
        """Validate the hyper-parameters; raise before any data is touched."""
        check_int(self.max_epochs, "max_epochs", min_val=1)
        if self.batch_size != -1:
            check_int(self.batch_size, "batch_size", min_val=1)
        check_real(self.lr, "lr", min_val=0, include_boundaries="neither")
        check_attack_params(self.epsilon, self.step_size, self.n_steps, self.norm)
        for name in ("random_start", "reuse_perturbations"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}.")
        self._check_bounds()
        check_real(self.lambda_sep, "lambda_sep", min_val=0)
        check_real(self.temperature, "temperature", min_val=0, include_boundaries="neither")
        check_option(self.separation_views, "separation_views", SEPARATION_VIEWS)
        check_class_weight(self.class_weight)
        check_class_prior(self.class_prior)
        check_real(self.beta, "beta", min_val=0, max_val=1, include_boundaries="left")
        resolve_reweight_epoch(self.reweight_epoch, self.max_epochs)
        check_real(self.reweight_lr_factor, "reweight_lr_factor", min_val=0,
                   include_boundaries="neither")
        if self.sampler is not None:
            check_option(self.sampler, "sampler", SAMPLERS)
        check_option(self.loss, "loss", LOSSES)
        check_real(self.focal_gamma, "focal_gamma", min_val=0)
        check_real(self.ldam_max_margin, "ldam_max_margin", min_val=0)
        check_real(self.ldam_scale, "ldam_scale", min_val=0, include_boundaries="neither")
        if self.feature_layer is not None and not isinstance(self.feature_layer, str):
            raise TypeError(f"feature_layer must be None or a submodule name, "
                            f"got {self.feature_layer!r}.")
        if self.input_shape is not None:
            shape = self.input_shape
            if (not isinstance(shape, (tuple, list)) or not shape
                    or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape)):
                raise ValueError(f"input_shape must be None or a tuple of positive ints, "
                                 f"got {shape!r}.")
        if not self._uses_reweighted_loss() and (self.class_weight is not None
                                                 or self.loss != "ce"):
            raise ValueError(
                "class_weight and loss='focal'/'ldam' need criterion=ReweightedLoss (the "
                f"default); got criterion={self.criterion!r}. Set class_weight=None to use "
                "another criterion.")
        if self.mixed_precision is not None:
            check_option(self.mixed_precision, "mixed_precision", MIXED_PRECISIONS)
        if not isinstance(self.channels_last, (bool, np.bool_)):
            raise TypeError(f"channels_last must be a bool, got {self.channels_last!r}.")
        check_random_state(self.random_state)

    def _check_bounds(self):
        bounds = self.bounds
        if bounds is None or (isinstance(bounds, str) and bounds == "auto"):
            return
        if isinstance(bounds, str) or not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"bounds must be 'auto', None or a pair (low, high), got {bounds!r}.")
        low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"bounds must be finite, got {bounds!r}.")
        if np.any(low > high):
            raise ValueError(f"bounds must have low <= high, got {bounds!r}.")

    def _uses_reweighted_loss(self):
        criterion = self.criterion
        cls = criterion if isinstance(criterion, type) else type(criterion)
        return issubclass(cls, ReweightedLoss)

    def _validate_X(self, X, *, reset):
        """Check X and bring it to float32 samples of the module's shape."""
        X = validate_data(self, X, reset=reset, allow_nd=True,
                          dtype=(np.float32, np.float64), ensure_all_finite=True)
        return self._shape_X(X, reset=reset)

    def _shape_X(self, X, *, reset):
        if X.ndim > 4:
            raise ValueError(f"X must have 2 (tabular) or 4 (images) dimensions, got X with "
                             f"{X.ndim} dimensions and shape {X.shape}.")
        input_shape = None if self.input_shape is None else tuple(self.input_shape)
        if input_shape is not None and X.shape[1:] != input_shape:
            if X.ndim != 2:
                raise ValueError(f"input_shape reshapes the rows of a 2-D X, but X has "
                                 f"{X.ndim} dimensions and samples of shape {X.shape[1:]}.")
            if np.prod(self.input_shape) != X.shape[1]:
                raise ValueError(
                    f"input_shape={tuple(self.input_shape)} holds {np.prod(self.input_shape)} "
                    f"values, but the rows of X have {X.shape[1]}.")
            X = X.reshape(len(X), *self.input_shape)
        if reset:
            self.sample_shape_ = tuple(X.shape[1:])
        elif hasattr(self, "sample_shape_") and tuple(X.shape[1:]) != self.sample_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but the classifier "
                             f"was fitted on samples of shape {self.sample_shape_}.")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _prepare_fit_data(self, X, y, *, reset):
        """Validate and encode the training data; set the data-dependent fitted attributes."""
        self._check_params()
        if is_dataset(X):
            return self._prepare_fit_dataset(X, y, reset=reset)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None (only a torch Dataset X carries its own labels).")
        X, y = validate_data(self, X, y, reset=reset, allow_nd=True,
                             dtype=(np.float32, np.float64), ensure_all_finite=True)
        check_classification_targets(y)
        X = self._shape_X(X, reset=reset)
        if reset:
            encoder = LabelEncoder().fit(self.classes if self.classes is not None else y)
            self.classes_ = encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(f"SRATClassifier needs samples of at least 2 classes in y; "
                                 f"got 1 class: {self.classes_.tolist()}.")
            self.bounds_ = self._infer_bounds(X)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y holds labels the classifier does not know: {unknown.tolist()}; "
                             f"its classes are {self.classes_.tolist()}.")
        if isinstance(self.class_weight, dict):
            check_class_weight(self.class_weight, np.unique(y))
        self._bounds_cache_ = {}
        return X, np.searchsorted(self.classes_, y).astype(np.int64)

    def _prepare_fit_dataset(self, dataset, y, *, reset):
        if y is not None:
            raise ValueError("Pass y=None with a torch Dataset: its items hold the labels.")
        if self.input_shape is not None:
            raise ValueError("input_shape reshapes 2-D arrays; it does not apply to a Dataset.")
        labels = dataset_labels(dataset)
        if len(labels) == 0:
            raise ValueError("The Dataset is empty.")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError("The labels of a Dataset must be class indices 0, 1, ..., "
                             f"got labels of dtype {labels.dtype} with minimum {labels.min()}.")
        if reset:
            n_classes = len(self.classes) if self.classes is not None else int(labels.max()) + 1
            self.classes_ = np.arange(n_classes)
            if n_classes < 2:
                raise ValueError("SRATClassifier needs at least 2 classes; the Dataset has 1.")
            sample = to_numpy(dataset[0][0])
            self.sample_shape_ = tuple(sample.shape)
            self.n_features_in_ = sample.shape[0]
            self.bounds_ = self._infer_bounds_from_dataset(dataset)
        if labels.max() >= len(self.classes_):
            raise ValueError(f"The Dataset has label {labels.max()}, but the classifier has "
                             f"{len(self.classes_)} classes.")
        self._bounds_cache_ = {}
        return dataset, None

    def _set_attributes_without_data(self):
        self.classes_ = LabelEncoder().fit(self.classes).classes_
        if self.input_shape is not None:
            # X may come as rows or as samples of this shape, so n_features_in_ stays unset.
            self.sample_shape_ = tuple(self.input_shape)
        self.bounds_ = None if isinstance(self.bounds, str) else self._infer_bounds(None)

    def _infer_bounds(self, X):
        if self.bounds is None:
            return None
        if not isinstance(self.bounds, str):
            low, high = self.bounds
            return np.asarray(low, np.float32), np.asarray(high, np.float32)
        if X.ndim == 2:
            return X.min(axis=0), X.max(axis=0)
        return np.float32(X.min()), np.float32(X.max())

    def _infer_bounds_from_dataset(self, dataset):
        if not isinstance(self.bounds, str):
            return self._infer_bounds(None)
        low, high = np.inf, -np.inf
        for Xi, _ in self.get_iterator(dataset, training=False):
            low, high = min(low, float(Xi.min())), max(high, float(Xi.max()))
        return np.float32(low), np.float32(high)

    # ------------------------------------------------------------------ fitting

    @contextmanager
    def _seeded(self):
        """Seed torch from ``random_state`` without changing the caller's global RNG state.

        Inside, each epoch reseeds torch from ``(seed, epoch)`` (see
        ``on_epoch_begin``), so that a fit resumed from a checkpoint after
        epoch k draws the same batches and random starts as one that ran
        straight through.
        """
        if self.random_state is None:
            yield
            return
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = self._compute_device()
        cuda = [device.index or 0] if device.type == "cuda" else []
        # Nested when a scorer attacks the model during fit (EpochScoring): the outer
        # fit's per-epoch seed must survive the inner call.
        outer_seed = self.__dict__.get("_epoch_seed_")
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            self._epoch_seed_ = seed
            try:
                yield
            finally:
                if outer_seed is None:
                    del self._epoch_seed_
                else:
                    self._epoch_seed_ = outer_seed

    def _compute_device(self):
        """Where the module runs: the device whose generator a seeded fit forks, and autocast's."""
        return torch.device(self.device if self.device is not None else "cpu")

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                               **kwargs)
        seed = getattr(self, "_epoch_seed_", None)
        if seed is not None:
            epoch = len(self.history)  # 1-based and global: a loaded history continues it
            torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))

    def fit(self, X, y=None, **fit_params):
        """Initialise and train the network with SRAT.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w), or a Dataset
            Training inputs; a torch Dataset yields ``(x, label)`` with labels
            already encoded as ``0 .. n_classes - 1``.
        y : array-like of shape (n_samples,), or None with a Dataset
            Labels of any kind (strings, non-contiguous integers).
        **fit_params
            Passed to the module's ``forward`` and to ``train_split``.

        Returns
        -------
        self
        """
        continuing = self.warm_start and self.initialized_
        X, y = self._prepare_fit_data(X, y, reset=not continuing)
        with self._seeded():
            if not continuing:
                self.initialize()
            # NeuralNet.partial_fit, not ours: the data are validated already.
            super().partial_fit(X, y, _routing_method="fit", **fit_params)
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising (see skorch)."""
        X, y = self._prepare_fit_data(X, y, reset=not self.initialized_)
        with self._seeded():
            return super().partial_fit(X, y, classes=classes, **fit_params)

    def initialize_module(self):
        if self.module is not None:
            super().initialize_module()
        else:
            self._build_default_module()
        if self.channels_last:
            self.module_.to(memory_format=torch.channels_last)  # 4-D weights only
        return self

    def _build_default_module(self):
        if not hasattr(self, "sample_shape_"):
            raise ValueError("module=None builds the default network from the data: call fit, "
                             "pass a module, or pass classes=... and input_shape=... to build "
                             "it without data.")
        self.module_ = default_module(self.sample_shape_, self._n_classes(),
                                      **self.get_params_for("module"))

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if self._uses_reweighted_loss():
            kwargs = {"n_classes": self._n_classes(), "loss": self.loss,
                      "focal_gamma": self.focal_gamma, "ldam_max_margin": self.ldam_max_margin,
                      "ldam_scale": self.ldam_scale, **kwargs}
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def _n_classes(self):
        if hasattr(self, "classes_"):
            return len(self.classes_)
        if self.classes is not None:
            return len(self.classes)
        raise ValueError("The number of classes is known only after fit; pass classes=... "
                         "to initialize before fitting.")

    def initialize(self):
        """Build the module, criterion and optimizer (skorch), before fit if need be.

        Before any fit this needs ``classes=[...]``, and ``input_shape`` for the
        default module; that is how an estimator is prepared for
        ``load_params``. ``bounds="auto"`` has no data to take the range from
        then: pass explicit ``bounds`` to attack such an estimator.
        """
        self._before_initialize()
        super().initialize()
        self._after_initialize()
        return self

    # Separate from initialize, which skorch's AccelerateMixin replaces rather than extends.
    def _before_initialize(self):
        self._check_params()
        if "classes_" not in self.__dict__ and self.classes is not None:
            self._set_attributes_without_data()

    def _after_initialize(self):
        self.__dict__.pop("perturbations_", None)  # a new fit starts its attacks anew
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # _check_params has warned already
            self.reweight_epoch_ = resolve_reweight_epoch(self.reweight_epoch, self.max_epochs)
        if self.lambda_sep > 0:
            find_feature_layer(self._bare_module(), self.feature_layer)  # fail early if bad

    def get_split_datasets(self, X, y=None, **fit_params):
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        # Class counts from the training split only, never the validation split.
        labels = dataset_labels(dataset_train)
        self.class_counts_ = np.bincount(labels, minlength=len(self.classes_))
        self.class_prior_ = resolve_class_prior(self.class_prior, self.class_counts_,
                                                self.classes_)
        if self.class_prior is None and self.class_weight is not None and len(labels) \
                and np.all(self.class_counts_ == self.class_counts_[0]):
            warnings.warn(
                f"Every class has the same number of training samples "
                f"({self.class_counts_[0]}), so class_weight={self.class_weight!r} weighs "
                "every class 1 and the deferred reweighting changes only the learning rate. "
                "If a sampler balanced the data in front of this estimator, pass the class "
                "counts before resampling as class_prior=...; else set class_weight=None.",
                UserWarning, stacklevel=2)
        # The counts of the data before resampling, on the scale of the training split.
        counts = (self.class_counts_ if self.class_prior is None
                  else self.class_prior_ * self.class_counts_.sum())
        self.class_weights_ = compute_class_weights(self.class_weight, counts, self.classes_,
                                                    self.beta)
        if self.loss == "ldam":
            if np.any(counts == 0):
                raise ValueError("loss='ldam' needs every class in the training split; classes "
                                 f"{self.classes_[counts == 0].tolist()} have none.")
            self.criterion_.set_class_counts(counts)
        return dataset_train, dataset_valid

    def get_iterator(self, dataset, training=False, batch_size=None):
        """skorch's iterator, with the balanced sampler and whole-batch reads of arrays.

        See :func:`srat_sklearn.datasets.make_loader`: for arrays in memory
        the batches are the same, read with one index each. ``batch_size``
        overrides skorch's (the attacks of an evaluation use larger batches).
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        configured = kwargs.pop("batch_size", self.batch_size)
        batch_size = configured if batch_size is None else batch_size
        kwargs["batch_size"] = len(dataset) if batch_size == -1 else batch_size
        if training and self.sampler == "balanced":
            kwargs.pop("shuffle", None)  # DataLoader takes a sampler or shuffle, not both
            kwargs["sampler"] = balanced_sampler(dataset_labels(dataset))
        if training and self.reuse_perturbations:
            self._n_training_samples_ = len(dataset)  # sizes perturbations_
        return make_loader(getattr(self, prefix), dataset, **kwargs,
                           with_indices=training and self.reuse_perturbations)

    # ------------------------------------------------------------------ the SRAT step

    def _autocast(self):
        """Mixed precision for the forward passes, on the estimator's device."""
        if self.mixed_precision != "bf16":
            return nullcontext()  # a disabled autocast still costs a few state switches
        return torch.autocast(self._compute_device().type, dtype=torch.bfloat16)

    def _memory_format(self, X):
        if self.channels_last and isinstance(X, torch.Tensor) and X.ndim == 4:
            return X.contiguous(memory_format=torch.channels_last)
        return X

    def infer(self, x, **fit_params):
        if self.channels_last:
            x = self._memory_format(to_tensor(x, device=self.device))
        with self._autocast():
            y_pred = super().infer(x, **fit_params)
        # Losses, softmax and the numpy conversion (which has no bfloat16) in float32.
        return y_pred.float() if self.mixed_precision else y_pred

    def _bare_module(self):
        """The module itself, for the attack and the feature hook.

        Data-parallel subclasses return the module inside its wrapper: the attack
        and the extra forward of the clean view must not go through
        DistributedDataParallel, which would wait for a gradient reduction that
        an input gradient never triggers.
        """
        return self.module_

    def _gather_batch(self, tensor):
        """A batch computed outside skorch's evaluation step; data-parallel: from all."""
        return tensor

    def _separation_loss(self, features, labels):
        """The separation loss of a batch; data-parallel subclasses gather it first."""
        return supervised_contrastive_loss(features.float(), labels, self.temperature)

    def _attack_bounds(self, like):
        if self.bounds_ is None:
            if isinstance(self.bounds, str):
                raise ValueError(
                    "bounds='auto' takes the data range at fit, but this classifier was "
                    "initialised without data (initialize, then load_params): set "
                    "bounds=(low, high), or None for unbounded inputs.")
            return None
        key = (like.device, like.dtype)
        if key not in self._bounds_cache_:
            # Cached per device: a host-to-device copy every batch would synchronise.
            self._bounds_cache_[key] = tuple(
                torch.as_tensor(b, dtype=like.dtype, device=like.device) for b in self.bounds_)
        return self._bounds_cache_[key]

    def _resolve_attack(self, attack, *, epsilon=None, step_size=None, n_steps=None, norm=None,
                        random_start=None, n_restarts=1, n_queries=None, n_targets=None):
        """An attack's settings, the estimator's threat model filling those left at None.

        PGD alone also takes the training attack's steps (and, at the training
        radius, its step size); the other attacks keep their standard iterations.
        """
        epsilon = self.epsilon if epsilon is None else epsilon
        if isinstance(attack, str) and attack == "pgd":
            n_steps = self.n_steps if n_steps is None else n_steps
            if step_size is None and epsilon == self.epsilon and n_steps == self.n_steps:
                step_size = self.step_size
        return dict(epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                    norm=self.norm if norm is None else norm,
                    random_start=self.random_start if random_start is None else random_start,
                    n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets)

    def _attack(self, X, y, *, attack="pgd", start=None, skip_misclassified=False, **settings):
        """Adversarial examples of a batch under the estimator's threat model."""
        X = self._memory_format(X)
        with self._autocast():
            return run_attack(attack, self._bare_module(), X, y, bounds=self._attack_bounds(X),
                              start=start, skip_misclassified=skip_misclassified,
                              **self._resolve_attack(attack, **settings))

    def train_step(self, batch, **fit_params):
        """Replace the batch by its adversarial examples, then take skorch's step on them.

        The attack lives here rather than in ``train_step_single`` so that it
        also runs when skorch's ``AccelerateMixin`` replaces that method.
        """
        rows = None
        if self.reuse_perturbations:
            *batch, rows = batch  # make_loader(with_indices=True) appends them
        if self.epsilon > 0:
            Xi, yi = unpack_data(batch)
            if not isinstance(Xi, torch.Tensor) and not isinstance(Xi, np.ndarray):
                raise TypeError("The attacks need each batch of X to be a single tensor; got "
                                f"{type(Xi).__name__}.")
            Xi = to_tensor(Xi, device=self.device)
            if self.lambda_sep > 0 and self.separation_views == "adversarial+clean":
                self._clean_view_ = Xi
            start = None
            if rows is not None:
                rows = to_tensor(rows, device=Xi.device)  # one copy for the read and the write
                start = self._previous_perturbations(Xi, rows)
            X_adv = self._attack(Xi, to_tensor(yi, device=self.device), start=start)
            if rows is not None:
                self.perturbations_[rows] = X_adv - Xi
            batch = (X_adv, yi)
        if self.lambda_sep == 0:
            return super().train_step(batch, **fit_params)
        with capture_features(self._bare_module(), self.feature_layer) as captured:
            self._captured_features_ = captured
            try:
                return super().train_step(batch, **fit_params)
            finally:
                del self._captured_features_
                self.__dict__.pop("_clean_view_", None)

    def _previous_perturbations(self, X, rows):
        """The perturbations the samples at ``rows`` of the training set had last time.

        Drawn at random (or zero without ``random_start``) the first time,
        for the whole training set at once.
        """
        store = self.__dict__.get("perturbations_")
        shape = (self._n_training_samples_, *X.shape[1:])
        if store is None or store.shape != shape or store.device != X.device:
            store = torch.zeros(shape, dtype=X.dtype, device=X.device)
            if self.random_start:
                store = random_perturbation(store, self.epsilon, self.norm)
            self.perturbations_ = store
        return store[rows]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Class-weighted loss, plus ``lambda_sep`` times the separation loss when training."""
        y_true = to_tensor(y_true, device=self.device)
        if y_pred.ndim != 2 or y_pred.shape[1] != len(self.classes_):
            raise ValueError(
                f"The module returns outputs of shape {tuple(y_pred.shape)}, but logits of shape "
                f"(batch, {len(self.classes_)}) are needed, one column per class.")
        loss = self.criterion_(y_pred, y_true)
        captured = getattr(self, "_captured_features_", None) if training else None
        if captured:
            features, labels = captured[-1], y_true
            clean = getattr(self, "_clean_view_", None)
            if clean is not None:
                with self._autocast():  # the capture hook appends the clean features
                    self._bare_module()(self._memory_format(clean))
                features = torch.cat([features, captured[-1]])
                labels = torch.cat([y_true, y_true])
            loss = loss + self.lambda_sep * self._separation_loss(features, labels)
        # Checked before backward and the optimizer step, so the parameters stay usable.
        if training and not torch.isfinite(loss):
            epoch = len(self.history)
            batch = len(self.history[-1]["batches"])  # skorch adds the row before the step
            raise NonFiniteLossError(
                f"The training loss became {loss.item()} at epoch {epoch}, batch {batch}; "
                "lower lr or epsilon, or check the data. The parameters are those before "
                "this batch.")
        return loss

    # ------------------------------------------------------------------ prediction

    @property
    def classes_(self):
        try:
            return self.__dict__["classes_"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' before "
                                 "fit.") from None

    @classes_.setter
    def classes_(self, value):
        self.__dict__["classes_"] = value

    def _get_predict_nonlinearity(self):
        if isinstance(self.predict_nonlinearity, str) and self.predict_nonlinearity == "auto":
            self.check_is_fitted()
            return partial(torch.softmax, dim=-1)
        return super()._get_predict_nonlinearity()

    def _validate_predict_X(self, X):
        check_is_fitted(self, ["classes_", "module_"])
        if is_dataset(X):
            return X
        return self._validate_X(X, reset=False)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``; rows sum to 1."""
        return super().predict_proba(self._validate_predict_X(X))

    def predict(self, X):
        """Predicted labels, of the same kind as the ``y`` given to fit."""
        indices = self.predict_proba(X).argmax(axis=1)  # validates and checks fitted first
        return self.classes_[indices]

    def attack_settings(self, attack="pgd", *, epsilon=None, step_size=None, n_steps=None,
                        norm=None, random_start=None, n_restarts=1, n_queries=None,
                        n_targets=None):
        """The settings :meth:`generate_adversarial` attacks with, resolved, as reports state them.

        Examples
        --------
        >>> clf.attack_settings("autoattack")["n_queries"]  # doctest: +SKIP
        5000
        """
        settings = self._resolve_attack(attack, epsilon=epsilon, step_size=step_size,
                                        n_steps=n_steps, norm=norm, random_start=random_start,
                                        n_restarts=n_restarts, n_queries=n_queries,
                                        n_targets=n_targets)
        return attack_settings(attack, **settings)

    def generate_adversarial(self, X, y, *, attack="pgd", epsilon=None, step_size=None,
                             n_steps=None, norm=None, random_start=None, n_restarts=1,
                             n_queries=None, n_targets=None, batch_size=None, verbose=0):
        """Adversarial examples of ``X`` against this fitted classifier.

        Parameters default to the estimator's own threat model. PGD takes the
        training attack's steps (and step size, when ``epsilon`` and
        ``n_steps`` are the estimator's; else ``2.5 * epsilon / n_steps``); the
        other attacks take their standard settings: 100 iterations, 5000
        queries, 9 target classes (see :func:`srat_sklearn.attacks.run_attack`).

        Parameters
        ----------
        X : array-like of the shape given to fit
        y : array-like of shape (n_samples,), labels as given to fit
        attack : str or sequence of str, default="pgd"
            One of :data:`srat_sklearn.attacks.ATTACKS` ("autoattack" is
            standard AutoAttack), or several names: an ensemble in which each
            attack runs on the samples the earlier ones did not fool.
            "apgd-dlr" needs 3 or more classes.
        epsilon, step_size, n_steps, norm, random_start, n_restarts, n_queries, n_targets
            The attack's settings, as in :func:`srat_sklearn.attacks.run_attack`.
        batch_size : int or None, default=None
            Samples attacked together; ``None``: 250, as AutoAttack evaluates.
            Larger batches run the attacks' many iterations faster; lower it
            when the device runs out of memory.
        verbose : int, default=0
            1 shows a progress bar over the batches for the long attacks
            (ensembles, APGD-T, FAB-T, Square); 2 for every attack.

        Returns
        -------
        numpy.ndarray, float32, of the shape of ``X``
            A sample the classifier already misclassifies is returned as it
            is: it is its own adversarial example, and robust accuracy counts
            only samples that are classified correctly both clean and attacked.

        Examples
        --------
        >>> X_adv = clf.generate_adversarial(X_test, y_test, attack="autoattack")  # doctest: +SKIP
        """
        X_shape = np.shape(X)
        X_valid = self._validate_predict_X(X)
        if is_dataset(X_valid):
            raise TypeError("generate_adversarial takes arrays; iterate over the Dataset and "
                            "call srat_sklearn.attacks.run_attack on module_ for a Dataset.")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X_valid):
            raise ValueError(f"y must be 1-D with one label per row of X; got shape {y.shape} "
                             f"for {len(X_valid)} rows.")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y holds labels the classifier was not fitted on: "
                             f"{unknown.tolist()}.")
        y_index = np.searchsorted(self.classes_, y).astype(np.int64)
        requested = dict(epsilon=epsilon, step_size=step_size, n_steps=n_steps, norm=norm,
                         random_start=random_start, n_restarts=n_restarts, n_queries=n_queries,
                         n_targets=n_targets)
        settings = self._resolve_attack(attack, **requested)
        settings.pop("random_start")
        members = check_attack(attack, **settings)
        if "apgd-dlr" in members and len(self.classes_) < 3:
            raise ValueError(f"attack='apgd-dlr' needs at least 3 classes; this classifier has "
                             f"{len(self.classes_)}.")
        verbose = check_int(verbose, "verbose", min_val=0)
        batch_size = check_int(batch_size, "batch_size", min_val=1, allow_none=True)
        long = len(members) > 1 or bool({"apgd-t", "fab-t", "square"} & set(members))
        name = ("AutoAttack" if isinstance(attack, str) and attack == "autoattack"
                else " + ".join(DISPLAY_NAMES[m] for m in members))
        iterator = self.get_iterator(self.get_dataset(X_valid, y_index), training=False,
                                     batch_size=batch_size or EVALUATION_BATCH_SIZE)
        adversarial = []
        with self._seeded(), tqdm(total=len(iterator), desc=name, unit="batch",
                                  disable=not (verbose >= 2 or (verbose == 1 and long))) as bar:
            for Xi, yi in iterator:
                adv = self._attack(to_tensor(Xi, device=self.device),
                                   to_tensor(yi, device=self.device), attack=attack,
                                   skip_misclassified=True, **requested)
                adversarial.append(to_numpy(self._gather_batch(adv)))
                bar.update()
        return np.concatenate(adversarial).reshape(X_shape).astype(np.float32, copy=False)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, **kwargs):
        """Load parameters saved by ``save_params`` or a ``Checkpoint`` (see skorch).

        The estimator must have the same module as the one that saved them:
        built with the same ``module`` and ``module__*`` parameters, and fitted
        on data of the same shape or initialised with ``classes`` and
        ``input_shape``.

        Examples
        --------
        >>> clf.save_params(f_params="srat.pt")  # doctest: +SKIP
        >>> new = SRATClassifier(classes=clf.classes_, input_shape=(1, 8, 8),
        ...                      bounds=(0.0, 1.0)).initialize()  # doctest: +SKIP
        >>> new.load_params(f_params="srat.pt")  # doctest: +SKIP
        """
        try:
            return super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                                       f_criterion=f_criterion, f_history=f_history,
                                       checkpoint=checkpoint, **kwargs)
        except RuntimeError as error:
            if "state_dict" not in str(error):
                raise
            detail = str(error).strip().splitlines()
            raise ValueError(
                f"The saved parameters do not fit this estimator's network "
                f"({type(self.module_).__name__}): build it with the same module and "
                f"module__* parameters, and for module=None the same classes and input "
                f"shape, as the estimator that saved them. PyTorch says: "
                f"{' '.join(line.strip() for line in detail[:3])}") from error

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_bounds_cache_", None)  # device tensors; rebuilt on demand
        # As large as the training inputs, on the device, and only a starting point.
        state.pop("perturbations_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._bounds_cache_ = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags

