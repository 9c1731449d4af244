"""Training callbacks: the guard against catastrophic overfitting of fast adversarial training.

Fast adversarial training (Wong et al., 2020, "Fast is better than free") trains on a single
FGSM step from a random start, ``n_steps=1, step_size=1.25 * epsilon``: about a sixth of
the cost of PGD-10. It can *catastrophically overfit*. Within an epoch, robustness to the
one-step attack stays high while robustness to PGD drops to near zero. The remedy of that
paper is to check PGD accuracy on a held-out batch each epoch and keep the model from
before the drop, which is what :class:`CatastrophicOverfittingGuard` does.
"""

import copy

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.utils import to_tensor
from torch.utils.data import Subset

from ._feature_threat import radius
from ._validation import check_int, check_option, check_real
from .attacks import eval_mode
from .attacks._common import predict

__all__ = ["CatastrophicOverfittingGuard"]


class CatastrophicOverfittingGuard(Callback):
    """Check PGD accuracy on a held-out batch each epoch; roll back when it collapses.

    At the end of every epoch the guard attacks a fixed batch with PGD-``n_steps`` (the
    estimator's ``epsilon`` and norm, random start) and records its accuracy in the
    history as ``check_robust_acc``. The batch is drawn from the validation split, or
    from the training data when there is none (Wong et al. check a training batch).
    When that accuracy falls more than ``max_drop`` below the best seen so far, training
    stops. With ``on_collapse="rollback"`` the module, optimizer and criterion are also
    restored to their state at the best epoch, which is recorded in ``restored_epoch_``.

    Parameters
    ----------
    n_samples : int, default=128
        Size of the held-out batch.
    n_steps : int, default=10
        PGD iterations of the check.
    max_drop : float in (0, 1], default=0.2
        The collapse threshold, as a fraction of accuracy.
    on_collapse : {"rollback", "stop"}, default="rollback"
    random_state : int, default=0
        Seeds the choice of the held-out batch.

    Attributes
    ----------
    best_epoch_ : int
    best_score_ : float
    collapsed_epoch_ : int or None
        The epoch whose check collapsed, if any.
    restored_epoch_ : int or None
        The epoch whose state was restored, with ``on_collapse="rollback"``.

    Examples
    --------
    Fast adversarial training with the guard:

    >>> from srat_sklearn import SRATClassifier
    >>> from srat_sklearn.callbacks import CatastrophicOverfittingGuard
    >>> clf = SRATClassifier(epsilon=0.2, n_steps=1, step_size=0.25,
    ...                      callbacks=[("guard", CatastrophicOverfittingGuard())])
    """

    def __init__(self, n_samples=128, n_steps=10, max_drop=0.2, on_collapse="rollback",
                 random_state=0):
        self.n_samples = n_samples
        self.n_steps = n_steps
        self.max_drop = max_drop
        self.on_collapse = on_collapse
        self.random_state = random_state

    def initialize(self):
        check_int(self.n_samples, "n_samples", min_val=1)
        check_int(self.n_steps, "n_steps", min_val=1)
        check_real(self.max_drop, "max_drop", min_val=0, max_val=1,
                   include_boundaries="right")
        check_option(self.on_collapse, "on_collapse", ("rollback", "stop"))
        self.best_epoch_, self.best_score_ = None, -np.inf
        self.collapsed_epoch_ = self.restored_epoch_ = None
        self.batch_ = self.best_state_ = None
        return super().initialize()

    def on_train_begin(self, net, **kwargs):
        self.initialize()  # a new fit starts a new watch

    def _check_batch(self, net, dataset_train, dataset_valid):
        if self.batch_ is None:
            dataset = dataset_valid if dataset_valid is not None else dataset_train
            rng = np.random.default_rng(self.random_state)
            rows = rng.permutation(len(dataset))[:self.n_samples]
            loader = net.get_iterator(Subset(dataset, rows.tolist()), training=False)
            parts = [(to_tensor(Xi, device=net.device), to_tensor(yi, device=net.device))
                     for Xi, yi in loader]
            self.batch_ = tuple(torch.cat(p) for p in zip(*parts))
        return self.batch_

    def _robust_accuracy(self, net, X, y):
        X_adv = net._attack(X, y, n_steps=self.n_steps, step_size=2.5 * radius(net.epsilon) /
                            self.n_steps, random_start=True)
        module = net._bare_module()
        with eval_mode(module):
            return float((predict(module, X_adv) == y).float().mean())

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if radius(net.epsilon) == 0:
            return
        X, y = self._check_batch(net, dataset_train, dataset_valid)
        score = self._robust_accuracy(net, X, y)
        epoch = len(net.history)
        net.history.record("check_robust_acc", score)
        if score > self.best_score_:
            self.best_epoch_, self.best_score_ = epoch, score
            if self.on_collapse == "rollback":
                self.best_state_ = {name: copy.deepcopy(getattr(net, name + "_").state_dict())
                                    for name in ("module", "optimizer", "criterion")}
        elif score < self.best_score_ - self.max_drop:
            self.collapsed_epoch_ = epoch
            if self.on_collapse == "rollback":
                for name, state in self.best_state_.items():
                    getattr(net, name + "_").load_state_dict(state)
                self.restored_epoch_ = self.best_epoch_
            net.history.record("catastrophic_overfitting", True)
            # skorch ends fit quietly on KeyboardInterrupt, as its EarlyStopping does.
            raise KeyboardInterrupt
