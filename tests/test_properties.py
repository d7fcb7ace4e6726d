"""Property-based tests: identities that hold for any pytree, shape, dtype and hyperparameters.

Every comparison is against an independent reference (optax's own optimizers, `jax.grad` of
the penalty, float64 arithmetic), never against the package re-derived.
"""

import contextlib

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_decay

SETTINGS = hypothesis.settings(
  max_examples=25,
  deadline=None,
  derandomize=True,
  database=None,
  suppress_health_check=[hypothesis.HealthCheck.too_slow],
)

DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64)
# A fixed pool of shapes (scalars to 3-d) rather than arbitrary ones: eager JAX compiles every
# operation once per shape and dtype, and a pool keeps that cost bounded.
SHAPES = ((), (1,), (3,), (2, 3), (4, 1), (2, 1, 3))
RESOLUTION = "half the spacing"  # the package's warning about a decay that rounds away


def _leaf_values(rng, shape, dtype):
  """Magnitudes in [2^-4, 4], random signs, a few exact zeros; complex in both parts."""

  def part():
    magnitude = 2.0 ** rng.uniform(-4, 2, size=shape)
    values = magnitude * rng.choice([-1.0, 1.0], size=shape)
    return np.where(rng.uniform(size=shape) < 0.1, 0.0, values)

  values = part() + 1j * part() if dtype == jnp.complex64 else part()
  return jnp.asarray(values, dtype)


@st.composite
def pytrees(draw, min_leaves=1, mixed_dtypes=False):
  """(params, grads): nested dicts of 1–4 arrays of 0–3 dimensions, one dtype or several."""
  n = draw(st.integers(min_leaves, 4))
  dtype = draw(st.sampled_from(DTYPES))
  shapes = [draw(st.sampled_from(SHAPES)) for _ in range(n)]
  dtypes = [draw(st.sampled_from(DTYPES)) if mixed_dtypes else dtype for _ in range(n)]
  nest = draw(st.integers(0, n))  # how many leaves go into a sub-dict
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

  def tree():
    leaves = [_leaf_values(rng, s, d) for s, d in zip(shapes, dtypes, strict=True)]
    out = {f"p{i}": leaf for i, leaf in enumerate(leaves[nest:])}
    if nest:
      out["block"] = {f"q{i}": leaf for i, leaf in enumerate(leaves[:nest])}
    return out

  return tree(), tree()


def _eps(tree):
  return [float(jnp.finfo(x.dtype).eps) for x in jax.tree.leaves(tree)]


def _init(tx, params, fraction):
  """`tx.init(params)`, expecting the resolution warning exactly when the package should give it.

  `fraction` is the constant share of each weight a decoupled decay removes per step.
  """
  warns = any(0 < fraction < eps / 2 for eps in _eps(params))
  context = pytest.warns(UserWarning, match=RESOLUTION) if warns else contextlib.nullcontext()
  with context:
    return tx.init(params)


def _steps(tx, state, params, grads, n=3):
  """The updates of `n` steps from `params`, with the gradients scaled by the step number."""
  out = []
  for k in range(n):
    g = jax.tree.map(lambda x, k=k: x * (k + 1) / 2, grads)
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    out.append(updates)
  return out, params


def _assert_equal(a, b):
  """Bitwise equality of two pytrees (same structure and dtypes; -0.0 equals 0.0)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _wide(x):
  """`x` in float32 (complex64 for complex leaves): wide enough to hold any leaf exactly."""
  return x.astype(jnp.complex64 if jnp.iscomplexobj(x) else jnp.float32)


def _assert_matches_wide_reference(got, grads, wide_penalty_grad):
  """32-bit leaves bit for bit; 16-bit leaves within their own rounding of the reference.

  In float16 and bfloat16 the rate l2 is itself rounded before it multiplies w (and jax.grad's
  l2/2 may even fall below the smallest normal number), so neither side is exact there: the
  bound allows the three roundings (rate, product, sum) relative to |g| + |l2·w|.
  """
  for u, g, pg in zip(
    jax.tree.leaves(got), jax.tree.leaves(grads), jax.tree.leaves(wide_penalty_grad), strict=True
  ):
    assert u.dtype == g.dtype and u.shape == g.shape
    want = _wide(g) + pg
    if jnp.finfo(u.dtype).bits >= 32:
      np.testing.assert_array_equal(np.asarray(u), np.asarray(want.astype(u.dtype)))
    else:
      eps = float(jnp.finfo(u.dtype).eps)
      scale = np.abs(np.asarray(_wide(g))) + np.abs(np.asarray(pg))
      error = np.abs(np.asarray(_wide(u)) - np.asarray(want))
      assert np.all(error <= 2 * eps * scale + float(jnp.finfo(u.dtype).smallest_subnormal)), (
        u.dtype,
        error.max(),
      )


learning_rates = st.floats(1e-3, 1.0)


# --- Loshchilov & Hutter, Prop. 1: for plain SGD, L2 is decoupled decay ----------------------


@SETTINGS
@hypothesis.given(
  trees=pytrees(), lr=learning_rates, fraction=st.floats(0.0, 0.9), scheduled=st.booleans()
)
def test_plain_sgd_l2_equals_decoupled_decay(trees, lr, fraction, scheduled):
  params, grads = trees
  l2 = fraction / lr  # lr·λ < 1, so the decoupled transform accepts it
  rate = optax.linear_schedule(lr, lr / 4, transition_steps=2) if scheduled else lr
  l2_tx = optax_decay.sgd_l2(rate, momentum=0.0, l2=l2)
  decoupled = optax_decay.sgdw(rate, momentum=0.0, weight_decay=l2, coupling="lr")
  got, got_params = _steps(l2_tx, l2_tx.init(params), params, grads)
  # The warning needs a constant per-step fraction; a schedule has none.
  want, want_params = _steps(
    decoupled, _init(decoupled, params, 0.0 if scheduled else lr * l2), params, grads
  )
  _assert_equal(got, want)
  _assert_equal(got_params, want_params)


# --- zero decay is the bare optimizer ---------------------------------------------------------

zeros = st.sampled_from([0.0, 0, "array"])


def _zero(kind):
  return jnp.zeros([], jnp.float32) if kind == "array" else kind


@SETTINGS
@hypothesis.given(
  trees=pytrees(),
  lr=learning_rates,
  b1=st.floats(0.0, 0.99),
  b2=st.floats(0.9, 0.9999),
  eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
  zero=zeros,
  coupling=st.sampled_from(optax_decay.COUPLINGS),
)
def test_zero_decay_adam_is_optax_adam(trees, lr, b1, b2, eps, zero, coupling):
  params, grads = trees
  bare = optax.adam(lr, b1=b1, b2=b2, eps=eps)
  want, _ = _steps(bare, bare.init(params), params, grads)
  for tx in (
    optax_decay.adamw(lr, b1, b2, eps, weight_decay=_zero(zero), coupling=coupling),
    optax_decay.adam_l2(lr, b1, b2, eps, l2=_zero(zero)),
  ):
    got, _ = _steps(tx, tx.init(params), params, grads)
    _assert_equal(got, want)


@SETTINGS
@hypothesis.given(
  trees=pytrees(),
  lr=learning_rates,
  momentum=st.sampled_from([0.0, 0.5, 0.9]),
  nesterov=st.booleans(),
  zero=zeros,
  coupling=st.sampled_from(optax_decay.COUPLINGS),
)
def test_zero_decay_sgd_is_optax_sgd(trees, lr, momentum, nesterov, zero, coupling):
  params, grads = trees
  bare = optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)
  want, _ = _steps(bare, bare.init(params), params, grads)
  for tx in (
    optax_decay.sgdw(lr, momentum, weight_decay=_zero(zero), coupling=coupling, nesterov=nesterov),
    optax_decay.sgd_l2(lr, momentum, l2=_zero(zero), nesterov=nesterov),
  ):
    got, _ = _steps(tx, tx.init(params), params, grads)
    _assert_equal(got, want)


# --- masks --------------------------------------------------------------------------------


@st.composite
def masked_trees(draw):
  """(params, grads, mask) with mixed dtypes and a mask that keeps some leaves and drops some."""
  params, grads = draw(pytrees(min_leaves=2, mixed_dtypes=True))
  n = len(jax.tree.leaves(params))
  flags = draw(
    st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda f: any(f) and not all(f))
  )
  mask = jax.tree.unflatten(jax.tree.structure(params), flags)
  return params, grads, mask


def _masked_cases(lr, decay, mask):
  """name -> (transform with `mask`, the name of the same transform with no regularizer)."""
  return {
    "adamw": (optax_decay.adamw(lr, weight_decay=decay, mask=mask), "adam"),
    "adam_l2": (optax_decay.adam_l2(lr, l2=decay, mask=mask), "adam"),
    "sgdw": (optax_decay.sgdw(lr, 0.9, decay, mask), "sgd"),
    "sgdw-none": (optax_decay.sgdw(lr, 0.9, min(decay, 0.9), mask, coupling="none"), "sgd"),
    "sgd_l2": (optax_decay.sgd_l2(lr, 0.9, decay, mask), "sgd"),
    "add_l2_to_grads": (optax_decay.add_l2_to_grads(decay, mask), "identity"),
    "add_l1_to_grads": (optax_decay.add_l1_to_grads(decay, mask), "identity"),
    "decoupled_decay": (optax_decay.decoupled_decay(decay, mask), "identity"),
    "decay_to_anchor": (optax_decay.decay_to_anchor(decay, mask=mask), "identity"),
    "proximal_l1": (optax_decay.proximal_l1(decay, mask, learning_rate=lr), "identity"),
  }


@SETTINGS
@hypothesis.given(
  trees=masked_trees(),
  decay=st.floats(0.05, 5.0),
  callable_mask=st.booleans(),
)
def test_masked_out_leaves_are_untouched(trees, decay, callable_mask):
  params, grads, mask = trees
  lr = 0.1  # lr·λ ≥ 0.005: above every dtype's resolution, below 1
  given = (lambda p: mask) if callable_mask else mask
  flags = jax.tree.leaves(mask)
  bare = {"adam": optax.adam(lr), "sgd": optax.sgd(lr, 0.9), "identity": optax.identity()}
  want = {k: _steps(tx, tx.init(params), params, grads, n=2)[0] for k, tx in bare.items()}
  for name, (tx, reference) in _masked_cases(lr, decay, given).items():
    got, _ = _steps(tx, tx.init(params), params, grads, n=2)
    for step_got, step_want in zip(got, want[reference], strict=True):
      leaves = zip(flags, jax.tree.leaves(step_got), jax.tree.leaves(step_want), strict=True)
      for keep, u, v in leaves:
        assert u.dtype == v.dtype, name
        if not keep:
          np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=name)


# --- a decay-only step multiplies by (1 − lr·λ), up to one rounding ------------------------


def _components(x):
  """The real components of `x` in float64: (x,) or (Re x, Im x)."""
  if jnp.iscomplexobj(x):
    x = np.asarray(x, np.complex128)
    return x.real, x.imag
  return (np.asarray(x.astype(jnp.float32), np.float64),)


@SETTINGS
@hypothesis.given(
  trees=pytrees(), lr=learning_rates, fraction=st.floats(2**-7, 0.5), steps=st.integers(1, 3)
)
def test_decay_only_step_multiplies_by_one_minus_lr_decay(trees, lr, fraction, steps):
  r"""With zero gradients, sgdw(momentum=0) maps w to w·(1 − lr·λ), each step.

  Exact tolerance, per real component, with u the unit roundoff (eps/2) of the dtype,
  e = w·(1 − lr·λ) exact, and d = lr·λ·|w|:

      |w_new − e| ≤ u·|e| + (1 + u)·((1 + u)⁴ − 1)·d + 4·s

  The first term is the one rounding of the result w − d̃. The second bounds the error of the
  decay term d̃, which takes four roundings (λ and lr cast to the dtype, λ·w, then lr·(λ·w));
  since d ≤ |w|/2 it is below 2u·|w|. s, the smallest subnormal, covers products that
  underflow in float16. The reference is computed in float64.
  """
  params, _ = trees
  decay = fraction / lr  # fraction ≥ 2^-7 is above every dtype's resolution, so no warning
  tx = optax_decay.sgdw(lr, momentum=0.0, weight_decay=decay)
  state = tx.init(params)
  for _ in range(steps):
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, state = tx.update(zeros, state, params)
    new = optax.apply_updates(params, updates)
    for w, w_new in zip(jax.tree.leaves(params), jax.tree.leaves(new), strict=True):
      assert w_new.dtype == w.dtype
      info = jnp.finfo(w.dtype)
      u, tiny = float(info.eps) / 2, float(info.smallest_subnormal)
      for part, part_new in zip(_components(w), _components(w_new), strict=True):
        exact = part - (lr * decay) * part
        bound = (
          u * np.abs(exact)
          + (1 + u) * ((1 + u) ** 4 - 1) * (lr * decay) * np.abs(part)
          + 4 * tiny
          + 2**-50 * np.abs(part)  # the float64 reference's own rounding
        )
        assert np.all(np.abs(part_new - exact) <= bound), (w.dtype, part, part_new, exact)
    params = new


# --- L2 is the gradient of the penalty --------------------------------------------------------


@SETTINGS
@hypothesis.given(
  trees=masked_trees(), l2=st.floats(1e-4, 10.0), use_mask=st.booleans(), steps=st.integers(1, 2)
)
def test_l2_adds_the_gradient_of_the_penalty(trees, l2, use_mask, steps):
  params, grads, mask = trees
  mask = mask if use_mask else jax.tree.map(lambda _: True, params)

  def penalty(w):
    # l2/2 · ||w||² over the penalized leaves; |w|² = Re(w·conj(w)) for complex leaves.
    terms = [
      jnp.sum(jnp.real(x * jnp.conj(x)))
      for x, keep in zip(jax.tree.leaves(w), jax.tree.leaves(mask), strict=True)
      if keep
    ]
    return sum(0.5 * l2 * t for t in terms)

  tx = optax_decay.add_l2_to_grads(l2, mask if use_mask else None)
  state = tx.init(params)
  for _ in range(steps):
    got, state = tx.update(grads, state, params)
    # jax.grad returns the conjugate of the steepest-ascent direction for complex inputs; it
    # is taken on 32-bit copies of the parameters, where l2/2 cannot underflow.
    penalty_grad = jax.tree.map(jnp.conj, jax.grad(penalty)(jax.tree.map(_wide, params)))
    _assert_matches_wide_reference(got, grads, penalty_grad)
    params = optax.apply_updates(params, jax.tree.map(lambda g: -0.1 * g, got))
