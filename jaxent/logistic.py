"""Logistic regression (binary and multinomial), pure and vmappable, trained with optax.

Parameters are a dict: ``{"w": [d], "b": []}`` for two classes (the logit of class
1 is ``x @ w + b``) and ``{"w": [d, K], "b": [K]}`` for ``K > 2`` classes (softmax
over ``x @ w + b``). Everything here is a pure function with a fixed amount of work,
so ``jax.vmap(fit)`` trains thousands of models in one call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike, DTypeLike

from jaxent import _numerics
from jaxent.checks import expects
from jaxent.losses import sigmoid_binary_cross_entropy, softmax_cross_entropy_with_integer_labels

Params = dict[str, jax.Array]

# The most Newton steps; the solver stops as soon as it has converged (typically
# after 5-10 steps from the zero start), so the cap only matters for hard problems.
_NEWTON_STEPS = 50
# The Newton system has (d + 1) * K unknowns (K = 1 for binary); above this size the
# default solver is optax's L-BFGS instead.
_NEWTON_MAX_UNKNOWNS = 1024
_LBFGS_STEPS = 200
_OPTAX_STEPS = 500
_MAX_HALVINGS = 30
_ARMIJO = 1e-4


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")


def init(num_features: int, num_classes: int = 2, *, dtype: DTypeLike = jnp.float32) -> Params:
    """Zero parameters for ``num_features`` inputs and ``num_classes`` classes.

    Args:
      num_features: ``d``, the number of input features.
      num_classes: 2 for binary (one logit per example), ``K > 2`` for multinomial.
      dtype: floating dtype of the parameters.

    Returns:
      ``{"w": zeros([d]), "b": zeros([])}`` for binary,
      ``{"w": zeros([d, K]), "b": zeros([K])}`` otherwise.

    Raises:
      ValueError: for a ``num_classes`` that is not an integer >= 2, or a
        ``num_features`` that is not a positive integer.

    Examples:
      >>> from jaxent import logistic
      >>> {k: v.shape for k, v in logistic.init(3).items()}
      {'w': (3,), 'b': ()}
      >>> {k: v.shape for k, v in logistic.init(3, 4).items()}
      {'w': (3, 4), 'b': (4,)}
    """
    _check_num_classes(num_classes)
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
    if num_classes == 2:
        return {"w": jnp.zeros((num_features,), dtype), "b": jnp.zeros((), dtype)}
    return {
        "w": jnp.zeros((num_features, num_classes), dtype),
        "b": jnp.zeros((num_classes,), dtype),
    }


def _logits(params: Params, x: ArrayLike) -> jax.Array:
    w = jnp.asarray(params["w"])
    x = jnp.asarray(x, w.dtype)
    if w.ndim not in (1, 2) or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"x must be [..., d] with d = the first size of params['w']; got x of shape "
            f"{x.shape} and w of shape {w.shape}"
        )
    z = x @ w
    return z + jnp.broadcast_to(params["b"], z.shape)


@expects(x="finite")
def predict_proba(params: Params, x: ArrayLike) -> jax.Array:
    r"""Predicted probabilities.

    .. math::
        P(y = 1 \mid x) = \sigma(x^\top w + b) \quad\text{or}\quad
        P(y = k \mid x) = \operatorname{softmax}(x^\top W + b)_k .

    Args:
      params: as from :func:`init` or :func:`fit`.
      x: features ``[n, d]``.

    Returns:
      ``[n]`` probabilities of class 1 for binary parameters, ``[n, K]`` class
      probabilities otherwise.

    Raises:
      ValueError: at trace time, for ``x`` that is not ``[..., d]`` with ``d`` the
        first size of ``params["w"]`` (or a ``w`` that is not 1-D or 2-D).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import logistic
      >>> params = {"w": jnp.array([1.0, -1.0]), "b": jnp.array(0.5)}
      >>> print(logistic.predict_proba(params, jnp.array([[1.0, 0.0], [0.0, 3.0]])).round(4))
      [0.8176 0.0759]

    References:
      D. R. Cox, "The regression analysis of binary sequences", Journal of the
      Royal Statistical Society B 20, 1958.

      T. Hastie, R. Tibshirani and J. Friedman, *The Elements of Statistical
      Learning*, 2nd ed., Springer, 2009, section 4.4.
    """
    z = _logits(params, x)
    if jnp.ndim(params["w"]) == 1:
        return jax.nn.sigmoid(z)
    return jax.nn.softmax(z, axis=-1)


def _objective(z: jax.Array, w: jax.Array, y: jax.Array, l2: jax.Array) -> jax.Array:
    """Mean cross-entropy of logits ``z`` plus ``l2/2 ||w||^2``."""
    if z.ndim == y.ndim:
        data = sigmoid_binary_cross_entropy(z, y)
    else:
        data = softmax_cross_entropy_with_integer_labels(z, y)
    return jnp.mean(data) + l2 / 2 * jnp.sum(w * w)


def _check_labels(batch_shape: tuple[int, ...], y: jax.Array, binary: bool) -> jax.Array:
    if y.shape != batch_shape:
        raise ValueError(f"y must have shape {batch_shape} (one label per row of x); got {y.shape}")
    return y if binary else _numerics.class_ids("multinomial labels", y)


def _check_label_values(y: jax.Array, num_classes: int) -> None:
    """Raises on labels out of range when their values are known (outside jit and vmap).

    Traced labels are not seen here; ``je.checked`` checks them (``expects`` below).
    """
    if isinstance(y, jax.core.Tracer):
        return
    values = np.asarray(y)
    if num_classes == 2:
        bad = ~((values >= 0) & (values <= 1))  # NaN too
        want = "0/1 (or soft labels in [0, 1])"
    else:
        bad = (values < 0) | (values >= num_classes)
        want = f"class ids in [0, {num_classes})"
    if not np.any(bad):
        return
    found = f"{values[bad].flat[0].item():.7g}"
    hint = ""
    if np.all(values >= 0) and np.all(values == np.floor(values)):
        top = int(values.max())
        hint = f"; for {top + 1} classes (labels 0 to {top}) pass num_classes={top + 1}"
    raise ValueError(
        f"y must hold {want} for num_classes={num_classes}; found the label {found}{hint}"
    )


@expects(x="finite", y="labels")
def loss(params: Params, x: ArrayLike, y: ArrayLike, *, l2: ArrayLike = 0.0) -> jax.Array:
    r"""The penalized training objective, in nats.

    .. math::
        L(w, b) = \frac{1}{n} \sum_{i=1}^{n} \ell(x_i^\top w + b, y_i)
        + \frac{\lambda}{2} \lVert w \rVert^2

    with :math:`\ell` the sigmoid (binary) or softmax cross-entropy and
    :math:`\lambda` = ``l2``; the bias is not penalized. ``l2 = 1/(C n)`` gives
    scikit-learn's ``LogisticRegression(C=C)`` objective divided by ``C n``.

    Args:
      params: as from :func:`init`.
      x: features ``[n, d]``.
      y: labels ``[n]``: in ``[0, 1]`` for binary parameters (soft labels allowed),
        integer class indices in ``[0, K)`` otherwise. Labels out of range raise a
        ``ValueError`` when their values are known (outside ``jit`` and ``vmap``);
        traced labels are checked by ``je.checked(loss)``.
      l2: the ridge penalty :math:`\lambda \ge 0`.

    Returns:
      A scalar in the parameters' dtype.

    Raises:
      ValueError: for ``x`` that does not match ``params["w"]``, ``y`` not shaped
        ``[n]``, or (outside ``jit`` and ``vmap``) labels out of range.
      TypeError: for multinomial labels of a non-integer dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import logistic
      >>> x = jnp.array([[0.0, 1.0], [1.0, 0.0]])
      >>> print(f"{logistic.loss(logistic.init(2), x, jnp.array([0, 1])):.4f}")
      0.6931

    References:
      D. R. Cox, "The regression analysis of binary sequences", Journal of the
      Royal Statistical Society B 20, 1958.

      T. Hastie, R. Tibshirani and J. Friedman, *The Elements of Statistical
      Learning*, 2nd ed., Springer, 2009, section 4.4.
    """
    z = _logits(params, x)
    binary = jnp.ndim(params["w"]) == 1
    y = _check_labels(z.shape if binary else z.shape[:-1], jnp.asarray(y), binary)
    _check_label_values(y, 2 if binary else z.shape[-1])
    return _objective(z, jnp.asarray(params["w"]), y, jnp.asarray(l2, z.dtype))


@expects(x="finite", y="labels")
def fit(
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_classes: int = 2,
    l2: ArrayLike = 0.0,
    optimizer: optax.GradientTransformation | None = None,
    steps: int | None = None,
) -> tuple[Params, jax.Array]:
    r"""Fits logistic regression by minimizing :func:`loss` from zero parameters.

    The default solver (``optimizer=None``) is a damped Newton method, chosen for
    speed and reliability on problems with up to about a thousand unknowns: each step
    solves :math:`(H + \mu I)\,\Delta = -g` with the exact Hessian :math:`H` of the
    objective (weights and bias together, :math:`(d+1)K` unknowns, :math:`K = 1` for
    binary) by a Cholesky factorization, :math:`\mu = \sqrt{\epsilon}\,
    \operatorname{tr}(H)/\dim H` (:math:`\epsilon` the dtype's machine epsilon), then
    backtracks (halving) until the Armijo condition holds up to rounding, so the
    objective never increases — also with ``l2 = 0`` on separable data, where the
    weights grow without bound and no optimum exists. Newton converges quadratically:
    from the zero start, well-posed problems need 5-10 steps. ``steps`` (default 50)
    is the most it takes; it stops once a full step was taken from a squared Newton
    decrement below :math:`4\epsilon\,(1 + |L|)`, after which further steps change
    nothing above rounding, and the remaining ``losses`` repeat the last value.
    Under ``vmap`` the batch stops when its last member has converged; with the
    batch axis sharded over devices only that flag crosses devices (see the
    "Scaling out" page). When
    :math:`(d+1)K > 1024` the default is ``optax.lbfgs()`` for 200 steps instead.

    Any ``optax.GradientTransformation`` may be passed instead (``steps`` then
    defaults to 500); transformations that take extra arguments (such as
    ``optax.lbfgs``) receive ``value``, ``grad`` and ``value_fn``.

    Shapes never depend on the data (a ``jax.lax.scan`` of ``steps`` optax steps;
    a ``jax.lax.while_loop`` of at most ``steps`` Newton steps), so ``fit`` is
    jit-able and vmap-able over datasets and over ``l2``: ``jax.vmap(fit)(xs, ys)``.
    ``num_classes``, ``optimizer`` and ``steps`` are static. With the default solver
    ``fit`` is not reverse-differentiable (``while_loop``).

    Args:
      x: features ``[n, d]``; their floating dtype is the parameters' dtype (half
        precision is fitted in float32, integers in the default float dtype).
      y: labels ``[n]``: 0/1 (or in ``[0, 1]``) for ``num_classes=2``, integer class
        indices in ``[0, num_classes)`` otherwise. Labels out of range raise a
        ``ValueError`` when their values are known (outside ``jit`` and ``vmap``);
        traced labels are checked by ``je.checked(fit)``.
      num_classes: 2 for binary, ``K > 2`` for multinomial.
      l2: the ridge penalty; ``1/(C n)`` matches scikit-learn's ``C``.
      optimizer: an optax transformation, or None for the default solver.
      steps: number of steps; None for the solver's default.

    Returns:
      ``(params, losses)``: the fitted parameters and ``[steps]`` objective values,
      ``losses[i]`` after step ``i``.

    Raises:
      ValueError: for a ``num_classes`` that is not an integer >= 2, a ``steps``
        that is not a positive integer or None, ``x`` that is not ``[n, d]``, ``y``
        not shaped ``[n]``, or (outside ``jit`` and ``vmap``) labels out of range.
      TypeError: for multinomial labels of a non-integer dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxent import logistic
      >>> x = jnp.array([[-2.0], [-1.0], [1.0], [2.0], [0.5], [-0.5]])
      >>> y = jnp.array([0, 0, 1, 1, 0, 1])
      >>> params, losses = logistic.fit(x, y, l2=0.1)
      >>> print(f"{losses[-1]:.4f}", params["w"].round(3))
      0.5196 [0.898]

    References:
      D. R. Cox, "The regression analysis of binary sequences", Journal of the
      Royal Statistical Society B 20, 1958.

      T. Hastie, R. Tibshirani and J. Friedman, *The Elements of Statistical
      Learning*, 2nd ed., Springer, 2009, section 4.4.

      J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer,
      2006 (Newton's method, backtracking line search, the Armijo condition).
    """
    _check_num_classes(num_classes)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
    (x,), out_dtype = _numerics.promote(x)  # half precision is fitted in float32
    if x.ndim != 2:
        raise ValueError(f"x must be [n, d] (vmap over more datasets); got shape {x.shape}")
    binary = num_classes == 2
    y = _check_labels(x.shape[:1], jnp.asarray(y), binary)
    _check_label_values(y, num_classes)
    l2 = jnp.asarray(l2, x.dtype)
    num_unknowns = (x.shape[1] + 1) * (1 if binary else num_classes)
    if optimizer is None and num_unknowns <= _NEWTON_MAX_UNKNOWNS:
        result = _fit_newton(x, y, l2, num_classes, steps or _NEWTON_STEPS)
    else:
        if optimizer is None:
            optimizer, steps = optax.lbfgs(), steps or _LBFGS_STEPS
        if binary:
            y = y.astype(x.dtype)
        result = _fit_optax(
            lambda p: loss(p, x, y, l2=l2),
            init(x.shape[1], num_classes, dtype=x.dtype),
            optimizer,
            steps or _OPTAX_STEPS,
            (x, y, l2),
        )
    return jax.tree.map(lambda a: a.astype(out_dtype), result)


def _fit_optax(
    objective, params: Params, optimizer, steps: int, data: tuple[jax.Array, ...]
) -> tuple[Params, jax.Array]:
    # Under shard_map the carry varies over the devices, as the data do.
    params, state = _numerics.varying_like((params, optimizer.init(params)), *data)
    # L-BFGS (and other line-search methods) keep the value and gradient at the new
    # iterate in their state; reuse them instead of evaluating twice.
    if optax.tree.get(state, "value") is not None:
        value_and_grad = optax.value_and_grad_from_state(objective)
    else:

        def value_and_grad(params, state):
            del state
            return jax.value_and_grad(objective)(params)

    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)

    def step(carry, _):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        extra = {"value": value, "grad": grad, "value_fn": objective} if extra_args else {}
        updates, state = optimizer.update(grad, state, params, **extra)
        return (optax.apply_updates(params, updates), state), value

    (params, _), values = jax.lax.scan(step, (params, state), length=steps)
    # values[i] is the objective before step i; shift to "after step i".
    return params, jnp.concatenate([values[1:], objective(params)[None]])


def _gram(x: jax.Array, s: jax.Array) -> jax.Array:
    """``X~^T diag(s) X~`` for ``X~ = [x, 1]``, without forming ``X~``."""
    # A broadcast product summed over examples: XLA fuses it into one pass over x,
    # about 3x faster on CPU than its small batched matmul under vmap.
    xs = jnp.sum((s[:, None] * x)[:, :, None] * x[:, None, :], axis=0)
    xs1 = x.T @ s
    top = jnp.concatenate([xs, xs1[:, None]], axis=1)
    bottom = jnp.concatenate([xs1, jnp.sum(s, keepdims=True)])[None]
    return jnp.concatenate([top, bottom], axis=0)


def _grad_hessian(x: jax.Array, z: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Gradient ``[(d+1) K]`` and Hessian of the mean cross-entropy in ``theta``."""
    n, d = x.shape
    k = z.shape[1]
    if k == 1:
        prob = jax.nn.sigmoid(z)
        resid = prob - targets
        grad = jnp.concatenate([x.T @ resid, jnp.sum(resid, axis=0, keepdims=True)]) / n
        return grad.ravel(), _gram(x, prob[:, 0] * (1 - prob[:, 0])) / n
    prob = jax.nn.softmax(z, axis=-1)
    resid = prob - targets
    grad = jnp.concatenate([x.T @ resid, jnp.sum(resid, axis=0, keepdims=True)]) / n
    # H[(a,k),(b,l)] = mean_i x_ia x_ib (P_ik [k = l] - P_ik P_il), x_i with a 1 appended
    diag = jax.vmap(_gram, in_axes=(None, 1), out_axes=1)(x, prob)
    eye = jnp.eye(k, dtype=z.dtype)
    hess = (diag[:, :, :, None] * eye[None, :, None, :]).reshape((d + 1) * k, (d + 1) * k)
    xa = jnp.concatenate([x, jnp.ones((n, 1), x.dtype)], axis=1)
    outer = (xa[:, :, None] * prob[:, None, :]).reshape(n, (d + 1) * k)
    return grad.ravel(), (hess - outer.T @ outer) / n


def _cholesky_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a^{-1} b`` for symmetric positive definite ``a`` ``[p, p]``, by Cholesky, in XLA ops.

    NaN where the factorization fails. Written out instead of calling LAPACK: under
    ``vmap`` LAPACK factors the batch in parallel tasks on the threads that also run
    each device's program, and with the batch sharded over as many host devices as
    there are threads every thread waits for tasks that no free thread can run (a
    deadlock in jaxlib's CPU runtime). These loops are plain vectorized operations,
    partitioned like the rest of the step.
    """
    p = a.shape[0]
    rows = jnp.arange(p)

    def column(j, chol):  # left-looking: column j from the columns before it
        c = a[:, j] - chol @ chol[j]
        c = jnp.where(rows >= j, c / jnp.sqrt(c[j]), 0)
        return chol.at[:, j].set(c)

    def forward(j, u):  # chol u = b
        return u.at[j].set((b[j] - chol[j] @ u) / chol[j, j])

    def backward(i, v):  # chol^T v = u
        j = p - 1 - i
        return v.at[j].set((u[j] - chol[:, j] @ v) / chol[j, j])

    zeros_a, zeros_b = _numerics.varying_like((jnp.zeros_like(a), jnp.zeros_like(b)), a, b)
    chol = jax.lax.fori_loop(0, p, column, zeros_a)
    u = jax.lax.fori_loop(0, p, forward, zeros_b)
    return jax.lax.fori_loop(0, p, backward, zeros_b)


def _fit_newton(
    x: jax.Array, y: jax.Array, l2: jax.Array, num_classes: int, steps: int
) -> tuple[Params, jax.Array]:
    n, d = x.shape
    dtype = x.dtype
    binary = num_classes == 2
    k = 1 if binary else num_classes
    if binary:
        labels = y.astype(dtype)
        targets = labels[:, None]
    else:
        labels = y
        targets = jax.nn.one_hot(y, k, dtype=dtype)
    penalty = jnp.repeat(jnp.concatenate([jnp.full((d,), l2), jnp.zeros((1,), dtype)]), k)
    eps = jnp.finfo(dtype).eps

    def objective(theta: jax.Array, z: jax.Array) -> jax.Array:
        return _objective(z[:, 0] if binary else z, theta[:d], labels, l2)

    def step(theta, z, f):
        grad, hess = _grad_hessian(x, z, targets)
        grad = grad + penalty * theta.ravel()
        hess = hess + jnp.diag(penalty)
        damping = jnp.sqrt(eps) * jnp.trace(hess) / hess.shape[0] + jnp.finfo(dtype).tiny
        hess = hess + damping * jnp.eye(hess.shape[0], dtype=dtype)
        delta = -_cholesky_solve(hess, grad)
        # A failed factorization (NaN) falls back to steepest descent.
        delta = jnp.where(jnp.all(jnp.isfinite(delta)), delta, -grad).reshape(d + 1, k)
        u = x @ delta[:d] + delta[d:]
        # Armijo's condition, loosened by the rounding error of f; a step whose
        # predicted decrease (the squared Newton decrement) is below that error is
        # taken in full.
        decrease = -jnp.vdot(grad, delta.ravel())
        slack = 32 * eps * (jnp.abs(f) + 1)

        def good(t, f_t):
            return (f_t <= f - _ARMIJO * t * decrease + slack) | (decrease <= slack)

        def rejected(state):
            t, f_t, i = state
            return ~good(t, f_t) & (i < _MAX_HALVINGS)

        def halve(state):
            t, _, i = state
            return t / 2, objective(theta + t / 2 * delta, z + t / 2 * u), i + 1

        one = jnp.ones((), dtype)
        start = _numerics.varying_like((one, objective(theta + delta, z + u), 0), x, y, l2, theta)
        t, f_t, _ = jax.lax.while_loop(rejected, halve, start)
        t = jnp.where(good(t, f_t), t, 0)
        # Converged once a full step is taken from a squared decrement at rounding
        # level: with quadratic convergence the weights are then accurate to about
        # that level too (an objective-level test, sqrt(eps), would leave them at
        # eps^(1/2) only).
        converged = (t == 1) & (decrease <= slack / 8)
        return theta + t * delta, z + t * u, jnp.where(t > 0, f_t, f), converged

    def running(state):
        i, _, _, _, done, _ = state
        return (i < steps) & ~done

    def advance(state):
        i, theta, z, f, _, losses = state
        theta, z, f, done = step(theta, z, f)
        return i + 1, theta, z, f, done, losses.at[i].set(f)

    theta = jnp.zeros((d + 1, k), dtype)
    z = jnp.zeros((n, k), dtype)
    start = (0, theta, z, objective(theta, z), False, jnp.zeros((steps,), dtype))
    # Under shard_map the carry varies over the devices from the first step on.
    start = _numerics.varying_like(start, x, y, l2)
    i, theta, _, f, _, losses = jax.lax.while_loop(running, advance, start)
    # After convergence a step changes nothing: the remaining entries repeat f.
    losses = jnp.where(jnp.arange(steps) < i, losses, f)
    if binary:
        return {"w": theta[:d, 0], "b": theta[d, 0]}, losses
    return {"w": theta[:d], "b": theta[d]}, losses
