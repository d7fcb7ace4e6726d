"""Masks: which parameter leaves a decay applies to.

Masks are pytrees of bools (full or a prefix of the parameters) or callables returning one, and
must work in plain pytrees, Flax NNX (`nnx.Optimizer`) and Flax Linen, under `jax.jit` and under
`optax.inject_hyperparams`. Masked-out leaves must come through bit for bit; decayed leaves get
exactly the expected change.
"""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx
from helpers import assert_trees_close

import optax_decay

LR, WD = 0.1, 0.3


def _params():
  rng = np.random.default_rng(0)
  return {
    "encoder": {
      "w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
      "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
    },
    "decoder": {
      "w": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
      "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
    },
  }


def _grads(params, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)


def _bits(x):
  x = np.asarray(x)
  return x.dtype, x.shape, x.tobytes()


def _assert_same_bits(a, b, what=""):
  assert _bits(a) == _bits(b), f"{what}: {np.asarray(a)} vs {np.asarray(b)}"


def _by_path(tree):
  return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


# Each mask form with the set of parameter paths it selects for `_params()`.
ENC_W, ENC_B = "['encoder']['w']", "['encoder']['b']"
DEC_W, DEC_B = "['decoder']['w']", "['decoder']['b']"
MASKS = {
  "full_tree": (
    {"encoder": {"w": True, "b": False}, "decoder": {"w": True, "b": False}},
    {ENC_W, DEC_W},
  ),
  "prefix_tree": ({"encoder": False, "decoder": {"w": True, "b": False}}, {DEC_W}),
  "prefix_tree_true_subtree": (
    {"encoder": True, "decoder": {"w": False, "b": False}},
    {ENC_W, ENC_B},
  ),
  "numpy_and_jax_bools": (
    {"encoder": np.bool_(False), "decoder": {"w": jnp.array(True), "b": np.array(False)}},
    {DEC_W},
  ),
  "callable_ndim": (lambda p: jax.tree.map(lambda x: x.ndim > 1, p), {ENC_W, DEC_W}),
  "callable_prefix": (lambda p: {"encoder": True, "decoder": False}, {ENC_W, ENC_B}),
  "callable_by_path": (
    lambda p: jax.tree_util.tree_map_with_path(
      lambda path, x: "b" not in jax.tree_util.keystr(path), p
    ),
    {ENC_W, DEC_W},
  ),
}

# (name, factory(mask, rate)) for both primitives and the four aliases, plus non-default couplings.
TRANSFORMS = {
  "decoupled_decay": lambda mask, rate: optax_decay.decoupled_decay(rate, mask),
  "decoupled_decay_schedule": lambda mask, rate: optax_decay.decoupled_decay(
    optax.linear_schedule(rate, rate / 4, 5), mask
  ),
  "add_l2_to_grads": lambda mask, rate: optax_decay.add_l2_to_grads(rate, mask),
  "adamw": lambda mask, rate: optax_decay.adamw(LR, weight_decay=rate, mask=mask),
  "adamw_none": lambda mask, rate: optax_decay.adamw(
    LR, weight_decay=rate, mask=mask, coupling="none"
  ),
  "adamw_schedule_cosine": lambda mask, rate: optax_decay.adamw(
    optax.cosine_decay_schedule(LR, 10),
    weight_decay=rate,
    mask=mask,
    coupling="schedule",
    peak_learning_rate=LR,
  ),
  "adam_l2": lambda mask, rate: optax_decay.adam_l2(LR, l2=rate, mask=mask),
  "sgdw": lambda mask, rate: optax_decay.sgdw(LR, momentum=0.9, weight_decay=rate, mask=mask),
  "sgdw_corrected": lambda mask, rate: optax_decay.sgdw(
    LR, momentum=0.9, weight_decay=rate, mask=mask, coupling="corrected"
  ),
  "sgd_l2": lambda mask, rate: optax_decay.sgd_l2(LR, momentum=0.9, l2=rate, mask=mask),
}
PRIMITIVES = ("decoupled_decay", "add_l2_to_grads")
ALIASES = ("adamw", "adam_l2", "sgdw", "sgd_l2")


def _trajectory(tx, params, steps=3, jit=False):
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  history = []
  for t in range(steps):
    updates, state = update(_grads(params, seed=10 + t), state, params)
    history.append(updates)
    params = optax.apply_updates(params, updates)
  return history


# Every mask form with both primitives; two forms (a prefix tree and a callable) with the rest.
LEAFWISE_CASES = [
  (t, m)
  for t in TRANSFORMS
  for m in MASKS
  if t.startswith(PRIMITIVES) or m in ("prefix_tree", "callable_by_path")
]


@pytest.mark.parametrize("tx_name, mask_name", LEAFWISE_CASES)
def test_masked_run_is_leafwise_the_decayed_or_the_undecayed_run(tx_name, mask_name):
  # Every leaf's trajectory depends only on that leaf, so with a mask each selected leaf must
  # follow the all-decayed run and each other leaf the decay-free run, bit for bit.
  mask, selected = MASKS[mask_name]
  make = TRANSFORMS[tx_name]
  params = _params()
  masked = _trajectory(make(mask, WD), params)
  decayed = _trajectory(make(None, WD), params)
  plain = _trajectory(make(None, 0.0), params)
  for step, (m, d, p) in enumerate(zip(masked, decayed, plain, strict=True)):
    m, d, p = _by_path(m), _by_path(d), _by_path(p)
    for path in m:
      want = d[path] if path in selected else p[path]
      _assert_same_bits(m[path], want, f"step {step}, {path}")
    # The decay does act on the selected leaves (the test would be vacuous otherwise).
    for path in selected:
      assert not np.array_equal(np.asarray(d[path]), np.asarray(p[path]))


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("tx_name", PRIMITIVES)
def test_primitives_change_exactly_the_selected_leaves(tx_name, mask_name):
  mask, selected = MASKS[mask_name]
  params = _params()
  updates = _grads(params, seed=1)
  tx = TRANSFORMS[tx_name](mask, WD)
  new, _ = tx.update(updates, tx.init(params), params)
  new, old, w = _by_path(new), _by_path(updates), _by_path(params)
  for path in new:
    if path in selected:
      want = np.asarray(old[path]) + np.float32(WD) * np.asarray(w[path])
    else:
      want = old[path]
    _assert_same_bits(new[path], want, path)


@pytest.mark.parametrize("mask_name", ["prefix_tree", "callable_ndim"])
@pytest.mark.parametrize("tx_name", ["adamw", "sgdw", "sgd_l2"])
def test_aliases_with_zero_gradients_shrink_only_the_selected_leaves(tx_name, mask_name):
  # With zero gradients and fresh state, Adam's and momentum's directions are exactly 0, so the
  # first step is -lr·(λ·w) on the selected leaves and exactly 0 elsewhere.
  mask, selected = MASKS[mask_name]
  params = _params()
  tx = TRANSFORMS[tx_name](mask, WD)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  new = _by_path(optax.apply_updates(params, updates))
  updates, w = _by_path(updates), _by_path(params)
  for path in updates:
    wp = np.asarray(w[path])
    if path in selected:
      step = (np.float32(WD) * wp) * np.float32(-LR)
      _assert_same_bits(updates[path], step, path)
      _assert_same_bits(new[path], wp + step, path)
    else:
      assert not np.any(np.asarray(updates[path])), path
      _assert_same_bits(new[path], wp, path)


def test_masked_leaf_update_is_passed_through_as_is():
  params = _params()
  updates = _grads(params, seed=1)
  tx = optax_decay.decoupled_decay(WD, {"encoder": False, "decoder": True})
  new, _ = tx.update(updates, tx.init(params), params)
  assert new["encoder"]["w"] is updates["encoder"]["w"]
  assert new["encoder"]["b"] is updates["encoder"]["b"]


@pytest.mark.parametrize(
  "tx_name, mask_name",
  [
    ("decoupled_decay", "prefix_tree"),
    ("decoupled_decay_schedule", "callable_ndim"),
    ("add_l2_to_grads", "callable_by_path"),
    ("adamw", "prefix_tree"),
    ("adamw_schedule_cosine", "callable_ndim"),
    ("sgdw", "full_tree"),
    ("sgd_l2", "callable_prefix"),
  ],
)
def test_masks_under_jit_match_eager(tx_name, mask_name):
  mask, _ = MASKS[mask_name]
  params = _params()
  tx = TRANSFORMS[tx_name](mask, WD)
  eager = _trajectory(tx, params)
  jitted = _trajectory(tx, params, jit=True)
  assert_trees_close(jitted, eager, rtol=1e-6, atol=1e-7)


def test_mask_true_is_rejected_in_favour_of_none():
  # A whole-tree True is what a path-based mask function returns on inject_hyperparams' step
  # count; rejecting it keeps that case from silently decaying the biases.
  with pytest.raises(ValueError, match="mask=None"):
    optax_decay.adamw(LR, weight_decay=WD, mask=True)
  with pytest.raises(ValueError, match="mask=None"):
    optax_decay.add_l2_to_grads(WD, mask=np.bool_(True))


# --- mismatched masks -----------------------------------------------------------------------

MASK_CTORS = {
  "decoupled_decay": lambda mask: optax_decay.decoupled_decay(WD, mask),
  "add_l2_to_grads": lambda mask: optax_decay.add_l2_to_grads(WD, mask),
  "scale_by_learning_rate_and_decay": lambda mask: optax_decay.scale_by_learning_rate_and_decay(
    LR, WD, mask
  ),
  "adamw": lambda mask: optax_decay.adamw(LR, weight_decay=WD, mask=mask),
  "adam_l2": lambda mask: optax_decay.adam_l2(LR, l2=WD, mask=mask),
  "sgdw": lambda mask: optax_decay.sgdw(LR, weight_decay=WD, mask=mask),
  "sgd_l2": lambda mask: optax_decay.sgd_l2(LR, l2=WD, mask=mask),
}

UNCOVERED = {
  # A parameter that no mask entry covers: the error names the parameter's path.
  "missing_subtree": ({"encoder": True}, "['decoder']"),
  "missing_leaf": ({"encoder": True, "decoder": {"w": True}}, "['decoder']['b']"),
  "callable_missing_leaf": (
    lambda p: {"encoder": {"w": True}, "decoder": True},
    "['encoder']['b']",
  ),
  "mask_deeper_than_params": (
    {"encoder": True, "decoder": {"w": {"kernel": True}, "b": False}},
    "['decoder']['w']",
  ),
}
UNUSED = {
  # A mask entry that matches no parameter: the error names the entry's path.
  "extra_top_level": ({"encoder": True, "decoder": False, "extra": False}, "['extra']"),
  "extra_nested": (
    {"encoder": True, "decoder": {"w": True, "b": False, "gamma": True}},
    "['decoder']['gamma']",
  ),
  "callable_extra": (lambda p: {**jax.tree.map(lambda x: x.ndim > 1, p), "head": True}, "['head']"),
}


@pytest.mark.parametrize("case", list(UNCOVERED))
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_mask_not_covering_a_parameter_names_its_path(ctor, case):
  mask, path = UNCOVERED[case]
  tx = MASK_CTORS[ctor](mask)
  with pytest.raises(ValueError, match="does not cover") as info:
    tx.init(_params())
  assert path in str(info.value)


@pytest.mark.parametrize("case", list(UNUSED))
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_mask_entry_matching_no_parameter_names_its_path(ctor, case):
  mask, path = UNUSED[case]
  tx = MASK_CTORS[ctor](mask)
  with pytest.raises(ValueError, match="matches no parameter") as info:
    tx.init(_params())
  assert path in str(info.value)


def test_mismatch_is_also_caught_at_update_when_the_params_change():
  # A mask that fitted the params at init must not silently apply to other params later.
  tx = optax_decay.decoupled_decay(WD, {"encoder": True, "decoder": False})
  state = tx.init(_params())
  other = {"encoder": _params()["encoder"], "head": _params()["decoder"]}
  with pytest.raises(ValueError, match=re.escape("['head']")):
    tx.update(other, state, other)


@pytest.mark.parametrize(
  "bad",
  [1, 0, 1.0, "yes", np.float32(1.0), jnp.array([True, False]), np.array([True]), jnp.array(1)],
  ids=repr,
)
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_non_bool_mask_entries_raise_type_error_naming_the_entry(ctor, bad):
  tx = MASK_CTORS[ctor]({"encoder": True, "decoder": {"w": bad, "b": False}})
  with pytest.raises(TypeError, match=re.escape("['decoder']['w']")):
    tx.init(_params())


@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_callable_returning_non_bools_raises_type_error(ctor):
  # A common mistake: returning the arrays' ndim instead of a comparison.
  tx = MASK_CTORS[ctor](lambda p: jax.tree.map(lambda x: x.ndim, p))
  with pytest.raises(TypeError, match="must be a bool"):
    tx.init(_params())


@pytest.mark.parametrize("false", [False, np.bool_(False), jnp.array(False)], ids=repr)
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_mask_false_raises_at_construction(ctor, false):
  with pytest.raises(ValueError, match="mask=False"):
    MASK_CTORS[ctor](false)


@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_traced_mask_raises_type_error(ctor):
  @jax.jit
  def build(flag):
    MASK_CTORS[ctor](flag)
    return flag

  with pytest.raises(TypeError, match="traced"):
    build(jnp.array(True))


# --- masks that select nothing or everything --------------------------------------------------

NOTHING = {
  "all_false_tree": {"encoder": False, "decoder": {"w": False, "b": False}},
  "callable_all_false": lambda p: jax.tree.map(lambda x: False, p),
}


@pytest.mark.parametrize("case", list(NOTHING))
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_mask_selecting_no_float_leaf_warns_at_init(ctor, case):
  tx = MASK_CTORS[ctor](NOTHING[case])
  params = _params()
  with pytest.warns(UserWarning, match="excludes every floating-point") as record:
    state = tx.init(params)
  assert len([w for w in record if "excludes every" in str(w.message)]) == 1
  # ...and only at init: the update itself is silent (warnings are errors in this suite).
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    tx.update(_grads(params, 1), state, params)


def test_mask_selecting_only_integer_leaves_warns():
  params = {"w": jnp.ones((2, 2)), "step": jnp.zeros((), jnp.int32)}
  tx = optax_decay.decoupled_decay(WD, {"w": False, "step": True})
  with pytest.warns(UserWarning, match="excludes every floating-point"):
    tx.init(params)


@pytest.mark.parametrize(
  "mask",
  [
    {"encoder": True, "decoder": {"w": True, "b": True}},
    lambda p: jax.tree.map(lambda x: x.ndim >= 1, p),
  ],
  ids=["tree", "callable"],
)
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_mask_selecting_every_float_leaf_warns_at_init(ctor, mask):
  tx = MASK_CTORS[ctor](mask)
  with pytest.warns(UserWarning, match="selects all 4 floating-point"):
    tx.init(_params())


def test_stacked_layers_ndim_mask_warns():
  # The failure the warning is for: with scanned layers every leaf has ndim > 1.
  params = {"layers": {"w": jnp.ones((3, 4, 4)), "b": jnp.ones((3, 4))}}
  tx = optax_decay.adamw(LR, weight_decay=WD, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
  with pytest.warns(UserWarning, match="stacked or scanned"):
    tx.init(params)


@pytest.mark.parametrize(
  "params, mask",
  [
    ({"w": jnp.ones((2, 2))}, {"w": True}),  # one float leaf: selecting it is no mistake
    ({"w": jnp.ones((2, 2)), "i": jnp.zeros(2, jnp.int32)}, {"w": True, "i": False}),
    (_params(), None),
    (_params(), {"encoder": True, "decoder": {"w": True, "b": False}}),
  ],
  ids=["single_leaf", "float_and_int", "mask_none", "some"],
)
@pytest.mark.parametrize("ctor", list(MASK_CTORS))
def test_sensible_masks_do_not_warn(ctor, params, mask):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    MASK_CTORS[ctor](mask).init(params)


def test_mask_warning_points_at_the_caller():
  with pytest.warns(UserWarning) as record:
    optax_decay.decoupled_decay(WD, {"encoder": False, "decoder": False}).init(_params())
  assert record[0].filename == __file__


# --- optax.inject_hyperparams ----------------------------------------------------------------


def _kernels(p):
  return jax.tree.map(lambda x: x.ndim > 1, p)


@pytest.mark.parametrize("factory", [optax_decay.adamw, optax_decay.sgdw])
def test_plain_inject_hyperparams_with_callable_mask_is_an_error_not_silence(factory):
  # optax.inject_hyperparams calls the mask as a schedule, mask(step) -> False; the decay must
  # refuse that loudly (plain optax.adamw silently decays nothing here) and point at the fix.
  tx = optax.inject_hyperparams(factory)(learning_rate=LR, weight_decay=WD, mask=_kernels)
  with pytest.raises(ValueError, match=re.escape("static_args=('mask',)")):
    tx.init(_params())


def test_plain_optax_adamw_under_inject_silently_decays_nothing():
  # The pitfall the error above prevents, documented against optax itself.
  params = _params()
  tx = optax.inject_hyperparams(optax.adamw)(learning_rate=LR, weight_decay=WD, mask=_kernels)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  assert not any(np.any(np.asarray(u)) for u in jax.tree.leaves(updates))


def test_plain_inject_hyperparams_with_path_based_mask_is_not_silent():
  by_path = MASKS["callable_by_path"][0]
  tx = optax.inject_hyperparams(optax_decay.adamw)(learning_rate=LR, weight_decay=WD, mask=by_path)
  with pytest.raises(ValueError, match=re.escape("static_args=('mask',)")):
    tx.init(_params())


def test_path_based_mask_under_optax_decay_inject_hyperparams_spares_the_biases():
  # The remedy for the case above: optax_decay.inject_hyperparams keeps `mask` static.
  by_path, selected = MASKS["callable_by_path"]
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = optax_decay.inject_hyperparams(optax_decay.adamw)(
    learning_rate=LR, weight_decay=WD, mask=by_path
  )
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  for path, u in _by_path(updates).items():
    assert np.any(np.asarray(u)) == (path in selected), path


@pytest.mark.parametrize(
  "mask_name, jit",
  [("callable_ndim", False), ("callable_by_path", True), ("prefix_tree", True)],
)
def test_inject_hyperparams_with_static_mask_matches_plain_adamw(mask_name, jit):
  mask, selected = MASKS[mask_name]
  params = _params()
  injected = optax.inject_hyperparams(optax_decay.adamw, static_args=("mask",))(
    learning_rate=LR, weight_decay=WD, mask=mask
  )
  plain = optax_decay.adamw(LR, weight_decay=WD, mask=mask)
  got = _trajectory(injected, params, jit=jit)
  want = _trajectory(plain, params, jit=jit)
  # inject_hyperparams stores b1, b2, ... as float32 arrays rather than Python floats, which moves
  # the bias correction by an ulp or so (optax.adamw does the same): close, not bitwise.
  assert_trees_close(got, want, rtol=2e-5, atol=1e-6)
  # And bit for bit what optax.adamw does under the same injection.
  reference = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
    learning_rate=LR, weight_decay=WD, mask=mask
  )
  ref = _trajectory(reference, params, jit=jit)
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
    _assert_same_bits(x, y)
  # The unselected leaves really are undecayed.
  undecayed = _trajectory(optax_decay.adamw(LR, weight_decay=0.0), params, jit=jit)
  for g, u in zip(got, undecayed, strict=True):
    g, u = _by_path(g), _by_path(u)
    for path in g:
      close = np.allclose(np.asarray(g[path]), np.asarray(u[path]), rtol=2e-5, atol=1e-6)
      assert close != (path in selected), path


# --- Flax NNX ---------------------------------------------------------------------------------


class _MLP(nnx.Module):
  def __init__(self, rngs):
    normal = nnx.initializers.normal(1.0)
    self.l1 = nnx.Linear(3, 4, bias_init=normal, rngs=rngs)
    self.l2 = nnx.Linear(4, 2, bias_init=normal, rngs=rngs)

  def __call__(self, x):
    return self.l2(jax.nn.relu(self.l1(x)))


def _nnx_mask(model):
  return jax.tree.map(lambda p: p.ndim > 1, nnx.state(model, nnx.Param))


def _nnx_arrays(model):
  return {
    jax.tree_util.keystr(k): np.asarray(v)
    for k, v in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
  }


@pytest.mark.parametrize("kind", ["nnx_state_mask", "plain_dict_mask", "callable"])
def test_nnx_optimizer_decays_kernels_exactly_and_leaves_biases(kind):
  model = _MLP(nnx.Rngs(0))
  if kind == "nnx_state_mask":
    mask = _nnx_mask(model)
  elif kind == "plain_dict_mask":
    mask = {"l1": {"kernel": True, "bias": False}, "l2": {"kernel": True, "bias": False}}
  else:
    mask = _kernels
  opt = nnx.Optimizer(model, optax_decay.adamw(LR, weight_decay=WD, mask=mask), wrt=nnx.Param)
  before = _nnx_arrays(model)
  assert all(
    np.any(v) for v in before.values()
  )  # biases are non-zero, so "unchanged" means something
  for _ in range(2):
    grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    # Zero gradients: Adam's direction is exactly 0, so only the decay moves the weights.
    opt.update(model, grads)
    after = _nnx_arrays(model)
    for path, w in before.items():
      if "kernel" in path:
        _assert_same_bits(after[path], w + (np.float32(WD) * w) * np.float32(-LR), path)
      else:
        _assert_same_bits(after[path], w, path)
    before = after


def test_plain_optax_adamw_with_nnx_state_mask_fails_in_nnx_optimizer():
  # The pitfall (jax #31256, flax #5372) that optax_decay.adamw avoids: init sees Variables,
  # update sees plain arrays, and optax's prefix-tree mask no longer matches.
  model = _MLP(nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adamw(LR, weight_decay=WD, mask=_nnx_mask(model)), wrt=nnx.Param)
  grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  with pytest.raises(ValueError):
    opt.update(model, grads)


def test_nnx_jit_training_matches_optax_adamw_on_the_functional_state():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)

  def loss_fn(model):
    return jnp.mean((model(x) - y) ** 2)

  model = _MLP(nnx.Rngs(0))
  # A separate, identically initialized model for the reference (nnx.split shares Variables).
  graphdef, state0 = nnx.split(_MLP(nnx.Rngs(0)))
  opt = nnx.Optimizer(
    model, optax_decay.adamw(LR, weight_decay=WD, mask=_nnx_mask(model)), wrt=nnx.Param
  )

  @nnx.jit
  def step(model, opt):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  losses = [float(step(model, opt)) for _ in range(4)]
  assert losses[-1] < losses[0]

  # Reference: optax.adamw in a functional loop where init and update both see nnx.State, the
  # one setting in which its Variable-shaped mask does work.
  tx = optax.adamw(LR, weight_decay=WD, mask=jax.tree.map(lambda p: p.ndim > 1, state0))
  opt_state = tx.init(state0)

  @jax.jit
  def ref_step(state, opt_state):
    grads = jax.grad(lambda s: loss_fn(nnx.merge(graphdef, s)))(state)
    updates, opt_state = tx.update(grads, opt_state, state)
    return optax.apply_updates(state, updates), opt_state

  state = state0
  for _ in range(4):
    state, opt_state = ref_step(state, opt_state)
  got = _nnx_arrays(model)
  want = {
    jax.tree_util.keystr(k): np.asarray(v)
    for k, v in jax.tree_util.tree_flatten_with_path(state)[0]
  }
  assert got.keys() == want.keys()
  for path in got:
    np.testing.assert_allclose(got[path], want[path], rtol=1e-5, atol=1e-6, err_msg=path)


def test_nnx_training_leaves_biases_on_the_undecayed_path():
  # With the bias masked out, training with decay on the kernels only differs from training with
  # no decay at all; with everything decayed, the biases differ too.
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)

  def run(tx_fn):
    model = _MLP(nnx.Rngs(0))
    opt = nnx.Optimizer(model, tx_fn(model), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
      # The loss depends on the biases only additively after the last layer: its gradient with
      # respect to l2.bias does not depend on any weight, so l2.bias's path is decay-only.
      grads = nnx.grad(lambda m: jnp.mean(m(x)))(model)
      opt.update(model, grads)

    for _ in range(3):
      step(model, opt)
    return _nnx_arrays(model)

  L2_BIAS = "['l2']['bias'].value"  # noqa: N806
  masked = run(lambda m: optax_decay.adamw(LR, weight_decay=WD, mask=_nnx_mask(m)))
  undecayed = run(lambda m: optax_decay.adamw(LR, weight_decay=0.0))
  decayed = run(lambda m: optax_decay.adamw(LR, weight_decay=WD))
  np.testing.assert_allclose(masked[L2_BIAS], undecayed[L2_BIAS], rtol=1e-6)
  assert not np.allclose(decayed[L2_BIAS], undecayed[L2_BIAS], rtol=1e-6)


# --- Flax Linen -------------------------------------------------------------------------------


class _LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Dense(4, bias_init=nn.initializers.normal(1.0))(x)
    return nn.Dense(2, bias_init=nn.initializers.normal(1.0))(nn.relu(x))


def _linen_params():
  return _LinenMLP().init(jax.random.key(0), jnp.ones((1, 3)))


@pytest.mark.parametrize("factory", [optax_decay.adamw, optax_decay.sgdw])
def test_linen_params_with_callable_mask(factory):
  variables = _linen_params()
  assert set(variables) == {"params"}
  tx = factory(LR, weight_decay=WD, mask=_kernels)
  zeros = jax.tree.map(jnp.zeros_like, variables)
  updates, _ = tx.update(zeros, tx.init(variables), variables)
  new = _by_path(optax.apply_updates(variables, updates))
  for path, w in _by_path(variables).items():
    w = np.asarray(w)
    if path.endswith("['kernel']"):
      _assert_same_bits(new[path], w + (np.float32(WD) * w) * np.float32(-LR), path)
    else:
      assert path.endswith("['bias']")
      _assert_same_bits(new[path], w, path)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_linen_training_equals_optax_adamw_bit_for_bit(jit):
  variables = _linen_params()
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)

  def run(tx):
    grad = jax.grad(lambda v: jnp.mean(_LinenMLP().apply(v, x) ** 2))

    def step(v, s):
      updates, s = tx.update(grad(v), s, v)
      return optax.apply_updates(v, updates), s

    step = jax.jit(step) if jit else step
    v, s = variables, tx.init(variables)
    for _ in range(3):
      v, s = step(v, s)
    return v

  got = run(optax_decay.adamw(LR, weight_decay=WD, mask=_kernels))
  want = run(optax.adamw(LR, weight_decay=WD, mask=_kernels))
  for x_, y_ in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    _assert_same_bits(x_, y_)


def test_frozen_dict_params_with_plain_dict_mask():
  from flax.core import freeze

  variables = freeze(_linen_params())
  mask = {"params": {"Dense_0": {"kernel": True, "bias": False}, "Dense_1": False}}
  tx = optax_decay.decoupled_decay(WD, mask)
  updates = jax.tree.map(jnp.zeros_like, variables)
  new, _ = tx.update(updates, tx.init(variables), variables)
  new = _by_path(new)
  w = _by_path(variables)
  k0 = "['params']['Dense_0']['kernel']"
  _assert_same_bits(new[k0], np.float32(WD) * np.asarray(w[k0]), k0)
  for path in new:
    if path != k0:
      assert not np.any(np.asarray(new[path])), path


# --- optax.flatten: the mask sees one flat vector --------------------------------------------


def test_a_mask_tree_under_optax_flatten_is_an_error_that_says_why():
  params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
  tx = optax.flatten(optax_decay.adamw(1e-3, weight_decay=0.1, mask={"w": True, "b": False}))
  with pytest.raises(ValueError, match="single array.*optax.flatten"):
    tx.init(params)


def test_a_mask_function_under_optax_flatten_warns_that_nothing_is_decayed():
  params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
  tx = optax.flatten(optax_decay.adamw(1e-3, weight_decay=0.1, mask=optax_decay.decay_mask))
  with pytest.warns(UserWarning, match="nothing is decayed.*optax.flatten"):
    tx.init(params)


def test_the_masked_decay_outside_optax_flatten_works():
  params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
  grads = jax.tree.map(jnp.zeros_like, params)
  tx = optax.chain(
    optax.flatten(optax.scale_by_adam()),
    optax_decay.decoupled_decay(0.1, mask=optax_decay.decay_mask),
    optax.scale_by_learning_rate(0.1),
  )
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.01)
  np.testing.assert_array_equal(updates["b"], 0.0)
