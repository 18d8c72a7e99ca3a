"""je.checked: value errors raised with a message naming the problem."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxent as je

P = jnp.array([[0.2, 0.8], [0.5, 0.5]])
Q = jnp.array([[0.4, 0.6], [0.9, 0.1]])


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["plain", "jitted"])
def test_valid_input_passes_through(wrap):
    safe = je.checked(wrap(je.kl_divergence))
    np.testing.assert_allclose(safe(P, Q), je.kl_divergence(P, Q))
    np.testing.assert_allclose(safe(P, Q, base=2), je.kl_divergence(P, Q, base=2))


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["plain", "jitted"])
@pytest.mark.parametrize(
    "p, message",
    [
        (jnp.array([[-0.2, 1.2], [0.5, 0.5]]), "p has negative probabilities"),
        (jnp.array([[0.2, 0.7], [0.5, 0.5]]), "p has rows along axis -1 that do not sum to 1"),
        (jnp.array([[jnp.nan, 0.8], [0.5, 0.5]]), "p contains NaN"),
    ],
)
def test_bad_probabilities_raise(wrap, p, message):
    with pytest.raises(checkify.JaxRuntimeError, match=message):
        je.checked(wrap(je.kl_divergence))(p, Q)
    with pytest.raises(ValueError, match=message):  # JaxRuntimeError is a ValueError
        je.checked(wrap(je.entropy))(p)


def test_second_argument_is_named():
    with pytest.raises(ValueError, match="q has rows"):
        je.checked(je.cross_entropy)(P, Q * 2)


def test_axis_and_where_are_respected():
    p = jnp.array([[0.2, 0.5], [0.8, 0.5]])  # columns sum to 1
    je.checked(je.entropy)(p, axis=0)
    with pytest.raises(ValueError, match="axis -1"):
        je.checked(je.entropy)(p)
    masked = jnp.array([0.3, 0.7, 5.0])
    je.checked(je.entropy)(masked, where=jnp.array([True, True, False]))


def test_tolerance_is_documented_and_adjustable():
    p = jnp.array([0.5, 0.5 + 1e-3])
    with pytest.raises(ValueError, match="tolerance"):
        je.checked(je.entropy)(p)
    je.checked(je.entropy, tol=1e-2)(p)
    # float32 default tolerance: sqrt(eps) ~ 3.5e-4, so rounding noise passes.
    je.checked(je.entropy)(jnp.full(10, 0.1, jnp.float32))


def test_other_kinds():
    with pytest.raises(ValueError, match="greater than 1"):
        je.checked(je.binary_entropy)(jnp.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="joint tables"):
        je.checked(je.mutual_information)(jnp.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="logits contains NaN"):
        je.checked(je.entropy_from_logits)(jnp.array([0.0, jnp.nan]))
    with pytest.raises(ValueError, match="p has negative"):
        je.checked(je.renyi_entropy)(jnp.array([-0.5, 1.5]), 2.0)
    np.testing.assert_allclose(
        je.checked(je.renyi_entropy)(P, jnp.array([0.5, 2.0])),
        je.renyi_entropy(P, jnp.array([0.5, 2.0])),
    )


def test_unknown_function_is_rejected():
    with pytest.raises(TypeError, match="not a jaxent function"):
        je.checked(jnp.sum)


def test_array_options_and_repeated_calls():
    safe = je.checked(je.losses.softmax_cross_entropy)
    logits = jnp.array([[1.0, 2.0, 3.0]])
    labels = jnp.array([[0.0, 0.0, 1.0]])
    smoothing = jnp.array([[0.1]])
    np.testing.assert_allclose(
        safe(logits, labels, label_smoothing=smoothing),
        je.losses.softmax_cross_entropy(logits, labels, label_smoothing=smoothing),
    )
    for _ in range(3):  # compiled once per set of static options, then reused
        np.testing.assert_allclose(
            safe(logits, labels), je.losses.softmax_cross_entropy(logits, labels)
        )
    with pytest.raises(ValueError, match="labels has negative"):
        safe(logits, -labels)


def test_logistic_inputs_are_checked():
    x = jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    params, _ = je.checked(je.logistic.fit)(x, y, l2=0.1)
    want, _ = je.logistic.fit(x, y, l2=0.1)
    np.testing.assert_allclose(params["w"], want["w"], rtol=1e-6)
    np.testing.assert_allclose(
        je.checked(je.logistic.predict_proba)(params, x), je.logistic.predict_proba(params, x)
    )
    with pytest.raises(ValueError, match="x contains NaN"):
        je.checked(je.logistic.fit)(x.at[0, 0].set(jnp.nan), y)
    with pytest.raises(ValueError, match="x contains NaN"):
        je.checked(je.logistic.loss)(params, x.at[1, 1].set(jnp.nan), y)


def test_half_precision_tolerance_is_the_dtypes_own():
    # 0.1 rounds to 0.1001 in bfloat16: ten of them sum to 1.001, within sqrt(eps) = 0.088.
    p = jnp.full((10,), 0.1, jnp.bfloat16)
    assert je.checked(je.entropy)(p).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="do not sum to 1"):
        je.checked(je.entropy)(jnp.full((10,), 0.12, jnp.bfloat16))


def test_class_ids_are_checked_against_the_number_of_classes():
    logits = jnp.zeros((3, 4))
    safe = je.checked(je.losses.softmax_cross_entropy_with_integer_labels)
    np.testing.assert_allclose(safe(logits, jnp.array([0, 1, 3])), np.full(3, np.log(4)))
    for bad in ([0, 1, 4], [-1, 0, 0]):  # unchecked, these give NaN (as optax does)
        with pytest.raises(ValueError, match=r"labels has class ids outside \[0, 4\)"):
            safe(logits, jnp.array(bad))
    # The class axis follows `axis`.
    np.testing.assert_allclose(safe(jnp.zeros((3, 2)), jnp.array([0, 2]), axis=0), np.log(3))
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        safe(jnp.zeros((3, 2)), jnp.array([0, 3]), axis=0)
    # Fused loss: K is weight's last size; rows dropped by `where` (padding) are not checked.
    fused = je.checked(je.losses.fused_linear_cross_entropy)
    hidden, weight = jnp.ones((3, 2)), jnp.ones((2, 5))
    keep = jnp.array([True, True, False])
    np.testing.assert_allclose(
        fused(hidden, weight, jnp.array([0, 4, -100]), where=keep), np.log(5)
    )
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        fused(hidden, weight, jnp.array([0, 5, 1]))


def test_logistic_labels_are_checked_against_the_number_of_classes():
    # Issue 11: fit declared y only as "finite", so out-of-range labels went through
    # (a loss of -6.7e18 for labels 0, 1, 2 with two classes; NaN for 5 with three).
    x = jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, -1.0]])
    safe_fit = je.checked(je.logistic.fit)
    cases = [  # (labels, num_classes, error or None); one compilation per dtype and K
        (jnp.array([0, 1, 2, 0]), 2, r"y has labels outside \[0, 1\]"),
        (jnp.array([0, 1, 1, 0]), 2, None),
        (jnp.array([0.0, 1.0, 1.5, 0.0]), 2, r"y has labels outside \[0, 1\]"),
        (jnp.array([0.0, 1.0, jnp.nan, 0.0]), 2, "y contains NaN"),
        (jnp.array([0.0, 0.25, 1.0, 0.5]), 2, None),  # soft labels
        (jnp.array([0, 1, 5, 2]), 3, r"y has class ids outside \[0, 3\)"),
        (jnp.array([0, 2, 1, 2]), 3, None),
    ]
    for y, k, error in cases:
        if error is None:  # valid labels give fit's own result
            got, _ = safe_fit(x, y, num_classes=k, l2=0.1)
            want, _ = je.logistic.fit(x, y, num_classes=k, l2=0.1)
            np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)
        else:
            with pytest.raises(ValueError, match=error):
                safe_fit(x, y, num_classes=k, l2=0.1)
    # loss reads the number of classes from the parameters' shape
    safe_loss = je.checked(je.logistic.loss)
    with pytest.raises(ValueError, match=r"y has class ids outside \[0, 3\)"):
        safe_loss(je.logistic.init(2, 3), x, jnp.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"y has labels outside \[0, 1\]"):
        safe_loss(je.logistic.init(2), x, jnp.array([0, 1, 3, 1]))
    # zero parameters: log 3 per example, rounded to float32 (init's dtype)
    np.testing.assert_allclose(
        safe_loss(je.logistic.init(2, 3), x, jnp.array([0, 1, 2, 2])), np.log(3), rtol=1e-7
    )


def _counting(fn, traces):
    """``fn`` with the same declarations, appending to ``traces`` each time it is traced."""

    def wrapper(*args, **kwargs):
        traces.append(kwargs)
        return fn(*args, **kwargs)

    wrapper.__signature__ = inspect.signature(fn)
    return je.checks.expects(**fn._jaxent_expects)(wrapper)


def test_new_float_options_do_not_retrace():
    # Issue 11: every new Python float was a static argument, a new compilation (2-3 s).
    traces = []
    safe = je.checked(_counting(je.losses.softmax_cross_entropy, traces))
    logits = jnp.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    labels = jnp.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    for smoothing in (0.1, 0.2, 0.35):
        np.testing.assert_allclose(  # the traced value is the one used
            safe(logits, labels, label_smoothing=smoothing),
            je.losses.softmax_cross_entropy(logits, labels, label_smoothing=smoothing),
            rtol=1e-6,
        )
    assert len(traces) == 1
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\]"):
        safe(logits, labels, label_smoothing=1.5)  # still rejected, now traced
    assert len(traces) == 1
    safe(logits, labels)  # the default value stays static: its own program
    assert len(traces) == 2

    traces = []
    safe_loss = je.checked(_counting(je.logistic.loss, traces))
    params = {"w": jnp.array([0.5, -1.0]), "b": jnp.array(0.25)}
    x, y = jnp.array([[1.0, 2.0], [-1.0, 0.5]]), jnp.array([0, 1])
    for l2 in (0.01, 0.5):
        np.testing.assert_allclose(
            safe_loss(params, x, y, l2=l2), je.logistic.loss(params, x, y, l2=l2), rtol=1e-6
        )
    assert len(traces) == 1


def test_float_base_stays_static():
    # base must be concrete (it becomes a constant): a float base is not traced.
    safe = je.checked(je.kl_divergence)
    np.testing.assert_allclose(safe(P, Q, base=2.0), je.kl_divergence(P, Q, base=2.0))
    np.testing.assert_allclose(safe(P, Q, base=10.0), je.kl_divergence(P, Q, base=10.0))


# jit_public: an eager call of a public measure is one compiled program.
def _programs(caplog, calls):
    with caplog.at_level("WARNING"), jax.log_compiles(True):
        for call in calls:
            call()
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling")]


def test_eager_call_compiles_one_program(caplog):
    p = np.full((2, 3, 17), 1 / 17, np.float32)  # shapes no other test uses
    q = np.full((2, 3, 17), 1 / 17, np.float32)
    kl = lambda: je.kl_divergence(p, q, base=2)
    compiled = _programs(caplog, [kl, kl])  # the second call: cached
    assert len(compiled) == 1 and compiled[0].startswith("Compiling jit(kl_divergence)"), compiled
    # A Python alpha is static (the program specializes to it, as the user's own jit
    # would); an array alpha is traced: one program for every value.
    r = np.full((2, 19), 1 / 19, np.float32)
    caplog.clear()
    by_value = [lambda a=a: je.renyi_entropy(r, a) for a in (2.0, 3.0, 2.0)]
    assert len(_programs(caplog, by_value)) == 2
    caplog.clear()
    traced = [
        lambda a=a: je.renyi_entropy(r, np.float32(a) + np.zeros(2, np.float32)) for a in (2, 3)
    ]
    assert len(_programs(caplog, traced)) == 1


def test_eager_calls_equal_compiled_and_traced_calls():
    # The wrapper runs jax.jit(fn) with the options static: the same numbers as the
    # user's own jit; lists are arrays; an option given as an array (which cannot be
    # static) takes fn directly; vmap and grad go through the compiled program.
    eager = je.kl_divergence(P, Q, base=2)
    np.testing.assert_array_equal(
        eager, jax.jit(je.kl_divergence, static_argnames="base")(P, Q, base=2)
    )
    np.testing.assert_array_equal(je.kl_divergence(P.tolist(), Q.tolist(), base=2), eager)
    np.testing.assert_allclose(je.kl_divergence(P, Q, base=jnp.asarray(2.0)), eager, rtol=1e-15)
    np.testing.assert_allclose(jax.vmap(je.kl_divergence)(P, Q), je.kl_divergence(P, Q), rtol=1e-15)
    grad = jax.grad(lambda q: je.kl_divergence(P[0], q))(Q[0])
    np.testing.assert_allclose(grad, -P[0] / Q[0], rtol=1e-14)
    assert inspect.signature(je.kl_divergence) == inspect.signature(je.kl_divergence.__wrapped__)
    with pytest.raises(ValueError, match="axis"):  # trace-time errors raise as before
        je.kl_divergence(P, Q, axis=2)
