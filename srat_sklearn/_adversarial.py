"""Adversarial examples of a fitted classifier: ``generate_adversarial`` and ``attack_settings``.

A mixin of :class:`~srat_sklearn.SRATClassifier`. It resolves an evaluation attack against
the classifier's own threat model and runs it on the validated, shaped X, each member of an
ensemble on all the samples still standing.
"""

from functools import partial

import numpy as np
import torch
from skorch.utils import is_dataset, to_numpy, to_tensor
from tqdm.auto import tqdm

from ._budgets import attack_per_sample
from ._feature_threat import describe_features, evaluation_threat, radius
from ._inputs import UNFITTED_LABELS, label_indices, label_vector
from ._validation import check_int
from .attacks import DISPLAY_NAMES, attack_settings, check_attack
from .attacks._run import _run_attack

#: Samples attacked together in an evaluation, unless given: AutoAttack's 250.
EVALUATION_BATCH_SIZE = 250
#: Attacks long enough to show a progress bar at ``verbose=1``.
_LONG = {"apgd-t", "fab-t", "square"}


class AdversarialMixin:
    """``generate_adversarial`` and ``attack_settings`` on the classifier's threat model."""

    def _resolve_attack(self, attack, *, epsilon=None, step_size=None, n_steps=None, norm=None,
                        random_start=None, n_restarts=1, n_queries=None, n_targets=None):
        """An attack's settings, the estimator's threat model filling those left at None.

        PGD or TRADES' attack alone also takes the training attack's steps (and,
        at the training radius, its step size); the other attacks keep their
        standard iterations.
        """
        epsilon = radius(self.epsilon) if epsilon is None else epsilon
        if isinstance(attack, str) and attack in ("pgd", "trades"):
            n_steps = self.n_steps if n_steps is None else n_steps
            if step_size is None and epsilon == radius(self.epsilon) and n_steps == self.n_steps:
                step_size = self.step_size
        return dict(epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                    norm=self.norm if norm is None else norm,
                    random_start=self.random_start if random_start is None else random_start,
                    n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets)

    def _attack(self, X, y, *, attack="pgd", start=None, skip_misclassified=False,
                batch_size=None, after_member=None, threat=None, sample_share=None,
                **settings):
        """Adversarial examples of a batch under the threat model.

        ``settings`` are the attack's (None: the estimator's); ``threat`` a
        :class:`~srat_sklearn._feature_threat.FeatureThreat` that replaces the
        fitted one (an evaluation's own features and budgets); ``sample_share``
        each sample's share of the radius (:mod:`srat_sklearn._budgets`).
        """
        X = self._memory_format(X)
        run = partial(_run_attack, attack, y=y, skip_misclassified=skip_misclassified,
                      batch_size=batch_size, after_member=after_member, step=self._ascent_step(),
                      **self._resolve_attack(attack, **settings))
        bounds = self.bounds_on_device_.like(X)
        threat = getattr(self, "feature_threat_", None) if threat is None else threat

        def threatened(model, X, bounds=None, start=None):
            if threat is None:
                return run(model, X, bounds=bounds, start=start)
            return threat.attack(run, model, X, bounds, start)

        with self._autocast():
            if sample_share is None:
                return threatened(self._bare_module(), X, bounds=bounds, start=start)
            return attack_per_sample(threatened, self._bare_module(), X, sample_share, bounds,
                                     start)

    def attack_settings(self, attack="pgd", *, epsilon=None, step_size=None, n_steps=None,
                        norm=None, random_start=None, n_restarts=1, n_queries=None,
                        n_targets=None, perturbable_features=None):
        """The settings :meth:`generate_adversarial` attacks with, resolved, as reports state them.

        Examples
        --------
        >>> clf.attack_settings("autoattack")["n_queries"]  # doctest: +SKIP
        5000
        """
        epsilon_radius, threat = evaluation_threat(self, epsilon, perturbable_features)
        settings = attack_settings(attack, **self._resolve_attack(
            attack, epsilon=epsilon_radius, step_size=step_size, n_steps=n_steps, norm=norm,
            random_start=random_start, n_restarts=n_restarts, n_queries=n_queries,
            n_targets=n_targets))
        if "n_targets" in settings:  # the targets there are, as the attacks cap them
            settings["n_targets"] = min(settings["n_targets"], len(self.classes_) - 1)
        if threat is not None:
            settings["features"] = describe_features(self, epsilon, ~threat.frozen)
        elif getattr(self, "feature_threat_", None) is not None:
            settings["features"] = describe_features(self)
        return settings

    def generate_adversarial(self, X, y, *, attack="pgd", epsilon=None, step_size=None,
                             n_steps=None, norm=None, random_start=None, n_restarts=1,
                             n_queries=None, n_targets=None, perturbable_features=None,
                             batch_size=None, verbose=0):
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
            For 2-D X, ``epsilon`` may hold one value per feature, in the units
            of the classifier's ``epsilon_scale``.
        perturbable_features : mask, indices or column names, or None
            For 2-D X: the features this evaluation may change, in place of
            the classifier's ``perturbable_features`` (None keeps those).
        batch_size : int or None, default=None
            The most samples attacked together; ``None``: 250, as AutoAttack
            evaluates. Each attack of an ensemble runs on all the samples
            still standing, in parts of nearly equal size; APGD-T and FAB-T
            attack as many targets of each sample in one pass as fit in
            ``batch_size`` rows. Larger batches run the attacks' many
            iterations faster on a GPU; lower it when the device runs
            out of memory (the samples themselves are held on the device at
            once; for more than fit there, call this on parts of X).
        verbose : int, default=0
            1 shows a progress bar over the attacks of the long evaluations
            (ensembles, APGD-T, FAB-T, Square) with the samples still robust;
            2 for every attack.

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
        return self._adversarial_examples(
            X, y, attack=attack, epsilon=epsilon, step_size=step_size, n_steps=n_steps,
            norm=norm, random_start=random_start, n_restarts=n_restarts, n_queries=n_queries,
            n_targets=n_targets, perturbable_features=perturbable_features,
            batch_size=batch_size, verbose=verbose)[0]

    def _adversarial_examples(self, X, y, *, attack, epsilon, step_size, n_steps, norm,
                              random_start, n_restarts, n_queries, n_targets,
                              perturbable_features, batch_size, verbose):
        """:meth:`generate_adversarial`'s examples, and for an ensemble which samples were
        still robust after each of its attacks: (n_samples, n_attacks) bool, else None."""
        X_shape = np.shape(X)
        X_valid = self._validate_predict_X(X)
        if is_dataset(X_valid):
            raise TypeError("generate_adversarial takes arrays; iterate over the Dataset and "
                            "call srat_sklearn.attacks.run_attack on module_ for a Dataset.")
        y = label_vector(y)
        if y.ndim != 1 or len(y) != len(X_valid):
            raise ValueError(f"y must be 1-D with one label per row of X; got shape {y.shape} "
                             f"for {len(X_valid)} rows.")
        y_index = label_indices(y, self.classes_, what=UNFITTED_LABELS)
        epsilon, threat = evaluation_threat(self, epsilon, perturbable_features)
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
        loader = self.get_iterator(self.get_dataset(X_valid, y_index), training=False,
                                   batch_size=batch_size or EVALUATION_BATCH_SIZE)
        # All the samples (this process's share of them) in one tensor, so that each member
        # of an ensemble runs on every sample still standing, in full batches, as AutoAttack
        # does: the later members see few samples, and many small batches cost far more.
        batches = [(to_tensor(Xi, device=self.device), to_tensor(yi, device=self.device))
                   for Xi, yi in loader]
        X_all, y_all = (torch.cat(parts) for parts in zip(*batches))
        shown = verbose >= 2 or (verbose == 1 and long)
        standing_after = []
        with self._seeded(), tqdm(total=len(members), desc=name, unit="attack",
                                  disable=not shown) as bar:
            def after_member(i, standing):
                standing_after.append(standing.clone())  # the ensemble updates it in place
                if shown:
                    bar.set_postfix_str(f"{int(standing.sum())} of {len(standing)} robust")
                    bar.update()

            # A single attack's results go unchecked without a progress bar: predict checks.
            adv = self._attack(X_all, y_all, attack=attack, skip_misclassified=True,
                               batch_size=batch_size or EVALUATION_BATCH_SIZE,
                               after_member=after_member if shown or len(members) > 1
                               else None, threat=threat, **requested)
        sizes = [len(yi) for _, yi in batches]
        trace = None
        if len(members) > 1:
            # An ensemble stops once no sample stands: the attacks it skipped fooled none.
            none_standing = [torch.zeros_like(y_all, dtype=torch.bool)]
            standing_after += (standing_after[-1:] or none_standing) * (
                len(members) - len(standing_after))
            trace = torch.stack(standing_after, dim=1).to(torch.uint8).split(sizes)
        # Gathered batch by batch in a second pass: a data-parallel loader knows which of the
        # last batch's samples are padding only while it is being iterated.
        adversarial, robust_after = [], []
        for i, (_, part) in enumerate(zip(loader, adv.split(sizes))):
            adversarial.append(to_numpy(self._gather_batch(part)))
            if trace is not None:  # as numbers: not every backend gathers booleans
                robust_after.append(to_numpy(self._gather_batch(trace[i])))
        X_adv = np.concatenate(adversarial).reshape(X_shape).astype(np.float32, copy=False)
        return X_adv, np.concatenate(robust_after).astype(bool) if robust_after else None
