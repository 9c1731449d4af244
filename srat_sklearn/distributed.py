"""Data-parallel SRAT: one fit on several processes or GPUs, with Hugging Face Accelerate.

``AcceleratedSRATClassifier`` is ``SRATClassifier`` composed with skorch's
``AccelerateMixin``. Launch the script that fits it with ``accelerate launch`` or
``torchrun``; every process runs the same script, and Accelerate shards each
epoch's batches across them and averages the gradients
(DistributedDataParallel). What SRAT needs on top of that:

- the separation loss sees the features of the *global* batch: they are
  gathered from all processes with ``torch.distributed.nn.functional.all_gather``,
  whose backward sends each process the gradient of its own features, so the
  averaged gradient equals that of one process on the whole batch;
- the attack and the feature hook use the module inside the DDP wrapper (an input
  gradient through DDP would leave its gradient reduction pending);
- with ``weight_normalization="weights"``, each process divides its class-weighted
  loss by the mean class weight of the global batch, not of its share, so that the
  loss DDP averages is that of one process on the whole batch;
- class counts and weights come from the whole training set (every process
  counts the full dataset before Accelerate shards the loader), and the
  deferred reweighting switches on the same, global epoch everywhere;
- validation predictions are gathered by ``AccelerateMixin``, so scores and
  robust scores are those of the whole validation set.

Needs the ``distributed`` extra (``pip install srat-sklearn[distributed]``).
"""

import torch
from skorch.hf import AccelerateMixin

from .estimator import SRATClassifier

__all__ = ["AcceleratedSRATClassifier", "gather_with_grad"]


def gather_with_grad(tensor):
    """Concatenate ``tensor`` from all processes, keeping the gradient to the local part.

    Outside a distributed run (or with one process) this is ``tensor`` itself.
    The backward pass sums the gradients that every process computes for this
    process's slice: when all processes compute the same loss of the gathered
    tensor (and DDP then averages), the result is the gradient of that loss on
    one process holding the whole batch.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> gather_with_grad(x) is x  # not in a distributed run
    True
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
            torch.distributed.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()))


class AcceleratedSRATClassifier(AccelerateMixin, SRATClassifier):
    """SRATClassifier trained data-parallel by Hugging Face Accelerate.

    Takes every parameter of :class:`~srat_sklearn.SRATClassifier` plus
    ``accelerator`` (an ``accelerate.Accelerator``) and ``unwrap_after_train``
    (see skorch's ``AccelerateMixin``). Pass ``device=None``: Accelerate places
    the module. ``batch_size`` is per process, so the global batch is
    ``batch_size * num_processes``, and the separation loss runs on that
    global batch. Accelerate's default ``even_batches=True`` keeps the last batch
    the same size on every process, which the gathering needs.

    The accelerator does not pickle: save with ``save_params`` (which writes
    from the main process only) and load into a plain ``SRATClassifier`` for
    prediction anywhere.

    Examples
    --------
    In ``train.py``, run as ``accelerate launch --num_processes 2 train.py``:

    >>> from accelerate import Accelerator  # doctest: +SKIP
    >>> clf = AcceleratedSRATClassifier(accelerator=Accelerator(), device=None,
    ...                                 max_epochs=30, random_state=0)  # doctest: +SKIP
    >>> clf.fit(X, y)  # doctest: +SKIP
    >>> clf.save_params(f_params="params.pt")  # doctest: +SKIP
    """

    def _check_params(self, warn=True):
        super()._check_params(warn=warn)
        if self.reuse_perturbations:
            # Each process would keep the perturbations of the rows it happened to draw.
            raise ValueError("reuse_perturbations=True is not supported by "
                             "AcceleratedSRATClassifier; use SRATClassifier on one device.")

    def initialize(self):
        self._before_initialize()
        super().initialize()  # AccelerateMixin's, which does not call SRATClassifier's
        self._after_initialize()
        return self

    def _initialize_accelerator(self):
        criterion = getattr(self, "criterion_", None)
        if self._wrapped_with_accelerator or not isinstance(criterion, torch.nn.Module) or \
                any(p.requires_grad for p in criterion.parameters()):
            return super()._initialize_accelerator()
        # On several CPU processes Accelerate wraps every prepared module in DDP, which
        # refuses one without trainable parameters, like ReweightedLoss; it only needs the
        # device (its class weights are buffers).
        self.criterion_ = None
        try:
            return super()._initialize_accelerator()
        finally:
            self.criterion_ = criterion.to(self.accelerator.device)

    def _compute_device(self):
        return self.accelerator.device  # device=None: Accelerate places the module

    def _whole_batch_reads(self):
        # On one process Accelerate fails to prepare a loader whose sampler yields whole
        # batches ("DataLoaderShard() got multiple values for keyword argument 'batch_size'").
        return self.accelerator.num_processes > 1

    def _bare_module(self):
        return self.accelerator.unwrap_model(self.module_, keep_fp32_wrapper=False)

    def _gather_batch(self, tensor):
        # generate_adversarial iterates a loader that Accelerate shards.
        return self.accelerator.gather_for_metrics(tensor)

    def _gather_features(self, tensor):
        return gather_with_grad(tensor)

    def _classification_loss(self, logits, y_true):
        if self.accelerator.num_processes == 1 or \
                getattr(self.criterion_, "weight_normalization", None) != "weights":
            return super()._classification_loss(logits, y_true)
        # gather, not gather_for_metrics: the rows even_batches repeats are trained on too.
        return self.criterion_(logits, y_true, batch_target=self.accelerator.gather(y_true))
