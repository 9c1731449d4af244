"""Reproducible fits: torch seeded from ``random_state`` without touching the caller's state.

Inside :func:`forked_seed` the global generators are seeded from ``random_state`` and the
caller's generator state comes back afterwards. Each epoch reseeds from ``(seed, epoch)``
(:func:`seed_epoch`), so that a fit resumed from a checkpoint after epoch k draws the same
batches and random starts as one that ran straight through.
"""

from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_random_state


@contextmanager
def forked_seed(random_state, device):
    """Seed torch from ``random_state`` inside; yield the seed (None: nothing is seeded)."""
    if random_state is None:
        yield None
        return
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield seed


@contextmanager
def epoch_seeded(estimator, random_state, device):
    """:func:`forked_seed`, keeping the seed on ``estimator._epoch_seed_`` for :func:`seed_epoch`.

    Nested calls (a scorer attacking the model during fit) restore the outer fit's seed.
    """
    outer = estimator.__dict__.get("_epoch_seed_")
    with forked_seed(random_state, device) as seed:
        if seed is None:
            yield
            return
        estimator._epoch_seed_ = seed
        try:
            yield
        finally:
            if outer is None:
                del estimator._epoch_seed_
            else:
                estimator._epoch_seed_ = outer


def seed_epoch(seed, epoch):
    """Seed torch for ``epoch`` (1-based, global: a loaded history continues it)."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
