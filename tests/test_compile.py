"""``compile=True``: the compiled ascent step and training forward pass.

Most tests compile with dynamo's ``"eager"`` backend: the graphs are captured as with the
default, without the C++ compiler's minutes, and run the same kernels as eager mode, so that
a fit must end with exactly the eager weights. One test runs the default backend (inductor).
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch._dynamo.utils import counters
from torch.utils._python_dispatch import TorchDispatchMode

from srat_sklearn import CompileFallbackWarning, SRATClassifier
from srat_sklearn._compiled import CompiledSteps
from srat_sklearn.attacks._common import ascent_step
from srat_sklearn.attacks.pgd import _pgd_attack, cross_entropy_sum
from srat_sklearn.attacks.trades import _trades_attack


@pytest.fixture
def small_digits(digits_split):
    X_train, _, y_train, _ = digits_split
    return X_train[:200], y_train[:200]  # batches of 64 and a last one of 8


@pytest.fixture
def compile_params():
    return dict(max_epochs=2, epsilon=0.2, n_steps=2, batch_size=64, random_state=0,
                verbose=0, reweight_epoch=0.5, module__channels=(8, 16),
                module__hidden_units=32)


@pytest.fixture
def fresh_dynamo():
    """An empty compile cache and counters: graphs compiled by earlier tests would be reused."""
    torch._dynamo.reset()
    counters.clear()
    yield counters
    torch._dynamo.reset()


def weights(clf):
    return {k: v.float() for k, v in clf.module_.state_dict().items()}


@pytest.mark.parametrize("params", [
    {},
    {"norm": "l2", "epsilon": 1.0},
    {"adversarial_loss": "trades"},
    {"mixed_precision": "bf16", "max_epochs": 1},
    {"class_epsilon_mix": 0.5, "epsilon_warmup": 2},
    {"separation_views": "adversarial+clean", "lambda_sep": 0.5},
], ids=["pgd", "l2", "trades", "bf16", "budgets", "clean-view"])
def test_compiled_fit_ends_with_the_eager_weights(small_digits, compile_params, params):
    X, y = small_digits
    params = {**compile_params, **params}
    eager = SRATClassifier(**params).fit(X, y)
    compiled = SRATClassifier(**params, compile=True, compile__backend="eager").fit(X, y)
    expected, got = weights(eager), weights(compiled)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_a_compiled_srat_fit_follows_a_compiled_at_fit(small_digits, compile_params,
                                                       fresh_dynamo):
    # As in a grid search over lambda_sep: the AT fit compiles the network's forward pass
    # without the separation term's feature hook, and the SRAT fit after it must not reuse
    # that graph (it once did, and found no features: IndexError).
    X, y = small_digits
    params = {**compile_params, "compile__backend": "eager"}
    SRATClassifier(**params, lambda_sep=0.0, compile=True).fit(X, y)
    compiled = SRATClassifier(**params, lambda_sep=1.0, compile=True).fit(X, y)
    eager = SRATClassifier(**params, lambda_sep=1.0).fit(X, y)
    expected, got = weights(eager), weights(compiled)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_tabular_feature_threat_compiles_too(tabular):
    X, y = tabular
    params = dict(max_epochs=2, epsilon=0.3, n_steps=2, random_state=0, verbose=0,
                  reweight_epoch=0.5, bounds=None, perturbable_features=[0, 1, 2])
    eager = SRATClassifier(**params).fit(X, y)
    compiled = SRATClassifier(**params, compile=True, compile__backend="eager").fit(X, y)
    np.testing.assert_array_equal(compiled.predict_proba(X), eager.predict_proba(X))


def test_compiled_steps_do_not_recompile_per_batch(small_digits, compile_params, fresh_dynamo):
    X, y = small_digits
    clf = SRATClassifier(**compile_params, class_epsilon_mix=0.5, epsilon_warmup=3,
                         compile=True, compile__backend="eager")
    clf.set_params(max_epochs=1).fit(X, y)
    graphs = fresh_dynamo["stats"]["unique_graphs"]
    # The ascent step and the forward pass, each for full batches and once more for the
    # last, smaller one; the radius changes with every epoch and class without a new graph.
    assert graphs <= 4
    clf.partial_fit(X, y, epochs=3)
    assert fresh_dynamo["stats"]["unique_graphs"] == graphs
    assert not fresh_dynamo["graph_break"], dict(fresh_dynamo["graph_break"])


def test_feature_hook_is_inside_the_compiled_forward(small_digits, compile_params,
                                                    fresh_dynamo):
    X, y = small_digits
    SRATClassifier(**compile_params, lambda_sep=1.0, compile=True,
                   compile__backend="eager").fit(X, y)
    assert fresh_dynamo["stats"]["unique_graphs"] > 0
    assert not fresh_dynamo["graph_break"], dict(fresh_dynamo["graph_break"])


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", ["pgd", "trades"])
def test_functional_ascent_step_repeats_the_autograd_loop(attack, norm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    X, y = torch.rand(32, 6), torch.randint(0, 3, (32,))
    settings = dict(epsilon=0.3, step_size=0.1, n_steps=4, norm=norm, bounds=(0.0, 1.0))
    runs = []
    for step in (None, ascent_step):
        torch.manual_seed(1)  # the same random start
        if attack == "pgd":
            runs.append(_pgd_attack(model, X, y, random_start=True, start=None, step=step,
                                    **settings))
        else:
            runs.append(_trades_attack(model, X, step=step, **settings))
    torch.testing.assert_close(runs[1], runs[0], rtol=0, atol=1e-6)


def test_inductor_ascent_step_matches_the_eager_attack_step():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3)).eval()
    X, y = torch.rand(32, 6), torch.randint(0, 3, (32,))
    step = torch.compile(ascent_step)
    with torch.no_grad():
        got = step(cross_entropy_sum, model, X, X, y, torch.tensor(0.1), torch.tensor(0.5),
                   "l2", None)
    x = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cross_entropy_sum(model(x), y), x)
    expected = X + 0.1 * grad / grad.norm(dim=1, keepdim=True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


class OperatorLog(TorchDispatchMode):
    """The names of the aten operators that run inside it."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


def test_compiled_step_makes_its_radius_on_the_device_not_from_host_data():
    # A tensor made from a Python float is copied from the host: on a GPU, a wait at every
    # attack step. lift_fresh is where such a tensor enters the dispatcher.
    model = torch.nn.Linear(4, 3)
    X, y = torch.rand(8, 4), torch.zeros(8, dtype=torch.long)
    steps = CompiledSteps(model, {"backend": "eager"})
    step = (cross_entropy_sum, model, X, X, y, 0.05, 0.1, "linf", None)
    with torch.no_grad():
        steps.ascent(*step)  # compiles
        with OperatorLog() as log:
            steps.ascent(*step)
    assert "aten.sign.default" in log.names  # the step ran under the log
    assert "aten.lift_fresh.default" not in log.names


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(small_digits,
                                                                  compile_params):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("this backend cannot compile")

    X, y = small_digits
    eager = SRATClassifier(**compile_params).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = SRATClassifier(**compile_params, compile=True,
                                  compile__backend=broken_backend).fit(X, y)
    fallbacks = [w for w in caught if issubclass(w.category, CompileFallbackWarning)]
    assert len(fallbacks) == 1
    assert "this backend cannot compile" in str(fallbacks[0].message)
    np.testing.assert_array_equal(compiled.predict_proba(X), eager.predict_proba(X))


def test_module_stays_the_plain_module(small_digits, compile_params):
    X, y = small_digits
    clf = SRATClassifier(**compile_params, compile=True, compile__backend="eager").fit(X, y)
    assert not isinstance(clf.module_, torch._dynamo.eval_frame.OptimizedModule)
    assert not any(k.startswith("_orig_mod") for k in clf.module_.state_dict())


def test_compiled_estimator_pickles_and_clones(small_digits, compile_params):
    X, y = small_digits
    clf = SRATClassifier(**compile_params, compile=True, compile__backend="eager").fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X, y)  # compiles again on demand
    twin = clone(clf)
    assert twin.compile is True and twin.get_params()["compile__backend"] == "eager"


def test_compile_must_be_a_boolean():
    with pytest.raises(ValueError, match="The 'compile' parameter of SRATClassifier"):
        SRATClassifier(compile="yes").fit(np.zeros((10, 2)), np.arange(10) % 2)
