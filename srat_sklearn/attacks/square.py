"""Square Attack (Andriushchenko et al., ECCV 2020): score-based, gradient-free.

Each query changes the current perturbation in one random window and keeps the
change when it lowers the margin ``z_y - max_{j != y} z_j``; a sample is done
once its margin is negative. The window covers a fraction ``p`` of the input,
which shrinks along AutoAttack's schedule. Since the attack never looks at a
gradient, it sees through models whose gradients are masked.

Images (n, c, h, w) get square windows, as in the paper. Other inputs are
flattened; their "window" is a random subset of a fraction ``p`` of the
features, since tabular features have no neighbours.
"""

import math

import torch

from .._torch import eval_mode
from ._common import (
    check_inputs,
    check_labels,
    clip,
    logits_of,
    norms,
    sample_view,
    threat_box,
    unit,
    validate_attack_args,
)

#: Queries (of a 5000-query budget) after which p halves (AutoAttack's schedule).
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
#: Queries between two drops of the fooled samples: the only times the host reads the device.
DROP_EVERY = 20


def _window_fraction(query, n_queries, p_init):
    """p at ``query``: AutoAttack's schedule for 5000 queries, stretched to ``n_queries``."""
    progress = query * 5000 / n_queries
    return p_init / 2 ** sum(progress > point for point in HALVINGS)


def _margins(model, x, y):
    logits = logits_of(model, x)
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true - others


def _random_signs(*shape, like):
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1


def _rings(height, width, like):
    """Concentric rings around the centre, weight sum_{k >= r} 1/(k+1)^2 at ring r."""
    rows = torch.arange(height, device=like.device) - height // 2
    cols = torch.arange(width, device=like.device) - width // 2
    ring = torch.maximum(rows.abs()[:, None], cols.abs()[None, :])
    n_rings = max(height // 2, width // 2) + 1
    tail = (1.0 / torch.arange(1, n_rings + 1, device=like.device, dtype=like.dtype) ** 2)
    tail = tail.flip(0).cumsum(0).flip(0)  # tail[r] = sum_{k >= r} 1 / (k + 1)^2
    return tail[ring]


def _l2_window(size, like):
    """The L2 attack's pattern for a size x size window: two halves of rings, opposite signs."""
    top = size // 2
    halves = [_rings(top, size, like), -_rings(size - top, size, like)]
    pattern = torch.cat([half / half.norm().clamp_min(1e-12) for half in halves])
    if torch.rand(()) > 0.5:
        pattern = pattern.T
    return pattern / pattern.norm()


class _Images:
    """Windows of (n, c, h, w) images: squares at a random place."""

    def __init__(self, X):
        self.channels, self.height, self.width = X.shape[1:]
        self.n_features = X[0].numel()

    def side(self, p, minimum):
        side = max(int(round(math.sqrt(p * self.n_features / self.channels))), minimum)
        if minimum > 1 and side % 2 == 0:
            side += 1
        return min(side, self.height, self.width)

    def window(self, side):
        top = int(torch.randint(0, self.height - side + 1, ()))
        left = int(torch.randint(0, self.width - side + 1, ()))
        return (slice(None), slice(None), slice(top, top + side), slice(left, left + side))

    def linf_start(self, X):
        # Vertical stripes of +-1, one sign per column and channel.
        return _random_signs(X.shape[0], self.channels, 1, self.width, like=X).expand_as(X)

    def linf_pattern(self, k, side, like):
        return _random_signs(k, self.channels, 1, 1, like=like).expand(-1, -1, side, side)

    def l2_start(self, X):
        side = max(min(self.height, self.width) // 5, 1)
        delta = torch.zeros_like(X)
        for top in range(0, self.height - side + 1, side):
            for left in range(0, self.width - side + 1, side):
                signs = _random_signs(X.shape[0], self.channels, 1, 1, like=X)
                delta[:, :, top:top + side, left:left + side] = signs * _l2_window(side, X)
        return delta

    def l2_pattern(self, k, side, like):
        return _random_signs(k, self.channels, 1, 1, like=like) * _l2_window(side, like)

    @staticmethod
    def per_channel_norm(t):
        return t.flatten(2).norm(dim=2)[:, :, None, None]


class _Vectors:
    """Windows of flattened (n, d) samples: random subsets of the features."""

    channels = 1

    def __init__(self, X):
        self.n_features, self.device = X.shape[1], X.device

    def side(self, p, minimum):
        return min(max(int(round(p * self.n_features)), minimum), self.n_features)

    def window(self, size):
        return (slice(None), torch.randperm(self.n_features, device=self.device)[:size])

    def linf_start(self, X):
        return _random_signs(*X.shape, like=X)

    def linf_pattern(self, k, size, like):
        return _random_signs(k, size, like=like)

    l2_start = linf_start

    def l2_pattern(self, k, size, like):
        return _random_signs(k, size, like=like) / math.sqrt(size)

    @staticmethod
    def per_channel_norm(t):
        return t.norm(dim=1, keepdim=True)


def _square_run(model, X, y, *, epsilon, n_queries, norm, p_init, box):
    layout = _Images(X) if X.dim() == 4 else _Vectors(X)
    if norm == "linf":
        x_best = clip(X + epsilon * layout.linf_start(X), box)
    else:
        x_best = clip(X + epsilon * unit(layout.l2_start(X), "l2"), box)
    margin = _margins(model, x_best, y)
    for query in range(n_queries):
        if query % DROP_EVERY == 0:  # fooled samples stay in the batch until here, unchanged
            active = (margin > 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
        p = _window_fraction(query, n_queries, p_init)
        X_a, x_a = X[active], x_best[active]
        box_a = None if box is None else (box[0][active], box[1][active])
        k = active.numel()
        if norm == "linf":
            size = layout.side(p, 1)
            window = layout.window(size)
            x_new = x_a.clone()
            x_new[window] = X_a[window] + epsilon * layout.linf_pattern(k, size, X)
        else:
            size = layout.side(p, 3)
            first, second = layout.window(size), layout.window(size)
            delta = x_a - X_a
            both = torch.zeros_like(delta)
            both[first], both[second] = delta[first], delta[second]
            # Refill the first window with a new pattern (plus the old direction), with the
            # energy of both windows and of the unused budget; empty the second.
            budget = ((epsilon ** 2 - norms(delta, "l2") ** 2).clamp_min(0.0) / layout.channels)
            budget = budget.view(-1, *([1] * (delta.dim() - 1)))
            old = delta[first]
            fresh = layout.l2_pattern(k, size, X) + old / (layout.per_channel_norm(old) + 1e-12)
            fresh = fresh / (layout.per_channel_norm(fresh) + 1e-12) * (
                budget + layout.per_channel_norm(both) ** 2).sqrt()
            delta[second] = 0.0
            delta[first] = fresh
            x_new = X_a + epsilon * unit(delta, "l2")
        x_new = clip(x_new, box_a)
        margin_new = _margins(model, x_new, y[active])
        margin_a = margin[active]
        # Masked writes, not boolean indexing: the host learns no count. A sample fooled
        # since the last drop keeps its first adversarial example.
        better = ((margin_new < margin_a) | (margin_new <= 0)) & (margin_a > 0)
        x_best[active] = torch.where(sample_view(better, x_new), x_new, x_a)
        margin[active] = torch.where(better, margin_new, margin_a)
    return x_best


def square_attack(model, X, y, *, epsilon, n_queries=5000, norm="linf", p_init=0.8,
                  bounds=None):
    """Square Attack (Andriushchenko et al., 2020) with AutoAttack's settings as defaults.

    Random search on the margin loss: one model query per iteration, no
    gradients (see the module docstring). L-inf windows are set to
    ``X +- epsilon`` with one random sign per channel; L2 windows get a
    pattern of opposite halves of concentric rings, and the perturbation is
    kept on the sphere of radius ``epsilon``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
    y : torch.Tensor of shape (n,)
        Integer class indices, each a column of the model's logits (0 to n_classes - 1;
        others raise a ``ValueError`` before the first step).
    epsilon : float
        Radius of the threat model. ``0`` returns ``X`` unchanged.
    n_queries : int, default=5000
        Queries per sample (AutoAttack uses 5000); a sample stops once fooled.
    norm : {"linf", "l2"}, default="linf"
    p_init : float in (0, 1], default=0.8
        Fraction of the input that the first windows cover.
    bounds : tuple (low, high) or None, default=None
        Valid data range, widened to contain ``X``.

    Returns
    -------
    torch.Tensor
        For each sample, an adversarial example if one was found, else the
        point of smallest margin; shape and dtype of ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> X_adv = square_attack(model, X, y, epsilon=0.1, n_queries=20)
    >>> bool((X_adv - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    validate_attack_args("square_attack", not_none=("n_queries",), epsilon=epsilon,
                         n_queries=n_queries, norm=norm, p_init=p_init)
    check_inputs(model, X, y)
    return _square_attack(model, X, y, epsilon=epsilon, n_queries=n_queries, norm=norm,
                          p_init=p_init, bounds=bounds)


def _square_attack(model, X, y, *, epsilon, n_queries, norm, bounds, p_init=0.8):
    X = X.detach()
    if epsilon == 0:
        return X
    y = check_labels(y, X)
    box = threat_box(X, bounds)
    forward, flat = model, X
    if X.dim() not in (2, 4):  # neither rows nor images: attack the flattened samples
        shape = X.shape
        flat = X.reshape(len(X), -1)
        box = None if box is None else tuple(b.reshape(flat.shape) for b in box)
        forward = lambda x: model(x.reshape(-1, *shape[1:]))  # noqa: E731
    with eval_mode(model), torch.no_grad():
        x_best = _square_run(forward, flat, y, epsilon=epsilon, n_queries=n_queries, norm=norm,
                             p_init=p_init, box=box)
    return x_best.reshape(X.shape)
