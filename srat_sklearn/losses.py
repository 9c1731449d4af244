"""Loss functions of SRAT as plain torch functions, and the criterion module.

All classification losses follow the paper's objective
``(1/n) * sum_i w[y_i] * l(f(x_i), y_i)``: the per-sample loss is multiplied by
the weight of the sample's class and averaged over the batch. With class weights
of mean 1 over the classes, the mean weight *per sample* of an imbalanced batch
is below 1 (about 0.33 at a step imbalance of ratio 10 and 0.04 at 100), so
switching the weights on shrinks this loss next to the separation loss.
:class:`ReweightedLoss` with ``weight_normalization="weights"`` divides by the
sum of the batch's weights instead, as LDAM-DRW and
``torch.nn.functional.cross_entropy(weight=...)`` do, which keeps the scale.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_option, check_real

__all__ = [
    "LOSSES",
    "NonFiniteLossError",
    "non_finite_loss_error",
    "weighted_cross_entropy",
    "focal_loss",
    "ldam_margins",
    "ldam_loss",
    "log_class_prior",
    "balanced_softmax_loss",
    "supervised_contrastive_loss",
    "trades_kl_divergence",
    "ReweightedLoss",
]

LOSSES = ("ce", "focal", "ldam", "bsl")
#: How the class-weighted loss of a batch is averaged: over its samples (the paper's
#: objective), or over the sum of its samples' class weights (LDAM-DRW's).
WEIGHT_NORMALIZATIONS = ("samples", "weights")


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite; the parameters are those before the batch."""


def non_finite_loss_error(loss, history):
    """The error for a non-finite training loss, naming the epoch and batch of skorch's history."""
    epoch = len(history)
    batch = len(history[-1]["batches"])  # skorch adds the batch's row before the step
    return NonFiniteLossError(
        f"The training loss became {loss.item()} at epoch {epoch}, batch {batch}; lower lr or "
        "epsilon, or check the data. The parameters are those before this batch.")


def _sample_weights(weight, target):
    return None if weight is None else weight[target]


def _weighted_mean(per_sample, weight, target):
    sample_weights = _sample_weights(weight, target)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    return per_sample.mean()


def weighted_cross_entropy(logits, target, weight=None):
    """Class-weighted cross-entropy, averaged over the batch.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
    target : torch.Tensor of shape (n,)
        Integer class indices.
    weight : torch.Tensor of shape (n_classes,) or None
        Weight of each class; ``None`` weighs all classes 1.

    Returns
    -------
    torch.Tensor
        ``mean_i(weight[y_i] * CE(logits_i, y_i))``, a scalar.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(2, 2)
    >>> round(weighted_cross_entropy(logits, torch.tensor([0, 1])).item(), 4)
    0.6931
    >>> w = torch.tensor([1.0, 3.0])
    >>> round(weighted_cross_entropy(logits, torch.tensor([0, 1]), w).item(), 4)
    1.3863
    """
    return _weighted_mean(F.cross_entropy(logits, target, reduction="none"), weight, target)


def focal_loss(logits, target, weight=None, gamma=1.0):
    """Focal loss (Lin et al., 2017) with the class weight inside the cross-entropy.

    As in LDAM-DRW: ``ce_i = weight[y_i] * CE_i``, ``p_i = exp(-ce_i)`` and the
    loss is ``mean_i((1 - p_i) ** gamma * ce_i)``. ``gamma=0`` is the weighted
    cross-entropy.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> ce = weighted_cross_entropy(logits, torch.tensor([0]))
    >>> fl = focal_loss(logits, torch.tensor([0]), gamma=1.0)
    >>> bool(fl < ce)
    True
    """
    ce = F.cross_entropy(logits, target, reduction="none")
    sample_weights = _sample_weights(weight, target)
    if sample_weights is not None:
        ce = ce * sample_weights
    p = torch.exp(-ce)
    return ((1 - p) ** gamma * ce).mean()


def _positive_counts(class_counts):
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts <= 0):
        raise ValueError(f"class_counts must be positive counts, got {class_counts!r}.")
    return counts


def ldam_margins(class_counts, max_margin=0.5):
    """Label-distribution-aware margins ``m_c ∝ n_c ** (-1/4)``, the largest ``max_margin``.

    Parameters
    ----------
    class_counts : array-like of shape (n_classes,)
        Number of training samples of each class; all must be positive.
    max_margin : float, default=0.5
        Margin of the rarest class.

    Returns
    -------
    torch.Tensor of shape (n_classes,), float32

    Examples
    --------
    >>> ldam_margins([16, 1], max_margin=0.5)
    tensor([0.2500, 0.5000])
    """
    counts = _positive_counts(class_counts)
    margins = counts ** -0.25
    return torch.as_tensor(margins * (max_margin / margins.max()), dtype=torch.float32)


def log_class_prior(class_counts):
    """``log(n_c / n)``: the log class prior of the training counts, all positive.

    Examples
    --------
    >>> log_class_prior([3, 1]).exp()
    tensor([0.7500, 0.2500])
    """
    counts = _positive_counts(class_counts)
    return torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def balanced_softmax_loss(logits, target, log_prior, weight=None, tau=1.0):
    """Balanced softmax (Ren et al., 2020), the outer loss of AT-BSL (Yue et al., 2024).

    Cross-entropy on the logits shifted by ``tau`` times the log class prior:
    training fits ``p(y | x)`` under the imbalanced training prior, so the raw
    logits, which predictions use, answer for a balanced one (logit adjustment,
    Menon et al., 2021). The attacks keep to plain cross-entropy on the raw logits.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
    target : torch.Tensor of shape (n,)
    log_prior : torch.Tensor of shape (n_classes,)
        :func:`log_class_prior` of the training counts.
    weight : torch.Tensor of shape (n_classes,) or None
        Class weights, as in :func:`weighted_cross_entropy`.
    tau : float, default=1.0
        Strength of the adjustment; 0 is cross-entropy.

    Examples
    --------
    >>> import torch
    >>> logits, target = torch.zeros(2, 2), torch.tensor([0, 1])
    >>> round(balanced_softmax_loss(logits, target, log_class_prior([3, 1])).item(), 4)
    0.837
    """
    shifted = logits + tau * log_prior.to(dtype=logits.dtype)
    return weighted_cross_entropy(shifted, target, weight)


def trades_kl_divergence(clean_logits, adversarial_logits, reduction="mean"):
    """``KL(p(x) || p(x'))``: how far the adversarial prediction moved from the clean one.

    TRADES' robustness term (Zhang et al., 2019): the training loss adds
    ``beta`` times its batch mean to the classification loss of the clean
    inputs, and TRADES' attack maximises its sum over the ball. Gradients flow
    through both arguments (detach the clean logits to hold them fixed).

    Parameters
    ----------
    clean_logits, adversarial_logits : torch.Tensor of shape (n, n_classes)
    reduction : {"mean", "sum", "none"}, default="mean"
        Over the samples; "none" returns one divergence per sample.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[2.0, 0.0]])
    >>> trades_kl_divergence(z, z).item()
    0.0
    >>> round(trades_kl_divergence(z, torch.zeros(1, 2)).item(), 4)
    0.3278
    """
    check_option(reduction, "reduction", ("mean", "sum", "none"))
    clean_log_p = F.log_softmax(clean_logits.float(), dim=1)
    per_sample = (clean_log_p.exp()
                  * (clean_log_p - F.log_softmax(adversarial_logits.float(), dim=1))).sum(dim=1)
    if reduction == "none":
        return per_sample
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def ldam_loss(logits, target, margins, weight=None, scale=1.0):
    """LDAM loss (Cao et al., 2019): cross-entropy after subtracting the class margin.

    The margin of the true class is subtracted from its logit, the logits are
    multiplied by ``scale``, and the class-weighted cross-entropy is taken.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
    target : torch.Tensor of shape (n,)
    margins : torch.Tensor of shape (n_classes,)
        From :func:`ldam_margins`.
    weight : torch.Tensor of shape (n_classes,) or None
    scale : float, default=1.0
        ``s`` of the paper; 30 suits cosine logits, around 1 suits raw logits.

    Examples
    --------
    >>> import torch
    >>> logits, y = torch.zeros(1, 2), torch.tensor([1])
    >>> m = torch.tensor([0.0, 1.0])
    >>> round(ldam_loss(logits, y, m).item(), 4)  # CE of logits (0, -1) for class 1
    1.3133
    """
    # scatter, not F.one_hot, which reads the labels' range back to the host (a GPU sync).
    shifted = logits.scatter_add(1, target[:, None], -margins[target, None].to(logits.dtype))
    return weighted_cross_entropy(scale * shifted, target, weight)


def supervised_contrastive_loss(features, labels, temperature=0.1):
    """Supervised contrastive loss (Khosla et al., 2020) on L2-normalised features.

    For each anchor ``i`` with at least one positive (another sample of the
    same label) in the batch::

        l_i = -1/|P(i)| * sum_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t))

    and the loss is the mean of ``l_i`` over those anchors. Anchors without a
    positive are left out; a batch without any pair gives 0 with a zero
    gradient.

    Parameters
    ----------
    features : torch.Tensor of shape (n, ...)
        Flattened to (n, d) and L2-normalised.
    labels : torch.Tensor of shape (n,)
    temperature : float, default=0.1

    Returns
    -------
    torch.Tensor, a scalar

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> loss = supervised_contrastive_loss(z, torch.tensor([0, 0, 1]), temperature=1.0)
    >>> round(loss.item(), 4)  # -log(e / (e + 1)) for each of the two anchors of class 0
    0.3133
    """
    z = F.normalize(features.flatten(1), dim=1)
    n = z.shape[0]
    if n < 2:
        # Keeps the graph connected, so backward gives zero gradients rather than an error.
        return z.sum() * 0.0
    not_self = ~torch.eye(n, dtype=torch.bool, device=z.device)
    similarity = (z @ z.T) / temperature
    similarity = similarity.masked_fill(~not_self, float("-inf"))
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positives = (labels.view(-1, 1) == labels.view(1, -1)) & not_self
    n_positives = positives.sum(dim=1)
    mean_log_prob_pos = torch.where(positives, log_prob, 0.0).sum(dim=1) / n_positives.clamp(min=1)
    has_positive = (n_positives > 0).to(z.dtype)
    # No host sync: anchors without positives are masked, and the count is clamped.
    return -(mean_log_prob_pos * has_positive).sum() / has_positive.sum().clamp(min=1.0)


class ReweightedLoss(nn.Module):
    """Classification criterion whose class weights can be switched in place.

    The weights live in the ``weight`` buffer and the LDAM margins in the
    ``margins`` buffer, so a callback can overwrite them during training
    without re-creating the criterion or the optimizer, and checkpoints of the
    criterion carry them.

    Parameters
    ----------
    n_classes : int
        Number of classes; sizes the buffers.
    loss : {"ce", "focal", "ldam", "bsl"}, default="ce"
    focal_gamma : float, default=1.0
    ldam_max_margin : float, default=0.5
    ldam_scale : float, default=1.0
    bsl_tau : float, default=1.0
    weight_normalization : {"samples", "weights"}, default="samples"
        "samples" averages the weighted per-sample losses over the batch;
        "weights" divides their sum by the sum of the batch's class weights,
        so that the loss keeps its scale when the weights are switched on.

    Examples
    --------
    >>> import torch
    >>> criterion = ReweightedLoss(n_classes=2, loss="ce")
    >>> criterion.set_class_weights([1.0, 3.0])
    >>> round(criterion(torch.zeros(2, 2), torch.tensor([0, 1])).item(), 4)
    1.3863
    >>> criterion = ReweightedLoss(n_classes=2, weight_normalization="weights")
    >>> criterion.set_class_weights([1.0, 3.0])
    >>> round(criterion(torch.zeros(2, 2), torch.tensor([0, 1])).item(), 4)
    0.6931
    """

    def __init__(self, n_classes, loss="ce", focal_gamma=1.0, ldam_max_margin=0.5,
                 ldam_scale=1.0, bsl_tau=1.0, weight_normalization="samples"):
        super().__init__()
        self.loss = check_option(loss, "loss", LOSSES)
        self.weight_normalization = check_option(weight_normalization, "weight_normalization",
                                                 WEIGHT_NORMALIZATIONS)
        self.focal_gamma = check_real(focal_gamma, "focal_gamma", min_val=0)
        self.ldam_scale = check_real(ldam_scale, "ldam_scale", min_val=0,
                                     include_boundaries="neither")
        self.ldam_max_margin = check_real(ldam_max_margin, "ldam_max_margin", min_val=0)
        self.register_buffer("weight", torch.ones(n_classes))
        self.bsl_tau = check_real(bsl_tau, "bsl_tau", min_val=0)
        self.register_buffer("margins", torch.zeros(n_classes))
        self.register_buffer("log_prior", torch.zeros(n_classes))

    def set_class_weights(self, weights):
        """Overwrite the class weights in place (no new tensor, no optimizer reset)."""
        with torch.no_grad():
            self.weight.copy_(torch.as_tensor(weights, dtype=self.weight.dtype))

    def set_class_counts(self, class_counts):
        """Set the LDAM margins or the balanced-softmax prior from the training class counts."""
        with torch.no_grad():
            if self.loss == "ldam":
                self.margins.copy_(ldam_margins(class_counts, self.ldam_max_margin))
            elif self.loss == "bsl":
                self.log_prior.copy_(log_class_prior(class_counts))

    def forward(self, logits, target, batch_target=None):
        """The weighted loss of ``logits``; ``batch_target``: the labels of the whole batch
        when ``target`` is one process's share of it (data-parallel), whose mean class weight
        then divides with ``weight_normalization="weights"``."""
        target = target.long()
        loss = self._sample_mean(logits, target)
        if self.weight_normalization == "weights":
            whole = target if batch_target is None else batch_target.long()
            # mean_i(w_i l_i) / mean_i(w_i) = sum_i(w_i l_i) / sum_i(w_i)
            loss = loss / self.weight[whole].mean()
        return loss

    def _sample_mean(self, logits, target):
        if self.loss == "focal":
            return focal_loss(logits, target, self.weight, self.focal_gamma)
        if self.loss == "ldam":
            return ldam_loss(logits, target, self.margins, self.weight, self.ldam_scale)
        if self.loss == "bsl":
            return balanced_softmax_loss(logits, target, self.log_prior, self.weight,
                                         self.bsl_tau)
        return weighted_cross_entropy(logits, target, self.weight)
