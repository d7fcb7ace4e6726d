"""Where our transforms meet optax, Flax and Equinox: each class of defect an outside review found.

One section per class. Each test states the behaviour a user of optax would expect and checks it
for every public transform, coupling or alias the class reaches, not only the input that first
showed it.
"""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_equal

import optax_decay

PARAMS = {"w": jnp.asarray(np.full((2, 3), 0.75), jnp.float32), "b": -0.5 * jnp.ones(3)}
GRADS = {"w": jnp.asarray(np.full((2, 3), 0.25), jnp.float32), "b": 0.125 * jnp.ones(3)}

# The transforms whose decay is scaled by a coupling, as factories of (lr, wd, **kwargs).
COUPLED = {
  "adamw": lambda lr, wd, **kw: optax_decay.adamw(lr, weight_decay=wd, **kw),
  "sgdw": lambda lr, wd, **kw: optax_decay.sgdw(lr, weight_decay=wd, **kw),
  "scale_by_learning_rate_and_decay": lambda lr, wd, **kw: (
    optax_decay.scale_by_learning_rate_and_decay(lr, wd, **kw)
  ),
  "proximal_l1": lambda lr, wd, coupling="lr", **kw: optax_decay.proximal_l1(
    wd, learning_rate=None if coupling == "none" else lr, coupling=coupling, **kw
  ),
}
NEEDS_PEAK = ("schedule", "corrected")


def _step(tx, params=PARAMS, grads=GRADS):
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


# --- a learning-rate schedule turned into a number by injection -------------------------------


@pytest.mark.parametrize("coupling", NEEDS_PEAK)
@pytest.mark.parametrize("name", sorted(COUPLED))
def test_injected_schedule_without_peak_is_the_same_error_as_plain(name, coupling):
  schedule = optax.linear_schedule(0.1, 0.01, transition_steps=10)
  with pytest.raises(ValueError, match="peak_learning_rate") as plain:
    COUPLED[name](schedule, 0.01, coupling=coupling)
  for inject in (optax_decay.inject_hyperparams, optax.inject_hyperparams):
    # The factory of (lr, wd) under injection, called as a user would.
    wrapped = inject(
      lambda learning_rate, wd, coupling: COUPLED[name](learning_rate, wd, coupling=coupling)
    )
    with pytest.raises(ValueError, match="peak_learning_rate") as injected:
      tx = wrapped(learning_rate=schedule, wd=0.01, coupling=coupling)
      tx.update(GRADS, tx.init(PARAMS), PARAMS)
    assert type(injected.value) is type(plain.value)


@pytest.mark.parametrize("coupling", NEEDS_PEAK)
@pytest.mark.parametrize("name", ["adamw", "sgdw", "scale_by_learning_rate_and_decay"])
def test_injected_constant_learning_rate_keeps_its_value_as_the_default_peak(name, coupling):
  factory = {
    "adamw": optax_decay.adamw,
    "sgdw": optax_decay.sgdw,
    "scale_by_learning_rate_and_decay": optax_decay.scale_by_learning_rate_and_decay,
  }[name]
  kwargs = {"learning_rate": 0.1, "weight_decay": 0.05, "coupling": coupling}
  tx = optax_decay.inject_hyperparams(factory)(**kwargs)
  state = tx.init(PARAMS)
  # Halving the injected learning rate must halve c_t = lr_t/peak (and quarter lr_t²/peak): the
  # peak stays the value given at construction, it does not follow the injected rate.
  state.hyperparams["learning_rate"] = jnp.asarray(0.05, jnp.float32)
  zeros = jax.tree.map(jnp.zeros_like, GRADS)
  got, _ = tx.update(zeros, state, PARAMS)
  want = _step(factory(**{**kwargs, "learning_rate": 0.05, "peak_learning_rate": 0.1}), grads=zeros)
  np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)


# --- arguments that make every step NaN or silently mean something else -----------------------


def test_group_labels_of_none_is_an_error():
  with pytest.raises(TypeError, match="param_labels"):
    optax_decay.decoupled_decay_groups({"decay": 0.1}, None)


@pytest.mark.parametrize("name", ["sgdw", "sgd_l2", "adamw", "adam_l2", "adams", "adamwr", "sgdwr"])
def test_nesterov_must_be_a_bool(name):
  factory = getattr(optax_decay, name)
  args = (0.1, 10) if name.endswith("wr") else (0.1,)
  with pytest.raises(TypeError, match="nesterov must be True or False"):
    factory(*args, nesterov="yes")


# Every rate a user may give as a schedule, per transform: (factory of the rate, argument name).
SCHEDULABLE = [
  ("adamw", lambda s: optax_decay.adamw(s, weight_decay=0.1), "learning_rate"),
  ("adamw", lambda s: optax_decay.adamw(0.1, weight_decay=s), "weight_decay"),
  ("adam_l2", lambda s: optax_decay.adam_l2(s, l2=0.1), "learning_rate"),
  ("adam_l2", lambda s: optax_decay.adam_l2(0.1, l2=s), "l2"),
  ("sgdw", lambda s: optax_decay.sgdw(s, weight_decay=0.1), "learning_rate"),
  ("sgdw", lambda s: optax_decay.sgdw(0.1, weight_decay=s), "weight_decay"),
  ("sgd_l2", lambda s: optax_decay.sgd_l2(s, l2=0.1), "learning_rate"),
  ("sgd_l2", lambda s: optax_decay.sgd_l2(0.1, l2=s), "l2"),
  ("adams", lambda s: optax_decay.adams(s, weight_decay=0.1), "learning_rate"),
  ("adams", lambda s: optax_decay.adams(0.1, weight_decay=s), "weight_decay"),
  ("add_l2_to_grads", optax_decay.add_l2_to_grads, "l2"),
  ("add_l1_to_grads", optax_decay.add_l1_to_grads, "l1"),
  ("decoupled_decay", optax_decay.decoupled_decay, "weight_decay"),
  ("decay_to_anchor", optax_decay.decay_to_anchor, "weight_decay"),
  ("decoupled_decay_groups", lambda s: optax_decay.decoupled_decay_groups({"a": s}, "a"), "a"),
  ("proximal_l1", lambda s: optax_decay.proximal_l1(s, learning_rate=0.1), "l1"),
  ("proximal_l1", lambda s: optax_decay.proximal_l1(0.1, learning_rate=s), "learning_rate"),
  (
    "stable_decoupled_decay",
    lambda s: optax_decay.stable_decoupled_decay(optax.scale_by_adam(), s),
    "weight_decay",
  ),
] + [
  (
    f"scale_by_learning_rate_and_decay-{coupling}-{arg}",
    lambda s, c=coupling, a=arg: optax_decay.scale_by_learning_rate_and_decay(
      **{"learning_rate": 0.1, "weight_decay": 0.1, a: s},
      coupling=c,
      peak_learning_rate=0.1 if c in NEEDS_PEAK else None,
    ),
    arg,
  )
  for coupling in optax_decay.COUPLINGS
  for arg in ("learning_rate", "weight_decay")
]


@pytest.mark.parametrize(
  "build,arg", [(b, a) for _, b, a in SCHEDULABLE], ids=[f"{n}-{a}" for n, _, a in SCHEDULABLE]
)
def test_a_schedule_that_returns_a_non_scalar_is_an_error(build, arg):
  tx = build(lambda count: jnp.full((2, 1), 0.01))
  params = {"w": jnp.ones((3,))}
  with pytest.raises(ValueError, match=rf"{arg}.*scalar.*\(2, 1\)"):
    jax.eval_shape(tx.update, params, tx.init(params), params)


# (lr, λ, peak) per coupling: the old form, decoupled_decay(λ/peak) before the lr scaling, held
# λ/peak (or λ·lr/peak) = 1e5 in float16, beyond its largest number 65504; c_t·λ is 0.1.
FLOAT16_CASES = {
  "schedule": (1e-6, 0.1, 1e-6),
  "corrected": (1e-6, 1e5, 1e-6),
  "none": (0.1, 0.1, None),
}


@pytest.mark.parametrize("coupling", sorted(FLOAT16_CASES))
@pytest.mark.parametrize("name", sorted(COUPLED))
def test_float16_parameters_with_a_large_decay_over_peak_stay_finite(name, coupling):
  lr, wd, peak = FLOAT16_CASES[coupling]
  tx = COUPLED[name](lr, wd, coupling=coupling, peak_learning_rate=peak)
  f16 = jax.tree.map(lambda p: p.astype(jnp.float16), PARAMS)
  got = _step(tx, f16, jax.tree.map(lambda g: g.astype(jnp.float16), GRADS))
  want = _step(tx, PARAMS, GRADS)
  for key in PARAMS:
    assert got[key].dtype == jnp.float16
    # A few float16 roundings (Adam's step, the rate, the product, the sum), each within 2^-11
    # of terms of size ≤ 0.1; the sum of a step and a decay of opposite signs cancels, so the
    # bound is absolute.
    np.testing.assert_allclose(np.asarray(got[key], np.float32), want[key], rtol=2**-9, atol=2**-10)


def test_warm_restarts_are_exact_in_the_last_period_below_2_to_the_31():
  t0, mult = 1000, 2
  eta = optax_decay.cosine_warm_restarts_multiplier(t0, mult)
  lam = optax_decay.restart_normalized_weight_decay(0.05, t0, mult)
  start, length = 0, t0
  while start + length <= 2**31 - 1:
    start, length = start + length, length * mult
  # The last period starts below 2**31 and ends beyond it.
  assert start + length > 2**31 - 1
  for step in (start, start + 1, (start + 2**31 - 1) // 2, 2**31 - 1):
    want_eta = 0.5 * (1 + np.cos(np.pi * (step - start) / length))
    np.testing.assert_allclose(float(eta(step)), want_eta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(lam(step)), 0.05 / np.sqrt(length), rtol=1e-6)


# --- the library's own buffers never alias the caller's ---------------------------------------


def test_an_anchor_given_as_the_parameters_can_be_donated():
  params = jax.tree.map(jnp.array, PARAMS)
  tx = optax.chain(optax_decay.decay_to_anchor(0.1, anchor=params), optax.sgd(0.1))
  state = tx.init(params)

  def step(params, state):
    updates, state = tx.update(GRADS, state, params)
    return optax.apply_updates(params, updates), state

  donating = jax.jit(step, donate_argnums=(0, 1))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Some donated buffers were not usable" would be a failure
    new_params, state = donating(params, state)
  np.testing.assert_array_equal(state[0].anchor["w"], PARAMS["w"])


# --- injection keeps the plain transform's dtypes ----------------------------------------------


@pytest.mark.parametrize(
  "param_dtype,grad_dtype,mu_dtype",
  [
    (jnp.bfloat16, jnp.float32, None),
    (jnp.bfloat16, jnp.bfloat16, jnp.float32),
    (jnp.float32, jnp.bfloat16, None),
    (jnp.bfloat16, jnp.bfloat16, None),
  ],
)
@pytest.mark.parametrize("name", ["adamw", "adam_l2", "adams"])
def test_injection_keeps_the_update_and_state_dtypes_of_the_plain_transform(
  name, param_dtype, grad_dtype, mu_dtype
):
  factory = getattr(optax_decay, name)
  params = jax.tree.map(lambda p: p.astype(param_dtype), PARAMS)
  grads = jax.tree.map(lambda g: g.astype(grad_dtype), GRADS)
  # A decay of lr·λ = 1e-2 per step: above bfloat16's resolution, so init does not warn.
  kwargs = {"l2" if name == "adam_l2" else "weight_decay": 0.1, "mu_dtype": mu_dtype}
  plain = factory(0.1, **kwargs)
  injected = optax_decay.inject_hyperparams(factory)(0.1, **kwargs)
  want, want_state = plain.update(grads, plain.init(params), params)
  got, got_state = injected.update(grads, injected.init(params), params)
  assert jax.tree.map(lambda x: x.dtype, got) == jax.tree.map(lambda x: x.dtype, want)
  want_dtypes = [x.dtype for x in jax.tree.leaves(want_state)]
  assert [x.dtype for x in jax.tree.leaves(got_state.inner_state)] == want_dtypes


# --- optax's defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgdw", "sgd_l2"])
def test_sgd_momentum_defaults_to_none_as_in_optax_and_pytorch(name):
  assert inspect.signature(getattr(optax_decay, name)).parameters["momentum"].default is None


def test_sgd_l2_is_add_decayed_weights_before_optax_sgd():
  for momentum in (None, 0.0, 0.9):
    ours = optax_decay.sgd_l2(0.1, momentum, l2=0.01, accumulator_dtype=jnp.bfloat16)
    theirs = optax.chain(
      optax.add_decayed_weights(0.01), optax.sgd(0.1, momentum, accumulator_dtype=jnp.bfloat16)
    )
    state = ours.init(PARAMS)
    assert jax.tree.structure(state) == jax.tree.structure(theirs.init(PARAMS))
    assert_trees_equal(_step(ours), _step(theirs))


# --- warnings worth reading ---------------------------------------------------------------------


def test_below_resolution_warning_is_for_16_bit_leaves_and_points_at_the_caller():
  tx = optax_decay.adamw(1e-4, weight_decay=1e-4)  # a ViT recipe: lr·λ = 1e-8
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    tx.init(PARAMS)  # float32: nothing measurable is lost, no warning
  bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
  with pytest.warns(UserWarning, match="bfloat16") as record:
    tx.init(bf16)
  assert record[0].filename == __file__


@pytest.mark.parametrize("name", sorted(COUPLED))
@pytest.mark.parametrize("coupling", NEEDS_PEAK)
def test_a_peak_below_the_schedules_maximum_is_an_error(name, coupling):
  warmup = optax.warmup_cosine_decay_schedule(0.0, 1e-3, warmup_steps=100, decay_steps=1000)
  with pytest.raises(ValueError, match="peak_learning_rate"):
    COUPLED[name](warmup, 0.01, coupling=coupling, peak_learning_rate=1e-4)
  COUPLED[name](warmup, 0.01, coupling=coupling, peak_learning_rate=1e-3)


# --- error messages that say what is wrong and what to do ---------------------------------------


def test_a_string_mask_is_an_error_at_construction():
  with pytest.raises(TypeError, match=r"mask .*got the str 'kernel'\. .*decay_mask") as err:
    optax_decay.adamw(0.1, mask="kernel")
  assert " ." not in str(err.value)


def test_a_mask_with_an_extra_linen_params_key_says_so():
  tx = optax_decay.decoupled_decay(0.1, mask={"params": {"w": True, "b": False}})
  with pytest.raises(ValueError, match=r"'params'"):
    tx.init(PARAMS)
  tx = optax_decay.decoupled_decay(0.1, mask={"w": True, "b": False})
  with pytest.raises(ValueError, match=r"'params'"):
    tx.init({"params": PARAMS})


def test_a_mask_from_the_whole_nnx_state_suggests_filtering_by_param():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Sequential(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), nnx.BatchNorm(3, rngs=nnx.Rngs(0)))
  mask = jax.tree.map(lambda x: x.ndim > 1, nnx.state(model))
  tx = optax_decay.decoupled_decay(0.1, mask=mask)
  with pytest.raises(ValueError, match=r"nnx\.state\(model, nnx\.Param\)"):
    tx.init(nnx.state(model, nnx.Param))
