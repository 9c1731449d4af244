"""The training objective of one batch: the attack, the separation term, and the loss.

A mixin of :class:`~srat_sklearn.SRATClassifier`:

- ``train_step`` replaces the batch by adversarial examples: PGD's (Madry et al., 2018) or,
  with ``adversarial_loss="trades"``, TRADES' (Zhang et al., 2019), which move the prediction
  furthest from the clean one; when ``lambda_sep > 0`` the separation term records the
  penultimate features of the adversarial forward pass;
- ``get_loss`` is the class-weighted loss of the adversarial logits (Madry), or of the clean
  logits plus ``trades_beta`` times the KL divergence from the clean to the adversarial
  prediction (TRADES), plus ``lambda_sep`` times the separation loss.
"""

from contextlib import contextmanager

import numpy as np
import torch
from skorch.dataset import unpack_data
from skorch.utils import to_numpy, to_tensor

from ._budgets import warmup_factor
from ._feature_threat import radius
from ._inputs import check_logits
from ._loss_guard import TrainingSnapshot, checks_before_backward
from ._torch import first_output
from .losses import non_finite_loss_error, trades_kl_divergence
from .separation import SeparationTerm


class ObjectiveMixin:
    """``train_step`` and ``get_loss`` of adversarial training with the separation loss."""

    def _forward_clean(self, X):
        with self._autocast():
            return self._bare_module()(self._memory_format(X))

    def _separation_term(self):
        """The separation term of the current module, made once (its layer found once)."""
        term = self.__dict__.get("separation_")
        if term is None or term.module is not self._bare_module() \
                or term.feature_layer != self.feature_layer:
            term = self.separation_ = SeparationTerm(
                self._bare_module(), self.feature_layer, forward=self._forward_clean,
                gather=self._gather_features)
        return term

    @contextmanager
    def _clean_batch(self, clean):
        """The clean batch of the step, for TRADES' loss (skorch's step sees only its X)."""
        self.__dict__["_clean_batch"] = clean
        try:
            yield
        finally:
            self.__dict__.pop("_clean_batch", None)

    def _training_budget(self, y):
        """The training attack's radius, step and per-sample shares this epoch: class-aware
        budgets and the warm-up (:mod:`srat_sklearn._budgets`); ``{}`` when neither is on."""
        warm = warmup_factor(len(self.history) - 1, getattr(self, "epsilon_warmup_", 0))
        factors = self.__dict__.get("class_radius_factors_")
        if warm == 1 and factors is None:
            return {}
        labels = to_numpy(y).astype(np.int64)  # the batch's labels, still on the host
        budgets = warm * (np.ones(len(labels)) if factors is None else factors[labels])
        top = float(budgets.max())
        if top == 0:
            return {"epsilon": 0.0}
        return {"epsilon": radius(self.epsilon) * top,
                "step_size": None if self.step_size is None else self.step_size * top,
                "sample_share": torch.as_tensor(budgets / top, device=self.device)}

    def train_step(self, batch, **fit_params):
        """Replace the batch by its adversarial examples, then take skorch's step on them.

        The attack lives here rather than in ``train_step_single`` so that it
        also runs when skorch's ``AccelerateMixin`` replaces that method.
        """
        rows = clean = None
        if self.reuse_perturbations:
            *batch, rows = batch  # make_loader(with_indices=True) appends them
        if radius(self.epsilon) > 0:
            Xi, yi = unpack_data(batch)
            if not isinstance(Xi, (torch.Tensor, np.ndarray)):
                raise TypeError("The attacks need each batch of X to be a single tensor; got "
                                f"{type(Xi).__name__}.")
            clean = to_tensor(Xi, device=self.device)
            start = None
            if rows is not None:
                rows = to_tensor(rows, device=clean.device)  # one copy for the read and the write
                start = self.perturbation_store_.previous(clean, rows)
            attack = "trades" if self.adversarial_loss == "trades" else "pgd"
            # One copy of the labels to the device, for the attack and the loss: on a GPU each
            # copy from pageable host memory is a synchronisation.
            y_device = to_tensor(yi, device=self.device)
            X_adv = self._attack(clean, y_device, attack=attack, start=start,
                                 **self._training_budget(yi))
            if rows is not None:
                self.perturbation_store_.update(rows, X_adv - clean)
            batch = (X_adv, y_device)
        if not checks_before_backward(self._compute_device()):
            snapshot = self.__dict__.get("_snapshot")
            if snapshot is None or snapshot.module is not self.module_ \
                    or snapshot.optimizer is not self.optimizer_:
                self._snapshot = TrainingSnapshot(self.module_, self.optimizer_)
            else:
                snapshot.take()  # into the buffers of the batches before
        with self._clean_batch(clean):
            if self.lambda_sep == 0:
                return super().train_step(batch, **fit_params)
            second_view = clean if self.separation_views == "adversarial+clean" else None
            # TRADES' loss reuses the clean view's pass: it moves batch norm's statistics.
            with self._separation_term().step(
                    clean=second_view, clean_statistics=self.adversarial_loss == "trades"):
                return super().train_step(batch, **fit_params)

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        # On an accelerator, the loss is first read here, where skorch has read it for its
        # history; the step it made is undone.
        super().on_batch_end(net, batch=batch, training=training, loss=loss, **kwargs)
        snapshot = self.__dict__.get("_snapshot")
        if snapshot is None or not snapshot.pending:
            return
        snapshot.pending = False
        if not np.isfinite(self.history[-1, "batches", -1, "train_loss"]):
            snapshot.restore()
            del self.__dict__["_snapshot"]  # on_train_end does not come after an error
            raise non_finite_loss_error(loss, self.history)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.__dict__.pop("_snapshot", None)  # a copy of the weights: not kept between fits

    def _classification_loss(self, logits, y_true):
        """The criterion on this process's batch; data-parallel, normalised over them all."""
        return self.criterion_(logits, y_true)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The class-weighted loss (TRADES: of the clean logits, plus ``trades_beta`` times the
        KL divergence), plus ``lambda_sep`` times the separation loss when training."""
        y_true = to_tensor(y_true, device=self.device)
        y_pred = check_logits(y_pred, len(self.classes_))
        # The separation loss first: it reads the features of the adversarial forward pass,
        # which TRADES' clean forward pass below would record over.
        separating = training and self.lambda_sep > 0
        separation = (self.lambda_sep * self.separation_.loss(y_true, self.temperature)
                      if separating else 0.0)
        clean = self.__dict__.get("_clean_batch") if training else None
        if clean is not None and self.adversarial_loss == "trades":
            # With the clean view, the separation loss has just run the clean batch.
            shared = self.separation_.clean_output if separating else None
            clean_logits = first_output(
                self._forward_clean(clean) if shared is None else shared).float()
            loss = (self._classification_loss(clean_logits, y_true)
                    + self.trades_beta * trades_kl_divergence(clean_logits, y_pred))
        else:
            loss = self._classification_loss(y_pred, y_true)
        loss = loss + separation
        # Checked before backward and the optimizer step, so the parameters stay usable; on an
        # accelerator, after the step without a read of its own (on_batch_end).
        if training and checks_before_backward(self._compute_device()) and not torch.isfinite(
                loss):
            raise non_finite_loss_error(loss, self.history)
        return loss
