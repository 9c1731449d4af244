"""Saving and loading a classifier: skorch's ``load_params`` with a clear error, and a pickle
without the state that is only a cache or a starting point.

A mixin of :class:`~srat_sklearn.SRATClassifier`.
"""


class PersistenceMixin:
    """``load_params`` that says what to rebuild, and a lean ``__getstate__``."""

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, **kwargs):
        """Load parameters saved by ``save_params`` or a ``Checkpoint`` (see skorch).

        The estimator must build the same module as the one that saved them (same
        ``module`` and ``module__*``; same data shape, or ``classes`` and ``input_shape``):
        ``SRATClassifier(classes=[...], input_shape=(1, 8, 8), bounds=(0.0, 1.0)).initialize()
        .load_params(f_params="srat.pt")``.
        """
        try:
            return super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                                       f_criterion=f_criterion, f_history=f_history,
                                       checkpoint=checkpoint, **kwargs)
        except RuntimeError as error:
            if "state_dict" not in str(error):
                raise
            detail = " ".join(line.strip() for line in str(error).strip().splitlines()[:3])
            raise ValueError(
                f"The saved parameters do not fit this estimator's network "
                f"({type(self.module_).__name__}): build it with the same module and "
                f"module__* parameters, and for module=None the same classes and input "
                f"shape, as the estimator that saved them. PyTorch says: {detail}") from error

    def __getstate__(self):
        state = super().__getstate__()
        # As large as the training inputs, on the device, and only a starting point.
        state.pop("perturbation_store_", None)
        state.pop("separation_", None)  # remade from the module on demand
        state.pop("_snapshot", None)  # one batch's undo, left behind by an interrupted step
        state.pop("_compiled", None)  # compiled code does not pickle; compiled again on demand
        return state
