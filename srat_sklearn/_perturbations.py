"""Each training sample's adversarial perturbation of the previous epoch (``reuse_perturbations``).

Zheng et al. (2020) start each sample's attack where its attack of the previous epoch ended,
so that a few steps per epoch add up to a strong attack. The store keeps one perturbation per
training sample, indexed by the sample's position in the training set, on the device.
"""

import torch

from .attacks import random_perturbation


class PerturbationStore:
    """One perturbation per training sample, drawn at random (or zero) the first time.

    Parameters
    ----------
    n_samples : int
        Samples of the training set.
    epsilon, norm : the threat model of the first draw
    random_start : bool
        Draw the first perturbations uniformly from the ball; else zeros.
    """

    def __init__(self, n_samples, epsilon, norm, random_start):
        self.n_samples = n_samples
        self.epsilon = epsilon
        self.norm = norm
        self.random_start = random_start
        self.perturbations = None

    def previous(self, X, rows):
        """The perturbations the samples at ``rows`` had at the end of their last attack."""
        shape = (self.n_samples, *X.shape[1:])
        store = self.perturbations
        if store is None or store.shape != shape or store.device != X.device:
            store = torch.zeros(shape, dtype=X.dtype, device=X.device)
            if self.random_start:
                store = random_perturbation(store, self.epsilon, self.norm)
            self.perturbations = store
        return store[rows]

    def update(self, rows, perturbations):
        """Keep the perturbations at ``rows`` for the next epoch."""
        self.perturbations[rows] = perturbations
