"""``compile=True``: the training attack's ascent step and the training forward pass, compiled.

A mixin of :class:`~srat_sklearn.SRATClassifier`. skorch's own ``compile=True`` compiles
``module_``, which made adversarial training slower than eager: the attack's input gradients
(``torch.autograd.grad``) break the graph, and every batch switches the module between the
attack's eval mode and the step's train mode. The estimator compiles two functions instead:

- the ascent step of PGD and TRADES (:func:`~srat_sklearn.attacks._common.ascent_step`):
  forward pass, input gradient and projection in one graph, called with the radius and step
  size as 0-dim tensors, so that class-aware budgets and the epsilon warm-up reuse the graph;
- the forward pass of the training step, in train mode only, with the separation term's
  feature hook inside the graph. It is compiled as a function of its own, with guards on the
  module's hooks, so that no graph of ``module.forward`` compiled without the hook (by an AT
  fit of the same network class, or by the user's ``torch.compile``) is reused.

``module_`` stays the plain module: pickles, state dicts and hooks are as without compiling.
The loss and the optimizer step run eagerly. Options ``compile__*`` go to
:func:`torch.compile` (``compile__backend``, ``compile__mode``...). Where torch.compile fails
(a module it cannot trace, a backend without its compiler), training goes on eagerly after
one warning that names the reason.
"""

import warnings

import torch
from skorch.utils import to_tensor

from .attacks._common import ascent_step


class CompileFallbackWarning(UserWarning):
    """torch.compile failed; the estimator runs the step eagerly from then on."""


def training_forward(module, x):
    """``module(x)``, the function the training forward pass is compiled as."""
    return module(x)


def describe_failure(error):
    """``"TypeName: reason"`` of a compiler's exception, on one line."""
    # Dynamo's first line often only introduces the next ("backend raised:").
    reason = " ".join([line.strip() for line in str(error).splitlines() if line.strip()][:2])
    return f"{type(error).__name__}: {reason}"


class CompiledSteps:
    """The compiled ascent step and training forward pass of one module.

    After the first failure of either, both run eagerly.

    Parameters
    ----------
    module : torch.nn.Module
        The module of the training step.
    options : dict
        Keyword arguments of :func:`torch.compile`.

    Examples
    --------
    >>> import torch
    >>> steps = CompiledSteps(torch.nn.Linear(4, 3), {"backend": "eager"})
    >>> steps.forward(torch.rand(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, module, options):
        self.module = module
        self.failure = None
        from torch._dynamo import config  # loaded by torch.compile in any case

        # The separation term hooks the feature layer for each training step. By default
        # dynamo does not guard on hooks: a graph traced without them, for another estimator
        # of the same network class (an AT fit of a grid search, say) or by the user's own
        # torch.compile(module), would be reused and record no features. So the forward
        # pass is compiled as a function of its own, with guards on the hooks.
        self._forward = config.patch(skip_nnmodule_hook_guards=False)(
            torch.compile(training_forward, **options))
        self._ascent = torch.compile(ascent_step, **options)

    def forward(self, x):
        """``module(x)``, compiled."""
        return self._run(self._forward, training_forward, self.module, x)

    def ascent(self, loss, model, x, X, target, step_size, epsilon, norm, box):
        """:func:`~srat_sklearn.attacks._common.ascent_step`, compiled."""
        # Tensors, not floats: torch.compile would specialise the graph on each value. Filled
        # on the device: a copy from the host would wait for the device at every step.
        step_size, epsilon = (X.new_full((), v) for v in (step_size, epsilon))
        return self._run(self._ascent, ascent_step, loss, model, x, X, target, step_size,
                         epsilon, norm, box)

    def _run(self, compiled, eager, *args):
        if self.failure is None:
            try:
                return compiled(*args)
            except Exception as error:  # noqa: BLE001 (any failure of the compiler)
                self.failure = error
                warnings.warn(f"compile=True: torch.compile failed ({describe_failure(error)}"
                              "); training goes on without compiling.",
                              CompileFallbackWarning, stacklevel=3)
        return eager(*args)  # a real error of the module raises here, as without compile


class CompileMixin:
    """skorch's ``compile=True``, applied to the adversarial training step."""

    def torch_compile(self, module, name):
        """Return ``module`` unchanged: with ``compile=True`` the estimator compiles its
        steps (:mod:`srat_sklearn._compiled`) rather than skorch's modules."""
        return module

    def _compiled_steps(self):
        """The compiled steps of the current module; None without ``compile=True``."""
        if not getattr(self, "compile", False):
            return None
        steps = self.__dict__.get("_compiled")
        if steps is None or steps.module is not self.module_:
            steps = self.__dict__["_compiled"] = CompiledSteps(self.module_,
                                                               self.get_params_for("compile"))
        return steps

    def _ascent_step(self):
        """The compiled ascent step for the attacks; None: their eager loops."""
        steps = self._compiled_steps()
        return None if steps is None else steps.ascent

    def infer(self, x, **fit_params):
        steps = self._compiled_steps()
        if steps is None or fit_params or not self.module_.training:
            return super().infer(x, **fit_params)
        x = to_tensor(x, device=self.device)
        if not isinstance(x, torch.Tensor):  # a dict of inputs: skorch's keyword call
            return super().infer(x)
        return steps.forward(x)
