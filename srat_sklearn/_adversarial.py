"""Adversarial examples of a fitted classifier: ``generate_adversarial`` and ``attack_settings``.

A mixin of :class:`~srat_sklearn.SRATClassifier`. It resolves an evaluation attack against
the classifier's own threat model and runs it batch by batch on the validated, shaped X.
"""

import numpy as np
from skorch.utils import is_dataset, to_numpy, to_tensor
from tqdm.auto import tqdm

from ._feature_threat import describe_features, radius
from ._inputs import label_indices
from ._validation import check_int
from .attacks import DISPLAY_NAMES, attack_settings, check_attack

#: Samples attacked together in an evaluation, unless given: AutoAttack's 250.
EVALUATION_BATCH_SIZE = 250
#: Attacks long enough to show a progress bar at ``verbose=1``.
_LONG = {"apgd-t", "fab-t", "square"}


class AdversarialMixin:
    """``generate_adversarial`` and ``attack_settings`` on the classifier's threat model."""

    def _resolve_attack(self, attack, *, epsilon=None, step_size=None, n_steps=None, norm=None,
                        random_start=None, n_restarts=1, n_queries=None, n_targets=None):
        """An attack's settings, the estimator's threat model filling those left at None.

        PGD alone also takes the training attack's steps (and, at the training
        radius, its step size); the other attacks keep their standard iterations.
        """
        epsilon = radius(self.epsilon) if epsilon is None else epsilon
        if isinstance(attack, str) and attack == "pgd":
            n_steps = self.n_steps if n_steps is None else n_steps
            if step_size is None and epsilon == radius(self.epsilon) and n_steps == self.n_steps:
                step_size = self.step_size
        return dict(epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                    norm=self.norm if norm is None else norm,
                    random_start=self.random_start if random_start is None else random_start,
                    n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets)

    def attack_settings(self, attack="pgd", *, epsilon=None, step_size=None, n_steps=None,
                        norm=None, random_start=None, n_restarts=1, n_queries=None,
                        n_targets=None):
        """The settings :meth:`generate_adversarial` attacks with, resolved, as reports state them.

        Examples
        --------
        >>> clf.attack_settings("autoattack")["n_queries"]  # doctest: +SKIP
        5000
        """
        settings = attack_settings(attack, **self._resolve_attack(
            attack, epsilon=epsilon, step_size=step_size, n_steps=n_steps, norm=norm,
            random_start=random_start, n_restarts=n_restarts, n_queries=n_queries,
            n_targets=n_targets))
        if getattr(self, "feature_threat_", None) is not None:
            settings["features"] = describe_features(self)
        return settings

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
        y_index = label_indices(y, self.classes_,
                                what="y holds labels the classifier was not fitted on")
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
        long = len(members) > 1 or bool(_LONG & set(members))
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
