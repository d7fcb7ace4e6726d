"""Conformance: every public transform and alias works with jit, optax's wrappers and dtypes.

The registry below lists a typical instance of each public transform. A public callable that
is neither in it nor a known helper makes `test_registry_covers_every_public_transform` fail,
so a new transform cannot ship without going through these checks.
"""

import functools
import inspect

import chex
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from helpers import assert_trees_equal, skip_before

import optax_decay

LR = 0.1
DECAY = 0.1  # lr·λ = 0.01 is above half the bfloat16 eps (2^-8), so no resolution warning
MASK_TREE = {"w": True, "b": False, "block": {"scale": False}}
LABELS = {"w": "decay", "b": "none", "block": "none"}  # the groups that MASK_TREE describes


def _typical(fn, **kwargs):
  return functools.partial(fn, **kwargs)


# name -> factory of a typical instance: `REGISTRY[name]()` builds it, and `.func` / `.keywords`
# give `inject_hyperparams` the same arguments. Masks are added by the tests that need them.
REGISTRY = {
  "adamw": _typical(optax_decay.adamw, learning_rate=LR, weight_decay=DECAY),
  "adam_l2": _typical(optax_decay.adam_l2, learning_rate=LR, l2=DECAY),
  "sgdw": _typical(optax_decay.sgdw, learning_rate=LR, momentum=0.9, weight_decay=DECAY),
  "sgd_l2": _typical(optax_decay.sgd_l2, learning_rate=LR, momentum=0.9, l2=DECAY),
  "adamwr": _typical(
    optax_decay.adamwr, learning_rate=LR, first_period_steps=3, weight_decay_norm=DECAY
  ),
  "sgdwr": _typical(
    optax_decay.sgdwr, learning_rate=LR, first_period_steps=3, weight_decay_norm=DECAY
  ),
  "add_l2_to_grads": _typical(optax_decay.add_l2_to_grads, l2=DECAY),
  "add_l1_to_grads": _typical(optax_decay.add_l1_to_grads, l1=DECAY),
  "decoupled_decay": _typical(optax_decay.decoupled_decay, weight_decay=DECAY),
  "decoupled_decay_groups": _typical(
    optax_decay.decoupled_decay_groups,
    weight_decay={"decay": DECAY, "none": 0.0},
    param_labels=LABELS,
  ),
  "decay_to_anchor": _typical(optax_decay.decay_to_anchor, weight_decay=DECAY),
  "proximal_l1": _typical(optax_decay.proximal_l1, l1=DECAY, learning_rate=LR),
  "scale_by_learning_rate_and_decay": _typical(
    optax_decay.scale_by_learning_rate_and_decay, learning_rate=LR, weight_decay=DECAY
  ),
  "compensated_summation": _typical(optax_decay.compensated_summation),
  "adams": _typical(optax_decay.adams, learning_rate=LR, weight_decay=DECAY),
  # b2 = 0.875 is exact in float32, so injection (which stores it in float32) leaves 1 - b2 as it
  # is; with 0.999 the injected 1 - b2 is 1.3e-5 off, as it is for optax's own scale_by_adam.
  "stable_decoupled_decay": _typical(
    optax_decay.stable_decoupled_decay,
    preconditioner=optax.scale_by_adam(b2=0.875),
    weight_decay=DECAY,
    b2=0.875,
  ),
  # A factory of factories: its typical instance is the decoupled variant optax lacks.
  "with_decoupled_decay": _typical(
    optax_decay.with_decoupled_decay(optax.rmsprop), learning_rate=LR, weight_decay=DECAY
  ),
}

# Public callables that are not transforms, and why. Functions annotated to return something
# other than a transform (numbers, schedules) are recognised without being listed.
HELPERS = {
  "decay_mask": "builds a mask from parameters",
  "inject_hyperparams": "wraps a transform factory",
}

# The decay strength of each transform: setting it to zero switches the regularizer off.
DECAY_ARG = {
  "adamw": "weight_decay",
  "adam_l2": "l2",
  "sgdw": "weight_decay",
  "sgd_l2": "l2",
  "adamwr": "weight_decay_norm",
  "sgdwr": "weight_decay_norm",
  "add_l2_to_grads": "l2",
  "add_l1_to_grads": "l1",
  "decoupled_decay": "weight_decay",
  "decoupled_decay_groups": "weight_decay",
  "decay_to_anchor": "weight_decay",
  "proximal_l1": "l1",
  "scale_by_learning_rate_and_decay": "weight_decay",
  "adams": "weight_decay",
  "stable_decoupled_decay": "weight_decay",
  "with_decoupled_decay": "weight_decay",
}

# Arguments that may be schedules of the step count (adamwr and sgdwr build their own).
SCHEDULABLE = {
  name: tuple(k for k in ("learning_rate", "weight_decay", "l2", "l1") if k in f.keywords)
  for name, f in REGISTRY.items()
  if name not in ("adamwr", "sgdwr")
}
# Integer arguments that must stay static under inject_hyperparams, as their docs say.
INJECT_STATIC = {
  "adamwr": ("first_period_steps", "period_multiplier"),
  "sgdwr": ("first_period_steps", "period_multiplier"),
}

NAMES = sorted(REGISTRY)
MASKED = [n for n in NAMES if "mask" in inspect.signature(REGISTRY[n].func).parameters]
INJECTABLE = sorted(DECAY_ARG)  # those with hyperparameters to inject
STEPS = 4


def kernels_only(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _bf16_exact(array):
  # Values that bfloat16 holds exactly, so runs in every dtype start from the same numbers.
  return np.asarray(array, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def make_params(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  tree = {
    "w": 0.5 + rng.uniform(size=(3, 4)),
    "b": rng.uniform(-1, 1, size=(4,)),
    "block": {"scale": 1.0 + 0.1 * rng.normal(size=(2,))},
  }
  return jax.tree.map(lambda a: jnp.asarray(_bf16_exact(a), dtype), tree)


def make_grads(dtype=jnp.float32, steps=STEPS):
  """A list of gradient pytrees, one per step, with the structure of `make_params()`."""
  rng = np.random.default_rng(1)
  params = make_params()
  return [
    jax.tree.map(lambda p: jnp.asarray(_bf16_exact(rng.normal(size=p.shape)), dtype), params)
    for _ in range(steps)
  ]


def _as_schedule(rate):
  if isinstance(rate, dict):
    return {k: _as_schedule(v) for k, v in rate.items()}
  return optax.linear_schedule(rate, rate / 2, transition_steps=3)


def with_schedules(name):
  """The typical instance's arguments with every schedulable rate a linear schedule."""
  kwargs = dict(REGISTRY[name].keywords)
  for key in SCHEDULABLE.get(name, ()):
    kwargs[key] = _as_schedule(kwargs[key])
  return kwargs


def injected(name, inject=None, **overrides):
  """`name` under `inject` (default `optax_decay.inject_hyperparams`), rates as schedules."""
  inject = inject or optax_decay.inject_hyperparams
  factory = inject(REGISTRY[name].func, static_args=INJECT_STATIC.get(name, ()))
  return factory(**{**with_schedules(name), **overrides})


def zero_decay(name):
  """The `DECAY_ARG` override that switches `name`'s regularizer off."""
  rate = REGISTRY[name].keywords[DECAY_ARG[name]]
  return {DECAY_ARG[name]: {k: 0.0 for k in rate} if isinstance(rate, dict) else 0.0}


def build(name, scheduled=False, **overrides):
  """The typical instance of `name`, with its rates as schedules when `scheduled`."""
  factory = REGISTRY[name]
  kwargs = with_schedules(name) if scheduled else dict(factory.keywords)
  return factory.func(**{**kwargs, **overrides})


def masked(name):
  """The `mask` argument of a typical masked instance (none for transforms without one)."""
  return {"mask": MASK_TREE} if name in MASKED else {}


def run(tx, params, grads, jit=True):
  """Runs `tx` over `grads`; returns the list of (updates, state) and the final params."""
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  out = []
  for g in grads:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
    out.append((updates, state))
  return out, params


@functools.cache
def reference_run(name, dtype=jnp.float32, scheduled=False):
  """`run` of the typical masked instance over `make_grads()`, shared by several tests."""
  tx = build(name, scheduled, **masked(name))
  return run(tx, make_params(dtype), make_grads(dtype))


@functools.cache
def undecayed_injected_run(name):
  return run(injected(name, **zero_decay(name)), make_params(), make_grads())


def assert_trees_close(a, b, rtol, atol=0.0):
  chex.assert_trees_all_equal_structs(a, b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_allclose(
      np.asarray(x, np.complex128 if jnp.iscomplexobj(x) else np.float64),
      np.asarray(y, np.complex128 if jnp.iscomplexobj(y) else np.float64),
      rtol=rtol,
      atol=atol,
    )


def avals(tree):
  """Structure and (shape, dtype, weak_type) of every leaf: what `lax.cond` and `jit` compare."""
  leaves = jax.tree.leaves(jax.tree.map(jax.typeof, tree))
  return jax.tree.structure(tree), [(a.shape, a.dtype, a.weak_type) for a in leaves]


# --- the registry covers the public API --------------------------------------------------------


def _is_documented_non_transform(obj):
  """A function annotated to return something other than a transform (a number, a mask)."""
  returns = inspect.signature(obj).return_annotation
  if returns is inspect.Signature.empty:
    return False  # cannot tell: it has to be listed
  return "GradientTransformation" not in str(returns)


def test_registry_covers_every_public_transform():
  unknown = []
  for name in optax_decay.__all__:
    obj = getattr(optax_decay, name)
    if not callable(obj) or inspect.isclass(obj):
      continue  # constants (COUPLINGS, NO_DECAY_WORDS) and state classes
    if name in REGISTRY or name in HELPERS or _is_documented_non_transform(obj):
      continue
    unknown.append(name)
  assert not unknown, (
    f"public callables {unknown} are not in tests/test_conformance.py: add a typical instance "
    "to REGISTRY (or, for a non-transform, an entry to HELPERS)."
  )
  stale = sorted(set(REGISTRY) - set(optax_decay.__all__))
  assert not stale, f"REGISTRY names {stale} are no longer public"


# --- jit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager(name):
  tx = build(name, **masked(name))
  assert isinstance(tx, optax.GradientTransformation)
  params, grads = make_params(), make_grads(steps=2)
  eager, eager_params = run(tx, params, grads, jit=False)
  jitted, jit_params = reference_run(name)
  jitted = jitted[:2]
  assert avals([u for u, _ in eager]) == avals([params] * 2)
  # XLA may fuse a multiply-add differently from op-by-op dispatch: allow a few ulps.
  assert_trees_close(jitted, eager, rtol=4e-7, atol=1e-7)
  assert_trees_equal(jax.jit(tx.init)(params), tx.init(params))


def _assert_one_trace_per_run(tx, grads, between_steps=lambda state, k: state):
  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params = make_params()
  state = tx.init(params)
  try:
    for k, g in enumerate(grads):
      params, state = step(params, state, g)
      state = between_steps(state, k)
  finally:
    chex.clear_trace_counter()


@pytest.mark.parametrize("name", NAMES)
def test_no_retracing_across_steps(name):
  _assert_one_trace_per_run(build(name, scheduled=True, **masked(name)), make_grads())


@pytest.mark.parametrize("name", INJECTABLE)
def test_no_retracing_when_injected_hyperparameters_change(name):
  tx = injected(name, **masked(name))

  def change_rates(state, k):
    for key, value in state.hyperparams.items():
      if key in SCHEDULABLE.get(name, ()) or key in ("learning_rate", DECAY_ARG[name]):
        state.hyperparams[key] = value * (0.5 + 0.1 * k)
    return state

  _assert_one_trace_per_run(tx, make_grads(), change_rates)


# --- inject_hyperparams -----------------------------------------------------------------------


@pytest.mark.parametrize(
  "name,inject",
  [(n, "optax_decay") for n in INJECTABLE]
  + [(n, "optax") for n in ("adamw", "sgd_l2", "adamwr", "decoupled_decay_groups")],
)
def test_inject_hyperparams_with_schedules_matches_the_plain_transform(name, inject):
  inject = {"optax_decay": optax_decay.inject_hyperparams, "optax": optax.inject_hyperparams}[
    inject
  ]
  got, got_params = run(injected(name, inject, **masked(name)), make_params(), make_grads())
  want, want_params = reference_run(name, scheduled=True)
  # Injected hyperparameters are float32 arrays, the plain ones Python floats: Adam's bias
  # corrections 1 − β^t then differ by a few float32 ulps of β (relative 1e-5 at t = 1).
  assert_trees_close([u for u, _ in got], [u for u, _ in want], rtol=2e-5, atol=1e-6)
  assert_trees_close(got_params, want_params, rtol=2e-5, atol=1e-6)
  # The state holds the schedules' values at the last step taken.
  kwargs = with_schedules(name)
  for key in SCHEDULABLE.get(name, ()):
    if callable(kwargs[key]):
      np.testing.assert_allclose(got[-1][1].hyperparams[key], kwargs[key](STEPS - 1), rtol=1e-6)


@pytest.mark.parametrize(
  "name,mask",
  [(n, "callable") for n in MASKED]
  + [(n, m) for n in ("adamw", "decay_to_anchor") for m in ("tree", "decay_mask")],
)
def test_inject_hyperparams_keeps_the_mask_static(name, mask):
  kind = mask
  mask = {"tree": MASK_TREE, "callable": kernels_only, "decay_mask": optax_decay.decay_mask}[mask]
  got, _ = run(injected(name, mask=mask), make_params(), make_grads())
  # All three masks select the kernel "w" alone, so the run is the reference run.
  want, _ = reference_run(name, scheduled=True)
  assert_trees_close([u for u, _ in got], [u for u, _ in want], rtol=2e-5, atol=1e-6)
  if (name, kind) == ("adam_l2", "callable"):
    skip_before(
      "jax",
      "0.7.1",
      "older XLA compiles this run and the undecayed one (l2 = 0) into Adam updates of the "
      "masked-out bias 1 ulp apart",
    )
  # Masked-out leaves get exactly what they get with no decay at all.
  undecayed, _ = undecayed_injected_run(name)
  last, last_undecayed = got[-1][0], undecayed[-1][0]
  np.testing.assert_array_equal(last["b"], last_undecayed["b"])
  np.testing.assert_array_equal(last["block"]["scale"], last_undecayed["block"]["scale"])
  assert not np.array_equal(last["w"], last_undecayed["w"])


def _bias_not_in_path(params):
  # A common way to write a no-decay rule; on a scalar step count it returns True.
  return jax.tree_util.tree_map_with_path(
    lambda path, _: "b" not in jax.tree_util.keystr(path), params
  )


@pytest.mark.parametrize(
  "mask",
  [
    kernels_only,
    optax_decay.decay_mask,
    _bias_not_in_path,
  ],
)
@pytest.mark.parametrize("name", MASKED)
def test_plain_optax_inject_with_a_callable_mask_is_a_clear_error(name, mask):
  tx = injected(name, optax.inject_hyperparams, mask=mask)
  with pytest.raises((ValueError, TypeError), match=r"static_args=\('mask',\)"):
    params = make_params()
    state = tx.init(params)
    tx.update(make_grads(steps=1)[0], state, params)


def _labels_by_ndim(params):
  return jax.tree.map(lambda p: "decay" if p.ndim > 1 else "none", params)


@pytest.mark.parametrize("labels", ["tree", "callable"])
def test_inject_hyperparams_keeps_group_labels_static(labels):
  labels = {"tree": LABELS, "callable": _labels_by_ndim}[labels]
  got, _ = run(injected("decoupled_decay_groups", param_labels=labels), make_params(), make_grads())
  want, _ = reference_run("decoupled_decay_groups", scheduled=True)
  assert_trees_close([u for u, _ in got], [u for u, _ in want], rtol=2e-6, atol=1e-7)


# --- optax wrappers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_inside_multi_steps(name):
  tx = build(name, **masked(name))
  params, grads = make_params(), make_grads()
  multi = optax.MultiSteps(tx, every_k_schedule=2)
  state = multi.init(params)
  update = jax.jit(multi.update)
  got = []
  for g in grads:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
    got.append(updates)
  # Every second micro-step applies `tx` to the mean gradient; the others apply nothing.
  means = [jax.tree.map(lambda a, b: (a + b) / 2, *grads[i : i + 2]) for i in (0, 2)]
  want, want_params = run(tx, make_params(), means)
  for k in (0, 2):
    assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(got[k]))
  assert_trees_close([got[1], got[3]], [u for u, _ in want], rtol=1e-6, atol=1e-7)
  assert_trees_close(params, want_params, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
  "name,bad",
  [(n, np.nan) for n in NAMES]
  + [(n, np.inf) for n in ("adamw", "sgd_l2", "proximal_l1", "compensated_summation")],
)
def test_inside_apply_if_finite(name, bad):
  guarded = optax.apply_if_finite(build(name, scheduled=True, **masked(name)), 3)
  params, grads = make_params(), make_grads()
  update = jax.jit(guarded.update)
  state = guarded.init(params)
  updates, state = update(grads[0], state, params)
  params = optax.apply_updates(params, updates)
  before = state

  poisoned = dict(grads[1], w=grads[1]["w"].at[1, 2].set(bad))
  updates, state = update(poisoned, state, params)
  assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(updates))
  assert int(state.notfinite_count) == 1 and not bool(state.last_finite)
  assert_trees_equal(state.inner_state, before.inner_state)
  params = optax.apply_updates(params, updates)

  # The skipped step leaves no trace: the run goes on as if it had not happened.
  for g in grads[1:]:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
  _, want = reference_run(name, scheduled=True)
  assert_trees_close(params, want, rtol=4e-7, atol=1e-7)
  assert int(state.notfinite_count) == 0 and int(state.total_notfinite) == 1


# --- state structure ----------------------------------------------------------------------------


# Chains whose learning rate or momentum, injected as a float32 array, meets bfloat16 arrays.
def _state_cases():
  for name in NAMES:
    for variant in ("constant", "schedules", "injected"):
      if variant != "constant" and name not in INJECTABLE:
        continue
      for dtype in ("float32", "bfloat16", "complex64"):
        yield pytest.param(name, variant, dtype, id=f"{name}-{variant}-{dtype}")


@pytest.mark.parametrize("name,variant,dtype", list(_state_cases()))
def test_updated_state_has_the_types_of_the_initial_state(name, variant, dtype):
  if variant == "injected":
    tx = injected(name, **masked(name))
  else:
    tx = build(name, variant == "schedules", **masked(name))
  params, grads = make_params(dtype), make_grads(dtype, steps=1)[0]
  state0 = jax.eval_shape(tx.init, params)
  updates, state1 = jax.eval_shape(tx.update, grads, state0, params)
  assert avals(state1) == avals(state0)
  assert avals(updates) == avals(params)


@pytest.mark.parametrize("name", NAMES)
def test_init_and_updated_states_go_through_lax_cond(name):
  tx = build(name, scheduled=name in INJECTABLE, **masked(name))
  params = make_params()
  state0 = tx.init(params)
  state1 = reference_run(name, scheduled=name in INJECTABLE)[0][0][1]

  @jax.jit
  def pick(pred, a, b):
    return jax.lax.cond(pred, lambda: a, lambda: b)

  assert_trees_equal(pick(True, state0, state1), state0)
  assert_trees_equal(pick(False, state0, state1), state1)


# --- dtypes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_updates_stay_bfloat16_and_track_float32(name):
  steps, bf16_params = reference_run(name, jnp.bfloat16)
  _, f32_params = reference_run(name)
  for updates, state in steps:
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    assert all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree.leaves(state))
  # Four steps rounded to 8 significant bits: within a few bfloat16 ulps of the float32 run
  # (an ulp is 2^-7 relative at worst: 0.03 between 4 and 8).
  as_f32 = jax.tree.map(lambda p: p.astype(jnp.float32), bf16_params)
  assert_trees_close(as_f32, f32_params, rtol=2**-7, atol=3e-2)


@pytest.mark.parametrize("name", NAMES)
def test_complex64_with_zero_imaginary_part_matches_float32(name):
  steps, c64_params = reference_run(name, jnp.complex64)
  f32_steps, f32_params = reference_run(name)
  for (updates, _), (f32_updates, _) in zip(steps, f32_steps, strict=True):
    assert all(u.dtype == jnp.complex64 for u in jax.tree.leaves(updates))
    assert_trees_close(jax.tree.map(jnp.real, updates), f32_updates, rtol=2e-6, atol=1e-7)
    assert all(not np.any(np.imag(np.asarray(u))) for u in jax.tree.leaves(updates))
  assert_trees_close(jax.tree.map(jnp.real, c64_params), f32_params, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", MASKED)
def test_complex64_weights_are_decayed_in_both_parts(name):
  # With zero gradients only the regularizer moves the weights: it must act on the imaginary
  # part too, not only on the real one.
  params = jax.tree.map(lambda p: p * (1 + 1j), make_params(jnp.complex64))
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = build(name, mask=MASK_TREE)
  state = tx.init(params)
  if name == "decay_to_anchor":  # it decays the distance to the anchor: move away first
    params = jax.tree.map(lambda p: 2 * p, params)
  updates, _ = jax.jit(tx.update)(zeros, state, params)
  w = np.asarray(updates["w"])
  assert np.all(np.real(w) != 0) and np.all(np.imag(w) != 0)
  np.testing.assert_array_equal(np.asarray(updates["b"]), 0)


@pytest.mark.parametrize("name", ["adamw", "sgdw", "scale_by_learning_rate_and_decay"])
def test_a_decay_below_bfloat16_resolution_warns_at_init(name):
  tx = build(name, weight_decay=1e-4)  # lr·λ = 1e-5: below 2^-9 (bfloat16), above 2^-24
  tx.init(make_params(jnp.float32))
  with pytest.warns(UserWarning, match="half the spacing of bfloat16"):
    tx.init(make_params(jnp.bfloat16))


# --- schedules checked at construction -------------------------------------------------------

# A schedule whose values go bad at a later step, and that step.
BAD_SCHEDULES = {
  "negative": (lambda count: jnp.where(count < 10, 1e-3, -1e-3), 10),
  "nan": (lambda count: jnp.where(count < 3, 1e-3, jnp.nan), 3),
  "inf": (lambda count: jnp.where(count < 4000, 1e-3, jnp.inf), 4000),
}


@pytest.mark.parametrize("bad", sorted(BAD_SCHEDULES))
@pytest.mark.parametrize("name,key", [(n, k) for n in NAMES for k in SCHEDULABLE.get(n, ())])
def test_a_schedule_negative_or_not_finite_at_some_step_is_an_error(name, key, bad):
  schedule, step = BAD_SCHEDULES[bad]
  rate = REGISTRY[name].keywords[key]
  value = {k: schedule for k in rate} if isinstance(rate, dict) else schedule
  with pytest.raises(ValueError, match=rf"{key}\b.* \(a schedule here\) is .* at step {step};"):
    build(name, **{key: value})


# --- extreme settings ---------------------------------------------------------------------


def _flipping(coupling):
  """(learning_rate, weight_decay) whose constant per-step decay is exactly 1."""
  return {"lr": (0.5, 2.0), "schedule": (0.5, 1.0), "corrected": (0.5, 2.0), "none": (0.5, 1.0)}[
    coupling
  ]


FACTORIES_WITH_COUPLING = {
  "adamw": lambda lr, wd, **kw: optax_decay.adamw(lr, weight_decay=wd, **kw),
  "sgdw": lambda lr, wd, **kw: optax_decay.sgdw(lr, weight_decay=wd, **kw),
  "scale_by_learning_rate_and_decay": lambda lr, wd, **kw: (
    optax_decay.scale_by_learning_rate_and_decay(lr, wd, **kw)
  ),
  "with_decoupled_decay": lambda lr, wd, **kw: optax_decay.with_decoupled_decay(optax.sgd)(
    lr, weight_decay=wd, **kw
  ),
}


@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
@pytest.mark.parametrize("name", sorted(FACTORIES_WITH_COUPLING))
def test_a_decay_that_would_flip_the_sign_is_an_error(name, coupling):
  factory = FACTORIES_WITH_COUPLING[name]
  lr, wd = _flipping(coupling)
  for scale in (1.0, 1.5, 100.0):
    with pytest.raises(ValueError, match="flips the weights' sign"):
      factory(lr, wd * scale, coupling=coupling)
    # An array learning rate needs its peak named (it may be a schedule's current value).
    peak = {"peak_learning_rate": jnp.asarray(lr)} if coupling in ("schedule", "corrected") else {}
    with pytest.raises(ValueError, match="flips the weights' sign"):
      factory(jnp.asarray(lr), jnp.asarray(wd * scale), coupling=coupling, **peak)

  # A schedule is sampled at construction: a decay that reaches 1 at step 80 is refused there.
  def late(scale):
    return lambda count: jnp.where(count < 80, wd / 2, wd * scale)

  with pytest.raises(ValueError, match="at step 80; a fraction ≥ 1 flips the weights' sign"):
    factory(lr, late(1.0), coupling=coupling)
  factory(lr, late(0.99), coupling=coupling)
  # Just below 1 is allowed, and leaves every weight with its sign.
  tx = factory(lr, wd * 0.99, coupling=coupling)
  params = make_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(zeros, state, params)
    new = optax.apply_updates(params, updates)
    for w, v in zip(jax.tree.leaves(params), jax.tree.leaves(new), strict=True):
      assert np.all(np.sign(np.asarray(v)) == np.sign(np.asarray(w)))
    params = new


def test_sgd_l2_without_momentum_that_would_flip_the_sign_is_an_error():
  with pytest.raises(ValueError, match="sign"):
    optax_decay.sgd_l2(0.5, momentum=0.0, l2=2.0)
