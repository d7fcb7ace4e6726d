"""decoupled_decay_groups: one rate per group of leaves, against per-leaf NumPy references."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from flax import nnx
from helpers import assert_histories_close, assert_trees_equal, enable_x64, run_optimizer

import optax_decay

RNG = np.random.default_rng(7)
INIT = {
  "embed": RNG.normal(size=(6, 3)),
  "dense": {"kernel": RNG.normal(size=(3, 2)), "bias": RNG.normal(size=(2,))},
  "norm": {"scale": 1 + 0.1 * RNG.normal(size=(2,))},
}
TARGET = jax.tree.map(lambda x: RNG.normal(size=x.shape), INIT)
LABELS = {"embed": "embed", "dense": {"kernel": "decay", "bias": "none"}, "norm": "none"}
RATES = {"decay": 0.3, "embed": 0.02, "none": 0.0}
LEAF_RATE = {"embed": 0.02, "dense/kernel": 0.3, "dense/bias": 0.0, "norm/scale": 0.0}
STEPS = 25


def _params(dtype):
  return jax.tree.map(lambda x: jnp.asarray(x, dtype), INIT)


def _loss(params):
  """½ Σ ||p - target||²: its gradient p - target is written by hand in the references."""
  sq = jax.tree.map(lambda p, t: 0.5 * jnp.sum((p - t) ** 2), params, TARGET)
  return sum(jax.tree.leaves(sq))


def _flat(tree):
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    out["/".join(str(getattr(e, "key", e)) for e in path)] = leaf
  return out


def numpy_adamw_groups(lr, leaf_rate, steps=STEPS):
  """AdamW (coupling "lr") leaf by leaf in float64, each leaf with its own rate λ(count)."""
  target = _flat(TARGET)
  return references.adam(
    _flat(INIT),
    lambda params: {k: w - target[k] for k, w in params.items()},
    steps,
    lr,
    weight_decay=leaf_rate,
  )


def _adamw_groups(lr, rates, labels):
  return optax.chain(
    optax.scale_by_adam(),
    optax_decay.decoupled_decay_groups(rates, labels),
    optax.scale_by_learning_rate(lr),
  )


def _assert_close_to_numpy(got, want, rtol=1e-10):
  assert_histories_close([_flat(g) for g in got], want, rtol=rtol, atol=1e-13, dtype=jnp.float64)


LABEL_FORMS = {
  "tree": LABELS,
  "callable": lambda params: LABELS,
  "prefix": {"embed": "embed", "dense": {"kernel": "decay", "bias": "none"}, "norm": "none"},
}


@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_adamw_with_groups_matches_per_leaf_numpy(form):
  tx = _adamw_groups(0.05, RATES, LABEL_FORMS[form])
  with enable_x64(True):
    got = run_optimizer(tx, jax.grad(_loss), _params(jnp.float64), STEPS)
  _assert_close_to_numpy(got, numpy_adamw_groups(0.05, LEAF_RATE))


def test_schedules_per_group_see_the_step_count():
  def ramp(count):  # computed in the default float type (float64 here), unlike optax's schedules
    return 0.05 * jnp.minimum(count, 10).astype(float)

  rates = {"decay": ramp, "embed": 0.02, "none": 0.0}
  tx = _adamw_groups(0.05, rates, LABELS)
  with enable_x64(True):
    got = run_optimizer(tx, jax.grad(_loss), _params(jnp.float64), STEPS)
  leaf_rate = dict(LEAF_RATE, **{"dense/kernel": lambda c: 0.5 * min(c, 10) / 10})
  _assert_close_to_numpy(got, numpy_adamw_groups(0.05, leaf_rate))


def test_first_in_the_chain_it_is_l2_per_group():
  # SGD with momentum on loss + Σ_g κ_g/2 ||w||², the penalty's gradient by jax.grad.
  def penalized(params):
    flat = _flat(params)
    return _loss(params) + sum(0.5 * LEAF_RATE[k] * jnp.sum(w**2) for k, w in flat.items())

  grouped = optax.chain(optax_decay.decoupled_decay_groups(RATES, LABELS), optax.sgd(0.1, 0.9))
  reference = optax.sgd(0.1, 0.9)
  with enable_x64(True):
    got = run_optimizer(grouped, jax.grad(_loss), _params(jnp.float64), STEPS)
    want = run_optimizer(reference, jax.grad(penalized), _params(jnp.float64), STEPS)
  for g, w in zip(got, want, strict=True):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14), g, w)


def test_two_groups_equal_decoupled_decay_with_a_mask_bitwise():
  labels = {"embed": "decay", "dense": {"kernel": "decay", "bias": "none"}, "norm": "none"}
  mask = {"embed": True, "dense": {"kernel": True, "bias": False}, "norm": False}
  grouped = _adamw_groups(1e-2, {"decay": 0.1, "none": 0.0}, labels)
  masked = optax.chain(
    optax.scale_by_adam(),
    optax_decay.decoupled_decay(0.1, mask),
    optax.scale_by_learning_rate(1e-2),
  )
  got = run_optimizer(grouped, jax.grad(_loss), _params(jnp.float32), 10)
  want = run_optimizer(masked, jax.grad(_loss), _params(jnp.float32), 10)
  for g, w in zip(got, want, strict=True):
    assert_trees_equal(g, w)


def test_a_single_label_covers_the_whole_tree():
  tx = optax_decay.decoupled_decay_groups({"all": 0.5}, "all")
  params = _params(jnp.float32)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  jax.tree.map(lambda u, p: np.testing.assert_allclose(u, 0.5 * p, rtol=1e-7), updates, params)


def test_unused_groups_integer_leaves_and_bfloat16():
  params = {"w": jnp.ones((2, 2), jnp.bfloat16), "step": jnp.arange(3)}
  tx = optax_decay.decoupled_decay_groups(
    {"a": 0.25, "b": 1.0, "unused": 3.0}, {"w": "a", "step": "b"}
  )
  updates = {"w": jnp.zeros((2, 2), jnp.bfloat16), "step": jnp.zeros(3, jnp.int32)}
  new, _ = tx.update(updates, tx.init(params), params)
  assert new["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(new["w"], np.float32), 0.25)
  np.testing.assert_array_equal(new["step"], 0)


def test_nnx_labels_from_decay_mask_in_an_optimizer():
  class Model(nnx.Module):
    def __init__(self, rngs):
      self.embed = nnx.Embed(8, 4, rngs=rngs)
      self.linear = nnx.Linear(4, 4, rngs=rngs)
      self.norm = nnx.LayerNorm(4, rngs=rngs)

  def labels(params):
    decayed = optax_decay.decay_mask(params)
    named = jax.tree_util.tree_map_with_path(
      lambda path, d: (
        "embed" if "embed" in jax.tree_util.keystr(path) else ("decay" if d else "none")
      ),
      decayed,
    )
    return named

  model = Model(nnx.Rngs(0))
  before = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  tx = _adamw_groups(0.1, {"decay": 0.5, "embed": 0.05, "none": 0.0}, labels)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
  after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  factors = {"embed": 1 - 0.1 * 0.05, "linear/kernel": 1 - 0.1 * 0.5}
  for path, old in _flat(before).items():
    factor = factors.get(path, factors.get(path.split("/")[0], 1.0))
    np.testing.assert_allclose(
      _flat(after)[path], np.asarray(old) * factor, rtol=1e-6, err_msg=path
    )


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "rates,error,message",
  [
    ([0.1], TypeError, "mapping from labels to rates"),
    (0.1, TypeError, "for one rate use decoupled_decay"),
    ({}, ValueError, "empty"),
    ({"a": -0.1}, ValueError, r"weight_decay\['a'\] must be non-negative"),
    ({"a": float("nan")}, ValueError, "finite"),
    ({"a": "0.1"}, TypeError, r"weight_decay\['a'\] must be a float"),
  ],
)
def test_bad_rates_fail_at_construction(rates, error, message):
  with pytest.raises(error, match=message):
    optax_decay.decoupled_decay_groups(rates, "a")


@pytest.mark.parametrize(
  "labels,error,message",
  [
    ({"embed": "embed", "dense": "decay", "norm": "typo"}, ValueError, r"'typo' at \['norm'\]"),
    ({"embed": "embed", "dense": "decay"}, ValueError, r"param_labels.*does not cover.*\['norm'\]"),
    (
      {"embed": "embed", "dense": "decay", "norm": "none", "head": "decay"},
      ValueError,
      "matches no parameter",
    ),
    ({"embed": np.array("embed"), "dense": "decay", "norm": "none"}, TypeError, "hashable"),
  ],
)
def test_bad_labels_fail_at_init(labels, error, message):
  tx = optax_decay.decoupled_decay_groups(RATES, labels)
  with pytest.raises(error, match=message):
    tx.init(_params(jnp.float32))


def test_update_needs_params():
  tx = optax_decay.decoupled_decay_groups(RATES, LABELS)
  params = _params(jnp.float32)
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(params, tx.init(params))


def test_equinox_filtered_module_with_none_leaves():
  model = eqx.nn.MLP(3, 2, 4, depth=1, key=jax.random.key(0))
  params = eqx.filter(model, eqx.is_inexact_array)  # the activation functions become None

  def labels(params):
    return jax.tree.map(lambda decay: "decay" if decay else "none", optax_decay.decay_mask(params))

  tx = optax_decay.decoupled_decay_groups({"decay": 0.5, "none": 0.0}, labels)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert updates.activation is None
  np.testing.assert_allclose(updates.layers[0].weight, 0.5 * params.layers[0].weight)
  np.testing.assert_array_equal(updates.layers[0].bias, 0.0)
