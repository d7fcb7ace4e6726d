"""Dtypes (int, bool, bf16, complex, f64) and optimizer state (size, types, pickling, retracing)."""

import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
  assert_trees_close,
  assert_trees_equal,
  enable_x64,
  needs_optax_decay_schedules,
)

import optax_decay

LR, WD = 0.1, 0.3
SCHED = optax.linear_schedule(0.2, 0.05, 5)
LR_SCHED = optax.cosine_decay_schedule(LR, 10)


def _bits(x):
  x = np.asarray(x)
  return x.dtype, x.shape, x.tobytes()


def _mixed_params():
  return {
    "w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]], jnp.float32),
    "step": jnp.asarray([3, -7, 11], jnp.int32),
    "ids": jnp.asarray([1, 2], jnp.uint8),
    "flag": jnp.asarray([True, False]),
  }


PRIMITIVES = {
  "decoupled_decay": lambda **kw: optax_decay.decoupled_decay(WD, **kw),
  "decoupled_decay_schedule": lambda **kw: optax_decay.decoupled_decay(SCHED, **kw),
  "add_l2_to_grads": lambda **kw: optax_decay.add_l2_to_grads(WD, **kw),
  "add_l2_to_grads_schedule": lambda **kw: optax_decay.add_l2_to_grads(SCHED, **kw),
}

# name: (factory(rate, **kw), rate argument name)
ALIASES = {
  "adamw": lambda rate, **kw: optax_decay.adamw(LR, weight_decay=rate, **kw),
  "adam_l2": lambda rate, **kw: optax_decay.adam_l2(LR, l2=rate, **kw),
  "sgdw": lambda rate, **kw: optax_decay.sgdw(LR, momentum=0.9, weight_decay=rate, **kw),
  "sgd_l2": lambda rate, **kw: optax_decay.sgd_l2(LR, momentum=0.9, l2=rate, **kw),
}


# --- integer and boolean leaves -------------------------------------------------------------


@pytest.mark.parametrize("mask", [None, {"w": True, "step": True, "ids": True, "flag": True}])
@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_primitives_pass_int_and_bool_updates_through(name, mask):
  # Even a mask that selects them leaves non-float leaves alone (there is nothing to decay).
  params = _mixed_params()
  updates = {
    "w": jnp.ones((2, 2), jnp.float32),
    "step": jnp.asarray([1, 2, 3], jnp.int32),
    "ids": jnp.asarray([4, 5], jnp.uint8),
    "flag": jnp.asarray([False, True]),
  }
  tx = PRIMITIVES[name](mask=mask)
  state = tx.init(params)
  for _ in range(2):
    new, state = tx.update(updates, state, params)
    for key in ("step", "ids", "flag"):
      assert new[key] is updates[key], key
    assert new["w"].dtype == jnp.float32
    assert not np.array_equal(np.asarray(new["w"]), np.asarray(updates["w"]))


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_primitives_pass_float0_gradients_of_integer_params_through(name):
  # What jax.grad(..., allow_int=True) returns for integer params.
  params = _mixed_params()
  grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2), allow_int=True)(params)
  assert grads["step"].dtype == jax.dtypes.float0
  tx = PRIMITIVES[name]()
  new, _ = tx.update(grads, tx.init(params), params)
  for key in ("step", "ids", "flag"):
    assert new[key] is grads[key]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(ALIASES))
def test_aliases_leave_int_and_bool_params_unchanged(name, jit):
  params = _mixed_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = ALIASES[name](WD)
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  p = params
  for _ in range(3):
    updates, state = update(zeros, state, p)
    p = optax.apply_updates(p, updates)
  for key in ("step", "ids", "flag"):
    assert _bits(p[key]) == _bits(params[key]), key
  # ...while the float leaf is decayed.
  assert np.all(np.abs(np.asarray(p["w"])) < np.abs(np.asarray(params["w"])))


@pytest.mark.parametrize("name", list(ALIASES))
def test_aliases_treat_int_and_bool_leaves_as_without_decay(name):
  # Whatever the preconditioner makes of non-float leaves, the decay adds nothing to it: the
  # updates equal those of the same optimizer with no decay, bit for bit (dtype included).
  params = _mixed_params()
  grads = {
    "w": jnp.ones((2, 2), jnp.float32),
    "step": jnp.asarray([1, 0, 2], jnp.int32),
    "ids": jnp.asarray([0, 1], jnp.uint8),
    "flag": jnp.asarray([False, True]),
  }
  with_decay, without = ALIASES[name](WD), ALIASES[name](0.0)
  s1, s2 = with_decay.init(params), without.init(params)
  for _ in range(2):
    u1, s1 = with_decay.update(grads, s1, params)
    u2, s2 = without.update(grads, s2, params)
    for key in ("step", "ids", "flag"):
      assert _bits(u1[key]) == _bits(u2[key]), key
    assert not np.array_equal(np.asarray(u1["w"]), np.asarray(u2["w"]))


# --- bfloat16 -------------------------------------------------------------------------------


def _bf16_params():
  return {
    "w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]], jnp.bfloat16),
    "b": jnp.asarray([0.25, -0.75], jnp.bfloat16),
  }


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
  "rate",
  [
    optax.linear_schedule(0.2, 0.05, 5),
    optax.cosine_decay_schedule(0.2, 5),
    lambda count: jnp.float32(0.1) * (count + 1),
    jnp.float32(0.1),
    np.float32(0.1),
    0.1,
  ],
  ids=["linear_schedule", "cosine_schedule", "f32_lambda", "jnp_f32", "np_f32", "python_float"],
)
@pytest.mark.parametrize("make", [optax_decay.decoupled_decay, optax_decay.add_l2_to_grads])
def test_bf16_updates_stay_bf16_with_f32_rates(make, rate, jit):
  params = _bf16_params()
  updates = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  tx = make(rate)
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  for t in range(3):
    new, state = update(updates, state, params)
    rate_t = float(rate(t)) if callable(rate) else float(rate)
    for key in params:
      assert new[key].dtype == jnp.bfloat16, key
      term = rate_t * np.asarray(params[key], np.float32)
      # One bf16 rounding of the rate, one of the product and one of the sum (2^-8 relative each).
      bound = 2**-8 * (2 * np.abs(term) + np.abs(0.5 + term)) * 1.01
      assert np.all(np.abs(np.asarray(new[key], np.float32) - (0.5 + term)) <= bound), key


@pytest.mark.parametrize(
  "make",
  [
    lambda: optax_decay.adamw(LR_SCHED, weight_decay=SCHED),
    lambda: optax_decay.adamw(
      LR_SCHED, weight_decay=SCHED, coupling="corrected", peak_learning_rate=LR
    ),
    lambda: optax_decay.adamw(LR_SCHED, weight_decay=0.5, coupling="none"),
    lambda: optax_decay.adam_l2(LR_SCHED, l2=SCHED),
    lambda: optax_decay.sgdw(
      LR_SCHED, weight_decay=SCHED, coupling="schedule", peak_learning_rate=LR
    ),
    lambda: optax_decay.sgd_l2(LR_SCHED, l2=SCHED),
  ],
  ids=["adamw", "adamw_corrected", "adamw_none", "adam_l2", "sgdw_schedule", "sgd_l2"],
)
def test_bf16_aliases_with_f32_schedules_keep_bf16_updates(make):
  # optax.adamw with a schedule weight_decay returns float32 updates for bf16 params.
  params = _bf16_params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  tx = make()
  state = tx.init(params)
  for _ in range(2):
    updates, state = jax.jit(tx.update)(grads, state, params)
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
    assert all(bool(jnp.isfinite(u).all()) for u in jax.tree.leaves(updates))
    params = optax.apply_updates(params, updates)


# --- complex and float64 ----------------------------------------------------------------------


def _complex_params():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2))
  return {"z": jnp.asarray(z, jnp.complex64), "r": jnp.asarray(rng.normal(size=(2,)), jnp.float32)}


@pytest.mark.parametrize("make", [optax_decay.decoupled_decay, optax_decay.add_l2_to_grads])
@pytest.mark.parametrize("rate", [WD, SCHED], ids=["constant", "schedule"])
def test_complex_params_get_real_rate_times_w(make, rate):
  params = _complex_params()
  rng = np.random.default_rng(1)
  updates = {
    "z": jnp.asarray(rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2)), jnp.complex64),
    "r": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
  }
  tx = make(rate)
  state = tx.init(params)
  for t in range(2):
    new, state = tx.update(updates, state, params)
    rate_t = np.float32(rate(t) if callable(rate) else rate)
    assert new["z"].dtype == jnp.complex64
    want = np.asarray(updates["z"]) + rate_t * np.asarray(params["z"])
    assert want.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(new["z"]), want, rtol=1e-6, atol=1e-7)
    # Real and imaginary parts are each scaled by the real rate (no mixing).
    np.testing.assert_allclose(
      np.asarray(new["z"]).imag,
      np.asarray(updates["z"]).imag + rate_t * np.asarray(params["z"]).imag,
      rtol=1e-6,
      atol=1e-7,
    )


@pytest.mark.parametrize(
  "ours, theirs",
  [
    (lambda: optax_decay.adamw(LR, weight_decay=WD), lambda: optax.adamw(LR, weight_decay=WD)),
    (
      lambda: optax_decay.sgdw(LR, momentum=0.9, weight_decay=WD),
      lambda: optax.chain(
        optax.trace(0.9), optax.add_decayed_weights(WD), optax.scale_by_learning_rate(LR)
      ),
    ),
  ],
  ids=["adamw", "sgdw"],
)
def test_complex_aliases_match_optax(ours, theirs):
  params = _complex_params()
  grads = jax.tree.map(lambda p: p * 0.5 + 0.25, params)
  a, b = ours(), theirs()
  sa, sb = a.init(params), b.init(params)
  for _ in range(3):
    ua, sa = a.update(grads, sa, params)
    ub, sb = b.update(grads, sb, params)
    assert ua["z"].dtype == jnp.complex64
    assert_trees_close(ua, ub, rtol=1e-6, atol=1e-7)


def test_float64_under_enable_x64():
  with enable_x64(True):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float64)}
    updates = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float64)}
    assert params["w"].dtype == jnp.float64
    # The primitive: exactly numpy's float64 u + λ·w.
    tx = optax_decay.decoupled_decay(WD)
    new, _ = tx.update(updates, tx.init(params), params)
    assert new["w"].dtype == jnp.float64
    want = np.asarray(updates["w"]) + WD * np.asarray(params["w"])
    np.testing.assert_array_equal(np.asarray(new["w"]), want)
    # A float64 schedule value keeps full precision (no rounding through float32).
    tx = optax_decay.decoupled_decay(lambda count: jnp.float64(1 / 3))
    new, _ = tx.update(updates, tx.init(params), params)
    np.testing.assert_array_equal(
      np.asarray(new["w"]), np.asarray(updates["w"]) + (1 / 3) * np.asarray(params["w"])
    )
    # The alias: bit for bit optax.adamw in float64.
    ours, theirs = optax_decay.adamw(LR, weight_decay=WD), optax.adamw(LR, weight_decay=WD)
    so, st = ours.init(params), theirs.init(params)
    for _ in range(3):
      uo, so = ours.update(updates, so, params)
      ut, st = theirs.update(updates, st, params)
      assert uo["w"].dtype == jnp.float64
      assert_trees_equal(uo, ut)
    # f64 resolves a decay of 1e-12 per step: no rounding warning (warnings are errors here).
    optax_decay.adamw(1e-6, weight_decay=1e-6).init(params)


# --- state --------------------------------------------------------------------------------------


def _params():
  return {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.ones(2, jnp.float32)}


@pytest.mark.parametrize(
  "tx, rate, mask",
  [
    (optax_decay.decoupled_decay(WD), WD, None),
    (optax_decay.decoupled_decay(0.0), 0.0, None),
    (optax_decay.decoupled_decay(jnp.float32(WD)), WD, None),
    (optax_decay.decoupled_decay(WD, mask={"w": True, "b": False}), WD, {"w": True, "b": False}),
    (optax_decay.add_l2_to_grads(WD), WD, None),
    (
      optax_decay.add_l2_to_grads(np.float32(WD), mask=lambda p: {"w": True, "b": False}),
      WD,
      {"w": True, "b": False},
    ),
  ],
  ids=["dd", "dd_zero", "dd_array", "dd_masked", "l2", "l2_masked"],
)
def test_constant_rate_decays_hold_no_arrays_laid_out_as_optax(tx, rate, mask):
  # optax.add_decayed_weights is the counterpart of both: its state, EmptyState (inside a
  # MaskedState when masked), is ours, so checkpoints restore across the two.
  params = _params()
  state = tx.init(params)
  assert state == optax.add_decayed_weights(rate, mask).init(params)
  assert jax.tree.leaves(state) == []
  _, new_state = tx.update(params, state, params)
  assert new_state == state


@pytest.mark.parametrize("make", [optax_decay.decoupled_decay, optax_decay.add_l2_to_grads])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_schedule_decays_keep_an_int32_count(make, jit):
  params = _params()
  tx = make(SCHED)
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  assert isinstance(state, optax_decay.DecayScheduleState)
  for t in range(4):
    assert state.count.dtype == jnp.int32
    assert state.count.shape == ()
    assert int(state.count) == t
    _, state = update(params, state, params)
    assert isinstance(state, optax_decay.DecayScheduleState)


def test_schedule_count_saturates_instead_of_overflowing():
  params = _params()
  tx = optax_decay.decoupled_decay(SCHED)
  big = optax_decay.DecayScheduleState(count=jnp.asarray(np.iinfo(np.int32).max, jnp.int32))
  _, state = tx.update(params, big, params)
  assert int(state.count) == np.iinfo(np.int32).max


def _nbytes(state):
  return sum(np.asarray(x).nbytes for x in jax.tree.leaves(state))


@pytest.mark.parametrize(
  "lr, wd",
  [(LR, WD), (LR_SCHED, WD), (LR, SCHED), (LR_SCHED, SCHED), (LR, 0.0)],
  ids=["constants", "lr_schedule", "wd_schedule", "both_schedules", "no_decay"],
)
@pytest.mark.parametrize("mask", [None, {"w": True, "b": False}], ids=["no_mask", "mask"])
def test_adamw_state_is_exactly_as_large_as_optax_adamw(lr, wd, mask):
  if callable(wd):
    needs_optax_decay_schedules()
  params = _params()
  ours = optax_decay.adamw(lr, weight_decay=wd, mask=mask).init(params)
  theirs = optax.adamw(lr, weight_decay=wd, mask=mask).init(params)
  assert _nbytes(ours) == _nbytes(theirs)
  assert len(jax.tree.leaves(ours)) == len(jax.tree.leaves(theirs))
  assert sorted(str(x.dtype) for x in jax.tree.leaves(ours)) == sorted(
    str(x.dtype) for x in jax.tree.leaves(theirs)
  )


@pytest.mark.parametrize(
  "ours, theirs",
  [
    (
      lambda: optax_decay.sgdw(LR, momentum=0.9, weight_decay=WD),
      lambda: optax.sgd(LR, momentum=0.9),
    ),
    (lambda: optax_decay.sgd_l2(LR, momentum=0.9, l2=WD), lambda: optax.sgd(LR, momentum=0.9)),
    (lambda: optax_decay.sgdw(LR, weight_decay=WD), lambda: optax.sgd(LR)),
    (lambda: optax_decay.adam_l2(LR, l2=WD), lambda: optax.adam(LR)),
  ],
  ids=["sgdw", "sgd_l2", "sgdw_no_momentum", "adam_l2"],
)
def test_other_aliases_add_no_state_to_their_base_optimizer(ours, theirs):
  params = _params()
  assert _nbytes(ours().init(params)) == _nbytes(theirs().init(params))


STATEFUL = {
  "adamw": lambda: optax_decay.adamw(LR, weight_decay=WD),
  "adamw_schedules": lambda: optax_decay.adamw(LR_SCHED, weight_decay=SCHED),
  "adamw_schedule_coupling": lambda: optax_decay.adamw(
    LR_SCHED, weight_decay=WD, coupling="schedule", peak_learning_rate=LR
  ),
  "adamw_corrected": lambda: optax_decay.adamw(
    LR_SCHED, weight_decay=WD, coupling="corrected", peak_learning_rate=LR
  ),
  "adamw_none": lambda: optax_decay.adamw(LR_SCHED, weight_decay=WD, coupling="none"),
  "adamw_masked": lambda: optax_decay.adamw(
    LR, weight_decay=WD, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  ),
  "adam_l2": lambda: optax_decay.adam_l2(LR, l2=WD),
  "adam_l2_schedules": lambda: optax_decay.adam_l2(LR_SCHED, l2=SCHED),
  "sgdw": lambda: optax_decay.sgdw(LR, weight_decay=WD),
  "sgdw_schedules": lambda: optax_decay.sgdw(LR_SCHED, weight_decay=SCHED, nesterov=True),
  "sgdw_no_momentum": lambda: optax_decay.sgdw(LR, momentum=0.0, weight_decay=WD),
  "sgd_l2": lambda: optax_decay.sgd_l2(LR, l2=WD),
  "sgd_l2_schedules": lambda: optax_decay.sgd_l2(LR_SCHED, l2=SCHED),
  "decoupled_decay_schedule": lambda: optax_decay.decoupled_decay(SCHED),
  "add_l2_to_grads_schedule": lambda: optax_decay.add_l2_to_grads(SCHED),
}


def _grads(params):
  return jax.tree.map(lambda p: 0.5 * p + 0.1, params)


def _namedtuples(state):
  """Every NamedTuple in `state`, recursively (tuples of chains included)."""
  found = []

  def walk(x):
    if isinstance(x, tuple):
      if hasattr(x, "_fields"):
        found.append(x)
      for y in x:
        walk(y)
    elif isinstance(x, dict):
      for y in x.values():
        walk(y)

  walk(state)
  return found


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_survives_tree_map_flatten_and_pickle(name):
  params = _params()
  tx = STATEFUL[name]()
  state = tx.init(params)
  _, state = tx.update(_grads(params), state, params)
  types = [type(t) for t in _namedtuples(state)]
  assert types, "the state holds no NamedTuple"

  mapped = jax.tree.map(lambda x: x, state)
  leaves, treedef = jax.tree.flatten(state)
  unflattened = jax.tree.unflatten(treedef, leaves)
  pickled = pickle.loads(pickle.dumps(jax.device_get(state)))
  for other in (mapped, unflattened, pickled):
    assert [type(t) for t in _namedtuples(other)] == types
    assert jax.tree.structure(other) == jax.tree.structure(state)
    assert_trees_equal(other, state)

  # Training continues identically from the round-tripped state.
  u1, s1 = tx.update(_grads(params), state, params)
  u2, s2 = tx.update(_grads(params), pickled, params)
  assert_trees_equal(u1, u2)
  assert_trees_equal(s1, s2)


def test_decay_schedule_state_is_a_picklable_namedtuple():
  state = optax_decay.DecayScheduleState(count=jnp.asarray(7, jnp.int32))
  assert state._fields == ("count",)
  back = pickle.loads(pickle.dumps(state))
  assert isinstance(back, optax_decay.DecayScheduleState)
  assert int(back.count) == 7


def _run_tracing_once(tx, params, steps):
  """`steps` jitted steps of `tx`; fails if the step is traced more than once."""
  chex.clear_trace_counter()  # the counter is keyed by the function's code, shared by parameters

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state):
    updates, state = tx.update(_grads(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params


@pytest.mark.parametrize("name", list(STATEFUL))
def test_jitted_step_traces_once(name):
  params = _run_tracing_once(STATEFUL[name](), _params(), steps=5)
  assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
  "make",
  [
    lambda: optax_decay.adamw(LR_SCHED, weight_decay=SCHED),
    lambda: optax_decay.sgdw(LR_SCHED, weight_decay=SCHED, coupling="none"),
    lambda: optax_decay.adam_l2(LR_SCHED, l2=SCHED),
  ],
  ids=["adamw", "sgdw_none", "adam_l2"],
)
def test_jitted_bf16_step_traces_once(make):
  params = _run_tracing_once(make(), _bf16_params(), steps=4)
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
