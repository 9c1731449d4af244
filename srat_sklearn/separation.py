"""The feature-separation term of SRAT, as one object the estimator calls.

SRAT adds ``lambda_sep`` times a supervised contrastive loss of the L2-normalised penultimate
features of the training batch (the adversarial examples) to the classification loss. The
features come from the same forward pass as the logits, through a hook on the feature layer;
``separation_views="adversarial+clean"`` adds the clean batch as a second view, at the cost of
one more forward pass that leaves batch-norm running statistics alone; under TRADES, whose loss
needs the clean logits anyway, that pass serves both and moves the statistics as TRADES' own.
"""

from contextlib import contextmanager, nullcontext

import torch

from .losses import supervised_contrastive_loss
from .models import find_feature_layer, record_features

__all__ = ["SeparationTerm", "SEPARATION_VIEWS", "frozen_running_statistics"]

SEPARATION_VIEWS = ("adversarial", "adversarial+clean")


@contextmanager
def frozen_running_statistics(module):
    """Keep the running statistics of the normalisation layers of ``module`` as they are.

    A second forward pass in the same training step (the clean view) must not move batch
    norm's running mean and variance a second time. With ``track_running_stats`` off, a
    layer in training mode still normalises with the batch's statistics but writes nothing
    (writing and then restoring them would change tensors that autograd saved).
    """
    layers = [m for m in module.modules() if getattr(m, "track_running_stats", False)]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class SeparationTerm:
    """The separation loss of one training step, from the features its forward passes compute.

    The feature layer is found once, when the term is made; :meth:`step` records the features
    while skorch's training step runs, and :meth:`loss` turns them into the supervised
    contrastive loss.

    Parameters
    ----------
    module : torch.nn.Module
        The network (unwrapped from any data-parallel wrapper).
    feature_layer : str or None
        As ``SRATClassifier(feature_layer=...)``: None is the input of the last ``nn.Linear``.
    forward : callable, optional
        Runs the network on the clean view (the estimator's precision and memory format);
        default ``module``.
    gather : callable, optional
        Concatenates a tensor over processes, keeping gradients (data-parallel training);
        default the identity.

    Examples
    --------
    >>> import torch
    >>> from srat_sklearn.models import MLP
    >>> net = MLP(4, 3, hidden_units=(5,))
    >>> term = SeparationTerm(net)
    >>> with term.step():
    ...     logits = net(torch.randn(6, 4))
    ...     loss = term.loss(torch.tensor([0, 0, 1, 1, 2, 2]), temperature=0.1)
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self, module, feature_layer=None, *, forward=None, gather=None):
        self.module = module
        self.feature_layer = feature_layer
        self.layer, self.use_input = find_feature_layer(module, feature_layer)
        self.forward = module if forward is None else forward
        self.gather = (lambda t: t) if gather is None else gather
        self._features = self._clean = self.clean_output = None
        self._clean_statistics = False

    @contextmanager
    def step(self, clean=None, clean_statistics=False):
        """Record the features of the forward passes inside: one training step.

        ``clean``, the clean batch, is contrasted too (``"adversarial+clean"``); the output of
        its forward pass is kept as ``clean_output`` for the step's loss (TRADES needs the
        clean logits). ``clean_statistics=True`` lets that pass move the running statistics
        of batch norm, as the loss's own clean pass would.
        """
        with record_features(self.layer, self.use_input) as features:
            self._features, self._clean = features, clean
            self._clean_statistics = clean_statistics
            try:
                yield self
            finally:
                self._features = self._clean = self.clean_output = None

    def loss(self, labels, temperature):
        """The supervised contrastive loss of the step's batch (and clean view)."""
        features = self._features[-1]
        if self._clean is not None:
            with nullcontext() if self._clean_statistics else \
                    frozen_running_statistics(self.module):
                # The hook appends the clean features.
                self.clean_output = self.forward(self._clean)
            features = torch.cat([features, self._features[-1]])
            labels = torch.cat([labels, labels])
        return supervised_contrastive_loss(self.gather(features.float()), self.gather(labels),
                                           temperature)
