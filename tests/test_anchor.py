"""`decay_to_anchor` pulls weights toward a reference: checked with NumPy loops and jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import assert_trees_close, assert_trees_equal, enable_x64

import optax_decay

RNG = np.random.default_rng(3)
X = RNG.normal(size=(10, 3))
Y = RNG.normal(size=(10, 2))
START = {"w": RNG.normal(size=(3, 2)), "b": RNG.normal(size=(2,))}
PRETRAINED = {"w": RNG.normal(size=(3, 2)), "b": RNG.normal(size=(2,))}


def as_jax(tree, dtype):
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def loss(params):
  r = jnp.asarray(X, params["w"].dtype) @ params["w"] + params["b"] - Y
  return 0.5 * jnp.mean(jnp.sum(r**2, axis=1))


@pytest.mark.parametrize("jit", [False, True])
def test_zero_gradients_converge_geometrically_to_anchor(jit):
  """Fine-tuning with nothing to learn: w_t − a = (1 − lr·κ)^t (w_0 − a), as a NumPy loop."""
  lr, wd, steps = 0.1, 0.3, 40
  with enable_x64(True):
    tx = optax.chain(optax_decay.decay_to_anchor(wd), optax.scale_by_learning_rate(lr))
    state = tx.init(as_jax(PRETRAINED, jnp.float64))  # the anchor: the pretrained weights
    params = as_jax(START, jnp.float64)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def step(params, state):
      updates, state = tx.update(zeros, state, params)
      return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    no_gradient = {k: np.zeros_like(v) for k, v in START.items()}
    want = references.sgd(
      START, lambda p: no_gradient, steps, lr, weight_decay=wd, anchor=PRETRAINED
    )
    for ref in want:
      before = {k: np.asarray(v) - PRETRAINED[k] for k, v in params.items()}
      params, state = step(params, state)
      for k in ref:
        after = np.asarray(params[k]) - PRETRAINED[k]
        np.testing.assert_allclose(after / before[k], 1 - lr * wd, rtol=1e-11)
      assert_trees_close(params, ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
      np.asarray(params["w"]) - PRETRAINED["w"],
      (1 - lr * wd) ** steps * (START["w"] - PRETRAINED["w"]),
      rtol=1e-12,
    )
    assert int(state[0].count) == steps


def test_explicit_zero_anchor_equals_decoupled_decay_bitwise():
  mask = {"w": True, "b": False}

  def chain(decay):
    return optax.chain(optax.scale_by_adam(), decay, optax.scale_by_learning_rate(0.05))

  ours = chain(
    optax_decay.decay_to_anchor(0.2, anchor={"w": np.zeros((3, 2)), "b": np.zeros(2)}, mask=mask)
  )
  theirs = chain(optax_decay.decoupled_decay(0.2, mask))
  params_a = params_b = as_jax(START, jnp.float32)
  state_a, state_b = ours.init(params_a), theirs.init(params_b)
  step_a, step_b = jax.jit(ours.update), jax.jit(theirs.update)
  grad = jax.jit(jax.grad(loss))  # one function for both sides: equal weights, equal gradients
  for _ in range(20):
    updates_a, state_a = step_a(grad(params_a), state_a, params_a)
    updates_b, state_b = step_b(grad(params_b), state_b, params_b)
    assert_trees_equal(updates_a, updates_b)
    params_a = optax.apply_updates(params_a, updates_a)
    params_b = optax.apply_updates(params_b, updates_b)


def test_first_in_chain_is_gradient_descent_on_l2_sp_penalty():
  """Before plain SGD it is the gradient of κ/2·||w − w°||² (Li et al.), compared by jax.grad."""
  wd, lr = 0.4, 0.2
  with enable_x64(True):
    anchor = as_jax(PRETRAINED, jnp.float64)

    def penalized(params):
      distance = sum(jnp.sum((params[k] - anchor[k]) ** 2) for k in params)
      return loss(params) + 0.5 * wd * distance

    tx = optax.chain(optax_decay.decay_to_anchor(wd, anchor=PRETRAINED), optax.sgd(lr))
    params = ref = as_jax(START, jnp.float64)
    state = tx.init(params)

    @jax.jit
    def step(params, state, ref):
      updates, state = tx.update(jax.grad(loss)(params), state, params)
      ref = jax.tree.map(lambda p, g: p - lr * g, ref, jax.grad(penalized)(ref))
      return optax.apply_updates(params, updates), state, ref

    for _ in range(15):
      params, state, ref = step(params, state, ref)
      assert_trees_close(params, ref, rtol=1e-13, atol=1e-15)


def test_schedule_sees_count_from_zero():
  seen = []

  def wd_schedule(count):
    seen.append(int(count))
    return 0.5 * (count + 1.0)

  tx = optax_decay.decay_to_anchor(wd_schedule, anchor={"w": jnp.array([1.0])})
  state = tx.init({"w": jnp.array([0.0])})
  params = {"w": jnp.array([3.0])}
  for t in range(3):
    updates, state = tx.update({"w": jnp.zeros(1)}, state, params)
    np.testing.assert_array_equal(updates["w"], [0.5 * (t + 1) * 2.0])
  assert seen == [0, 1, 2]


def test_state_holds_a_copy_in_the_parameters_dtype_and_skips_integers():
  params = {"w": jnp.ones(2, jnp.bfloat16), "n": jnp.array(4)}
  state = optax_decay.decay_to_anchor(0.1).init(params)
  assert isinstance(state, optax_decay.DecayToAnchorState)
  assert state.anchor["n"] is None
  assert state.anchor["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(state.anchor["w"], np.float32), [1.0, 1.0])
  explicit = optax_decay.decay_to_anchor(0.1, anchor={"w": np.array([2.0, 3.0])}).init(params)
  assert explicit.anchor["w"].dtype == jnp.bfloat16
  tx = optax_decay.decay_to_anchor(0.5)
  updates, _ = tx.update(
    {"w": jnp.zeros(2, jnp.bfloat16), "n": jnp.array(1)},
    tx.init(params),
    {"w": jnp.full(2, 3.0, jnp.bfloat16), "n": jnp.array(9)},
  )
  assert updates["w"].dtype == jnp.bfloat16 and int(updates["n"]) == 1
  np.testing.assert_array_equal(np.asarray(updates["w"], np.float32), [1.0, 1.0])


def test_mask_excludes_leaves_and_callable_sees_parameters():
  seen = []

  def mask(params):
    seen.append(np.asarray(params["w"]))
    return {"w": True, "b": False}

  params = as_jax(START, jnp.float32)
  tx = optax_decay.decay_to_anchor(0.5, anchor=as_jax(PRETRAINED, jnp.float32), mask=mask)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  np.testing.assert_array_equal(updates["b"], np.zeros(2))
  np.testing.assert_allclose(updates["w"], 0.5 * (START["w"] - PRETRAINED["w"]), rtol=1e-6)
  assert len(seen) == 2
  for value in seen:
    np.testing.assert_array_equal(value, params["w"])


def test_anchor_mismatch_errors_name_the_path():
  params = {"layer": {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}}
  cases = [
    ({"layer": {"w": np.ones((2, 2))}}, r"no entry for the parameter at \['layer'\]\['b'\]"),
    ({"layer": {"w": np.ones((2, 3)), "b": np.ones(2)}}, r"at \['layer'\]\['w'\] has shape"),
    (
      {"layer": {"w": np.ones((2, 2)), "b": np.ones(2), "c": np.ones(1)}},
      r"\['layer'\]\['c'\] matches no parameter",
    ),
  ]
  for anchor, message in cases:
    tx = optax_decay.decay_to_anchor(0.1, anchor=anchor)
    with pytest.raises(ValueError, match=message):
      tx.init(params)
  tx = optax_decay.decay_to_anchor(0.1)
  with pytest.raises(ValueError, match="decay_to_anchor needs the parameters"):
    tx.update(params, tx.init(params))
  with pytest.raises(ValueError, match="the state built by init differ in structure"):
    tx.update({"w": jnp.ones(2)}, tx.init(params), {"w": jnp.ones(2)})
  with pytest.raises(ValueError, match="weight_decay must be non-negative"):
    optax_decay.decay_to_anchor(-1.0)
  with pytest.warns(UserWarning, match="selects all 2"):
    optax_decay.decay_to_anchor(0.1, mask={"layer": {"w": True, "b": True}}).init(params)


def test_flax_nnx_optimizer_pulls_back_to_the_initial_weights():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  mask = jax.tree.map(lambda p: p.ndim > 1, nnx.state(model, nnx.Param))
  lr, wd = 0.1, 0.5
  tx = optax.chain(optax_decay.decay_to_anchor(wd, mask=mask), optax.scale_by_learning_rate(lr))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)  # init: the anchor is the model's weights
  kernel, bias = np.asarray(model.kernel[...]), np.asarray(model.bias[...])
  model.kernel[...] = kernel + 1.0
  model.bias[...] = bias + 1.0

  @nnx.jit
  def step(model, optimizer):
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))

  for t in range(1, 4):
    step(model, optimizer)
    np.testing.assert_allclose(model.kernel[...] - kernel, (1 - lr * wd) ** t, rtol=1e-5)
  np.testing.assert_array_equal(model.bias[...], bias + 1.0)  # masked out


def test_anchor_given_as_nnx_state():
  nnx = pytest.importorskip("flax.nnx")
  pretrained = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(2))
  anchor = nnx.state(pretrained, nnx.Param)
  tx = optax_decay.decay_to_anchor(1.0, anchor=anchor)
  params = {"bias": model.bias[...], "kernel": model.kernel[...]}  # a plain dict
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], model.kernel[...] - pretrained.kernel[...])
  np.testing.assert_allclose(updates["bias"], model.bias[...] - pretrained.bias[...])
