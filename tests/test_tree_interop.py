"""Updates and parameters as Flax NNX states, and optax's tree utilities over our states."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_decay

nnx = pytest.importorskip("flax.nnx")


def _split_model_and_grads():
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  grads = jax.grad(lambda st: jnp.sum(nnx.merge(graphdef, st)(jnp.ones(3)) ** 2))(state)
  return state, grads


TRANSFORMS = {
  "adamw": lambda: optax_decay.adamw(1e-2, weight_decay=0.1),
  "adam_l2": lambda: optax_decay.adam_l2(1e-2, l2=0.1),
  "adams": lambda: optax_decay.adams(1e-2, weight_decay=0.1),
  "sgdw_none": lambda: optax_decay.sgdw(1e-2, weight_decay=0.1, coupling="none"),
  "l1": lambda: optax.chain(optax_decay.add_l1_to_grads(0.1), optax.sgd(1e-2)),
  "anchor": lambda: optax.chain(
    optax.scale_by_adam(), optax_decay.decay_to_anchor(0.1), optax.scale_by_learning_rate(1e-2)
  ),
  "proximal": lambda: optax.chain(
    optax.sgd(1e-2), optax_decay.proximal_l1(0.1, learning_rate=1e-2)
  ),
  "compensated": lambda: optax.chain(
    optax_decay.sgdw(1e-2, weight_decay=0.1), optax_decay.compensated_summation()
  ),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_gradients_of_an_nnx_state_keep_their_structure(name):
  # nnx.split / nnx.merge training: gradients and parameters are both States of Params.
  state, grads = _split_model_and_grads()
  tx = TRANSFORMS[name]()
  updates, _ = jax.jit(tx.update)(grads, tx.init(state), state)
  assert jax.tree.structure(updates) == jax.tree.structure(grads)
  new_state = optax.apply_updates(state, updates)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_adamw_on_nnx_states_equals_optax_adamw_bit_for_bit():
  state, grads = _split_model_and_grads()
  ours, theirs = optax_decay.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)
  u_ours, _ = ours.update(grads, ours.init(state), state)
  u_theirs, _ = theirs.update(grads, theirs.init(state), state)
  for a, b in zip(jax.tree.leaves(u_ours), jax.tree.leaves(u_theirs), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
  "tx, parameter_shaped",
  [
    (optax_decay.adamw(1e-3, weight_decay=1e-2, mask={"w": True, "b": False}), 4),  # mu, nu
    (optax_decay.adam_l2(1e-3, l2=1e-2, mask={"w": True, "b": False}), 4),
    (optax_decay.sgdw(1e-3, 0.9, weight_decay=1e-2, mask={"w": True, "b": False}), 2),  # trace
  ],
  ids=["adamw", "adam_l2", "sgdw"],
)
def test_tree_map_params_sees_the_moments_as_parameter_shaped(tx, parameter_shaped):
  # optax derives optimizer-state shardings this way; init is called on a leafless placeholder.
  params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
  labelled = optax.tree_utils.tree_map_params(
    tx, lambda p: "param", tx.init(params), transform_non_params=lambda _: "other"
  )
  leaves = jax.tree.leaves(labelled)
  assert leaves.count("param") == parameter_shaped
  assert set(leaves) <= {"param", "other"}
