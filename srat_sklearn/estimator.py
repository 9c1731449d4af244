"""``SRATClassifier``: skorch's ``NeuralNetClassifier`` trained with SRAT.

skorch runs the training loop; the estimator composes the pieces of the package through
skorch's hooks (see docs/design.md):

- ``train_step`` replaces the batch by its adversarial examples (PGD's, or TRADES')
  (:mod:`srat_sklearn.attacks`) and, when ``lambda_sep > 0``, lets the separation term
  (:mod:`srat_sklearn.separation`) record the penultimate features of the same forward pass;
- ``get_loss`` adds ``lambda_sep`` times the separation loss to the class-weighted loss
  (:mod:`srat_sklearn.losses`); both live in :mod:`srat_sklearn._objective`;
- the ``reweighting`` callback (:mod:`srat_sklearn.weighting`) switches the class weights on.
"""

from functools import partial

import numpy as np
import torch
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.utils import is_dataset, to_numpy

from . import _inputs, _params, weighting
from ._adversarial import AdversarialMixin
from ._bounds import BoundsOnDevice, infer_bounds, infer_bounds_from_batches
from ._budgets import class_radius_factors
from ._compiled import CompileMixin
from ._feature_threat import fit_threat, radius
from ._objective import ObjectiveMixin
from ._persistence import PersistenceMixin
from ._perturbations import PerturbationStore
from ._precision import PrecisionMixin
from ._seeding import epoch_seeded, seed_epoch
from .loading import dataset_labels, make_loader
from .losses import NonFiniteLossError, ReweightedLoss
from .models import default_module

__all__ = ["SRATClassifier", "NonFiniteLossError"]

def _encoded_accuracy(net, X, y):
    # skorch scores the validation split with encoded labels; compare indices, not labels.
    return accuracy_score(to_numpy(y), net.predict_proba(X).argmax(axis=1))


class SRATClassifier(ObjectiveMixin, AdversarialMixin, PrecisionMixin, CompileMixin,
                     PersistenceMixin, _inputs.InputsMixin, NeuralNetClassifier):
    """Separable Reweighted Adversarial Training (Wang et al., 2021) as an sklearn classifier.

    Each training batch is replaced by PGD adversarial examples; the loss is
    the class-weighted classification loss plus ``lambda_sep`` times a
    supervised contrastive loss on the L2-normalised penultimate features of
    the adversarial examples; the class weights are all ones until
    ``reweight_epoch`` and on from it, when the learning rate is also
    multiplied by ``reweight_lr_factor``. ``epsilon=0`` is natural training;
    ``lambda_sep=0, class_weight=None`` is PGD adversarial training (Madry et
    al.). The user guide explains how to choose each parameter.

    Parameters
    ----------
    module : torch.nn.Module class or instance, or None, default=None
        Maps a batch to logits of shape (n, n_classes), or to a tuple whose
        first item they are (skorch's rule). ``None``: :class:`~srat_sklearn.models.MLP`
        for 2-D input, :class:`~srat_sklearn.models.SmallCNN` for images, sized
        from the data at fit; options via ``module__hidden_units=...`` etc.
    epsilon : float or array-like of shape (n_features,), default=8/255
        Radius of the training threat model, in the units of X (or of
        ``epsilon_scale``); for 2-D X also one budget per feature. The user
        guide's "Tabular data" states the threat model.
    step_size : float or None, default=None
        PGD step; ``None`` uses ``2.5 * epsilon / n_steps``.
    n_steps : int, default=10
        PGD steps per training batch.
    norm : {"linf", "l2"}, default="linf"
    random_start : bool, default=True
        Start PGD from a random point of the ball.
    reuse_perturbations : bool, default=False
        Start each training sample's attack from its perturbation of the
        previous epoch (ATTA, Zheng et al., 2020), so that a few steps per
        batch add up over the epochs. Keeps one perturbation per training
        sample on the device; for data without random augmentation.
    adversarial_loss : {"madry", "trades"}, default="madry"
        ``"madry"`` trains on PGD's adversarial examples (the paper's);
        ``"trades"`` is TRADES (Zhang et al., 2019): the attack maximises the
        KL divergence from the clean prediction, and the loss is the
        class-weighted loss of the clean inputs plus ``trades_beta`` times
        that divergence. Both take the separation loss of the adversarial
        features.
    trades_beta : float, default=6.0
        TRADES' weight of the divergence (the paper's 6 for CIFAR-10).
    class_epsilon_mix : float in [0, 1], default=0.0
        Class-aware training budgets (RobustLT): class ``c`` is attacked at
        ``epsilon * ((1 - mix) + mix * s_c / mean(s))``, ``s_c =
        sqrt(log(n_max / n_c))`` of the class counts; 0: one budget.
    epsilon_warmup : int or float, default=0
        Epochs over which the training budget grows linearly to ``epsilon`` (a
        float in [0, 1) is a fraction of ``max_epochs``; more epochs than the fit warn); 0: none.
    bounds : "auto", None or tuple (low, high), default="auto"
        Valid range of the inputs. ``"auto"``: the per-feature minimum and
        maximum of the training data for 2-D X, the global ones for images.
        ``None``: unbounded. Attacks widen it to contain each input.
    perturbable_features : None or array-like, default=None
        For 2-D X, the features an attack may change (a boolean mask,
        indices, or the column names of a DataFrame); ``None``: all. No
        attack, in training or evaluation, changes the others.
    epsilon_scale : None or "std", default=None
        For 2-D X, ``"std"`` measures epsilon in standard deviations of each
        feature on the training data (``epsilon_scale_``).
    integer_features : None or array-like, default=None
        For 2-D X, the features that hold whole numbers (a mask, indices or
        column names): every attack moves them by whole units only, its
        perturbation truncated towards zero, so adversarial rows stay valid.
    lambda_sep : float, default=1.0
        Weight of the feature separation loss.
    temperature : float, default=0.1
        Temperature of the separation loss.
    separation_views : {"adversarial", "adversarial+clean"}, default="adversarial"
        "adversarial" contrasts the adversarial batch (the paper's);
        "adversarial+clean" adds the clean batch as a second view (one more
        forward pass; TRADES reuses it), so that every sample has a positive.
    class_weight : None, "balanced", "effective" or dict, default="balanced"
        Class weights switched on at ``reweight_epoch`` (see
        :func:`~srat_sklearn.weighting.compute_class_weights`), from
        ``class_prior``, normalised to mean 1.
    class_prior : None, array-like of shape (n_classes,) or dict, default=None
        Class counts of the data *before any resampling* (sorted labels'
        order, or ``{label: count}``): class weights, LDAM margins and the
        reports' under-represented group come from them. ``None`` counts the
        training split; set it when a sampler balances the data in front.
    beta : float, default=0.9999
        ``beta`` of the effective number of samples (``class_weight="effective"``).
    reweight_epoch : int or float, default=0.75
        Epoch from which the class weights are on, from 0 (skorch's table's
        row ``reweight_epoch + 1``); a float in [0, 1) is a fraction of
        ``max_epochs``. ``0`` weights from the start.
    reweight_lr_factor : float, default=0.1
        Learning-rate factor applied at ``lr_drop_epoch``, with or without
        class weights (one schedule for every method); composes with skorch's
        ``LRScheduler``.
    lr_drop_epoch : int, float or None, default=None
        Epoch of the drop, as ``reweight_epoch`` counts them. ``None``: at
        ``reweight_epoch``, or at 3/4 of ``max_epochs`` when that is 0 (AT-RW
        then drops when the deferred methods do). Past the fit's epochs, fit
        warns (as for ``reweight_epoch``).
    weight_normalization : {"samples", "weights"}, default="weights"
        The class-weighted loss divided by the sum of the batch's class
        weights (LDAM-DRW's: the loss keeps its scale next to the separation
        loss at the switch; chosen on validation splits, ``docs/results.md``),
        or averaged over its samples (``"samples"``, the paper's objective, as
        :data:`~srat_sklearn.methods.PAPER_METHODS` sets it).
    sampler : None or "balanced", default=None
        ``"balanced"`` draws class-balanced training batches anew each epoch
        (:func:`~srat_sklearn.weighting.balanced_sampler`); with
        ``class_weight=None`` and not ``loss="bsl"`` (else fit warns).
    loss : {"ce", "focal", "ldam", "bsl"}, default="ce"
        Classification loss; "bsl" is balanced softmax (AT-BSL's outer loss:
        logits shifted by ``bsl_tau`` times the log class prior in training).
    focal_gamma, ldam_max_margin, ldam_scale, bsl_tau : float
        ``gamma`` of the focal loss (1.0); margin of the rarest class (0.5) and
        logit scale (1.0; 30 suits cosine classifiers) of LDAM; strength of
        the balanced-softmax shift (1.0). See :mod:`srat_sklearn.losses`.
    feature_layer : str or None, default=None
        Features of the separation loss: ``None`` is the input of the module's
        last ``nn.Linear``; a submodule name takes its flattened output.
    input_shape : tuple of int or None, default=None
        Shape of one sample, e.g. ``(1, 8, 8)``: rows of a 2-D X are reshaped
        to it, so that samplers that only take 2-D arrays can sit in front.
    mixed_precision : {None, "bf16"}, default=None
        ``"bf16"`` runs the forward passes under ``torch.autocast`` in
        bfloat16; losses, input gradients and probabilities stay float32.
    channels_last : bool or "auto", default="auto"
        Channels-last memory order for 4-D weights and image batches.
        ``"auto"``: for networks with convolutions on the CPU (where oneDNN
        runs gradient-free attack queries about twice as fast this way, and
        standard AutoAttack on digits 1.3-1.9x as fast) or in bfloat16.
    compile : bool, default=False
        skorch's parameter, for adversarial training: the attacks' ascent step
        and the training forward pass run under ``torch.compile`` (options
        ``compile__*``); ``module_`` itself stays as it is.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, batch shuffling and the attacks' random
        starts, without changing torch's global random state.
    optimizer, lr, max_epochs, batch_size, train_split, callbacks, device, ...
        As in :class:`skorch.NeuralNetClassifier`. The defaults differ: Adam
        with ``lr=1e-3``, ``max_epochs=30``, ``batch_size=64``, no internal
        validation split (rare classes keep all their samples) and shuffled
        training batches.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in fit.
    class_counts_ : ndarray of shape (n_classes,)
        Training samples per class in the training split.
    class_prior_ : ndarray of shape (n_classes,)
        Class frequencies of weights and groups: ``class_prior`` normalised,
        or the training split's.
    class_weights_ : ndarray of shape (n_classes,)
        Class weights used from ``reweight_epoch_`` on.
    class_radius_factors_ : ndarray of shape (n_classes,) or None
        With ``class_epsilon_mix > 0``: each class's training budget per unit
        of ``epsilon``.
    epsilon_warmup_ : int
        The resolved warm-up epochs.
    reweight_epoch_, lr_drop_epoch_ : int
        The resolved epochs of the class weights' switch and of the
        learning-rate drop.
    bounds_ : tuple (low, high) or None
        The data bounds of the attacks.
    sample_shape_ : tuple
        Shape of one sample as the module sees it.
    channels_last_ : bool
        Whether the module and its batches are channels last.
    perturbable_mask_, epsilon_scale_ : ndarray of shape (n_features,) or None
        For 2-D X: the features attacks may change; the unit of epsilon per
        feature (None: the units of X).
    perturbations_ : torch.Tensor of shape (n_training_samples, ...)
        With ``reuse_perturbations=True``: each training sample's latest
        perturbation, on the device; anew each ``fit``, continued by
        ``partial_fit``, not pickled.
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SRATClassifier(max_epochs=2, epsilon=0.1, verbose=0, random_state=0)
    >>> clf.fit(X / 16, y).predict(X[:3] / 16).shape
    (3,)
    """

    _parameter_constraints = _params.PARAMETER_CONSTRAINTS

    def __init__(self, module=None, *args, criterion=ReweightedLoss, train_split=None,
                 classes=None, optimizer=torch.optim.Adam, lr=1e-3, max_epochs=30, batch_size=64,
                 epsilon=8 / 255, step_size=None, n_steps=10, norm="linf", random_start=True,
                 reuse_perturbations=False, adversarial_loss="madry", trades_beta=6.0,
                 class_epsilon_mix=0.0, epsilon_warmup=0, bounds="auto", perturbable_features=None,
                 epsilon_scale=None, integer_features=None, lambda_sep=1.0, temperature=0.1,
                 separation_views="adversarial", class_weight="balanced", class_prior=None,
                 beta=0.9999, reweight_epoch=0.75, reweight_lr_factor=0.1, lr_drop_epoch=None,
                 weight_normalization="weights", sampler=None, loss="ce", focal_gamma=1.0,
                 ldam_max_margin=0.5, ldam_scale=1.0, bsl_tau=1.0, feature_layer=None,
                 input_shape=None, mixed_precision=None, channels_last="auto", random_state=None,
                 **kwargs):
        # skorch does not shuffle by default; SGD on sorted or grouped rows trains badly.
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(module, *args, criterion=criterion, train_split=train_split,
                         classes=classes, optimizer=optimizer, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, **kwargs)
        self.epsilon = epsilon
        self.step_size = step_size
        self.n_steps = n_steps
        self.norm = norm
        self.random_start = random_start
        self.reuse_perturbations = reuse_perturbations
        self.adversarial_loss = adversarial_loss
        self.trades_beta = trades_beta
        self.class_epsilon_mix = class_epsilon_mix
        self.epsilon_warmup = epsilon_warmup
        self.bounds = bounds
        self.perturbable_features = perturbable_features
        self.epsilon_scale = epsilon_scale
        self.integer_features = integer_features
        self.lambda_sep = lambda_sep
        self.temperature = temperature
        self.separation_views = separation_views
        self.class_weight = class_weight
        self.class_prior = class_prior
        self.beta = beta
        self.reweight_epoch = reweight_epoch
        self.reweight_lr_factor = reweight_lr_factor
        self.lr_drop_epoch = lr_drop_epoch
        self.weight_normalization = weight_normalization
        self.sampler = sampler
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.ldam_max_margin = ldam_max_margin
        self.ldam_scale = ldam_scale
        self.bsl_tau = bsl_tau
        self.feature_layer = feature_layer
        self.input_shape = input_shape
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.random_state = random_state

    def _get_param_names(self):
        # skorch lists private bookkeeping (_params_to_validate); clone and set_params skip it.
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

    @property
    def _default_callbacks(self):
        callbacks = [(name, EpochScoring(_encoded_accuracy, name="valid_acc",
                                         lower_is_better=False) if name == "valid_acc" else cb)
                     for name, cb in super()._default_callbacks]
        # Before print_log, so the epoch's row shows whether the weights are on.
        callbacks.insert(len(callbacks) - 1, ("reweighting", weighting.DeferredReweighting()))
        return callbacks

    def _check_params(self, warn=True):
        """Validate the hyper-parameters (``_parameter_constraints``) before any data; with
        ``warn``, the schedule too (once per fit, where the data are prepared)."""
        _params.check_params(self, warn=warn)

    def _prepare_fit_data(self, X, y, *, reset, classes=None):
        """Validate and encode the training data; set the data-dependent fitted attributes."""
        self._check_params()
        classes = _inputs.fit_classes(self, classes, reset=reset)
        if is_dataset(X):
            labels = _inputs.check_dataset(X, y, self.input_shape)
            if reset:
                n_classes = int(labels.max()) + 1 if classes is None else len(classes)
                self.classes_ = _inputs.learn_classes(np.arange(n_classes))
                self.sample_shape_ = _inputs.dataset_sample_shape(X)
                self.n_features_in_ = self.sample_shape_[0]
                self._set_bounds(infer_bounds_from_batches(
                    self.bounds, self.get_iterator(X, training=False)))
            self._set_feature_threat(None, continuing=not reset)
            _inputs.label_indices(labels, np.arange(len(self.classes_)),
                                  what="the Dataset has labels beyond the classifier's classes")
            return X, None
        X, y = _inputs.validate_Xy(self, X, y, reset=reset)
        if reset:
            self.classes_ = _inputs.learn_classes(y, classes)
            self.sample_shape_ = tuple(X.shape[1:])
            self._set_bounds(infer_bounds(self.bounds, X))
        self._set_feature_threat(X, continuing=not reset)
        if isinstance(self.class_weight, dict):
            weighting.check_class_weight(self.class_weight, np.unique(y))
        return X, _inputs.label_indices(y, self.classes_)

    def _set_bounds(self, bounds):
        self.bounds_ = bounds
        self.bounds_on_device_ = BoundsOnDevice(bounds)

    def _set_feature_threat(self, X, continuing=False):
        """The per-feature threat model of 2-D X (:mod:`srat_sklearn._feature_threat`), of the
        current parameters, also when a call continues training."""
        names = getattr(self, "feature_names_in_", None)
        self.perturbable_mask_, self.epsilon_scale_, self.feature_threat_ = \
            fit_threat(self, X, names, continuing=continuing)

    def _set_attributes_without_data(self):
        self.classes_ = _inputs.learn_classes(self.classes)
        if self.input_shape is not None:
            # X may come as rows or as samples of this shape, so n_features_in_ stays unset.
            self.sample_shape_ = tuple(self.input_shape)
            self._set_feature_threat(None)
        if isinstance(self.bounds, str):  # "auto" without data: attacks must say so
            self.bounds_, self.bounds_on_device_ = None, BoundsOnDevice(None, unknown=(
                "bounds='auto' takes the data range at fit, but this classifier was initialised "
                "without data (initialize, then load_params): set bounds=(low, high), or None "
                "for unbounded inputs."))
        else:
            self._set_bounds(infer_bounds(self.bounds, None))

    # ------------------------------------------------------------------ fitting

    def _seeded(self):
        """Seed torch from ``random_state``, epoch by epoch (:mod:`srat_sklearn._seeding`)."""
        return epoch_seeded(self, self.random_state, self._compute_device())

    def _compute_device(self):
        """Where the module runs: the device whose generator a seeded fit forks, and autocast's."""
        return torch.device(self.device if self.device is not None else "cpu")

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        if getattr(self, "_epoch_seed_", None) is not None:
            seed_epoch(self._epoch_seed_, len(self.history))

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
        _inputs.refuse_sample_weight(fit_params)
        continuing = self.warm_start and self.initialized_
        X, y = self._prepare_fit_data(X, y, reset=not continuing)
        with self._seeded():
            if not continuing:
                self.initialize()
            # NeuralNet.partial_fit, not ours: the data are validated already.
            super().partial_fit(X, y, _routing_method="fit", **fit_params)
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train ``max_epochs`` more epochs (skorch); ``classes``, first call: every label."""
        _inputs.refuse_sample_weight(fit_params)
        X, y = self._prepare_fit_data(X, y, reset=not self.initialized_, classes=classes)
        with self._seeded():
            return super().partial_fit(X, y, classes=classes, **fit_params)

    def initialize_module(self):
        if self.module is not None:
            super().initialize_module()
        elif not hasattr(self, "sample_shape_"):
            raise ValueError("module=None builds the default network from the data: call fit, "
                             "pass a module, or pass classes=... and input_shape=... to build "
                             "it without data.")
        else:
            self.module_ = default_module(self.sample_shape_, self._n_classes(),
                                          **self.get_params_for("module"))
        self.channels_last_ = self._resolve_channels_last(self.module_)
        if self.channels_last_:
            self.module_.to(memory_format=torch.channels_last)  # 4-D weights only
        self.__dict__.pop("separation_", None)  # it follows the module
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if _params.uses_reweighted_loss(self.criterion):
            kwargs = {"n_classes": self._n_classes(),
                      **{name: getattr(self, name) for name in _params.CRITERION_OPTIONS},
                      **kwargs}
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def _n_classes(self):
        classes = getattr(self, "classes_", self.classes)  # fitted, else as given
        if classes is not None:
            return len(classes)
        raise ValueError("The number of classes is known only after fit; pass classes=... "
                         "to initialize before fitting.")

    def initialize(self):
        """Build the module, criterion and optimizer (skorch), before fit if need be.

        Before any fit this needs ``classes=[...]`` (and ``input_shape`` for the default
        module), as for ``load_params``; attacks then need explicit ``bounds``.
        """
        self._before_initialize()
        super().initialize()
        self._after_initialize()
        return self

    # Separate from initialize, which skorch's AccelerateMixin replaces rather than extends.
    def _before_initialize(self):
        self._check_params(warn=False)
        if "classes_" not in self.__dict__ and self.classes is not None:
            self._set_attributes_without_data()

    def _after_initialize(self):
        self.__dict__.pop("perturbation_store_", None)  # a new fit starts its attacks anew
        resolve = partial(weighting.resolve_reweight_epoch, max_epochs=self.max_epochs,
                          warn=False)  # _check_params has warned
        self.reweight_epoch_ = resolve(self.reweight_epoch)
        self.lr_drop_epoch_ = weighting.resolve_lr_drop_epoch(
            self.lr_drop_epoch, self.reweight_epoch, self.max_epochs, warn=False)
        self.epsilon_warmup_ = resolve(self.epsilon_warmup)
        if self.lambda_sep > 0:
            self._separation_term()  # a bad feature_layer fails now, not at the first batch

    def get_split_datasets(self, X, y=None, **fit_params):
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        # Class counts from the training split only, never the validation split.
        self.class_counts_ = np.bincount(dataset_labels(dataset_train),
                                         minlength=len(self.classes_))
        self.class_prior_, counts = weighting.reweighting_counts(
            self.class_prior, self.class_counts_, self.classes_, self.class_weight,
            loss=self.loss, class_epsilon_mix=self.class_epsilon_mix)
        self.class_weights_ = weighting.compute_class_weights(
            self.class_weight, counts, self.classes_, self.beta)
        self.class_radius_factors_ = (None if self.class_epsilon_mix == 0 else
                                      class_radius_factors(counts, self.class_epsilon_mix))
        if self.loss in ("ldam", "bsl"):
            if np.any(counts == 0):
                raise ValueError(f"loss={self.loss!r} needs every class in the training split; "
                                 f"classes {self.classes_[counts == 0].tolist()} have none.")
            self.criterion_.set_class_counts(counts)
        return dataset_train, dataset_valid

    def get_iterator(self, dataset, training=False, batch_size=None):
        """skorch's iterator, with the balanced sampler and whole-batch reads of arrays.

        See :func:`srat_sklearn.loading.make_loader`: for arrays in memory the
        batches are the same, read with one index each. ``batch_size``
        overrides skorch's (the attacks of an evaluation use larger batches).
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        configured = kwargs.pop("batch_size", self.batch_size)
        batch_size = configured if batch_size is None else batch_size
        kwargs["batch_size"] = len(dataset) if batch_size == -1 else batch_size
        if training and self.sampler == "balanced":
            kwargs.pop("shuffle", None)  # DataLoader takes a sampler or shuffle, not both
            kwargs["sampler"] = weighting.balanced_sampler(dataset_labels(dataset))
        reuse = training and self.reuse_perturbations
        store = getattr(self, "perturbation_store_", None)
        if reuse and (store is None or store.n_samples != len(dataset)):
            self.perturbation_store_ = PerturbationStore(len(dataset), radius(self.epsilon),
                                                         self.norm, self.random_start)
        return make_loader(getattr(self, prefix), dataset, **kwargs, with_indices=reuse,
                           whole_batches=self._whole_batch_reads())

    # ------------------------------------------------------------------ the SRAT step

    def _whole_batch_reads(self):
        return True  # see make_loader; data-parallel subclasses may not

    def _bare_module(self):
        """The module itself, for the attack and the feature hook.

        Data-parallel subclasses unwrap it: an input gradient through DistributedDataParallel
        would leave its gradient reduction pending.
        """
        return self.module_

    def _gather_batch(self, tensor):
        """A batch computed outside skorch's evaluation step; data-parallel: from all."""
        return tensor

    def _gather_features(self, tensor):
        """The features of the separation loss; data-parallel: from all, with gradients."""
        return tensor

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

    @property
    def perturbations_(self):
        store = self.__dict__.get("perturbation_store_")
        if store is None or store.perturbations is None:
            raise AttributeError("perturbations_ exists while reuse_perturbations=True trains.")
        return store.perturbations

    def _get_predict_nonlinearity(self):
        if isinstance(self.predict_nonlinearity, str) and self.predict_nonlinearity == "auto":
            self.check_is_fitted()
            return partial(torch.softmax, dim=-1)
        return super()._get_predict_nonlinearity()

    def _validate_predict_X(self, X):
        check_is_fitted(self, ["classes_", "module_"])
        return X if is_dataset(X) else _inputs.validate_X(self, X, reset=False)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``; rows sum to 1."""
        return super().predict_proba(self._validate_predict_X(X))

    def predict_log_proba(self, X):
        """Logarithms of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels, of the same kind as the ``y`` given to fit."""
        indices = self.predict_proba(X).argmax(axis=1)  # validates and checks fitted first
        return self.classes_[indices]

    def score(self, X, y, sample_weight=None):
        """Accuracy of :meth:`predict` on ``X``; ``y`` may be a tensor on any device."""
        return super().score(X, _inputs.host_array(y), _inputs.host_array(sample_weight))

    def __repr__(self):
        changed = ", ".join(f"{k}={v!r}" for k, v in _params.changed_params(self).items())
        return f"{type(self).__name__}({changed})"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags
