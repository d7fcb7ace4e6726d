"""Bad arguments raise at construction; traced rates are accepted; the bf16 rounding warning."""

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

import optax_decay

SCHEDULE = optax.linear_schedule(1e-2, 1e-3, 10)


def _id(value):
  """A test id that is the same in every process (pytest-xdist compares them): no addresses."""
  if isinstance(value, dict):
    return ",".join(f"{k}={_id(v)}" for k, v in value.items())
  if isinstance(value, type):
    return value.__name__
  return "schedule" if callable(value) else repr(value)


# --- the rate checker, once over every kind of value -------------------------------------------
# Every rate argument goes through one checker. Its cases are tested here through one argument,
# decoupled_decay's weight_decay; the next section checks that each argument goes through it.

BAD_VALUES = {
  # value: (exception, words the message must contain)
  "negative": (-1e-3, ValueError, "non-negative"),
  "negative_int": (-1, ValueError, "non-negative"),
  "negative_np_f32": (np.float32(-0.5), ValueError, "non-negative"),
  "negative_jax_array": (jnp.array(-0.5), ValueError, "non-negative"),
  "nan": (math.nan, ValueError, "finite"),
  "nan_jax_array": (jnp.array(jnp.nan), ValueError, "finite"),
  "inf": (math.inf, ValueError, "finite"),
  "minus_inf": (-math.inf, ValueError, "finite"),
  "inf_np_f32": (np.float32(np.inf), ValueError, "finite"),
  "true": (True, TypeError, "boolean"),
  "false": (False, TypeError, "boolean"),
  "np_bool": (np.bool_(True), TypeError, "boolean"),
  "jax_bool": (jnp.array(True), TypeError, "boolean"),
  "vector": (jnp.ones(2) * 1e-3, ValueError, "scalar"),
  "length_one_vector": (np.array([1e-3]), ValueError, "scalar"),
  "matrix": (np.full((2, 2), 1e-3), ValueError, "scalar"),
  "string": ("0.001", TypeError, "schedule"),
  "none": (None, TypeError, "schedule"),
  "complex": (1e-3 + 0j, TypeError, "complex"),
  "complex_array": (np.complex64(1e-3), TypeError, "real"),
}


@pytest.mark.parametrize("bad", list(BAD_VALUES))
def test_rate_checker_rejects_each_bad_value_naming_the_argument(bad):
  value, exc, words = BAD_VALUES[bad]
  with pytest.raises(exc, match=words) as info:
    optax_decay.decoupled_decay(weight_decay=value)
  assert str(info.value).startswith("decoupled_decay: weight_decay "), str(info.value)


@pytest.mark.parametrize(
  "value",
  [0, 0.0, 1e-3, np.float32(1e-3), jnp.array(1e-3), jnp.asarray(1e-3, jnp.bfloat16)],
  ids=repr,
)
def test_rate_checker_accepts_each_good_value(value):
  optax_decay.decoupled_decay(weight_decay=value)


@pytest.mark.parametrize(
  "value", [1.0, 1, 1.0001, 1.5, 2, np.float32(1.1), jnp.array(1.01)], ids=repr
)
def test_beta_checker_rejects_one_or_more(value):
  # With β = 1 Adam's bias correction 1 − β^t is 0: every update would be NaN.
  with pytest.raises(ValueError, match=re.escape("adamw: b1 must lie in [0, 1)")):
    optax_decay.adamw(1e-2, b1=value)


# --- each rate argument of each constructor, once per kind of check it has ---------------------

# Every constructor with valid defaults for its required arguments.
CTORS = {
  "decoupled_decay": lambda **kw: optax_decay.decoupled_decay(**{"weight_decay": 1e-2, **kw}),
  "add_l2_to_grads": lambda **kw: optax_decay.add_l2_to_grads(**{"l2": 1e-2, **kw}),
  "scale_by_learning_rate_and_decay": lambda **kw: optax_decay.scale_by_learning_rate_and_decay(
    **{"learning_rate": 1e-2, "weight_decay": 1e-2, **kw}
  ),
  "adamw": lambda **kw: optax_decay.adamw(**{"learning_rate": 1e-2, **kw}),
  "adam_l2": lambda **kw: optax_decay.adam_l2(**{"learning_rate": 1e-2, **kw}),
  "sgdw": lambda **kw: optax_decay.sgdw(**{"learning_rate": 1e-2, **kw}),
  "sgd_l2": lambda **kw: optax_decay.sgd_l2(**{"learning_rate": 1e-2, **kw}),
  "adams": lambda **kw: optax_decay.adams(**{"learning_rate": 1e-2, **kw}),
  "stable_decoupled_decay": lambda **kw: optax_decay.stable_decoupled_decay(
    **{"preconditioner": optax.scale_by_adam(), "weight_decay": 1e-2, **kw}
  ),
}

# The non-negative rate arguments of each constructor.
RATE_ARGS = {
  "decoupled_decay": ["weight_decay"],
  "add_l2_to_grads": ["l2"],
  "scale_by_learning_rate_and_decay": ["learning_rate", "weight_decay"],
  "adamw": ["learning_rate", "weight_decay", "b1", "b2", "eps", "eps_root"],
  "adam_l2": ["learning_rate", "l2", "b1", "b2", "eps", "eps_root"],
  "sgdw": ["learning_rate", "weight_decay", "momentum"],
  "sgd_l2": ["learning_rate", "l2", "momentum"],
  "adams": ["learning_rate", "weight_decay", "b1", "b2", "eps", "eps_root"],
  "stable_decoupled_decay": ["weight_decay", "b2", "eps"],
}
CTOR_ARG = [(c, a) for c, args in RATE_ARGS.items() for a in args]
SCHEDULABLE = ("learning_rate", "weight_decay", "l2")
BETAS = ("b1", "b2")

# kind of check: (a bad value, the exception, the message it must contain)
BAD_OF_KIND = {
  "negative": (-1e-8, ValueError, "{arg} must be non-negative"),
  # optax's scale_by_adam and trace take numbers only; a schedule would fail deep inside them.
  "schedule": (SCHEDULE, TypeError, "{arg} must be a number, not a schedule"),
  # With β = 1 Adam's bias correction 1 − β^t is 0 (see test_beta_checker_rejects_one_or_more).
  "beta_one": (1.0, ValueError, "{arg} must lie in [0, 1)"),
}


def _kinds(arg):
  yield "negative"
  if arg not in SCHEDULABLE:
    yield "schedule"
  if arg in BETAS:
    yield "beta_one"


@pytest.mark.parametrize("ctor, arg, kind", [(c, a, k) for c, a in CTOR_ARG for k in _kinds(a)])
def test_each_rate_argument_is_checked_naming_it_and_the_function_called(ctor, arg, kind):
  value, exc, message = BAD_OF_KIND[kind]
  with pytest.raises(exc, match=re.escape(message.format(arg=arg))) as info:
    CTORS[ctor](**{arg: value})
  # The message names the function the user called, not a building block inside it.
  assert str(info.value).startswith(f"{ctor}: {arg} "), str(info.value)


@pytest.mark.parametrize("ctor, arg", CTOR_ARG)
def test_each_rate_argument_accepts_good_values(ctor, arg):
  good = [0, jnp.asarray(1e-3, jnp.bfloat16)]
  if arg in SCHEDULABLE:
    good.append(SCHEDULE)
  if arg in BETAS:
    good.append(0.9999)
  for value in good:
    CTORS[ctor](**{arg: value})


OWNERS = {
  **{name: lambda name=name, **kw: CTORS[name](**kw) for name in CTORS},
  "adamwr": lambda **kw: optax_decay.adamwr(1e-2, first_period_steps=10, **kw),
  "sgdwr": lambda **kw: optax_decay.sgdwr(1e-2, first_period_steps=10, **kw),
}


@pytest.mark.parametrize("ctor", sorted(OWNERS))
def test_mask_errors_at_init_name_the_function_called(ctor):
  tx = OWNERS[ctor](mask={"w": True, "b": False, "typo": False})
  with pytest.raises(ValueError, match="typo") as info:
    tx.init({"w": jnp.ones(2), "b": jnp.ones(2)})
  assert str(info.value).startswith(f"{ctor}:"), str(info.value)


# --- coupling and peak_learning_rate ----------------------------------------------------------

COUPLED = ["adamw", "sgdw", "scale_by_learning_rate_and_decay"]


def test_couplings_constant():
  assert optax_decay.COUPLINGS == ("lr", "schedule", "corrected", "none")


@pytest.mark.parametrize(
  "coupling", ["bogus", "LR", "Schedule", "", None, 1, "decoupled"], ids=repr
)
def test_unknown_coupling_lists_every_choice(coupling):
  with pytest.raises(ValueError, match="unknown coupling") as info:
    optax_decay.adamw(1e-2, coupling=coupling)
  message = str(info.value)
  for choice in optax_decay.COUPLINGS:
    assert repr(choice) in message, choice
  assert repr(coupling) in message


@pytest.mark.parametrize("ctor", COUPLED)
def test_each_coupled_constructor_checks_the_coupling(ctor):
  with pytest.raises(ValueError, match="unknown coupling 'bogus'") as info:
    CTORS[ctor](coupling="bogus")
  assert str(info.value).startswith(f"{ctor}:"), str(info.value)


@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
@pytest.mark.parametrize("ctor", COUPLED)
def test_every_coupling_constructs_with_constant_rates(ctor, coupling):
  CTORS[ctor](coupling=coupling)


@pytest.mark.parametrize(
  "peak, exc",
  [
    (0.0, ValueError),
    (0, ValueError),
    (-1e-3, ValueError),
    (jnp.array(0.0), ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (True, TypeError),
    (np.ones(2), ValueError),
    (SCHEDULE, TypeError),
  ],
  ids=_id,
)
def test_bad_peak_learning_rate_raises(peak, exc):
  with pytest.raises(exc, match="peak_learning_rate"):
    optax_decay.adamw(SCHEDULE, coupling="schedule", peak_learning_rate=peak)


@pytest.mark.parametrize("coupling", ["schedule", "corrected"])
@pytest.mark.parametrize("ctor", COUPLED)
def test_each_coupled_constructor_checks_the_peak(ctor, coupling):
  with pytest.raises(ValueError, match="peak_learning_rate must be positive") as info:
    CTORS[ctor](learning_rate=SCHEDULE, coupling=coupling, peak_learning_rate=0.0)
  assert str(info.value).startswith(f"{ctor}:"), str(info.value)


@pytest.mark.parametrize("coupling", ["lr", "none"])
@pytest.mark.parametrize("ctor", COUPLED)
def test_peak_with_a_coupling_that_ignores_it_raises(ctor, coupling):
  for lr in (1e-2, SCHEDULE):
    with pytest.raises(ValueError, match="peak_learning_rate") as info:
      CTORS[ctor](learning_rate=lr, coupling=coupling, peak_learning_rate=1e-2)
    assert repr(coupling) in str(info.value)


@pytest.mark.parametrize("coupling", ["schedule", "corrected"])
@pytest.mark.parametrize("ctor", COUPLED)
def test_schedule_lr_without_peak_raises(ctor, coupling):
  with pytest.raises(ValueError, match="needs peak_learning_rate"):
    CTORS[ctor](learning_rate=SCHEDULE, coupling=coupling)


@pytest.mark.parametrize("coupling", ["schedule", "corrected"])
@pytest.mark.parametrize("ctor", COUPLED)
def test_peak_defaults_to_a_constant_learning_rate(ctor, coupling):
  # No peak needed with a constant lr; and then "schedule" removes exactly λ per step.
  params = {"w": jnp.full(3, 2.0)}
  tx = CTORS[ctor](learning_rate=0.5, weight_decay=0.25, coupling=coupling)
  if ctor == "scale_by_learning_rate_and_decay":
    tx = optax.chain(optax.scale_by_adam(), tx)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  fraction = 0.25 if coupling == "schedule" else 0.5 * 0.25
  np.testing.assert_allclose(updates["w"], -fraction * 2.0, rtol=1e-6)


# --- a constant per-step decay that would flip the weights' sign ------------------------------


@pytest.mark.parametrize(
  "kw",
  [
    dict(learning_rate=1.0, weight_decay=1.0),
    dict(learning_rate=2.0, weight_decay=0.5),
    dict(learning_rate=10.0, weight_decay=1.0),
    dict(learning_rate=1e-2, weight_decay=1.0, coupling="schedule"),
    dict(learning_rate=0.1, weight_decay=1.2, coupling="schedule", peak_learning_rate=0.1),
    dict(learning_rate=1.0, weight_decay=1.0, coupling="corrected"),
    dict(learning_rate=1.0, weight_decay=1.2, coupling="corrected", peak_learning_rate=1.0),
    dict(learning_rate=1e-3, weight_decay=1.0, coupling="none"),
    dict(learning_rate=1e-3, weight_decay=5.0, coupling="none"),
    dict(learning_rate=jnp.array(1.0), weight_decay=np.float32(1.0)),
    # Schedules are sampled at construction: 5, then 2, at step 0.
    dict(learning_rate=SCHEDULE, weight_decay=500.0),
    dict(learning_rate=1.0, weight_decay=optax.constant_schedule(2.0)),
    dict(
      learning_rate=optax.cosine_decay_schedule(0.1, 100),
      weight_decay=1.0,
      coupling="schedule",
      peak_learning_rate=0.1,
    ),
  ],
  ids=_id,
)
def test_per_step_decay_fraction_of_one_or_more_raises(kw):
  with pytest.raises(ValueError, match="flips the weights' sign"):
    optax_decay.adamw(**kw)


def test_a_scheduled_fraction_reaching_one_late_names_the_step():
  # lr_t·λ = 1.5·t/100 first reaches 1 at t = 67 (1.5·66/100 = 0.99).
  warmup = optax.linear_schedule(0.0, 1.0, 100)
  with pytest.raises(ValueError, match=r"remove 1\.005 of each weight at step 67;"):
    optax_decay.adamw(warmup, weight_decay=1.5)
  optax_decay.adamw(warmup, weight_decay=0.99)


@pytest.mark.parametrize(
  "kw",
  [
    dict(learning_rate=1.0, weight_decay=0.99),
    dict(learning_rate=1e-2, weight_decay=0.99, coupling="schedule"),
    dict(learning_rate=1.0, weight_decay=0.99, coupling="corrected"),
    dict(learning_rate=10.0, weight_decay=0.99, coupling="none"),
    dict(learning_rate=SCHEDULE, weight_decay=99.0),
    dict(learning_rate=1.0, weight_decay=optax.constant_schedule(0.99)),
    # A schedule that takes one step at a time cannot be sampled at construction: not checked.
    dict(learning_rate=lambda count: 2.0 if count < 5 else 1.0, weight_decay=0.99),
    # Values past 2^24 steps are not checked: there `count + 1` wraps around in int32 at 2^31 - 1.
    dict(learning_rate=lambda count: 1.0 / (count + 1), weight_decay=0.99),
  ],
  ids=_id,
)
def test_per_step_decay_fraction_below_one_is_accepted(kw):
  optax_decay.adamw(**kw)


@pytest.mark.parametrize("ctor", COUPLED)
def test_each_coupled_constructor_checks_the_per_step_fraction(ctor):
  with pytest.raises(ValueError, match="flips the weights' sign") as info:
    CTORS[ctor](learning_rate=1.0, weight_decay=1.0)
  assert str(info.value).startswith(f"{ctor}:"), str(info.value)
  CTORS[ctor](learning_rate=1.0, weight_decay=0.99)


# --- update without params --------------------------------------------------------------------

NEEDS_PARAMS = {
  "decoupled_decay": ("decoupled_decay", lambda: optax_decay.decoupled_decay(1e-2)),
  "decoupled_decay_zero": ("decoupled_decay", lambda: optax_decay.decoupled_decay(0.0)),
  "decoupled_decay_schedule": ("decoupled_decay", lambda: optax_decay.decoupled_decay(SCHEDULE)),
  "add_l2_to_grads": ("add_l2_to_grads", lambda: optax_decay.add_l2_to_grads(1e-2)),
  "add_l2_to_grads_masked": (
    "add_l2_to_grads",
    lambda: optax_decay.add_l2_to_grads(1e-2, mask={"w": True, "b": False}),
  ),
  "adamw": ("adamw", lambda: optax_decay.adamw(1e-2, weight_decay=1e-2)),
  "adamw_zero_decay": ("adamw", lambda: optax_decay.adamw(1e-2, weight_decay=0.0)),
  "adamw_none": ("adamw", lambda: optax_decay.adamw(1e-2, coupling="none")),
  "adamw_schedule": (
    "adamw",
    lambda: optax_decay.adamw(SCHEDULE, coupling="schedule", peak_learning_rate=1e-2),
  ),
  "adam_l2": ("adam_l2", lambda: optax_decay.adam_l2(1e-2)),
  "sgdw": ("sgdw", lambda: optax_decay.sgdw(1e-2)),
  "sgdw_no_momentum": ("sgdw", lambda: optax_decay.sgdw(1e-2, momentum=0.0)),
  "sgd_l2": ("sgd_l2", lambda: optax_decay.sgd_l2(1e-2)),
  "adams": ("adams", lambda: optax_decay.adams(1e-2)),
  "scale_by_learning_rate_and_decay": (
    "scale_by_learning_rate_and_decay",
    lambda: optax_decay.scale_by_learning_rate_and_decay(1e-2, 1e-2, coupling="corrected"),
  ),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", list(NEEDS_PARAMS))
def test_update_without_params_names_the_transform(case, jit):
  owner, make = NEEDS_PARAMS[case]
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  tx = make()
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  with pytest.raises(ValueError, match="needs the parameters") as info:
    update(params, state)
  assert str(info.value).startswith(owner), str(info.value)
  with pytest.raises(ValueError, match=owner):
    update(params, state, None)


def test_updates_and_params_of_different_structure_raise():
  tx = optax_decay.decoupled_decay(1e-2)
  params = {"w": jnp.ones(2), "b": jnp.ones(2)}
  with pytest.raises(ValueError, match="decoupled_decay: the updates and the parameters differ"):
    tx.update({"w": jnp.ones(2)}, tx.init(params), params)


# --- traced rates: building optimizers inside jit / vmap -------------------------------------

ALIASES = {
  "adamw": lambda lr, wd: optax_decay.adamw(lr, weight_decay=wd),
  # A traced learning rate needs its peak named: here each run's own constant rate.
  "adamw_schedule": lambda lr, wd: optax_decay.adamw(
    lr, weight_decay=wd, coupling="schedule", peak_learning_rate=lr
  ),
  "adamw_corrected": lambda lr, wd: optax_decay.adamw(
    lr, weight_decay=wd, coupling="corrected", peak_learning_rate=0.5
  ),
  "adamw_none": lambda lr, wd: optax_decay.adamw(lr, weight_decay=wd, coupling="none"),
  "adamw_masked": lambda lr, wd: optax_decay.adamw(
    lr, weight_decay=wd, mask={"w": True, "b": False}
  ),
  "adam_l2": lambda lr, wd: optax_decay.adam_l2(lr, l2=wd),
  "sgdw": lambda lr, wd: optax_decay.sgdw(lr, momentum=0.9, weight_decay=wd),
  "sgdw_schedule": lambda lr, wd: optax_decay.sgdw(
    lr, weight_decay=wd, coupling="schedule", peak_learning_rate=lr
  ),
  "sgd_l2": lambda lr, wd: optax_decay.sgd_l2(lr, momentum=0.9, l2=wd),
  "decoupled_decay": lambda lr, wd: optax.chain(
    optax.scale_by_adam(), optax_decay.decoupled_decay(wd), optax.scale_by_learning_rate(lr)
  ),
  "add_l2_to_grads": lambda lr, wd: optax.chain(
    optax_decay.add_l2_to_grads(wd), optax.sgd(lr, momentum=0.5)
  ),
}

# (lr, λ) pairs spanning the grid's corners and a zero decay.
GRID = [(1e-2, 0.5), (0.3, 0.0), (0.1, 0.1)]


def _problem():
  rng = np.random.default_rng(0)
  params = {
    "w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
  }
  x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)

  def loss(p):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

  # Compiled once: the runs without jit then spend their time in the optimizer, not the loss.
  return params, jax.jit(jax.grad(loss))


PARAMS, GRAD = _problem()


def _train(make, lr, wd, steps=3):
  params, grad = PARAMS, GRAD
  tx = make(lr, wd)
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grad(params), state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize(
  "name", [n for n in ALIASES if n not in ("adamw_none", "sgdw", "add_l2_to_grads")]
)
def test_optimizer_built_inside_vmap_over_hyperparameters_matches_constants(name):
  # The paper-grid demo: one vmapped run per (lr, λ) pair, the optimizer built from tracers.
  make = ALIASES[name]
  lrs, wds = (jnp.asarray(v, jnp.float32) for v in zip(*GRID, strict=True))
  grid = jax.jit(jax.vmap(lambda lr, wd: _train(make, lr, wd)))(lrs, wds)
  for i, (lr, wd) in enumerate(GRID):
    want = _train(make, lr, wd)
    got = jax.tree.map(lambda a: a[i], grid)  # noqa: B023
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["adamw_none", "sgdw", "add_l2_to_grads"])
def test_optimizer_built_inside_jit_with_traced_rates_matches_constants(name):
  make = ALIASES[name]
  got = jax.jit(lambda lr, wd: _train(make, lr, wd))(jnp.float32(0.05), jnp.float32(0.2))
  want = _train(make, 0.05, 0.2)
  assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def test_traced_momentum_and_betas_are_accepted():
  def run(mu, b2):
    a = _train(lambda lr, wd: optax_decay.sgdw(lr, momentum=mu, weight_decay=wd), 0.05, 0.2)
    b = _train(lambda lr, wd: optax_decay.adamw(lr, b2=b2, weight_decay=wd), 0.05, 0.2)
    return a, b

  got = jax.jit(jax.vmap(run))(jnp.array([0.0, 0.9]), jnp.array([0.99, 0.999]))
  for i, (mu, b2) in enumerate([(0.0, 0.99), (0.9, 0.999)]):
    want = run(mu, b2)
    assert_trees_close(jax.tree.map(lambda a: a[i], got), want, rtol=1e-5, atol=1e-6)  # noqa: B023


def test_traced_peak_learning_rate_is_accepted():
  def run(peak):
    make = lambda lr, wd: optax_decay.adamw(  # noqa: E731
      SCHEDULE, weight_decay=wd, coupling="schedule", peak_learning_rate=peak
    )
    return _train(make, None, 0.1)

  got = jax.jit(run)(jnp.float32(1e-2))
  assert_trees_close(got, run(1e-2), rtol=1e-5, atol=1e-6)


# --- the rounding warning ---------------------------------------------------------------------


def _cast(params, dtype):
  return jax.tree.map(lambda p: p.astype(dtype), params)


@pytest.mark.parametrize(
  "make",
  [
    lambda: optax_decay.adamw(1e-3, weight_decay=1e-4),
    lambda: optax_decay.sgdw(1e-3, weight_decay=1e-4),
    lambda: optax_decay.adamw(1e-3, weight_decay=1e-3, coupling="schedule"),  # λ = 1e-3 < 2^-9
    lambda: optax_decay.adamw(1e-2, weight_decay=1e-2, coupling="corrected"),
    lambda: optax_decay.adamw(1e-3, weight_decay=1e-3, coupling="none"),
    lambda: optax_decay.scale_by_learning_rate_and_decay(1e-3, 1e-4),
  ],
  ids=["adamw", "sgdw", "schedule", "corrected", "none", "scale_by_learning_rate_and_decay"],
)
def test_decay_below_bf16_resolution_warns_at_init(make):
  params = _cast(PARAMS, jnp.bfloat16)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    tx = make()  # nothing at construction: the dtype is not known yet
  with pytest.warns(UserWarning, match="bfloat16") as record:
    tx.init(params)
  assert len(record) == 1  # one warning, not one per leaf


@pytest.mark.parametrize(
  "make",
  [
    lambda: optax_decay.adamw(1e-3, weight_decay=1e-4),
    lambda: optax_decay.sgdw(1e-3, weight_decay=1e-4),
    lambda: optax_decay.adamw(1e-3, weight_decay=1e-3, coupling="schedule"),
    lambda: optax_decay.adamw(1e-3, weight_decay=0.0),
    # lr·λ = 1e-8 < 2^-24: below half a float32 ulp, yet added to Adam's step before the sum
    # is rounded, so nothing measurable is lost (tests/test_joints.py checks the same).
    lambda: optax_decay.adamw(1e-4, weight_decay=1e-4),
  ],
  ids=["adamw", "sgdw", "schedule", "zero_decay", "below_half_an_ulp"],
)
def test_float32_decays_do_not_warn(make):
  params = PARAMS
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    make().init(params)


def test_bf16_decay_above_resolution_does_not_warn():
  params = _cast(PARAMS, jnp.bfloat16)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    optax_decay.adamw(1e-2, weight_decay=1.0).init(params)  # lr·λ = 1e-2 > 2^-9
    optax_decay.adamw(1e-3, weight_decay=1e-2, coupling="none").init(params)


def test_rounding_warning_ignores_leaves_the_mask_excludes_and_integer_leaves():
  params = {
    "w": jnp.ones((2, 2), jnp.float32),
    "b": jnp.ones(2, jnp.bfloat16),
    "step": jnp.zeros((), jnp.int32),
  }
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    optax_decay.adamw(1e-3, weight_decay=1e-4, mask={"w": True, "b": False, "step": False}).init(
      params
    )
  with pytest.warns(UserWarning, match="bfloat16"):
    optax_decay.adamw(1e-3, weight_decay=1e-4, mask={"w": False, "b": True, "step": False}).init(
      params
    )


def test_schedules_and_traced_rates_do_not_warn():
  # The per-step fraction of a schedule is unknown at init: no warning, no error.
  params = _cast(PARAMS, jnp.bfloat16)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    optax_decay.adamw(SCHEDULE, weight_decay=1e-4).init(params)
    jax.jit(lambda lr: optax_decay.adamw(lr, weight_decay=1e-4).init(params))(jnp.float32(1e-3))
