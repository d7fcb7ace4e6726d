"""Differential tests: each public transform against a second composition that must agree.

Every check runs the same gradients through two routes and compares what comes out:

1. `inject_hyperparams` (ours and optax's) against the plain transform, for every coupling and
   with constant and scheduled rates;
2. the transform inside optax's wrappers (`masked`, `partition`, `MultiSteps`, `apply_if_finite`,
   `lookahead`, `flatten`) against the same wrapper around optax's own counterpart, or, for
   transforms optax has no counterpart of, against the transform run alone on its group;
3. optax's tree conventions: `update(None, ...)`, structure mismatches, `None` leaves and
   Equinox filter specs, against the transform on the plain tree.

The cases are parametrized over `test_conformance.REGISTRY`, so a new public transform is covered
as soon as it has a typical instance there. A whole class of composition bugs (a mask that breaks
inside `partition`, a decay that changes under injection, ...) then fails here for every
transform at once rather than for the one a hand-written test happened to pick.
"""

import functools
import inspect

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_equal, skip_before
from test_conformance import (
  INJECT_STATIC,
  MASK_TREE,
  MASKED,
  NAMES,
  REGISTRY,
  SCHEDULABLE,
  STEPS,
  avals,
  make_grads,
  make_params,
  run,
)

import optax_decay

# --- shared helpers ---------------------------------------------------------------------------

COUPLED = [n for n in NAMES if "coupling" in inspect.signature(REGISTRY[n].func).parameters]
NEEDS_PEAK = ("schedule", "corrected")
INJECTORS = ("optax_decay", "optax")
LR_SCHEDULES = {
  "linear": lambda peak: optax.linear_schedule(peak, peak / 2, transition_steps=3),
  # From 0: a first step with no learning rate, so no lr-coupled decay and a zero threshold.
  "warmup_cosine": lambda peak: optax.warmup_cosine_decay_schedule(
    0.0, peak, warmup_steps=2, decay_steps=STEPS + 2, end_value=peak / 10
  ),
}


def _scheduled(key, rate):
  """`rate` as a schedule that peaks at its value: so that value is the peak learning rate."""
  if isinstance(rate, dict):  # decoupled_decay_groups: a switched-off group stays a plain 0
    return {group: _scheduled(key, r) for group, r in rate.items()}
  if rate == 0:
    return rate
  if key == "learning_rate":
    return LR_SCHEDULES["warmup_cosine"](rate)
  return optax.linear_schedule(rate, rate / 2, transition_steps=3)


def arguments(name, rates="constant", coupling=None, explicit_peak=False):
  """The typical masked instance's arguments: rates "constant" or "schedules", a coupling.

  With "schedule" and "corrected" a learning-rate schedule needs `peak_learning_rate`; a
  constant one takes it as the peak unless `explicit_peak` (as plain optax injection needs).
  """
  kwargs = dict(REGISTRY[name].keywords)
  if name in MASKED:
    kwargs["mask"] = MASK_TREE
  if rates == "schedules":
    for key in SCHEDULABLE.get(name, ()):
      kwargs[key] = _scheduled(key, kwargs[key])
  if coupling is not None:
    kwargs["coupling"] = coupling
    if coupling == "none" and name == "proximal_l1":  # thresholds by l1 alone
      kwargs["learning_rate"] = None
    if coupling in NEEDS_PEAK and (explicit_peak or callable(kwargs["learning_rate"])):
      kwargs["peak_learning_rate"] = REGISTRY[name].keywords["learning_rate"]
  return kwargs


def build(name, **kwargs):
  return REGISTRY[name].func(**kwargs)


def inject(name, injector, **kwargs):
  """`name` under `optax_decay.inject_hyperparams` or, set up as a user must, optax's own."""
  factory = REGISTRY[name].func
  if injector == "optax_decay":
    return optax_decay.inject_hyperparams(factory)(**kwargs)
  # Plain optax calls every callable as a schedule and injects every number: masks, labels
  # (trees or functions of the parameters) and restart periods (Python ints) must be static.
  accepted = inspect.signature(factory).parameters
  static = [k for k in ("mask", "param_labels", *INJECT_STATIC.get(name, ())) if k in accepted]
  return optax.inject_hyperparams(factory, static_args=static)(**kwargs)


# Where to jit. A compilation costs ~15 eager steps of these tiny trees, and trees are taken
# apart and put together at trace time, which eager runs go through too; so runs go op by op
# (where the same operations also give the same bits whatever program surrounds them), except:
# the injected transforms, whose hyperparameters must be traced as in a user's jitted step, and
# the wrappers built on `lax.cond` (MultiSteps, apply_if_finite), which would compile it again
# at every eager step. Those are jitted, once per run.
run_op_by_op = functools.partial(run, jit=False)


@functools.cache
def plain_run(name, coupling=None, rates="constant"):
  """The plain transform over `make_grads()`, op by op: the reference of several tests."""
  tx = build(name, **arguments(name, rates, coupling))
  return run_op_by_op(tx, make_params(), make_grads())


def updates_of(steps):
  return [u for u, _ in steps]


def subtree(tree, keys):
  return {k: tree[k] for k in keys}


def _rate_kinds(name):
  # adamwr and sgdwr build their own schedules from numbers; compensated_summation has no rate.
  return ("constant", "schedules") if SCHEDULABLE.get(name) else ("constant",)


# --- 1. inject_hyperparams equals the plain transform -----------------------------------------


def _injection_cases():
  for name in NAMES:
    for coupling in optax_decay.COUPLINGS if name in COUPLED else (None,):
      for rates in _rate_kinds(name):
        for injector in INJECTORS:
          ids = (name, coupling, rates, injector)
          yield pytest.param(*ids, id="-".join(i for i in ids if i))


def _injection_tolerance(name, kwargs):
  """How far injected and plain updates may differ, relative to the size of the updates."""
  if "b2" in inspect.signature(REGISTRY[name].func).parameters and kwargs.get("b2", 0.999) != 0.875:
    # Adam forms 1 − β2 from the injected float32 β2 = 0.999, 1.3e-5 off the 1 − β2 it forms
    # in double precision from the Python float: v̂ differs by that, its root and so the step
    # by half of it (6.5e-6). (The registry's stable_decoupled_decay uses the exact 0.875.)
    return 1e-5
  # Otherwise both sides compute with the same float32 numbers, but a combined rate (λ/peak,
  # λ·lr/peak, lr·λ) formed in float32 from injected operands rounds once more than the one
  # formed from Python floats, and the jitted program may fuse operations that the plain run
  # does one by one: a few ulps.
  return 4 * 2**-23


def assert_close_at_scale(got, want, tolerance):
  """Same structure, shapes and dtypes; values within `tolerance` of each leaf's largest value.

  Measured against the leaf's scale rather than elementwise: an update that cancels to about 0
  (a gradient step against the decay) keeps the rounding error of its terms.
  """
  chex.assert_trees_all_equal_structs(got, want)
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert (x.dtype, x.shape) == (y.dtype, y.shape)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    np.testing.assert_allclose(x, y, rtol=0, atol=tolerance * np.max(np.abs(y), initial=0))


@pytest.mark.parametrize("name,coupling,rates,injector", list(_injection_cases()))
def test_injected_equals_plain(name, coupling, rates, injector):
  kwargs = arguments(name, rates, coupling, explicit_peak=injector == "optax")
  got, _ = run(inject(name, injector, **kwargs), make_params(), make_grads())
  want, _ = plain_run(name, coupling, rates)
  # Same structure and dtypes (weak types too: a changed one retraces a jitted step).
  assert avals(updates_of(got)) == avals(updates_of(want))
  if rates == "constant":
    # Numbers in place of numbers: the inner state is laid out as the plain one. (Injection
    # turns schedules into numbers, so the plain form's step counts are then not there.)
    assert avals(got[-1][1].inner_state) == avals(want[-1][1])
  # Each step's updates, computed from the weights of the step before: the weights follow.
  tolerance = _injection_tolerance(name, kwargs)
  assert_close_at_scale(updates_of(got), updates_of(want), tolerance)


@pytest.mark.parametrize("lr_schedule", LR_SCHEDULES)
@pytest.mark.parametrize("coupling", NEEDS_PEAK)
@pytest.mark.parametrize("name", COUPLED)
def test_a_missing_peak_learning_rate_is_the_same_outcome_injected_or_not(
  name, coupling, lr_schedule
):
  # The plain form cannot divide by the peak of a schedule it is not told: it raises. Under
  # injection the schedule reaches the transform as a number each step, and taking that number
  # as the peak would silently make the decay constant. Either both raise the same error, or
  # both run and agree. (Under plain optax.inject_hyperparams a schedule and a constant both
  # arrive as numbers, so nothing can tell them apart: there the peak is always given, as
  # `arguments(explicit_peak=True)` does.)
  kwargs = arguments(name, coupling=coupling)
  kwargs["learning_rate"] = LR_SCHEDULES[lr_schedule](kwargs["learning_rate"])

  def outcome(tx_factory):
    try:
      return run(tx_factory(), make_params(), make_grads(steps=2))
    except Exception as err:  # noqa: BLE001  the error's class is what is compared
      return type(err)

  plain = outcome(lambda: build(name, **kwargs))
  injected = outcome(lambda: inject(name, "optax_decay", **kwargs))
  if isinstance(plain, type) or isinstance(injected, type):
    assert injected == plain, f"plain: {plain}, injected: {injected}"
  else:
    tolerance = _injection_tolerance(name, kwargs)
    assert_close_at_scale(updates_of(injected[0]), updates_of(plain[0]), tolerance)


def _dtype_cases():
  # Ours only: optax.inject_hyperparams hands a schedule's value over as a float32 array, which
  # promotes bfloat16 updates to float32, for optax.adamw itself as for ours (measured: the
  # updates of inject_hyperparams(optax.adamw)(schedule) on bfloat16 parameters are float32).
  # Keeping the plain dtypes is what optax_decay.inject_hyperparams is for.
  for name in NAMES:
    for rates in _rate_kinds(name):
      yield pytest.param(name, rates, "optax_decay", id=f"{name}-{rates}-optax_decay")


def _update_dtypes(tx, params, grads):
  state = jax.eval_shape(tx.init, params)
  updates, _ = jax.eval_shape(tx.update, grads, state, params)
  return jax.tree.structure(updates), [u.dtype for u in jax.tree.leaves(updates)]


@pytest.mark.parametrize("name,rates,injector", list(_dtype_cases()))
def test_injected_update_dtypes_equal_plain_with_bfloat16_params(name, rates, injector):
  # float32 hyperparameters (ours) or bfloat16 ones (optax's, in the parameters' dtype) meet
  # bfloat16 parameters, with gradients of either dtype: the updates' dtypes must not change.
  kwargs = arguments(name, rates)
  params = make_params(jnp.bfloat16)
  for grad_dtype in (jnp.float32, jnp.bfloat16):
    grads = make_grads(grad_dtype, steps=1)[0]
    want = _update_dtypes(build(name, **kwargs), params, grads)
    got = _update_dtypes(inject(name, injector, **kwargs), params, grads)
    assert got == want, f"with {jnp.dtype(grad_dtype).name} gradients"


# --- 2. inside optax's wrappers -------------------------------------------------------------

# Two groups of the parameters: "a" (the kernel and the norm scale) goes to the transform under
# test, "b" (the bias) to another transform.
GROUP_A, GROUP_B = ("block", "w"), ("b",)
GROUP_MASK = {"w": True, "b": False, "block": {"scale": True}}
PART_LABELS = {"w": "a", "b": "b", "block": {"scale": "a"}}
# A user's parameter-shaped arguments cover the FULL parameters, while inside `masked` and
# `partition` the transform sees `optax.MaskedNode()` at group b's leaves. These mark that leaf
# for decay: the transform must leave a MaskedNode alone whatever the user's tree says there.
# In group a they decay the kernel and not the norm scale.
FULL_MASK = {"w": True, "b": True, "block": {"scale": False}}
FULL_LABELS = {"w": "decay", "b": "decay", "block": "none"}
ANCHOR = jax.tree.map(lambda p: 0.5 * p, make_params())


def full_tree_arguments(name, mask=FULL_MASK):
  kwargs = dict(REGISTRY[name].keywords)
  if name in MASKED:
    kwargs["mask"] = mask
  if name == "decay_to_anchor":
    kwargs["anchor"] = ANCHOR
  if name == "decoupled_decay_groups":
    kwargs["param_labels"] = FULL_LABELS
  return kwargs


def group_a_arguments(name):
  """`full_tree_arguments` cut down to group a: what the transform gets when run alone there."""
  kwargs = full_tree_arguments(name)
  for key in ("mask", "anchor", "param_labels"):
    if key in kwargs:
      kwargs[key] = subtree(kwargs[key], GROUP_A)
  return kwargs


# optax's counterpart of each transform that has one, built from the registry's arguments, as
# the docstrings state it (coupling="lr" is the default): add_decayed_weights is both L2 (first
# in a chain) and decoupled decay (after the preconditioner).
def _decayed(kw, mask):
  return optax.add_decayed_weights(kw.get("weight_decay", kw.get("l2")), mask)


TWINS = {
  "adamw": lambda kw, mask: optax.adamw(
    kw["learning_rate"], weight_decay=kw["weight_decay"], mask=mask
  ),
  "adam_l2": lambda kw, mask: optax.chain(_decayed(kw, mask), optax.adam(kw["learning_rate"])),
  "sgdw": lambda kw, mask: optax.chain(
    optax.trace(kw["momentum"]),
    _decayed(kw, mask),
    optax.scale_by_learning_rate(kw["learning_rate"]),
  ),
  "sgd_l2": lambda kw, mask: optax.chain(
    _decayed(kw, mask), optax.sgd(kw["learning_rate"], momentum=kw["momentum"])
  ),
  "add_l2_to_grads": _decayed,
  "decoupled_decay": _decayed,
  "scale_by_learning_rate_and_decay": lambda kw, mask: optax.chain(
    _decayed(kw, mask), optax.scale_by_learning_rate(kw["learning_rate"])
  ),
}
NO_TWIN = [n for n in NAMES if n not in TWINS]


def group_b_sgd():
  return optax.sgd(0.1)


# `optax.multi_transform` is `optax.partition` under another name in optax 0.2.8.
WRAPPERS = {
  "masked": lambda tx: optax.masked(tx, GROUP_MASK),
  "partition": lambda tx: optax.partition({"a": tx, "b": group_b_sgd()}, PART_LABELS),
  "MultiSteps": lambda tx: optax.MultiSteps(tx, every_k_schedule=2).gradient_transformation(),
  "apply_if_finite": lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=2),
  "lookahead": lambda tx: optax.lookahead(tx, sync_period=2, slow_step_size=0.5),
  # Under flatten the transform sees one vector, which no mask can describe: mask=None.
  "flatten": optax.flatten,
}
JITTED_WRAPPERS = ("MultiSteps", "apply_if_finite")
# What group b's leaves get in the wrappers that split the parameters.
GROUP_B_TRANSFORM = {"masked": optax.identity, "partition": group_b_sgd}


def run_wrapped(wrapper, tx):
  params, grads = make_params(), make_grads()
  if wrapper == "lookahead":
    params = optax.LookaheadParams.init_synced(params)
  if wrapper == "apply_if_finite":  # one step to skip, so both sides take the skipping path
    grads[1] = dict(grads[1], w=grads[1]["w"].at[0, 0].set(np.nan))
  return run(WRAPPERS[wrapper](tx), params, grads, jit=wrapper in JITTED_WRAPPERS)


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("name", sorted(TWINS))
def test_inside_a_wrapper_equals_optax_counterpart_bit_for_bit(name, wrapper):
  mask = None if wrapper == "flatten" else FULL_MASK
  ours = build(name, **full_tree_arguments(name, mask))
  theirs = TWINS[name](REGISTRY[name].keywords, mask)
  got_steps, got_params = run_wrapped(wrapper, ours)
  want_steps, want_params = run_wrapped(wrapper, theirs)
  # Both sides compute the same float32 operations in the same order: no tolerance. (The
  # aliases alone are compared under jit in test_alias and test_optax_equivalents.)
  assert_trees_equal(updates_of(got_steps), updates_of(want_steps))
  assert_trees_equal(got_params, want_params)


@functools.cache
def group_b_run(wrapper):
  params, grads = make_params(), make_grads()
  tx = GROUP_B_TRANSFORM[wrapper]()
  return run_op_by_op(tx, subtree(params, GROUP_B), [subtree(g, GROUP_B) for g in grads])


@pytest.mark.parametrize("wrapper", GROUP_B_TRANSFORM)
@pytest.mark.parametrize("name", NO_TWIN)
def test_inside_a_split_acts_on_its_group_as_alone(name, wrapper):
  # Without an optax counterpart, the reference is the transform run alone on group a's
  # sub-tree (its parameter-shaped arguments cut to it), and group b's transform alone on b.
  params, grads = make_params(), make_grads()
  tx = WRAPPERS[wrapper](build(name, **full_tree_arguments(name)))
  got, _ = run_op_by_op(tx, params, grads)
  alone, _ = run_op_by_op(
    build(name, **group_a_arguments(name)),
    subtree(params, GROUP_A),
    [subtree(g, GROUP_A) for g in grads],
  )
  other, _ = group_b_run(wrapper)
  # The same operations on the same leaves (the mean of stable decay runs over group a in both):
  # equal bit for bit.
  assert_trees_equal([subtree(u, GROUP_A) for u in updates_of(got)], updates_of(alone))
  assert_trees_equal([subtree(u, GROUP_B) for u in updates_of(got)], updates_of(other))


@pytest.mark.parametrize(
  "lr_schedule,mask", [(None, None), ("linear", MASK_TREE)], ids=["constant", "schedule-mask"]
)
def test_adamw_state_is_optax_adamw_state(lr_schedule, mask):
  # A drop-in: orbax and flax.serialization restore by structure, so a checkpoint of either
  # must load into the other, with a mask (optax's MaskedState) and an lr schedule (its
  # ScaleByScheduleState) too. A weight-decay schedule's count lives in a state type of optax's
  # own (WeightDecaySchedule), which is not asked of us: only the learning rate is scheduled.
  lr = LR_SCHEDULES[lr_schedule](0.1) if lr_schedule else 0.1
  params, grads = make_params(), make_grads()
  ours, _ = run_op_by_op(optax_decay.adamw(lr, weight_decay=0.1, mask=mask), params, grads)
  theirs, _ = run_op_by_op(optax.adamw(lr, weight_decay=0.1, mask=mask), params, grads)
  assert_trees_equal(ours, theirs)


# --- 3. optax's tree conventions ----------------------------------------------------------------


@pytest.mark.parametrize(
  "name,rates", [pytest.param(n, r, id=f"{n}-{r}") for n in NAMES for r in _rate_kinds(n)]
)
def test_update_of_none_returns_none_and_a_usable_state(name, rates):
  # optax's transforms accept `update(None, state, params)` (optax's test_none_argument); the
  # state that comes back must be one the next step can take.
  tx = build(name, **arguments(name, rates))
  params = make_params()
  state = tx.init(params)
  updates, new_state = tx.update(None, state, params)
  assert updates is None
  assert avals(new_state) == avals(state)


MISMATCHES = {
  "updates_missing_a_leaf": ("updates", lambda t: subtree(t, ("b", "w"))),
  "updates_with_an_extra_leaf": ("updates", lambda t: {**t, "extra": jnp.zeros(2)}),
  "updates_as_a_tuple": ("updates", lambda t: (t["b"], t["block"], t["w"])),
  "params_missing_a_leaf": ("params", lambda t: subtree(t, ("b", "w"))),
}


@pytest.mark.parametrize("mismatch", MISMATCHES)
@pytest.mark.parametrize("name", NAMES)
def test_a_structure_mismatch_is_a_value_error_that_says_so(name, mismatch):
  which, change = MISMATCHES[mismatch]
  tx = build(name, **arguments(name))
  params = make_params()
  state = tx.init(params)
  trees = {"updates": make_grads(steps=1)[0], "params": params}
  trees[which] = change(trees[which])
  # A ValueError, as jax.tree.map raises for mismatched trees: never a TypeError out of zip.
  with pytest.raises(ValueError) as raised:
    tx.update(trees["updates"], state, trees["params"])
  if "structure" not in str(raised.value).lower():  # jax's own error, from an optax transform
    skip_before(
      "jax",
      "0.10.2",
      "jax.tree.map's error names the structure from 0.10.2 (before: 'Dict key mismatch', "
      "'Expected tuple')",
    )
  assert "structure" in str(raised.value).lower(), raised.value


@pytest.mark.parametrize("name", NAMES)
def test_none_leaves_pass_through(name):
  # An Equinox-filtered model has None where a field holds no array (an activation function):
  # the other leaves get exactly what they get without it.
  params = {**make_params(), "act": None}
  grads = [{**g, "act": None} for g in make_grads()]
  got, got_params = run_op_by_op(build(name, **arguments(name)), params, grads)
  want, want_params = plain_run(name)
  assert got_params["act"] is None and all(u["act"] is None for u in updates_of(got))
  arrays = ("b", "block", "w")
  assert_trees_equal([subtree(u, arrays) for u in updates_of(got)], updates_of(want))
  assert_trees_equal(subtree(got_params, arrays), want_params)


def _mlp():
  return eqx.nn.MLP(in_size=3, out_size=2, width_size=4, depth=1, key=jax.random.key(0))


def _filter_spec(model, default, weights):
  # The Equinox idiom: a value at every leaf of the model (activation functions included), then
  # another one at the kernels.
  spec = jax.tree.map(lambda _: default, model)
  return eqx.tree_at(lambda m: [layer.weight for layer in m.layers], spec, replace=[weights] * 2)


def _on_arrays_only(spec, params):
  # What optax.masked makes of the spec: entries where the parameters hold None are dropped.
  return jax.tree.map(lambda entry, p: None if p is None else entry, spec, params)


EQX_NAMES = [*MASKED, "decoupled_decay_groups"]


@pytest.mark.parametrize("name", EQX_NAMES)
def test_an_equinox_filter_spec_works_as_optax_masked_treats_it(name):
  model = _mlp()
  params = eqx.filter(model, eqx.is_array)
  rng = np.random.default_rng(2)
  grads = [
    jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    for _ in range(STEPS)
  ]
  if name == "decoupled_decay_groups":
    key, spec = "param_labels", _filter_spec(model, "none", "decay")
  else:
    key, spec = "mask", _filter_spec(model, False, True)
  kwargs = dict(REGISTRY[name].keywords)

  def run_with(entries):
    return run_op_by_op(build(name, **{**kwargs, key: entries}), params, grads)

  got_steps, got_params = run_with(spec)
  want_steps, want_params = run_with(_on_arrays_only(spec, params))
  assert_trees_equal(updates_of(got_steps), updates_of(want_steps))
  assert_trees_equal(got_params, want_params)
  # Not vacuous: decaying every leaf moves the biases that the spec keeps out, and only them.
  everywhere = None if key == "mask" else jax.tree.map(lambda _: "decay", params)
  _, all_params = run_with(everywhere)
  for got_layer, all_layer in zip(got_params.layers, all_params.layers, strict=True):
    assert_trees_equal(got_layer.weight, all_layer.weight)
    assert not np.array_equal(got_layer.bias, all_layer.bias)
  if name == "adamw":
    # And optax.adamw given the same spec, as a function: an eqx.nn.MLP is callable, and
    # optax.masked would call it on the parameters.
    _, their_params = run_op_by_op(TWINS[name](kwargs, lambda _: spec), params, grads)
    assert_trees_equal(got_params, their_params)
