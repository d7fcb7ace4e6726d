"""decay_mask: the default no-decay rules on dicts, Linen, NNX and Equinox, and its options."""

import functools

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.core import freeze
from helpers import nnx_list

import optax_decay


def _leaf(*shape, dtype=jnp.float32):
  return jnp.ones(shape, dtype)


def _flat(mask):
  """`{'a/b/c': flag}` from a mask tree, to compare against hand-written expectations."""
  flat = {}
  for path, flag in jax.tree_util.tree_flatten_with_path(mask)[0]:
    names = [str(getattr(e, "key", getattr(e, "name", getattr(e, "idx", e)))) for e in path]
    flat["/".join(names)] = flag
  return flat


# --- the default rules, one name at a time -------------------------------------------------------

DECAYED_NAMES = [
  "kernel",
  "w",
  "weight",
  "Dense_0",
  "wte",
  "wpe",
  "normal",
  "abnormal",
  "denormalize",
  "unembed",
  "kernel_b",
  "lm_head",
  "scale",
  "Conv_0",
  "q_proj",
]
NOT_DECAYED_NAMES = [
  "bias",
  "Bias",
  "biases",
  "b",
  "B",
  "LayerNorm_0",
  "layernorm",
  "layer_norm",
  "RMSNorm_0",
  "rmsnorm",
  "GroupNorm_1",
  "BatchNorm_0",
  "batch_norm",
  "bn1",
  "ln_f",
  "ln1",
  "LN",
  "norm",
  "norm1",
  "final_norm",
  "q_norm",
  "attn_ln",
  "input_layernorm",
  "InstanceNorm_0",
  "Embed_0",
  "embed",
  "embedding",
  "embeddings",
  "embed_tokens",
  "pos_emb",
  "token_embedding",
  "PosEmbed",
]


@pytest.mark.parametrize("name", DECAYED_NAMES)
def test_names_outside_the_rules_are_decayed(name):
  params = {name: _leaf(3, 3), "bias": _leaf(3)}
  assert optax_decay.decay_mask(params)[name] is True


@pytest.mark.parametrize("name", NOT_DECAYED_NAMES)
def test_names_in_the_rules_are_not_decayed(name):
  params = {name: _leaf(3, 3), "kernel": _leaf(3, 3)}
  mask = optax_decay.decay_mask(params)
  assert mask[name] is False
  assert mask["kernel"] is True


@pytest.mark.parametrize("parent", ["LayerNorm_0", "norm", "ln_2", "embedder_bias"])
def test_a_bias_or_norm_word_on_a_parent_key_covers_every_leaf_below_it(parent):
  params = {parent: {"scale": _leaf(4, 4), "kernel": _leaf(4, 4)}, "dense": {"kernel": _leaf(4, 4)}}
  mask = optax_decay.decay_mask(params)
  assert mask == {parent: {"scale": False, "kernel": False}, "dense": {"kernel": True}}


@pytest.mark.parametrize("parent", ["Embed_0", "embed_tokens", "token_embedder", "pos_embedding"])
def test_an_embedding_word_on_a_parent_key_covers_only_a_table_under_a_generic_key(parent):
  params = {
    parent: {
      "weight": _leaf(4, 4),  # an eqx.nn.Embedding / PyTorch nn.Embedding table
      "table": _leaf(4, 4),
      "kernel": _leaf(4, 4),
      "w": _leaf(4, 4),
      "conv": {"weight": _leaf(4, 4)},  # an ancestor further up does not count
    },
    "proj": {"weight": _leaf(4, 4)},
  }
  assert optax_decay.decay_mask(params) == {
    parent: {"weight": False, "table": False, "kernel": True, "w": True, "conv": {"weight": True}},
    "proj": {"weight": True},
  }


def test_a_convolution_under_an_embedding_named_key_is_decayed():
  # HF CLIP/SigLIP keep the patch convolution at `embeddings/patch_embedding/weight`.
  params = {
    "patch_embedding": {"weight": _leaf(8, 3, 2, 2)},
    "token_embedding": {"weight": _leaf(9, 8)},
  }
  assert optax_decay.decay_mask(params) == {
    "patch_embedding": {"weight": True},
    "token_embedding": {"weight": False},
  }


@pytest.mark.parametrize(
  "name", ["cls_token", "reg_token", "register_tokens", "dist_token", "mask_token", "cls", "probe"]
)
def test_learned_tokens_are_not_decayed_but_only_as_the_leafs_own_key(name):
  params = {
    "vit": {name: _leaf(1, 1, 4)},
    "cls": {"predictions": {"dense": {"kernel": _leaf(4, 4)}}},
  }
  mask = optax_decay.decay_mask(params)
  assert mask["vit"][name] is False
  assert mask["cls"]["predictions"]["dense"]["kernel"] is True  # BERT's pre-training heads


def test_b_counts_only_as_the_leafs_own_key():
  params = {"b": {"w": _leaf(2, 2), "b": _leaf(2, 2)}, "kernel": _leaf(2, 2)}
  assert optax_decay.decay_mask(params) == {"b": {"w": True, "b": False}, "kernel": True}


def test_ndim_rule_and_non_float_leaves():
  params = {
    "w3": _leaf(2, 2, 2),
    "w2": _leaf(2, 2),
    "vector": _leaf(2),
    "scalar": _leaf(),
    "count": jnp.ones((2, 2), jnp.int32),
    "flags": jnp.ones((2, 2), bool),
    "half": _leaf(2, 2, dtype=jnp.bfloat16),
    "complex": jnp.ones((2, 2), jnp.complex64),
  }
  assert optax_decay.decay_mask(params) == {
    "w3": True,
    "w2": True,
    "vector": False,
    "scalar": False,
    "count": False,
    "flags": False,
    "half": True,
    "complex": True,
  }
  assert _flat(optax_decay.decay_mask(params, min_ndim=3)) == {
    "w3": True,
    "w2": False,
    "vector": False,
    "scalar": False,
    "count": False,
    "flags": False,
    "half": False,
    "complex": False,
  }
  assert optax_decay.decay_mask(params, min_ndim=0)["scalar"] is True


def test_shape_dtype_structs_work_so_masks_can_come_from_eval_shape():
  params = jax.eval_shape(lambda: {"kernel": _leaf(3, 3), "bias": _leaf(3)})
  assert optax_decay.decay_mask(params) == {"kernel": True, "bias": False}


# --- include, exclude, precedence ---------------------------------------------------------------


def _model_params():
  return {
    "embed": {"embedding": _leaf(10, 4)},
    "blocks": [{"attn": {"kernel": _leaf(4, 4), "bias": _leaf(4)}, "gate": _leaf(4)}],
    "head": {"kernel": _leaf(4, 2), "bias": _leaf(2)},
    "cls_token": _leaf(1, 4),
  }


def test_exclude_adds_to_the_default_rules():
  mask = optax_decay.decay_mask(_model_params(), exclude=("cls_token", r"^head/"))
  assert _flat(mask) == {
    "blocks/0/attn/bias": False,
    "blocks/0/attn/kernel": True,
    "blocks/0/gate": False,
    "cls_token": False,
    "embed/embedding": False,
    "head/bias": False,
    "head/kernel": False,
  }


def test_a_single_string_is_one_pattern_and_matching_ignores_case():
  one = optax_decay.decay_mask(_model_params(), exclude="HEAD/KERNEL")
  assert one["head"]["kernel"] is False
  assert one["blocks"][0]["attn"]["kernel"] is True


def test_include_wins_over_exclude_default_rules_and_min_ndim():
  mask = optax_decay.decay_mask(
    _model_params(), include=(r"embedding$", r"/gate$", "head"), exclude=("head", "embed")
  )
  assert mask["embed"]["embedding"] is True  # default rule and exclude both overridden
  assert mask["blocks"][0]["gate"] is True  # one-dimensional, decayed by include
  assert mask["head"] == {"kernel": True, "bias": True}


def test_include_never_selects_integer_leaves():
  mask = optax_decay.decay_mask({"step": jnp.ones((2, 2), jnp.int32)}, include=".")
  assert mask == {"step": False}


def test_default_rules_off_leaves_only_the_ndim_rule_and_the_patterns():
  mask = optax_decay.decay_mask(_model_params(), default_rules=False, exclude="cls")
  assert _flat(mask) == {
    "blocks/0/attn/bias": False,
    "blocks/0/attn/kernel": True,
    "blocks/0/gate": False,
    "cls_token": False,
    "embed/embedding": True,
    "head/bias": False,
    "head/kernel": True,
  }


def test_stacked_layers_rely_on_names():
  depth = 3
  stacked = {
    "layers": {
      "dense": {"kernel": _leaf(depth, 4, 4), "bias": _leaf(depth, 4)},
      "LayerNorm_0": {"scale": _leaf(depth, 4)},
      "gate": _leaf(depth, 4),
    }
  }
  mask = optax_decay.decay_mask(stacked)["layers"]
  assert mask == {
    "dense": {"kernel": True, "bias": False},
    "LayerNorm_0": {"scale": False},
    "gate": True,  # the documented misfire: a stacked unnamed vector has two dimensions
  }
  assert optax_decay.decay_mask(stacked, exclude="gate$")["layers"]["gate"] is False


# --- the parameter containers ------------------------------------------------------------------


class _LinenModel(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(16, 8)(tokens)
    x = nn.Dense(8)(x)
    x = nn.LayerNorm()(x)
    x = nn.Dense(8, use_bias=False, name="mlp_out")(x)
    return nn.BatchNorm(use_running_average=True)(x)


LINEN_EXPECTED = {
  "params/BatchNorm_0/bias": False,
  "params/BatchNorm_0/scale": False,
  "params/Dense_0/bias": False,
  "params/Dense_0/kernel": True,
  "params/Embed_0/embedding": False,
  "params/LayerNorm_0/bias": False,
  "params/LayerNorm_0/scale": False,
  "params/mlp_out/kernel": True,
}


@pytest.mark.parametrize("frozen", [False, True], ids=["dict", "frozendict"])
def test_linen_params(frozen):
  variables = _LinenModel().init(jax.random.key(0), jnp.zeros((2, 3), jnp.int32))
  params = {"params": variables["params"]}
  if frozen:
    params = freeze(params)
  assert _flat(optax_decay.decay_mask(params)) == LINEN_EXPECTED


def test_linen_params_in_a_jitted_optimizer():
  variables = _LinenModel().init(jax.random.key(0), jnp.zeros((2, 3), jnp.int32))
  params = freeze({"params": variables["params"]})
  tx = optax_decay.adamw(1e-2, weight_decay=0.1, mask=optax_decay.decay_mask)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  for path, update in _flat(updates).items():
    param = _flat(params)[path]
    want = -1e-3 * np.asarray(param) if LINEN_EXPECTED[path] else np.zeros_like(param)
    np.testing.assert_allclose(update, want, rtol=1e-6, err_msg=path)


class _NNXModel(nnx.Module):
  def __init__(self, rngs):
    self.embed = nnx.Embed(16, 8, rngs=rngs)
    self.layers = nnx_list([nnx.Linear(8, 8, rngs=rngs) for _ in range(2)])
    self.final_norm = nnx.RMSNorm(8, rngs=rngs)
    self.head = nnx.Linear(8, 4, use_bias=False, rngs=rngs)

  def __call__(self, tokens):
    x = self.embed(tokens)
    for layer in self.layers:
      x = layer(x)
    return self.head(self.final_norm(x))


NNX_EXPECTED = {
  "embed/embedding": False,
  "final_norm/scale": False,
  "head/kernel": True,
  "layers/0/bias": False,
  "layers/0/kernel": True,
  "layers/1/bias": False,
  "layers/1/kernel": True,
}


def test_nnx_state_with_and_without_variable_boxes_gives_the_same_mask():
  model = _NNXModel(nnx.Rngs(0))
  boxed = nnx.state(model, nnx.Param)
  assert any(
    isinstance(x, nnx.Variable)
    for x in jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nnx.Variable))
  )
  plain = jax.tree.map(lambda x: x, nnx.to_pure_dict(boxed))
  assert _flat(optax_decay.decay_mask(boxed)) == NNX_EXPECTED
  assert _flat(optax_decay.decay_mask(plain)) == NNX_EXPECTED


def test_nnx_optimizer_decays_kernels_only():
  model = _NNXModel(nnx.Rngs(0))
  before = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  tx = optax_decay.adamw(1e-2, weight_decay=0.5, mask=optax_decay.decay_mask)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  optimizer.update(model, grads)
  after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  for path, old in _flat(before).items():
    factor = 1 - 1e-2 * 0.5 if NNX_EXPECTED[path] else 1.0
    np.testing.assert_allclose(_flat(after)[path], np.asarray(old) * factor, rtol=1e-6)


class _EqxModel(eqx.Module):
  embedding: eqx.nn.Embedding
  mlp: eqx.nn.MLP
  norm: eqx.nn.LayerNorm
  temperature: jax.Array

  def __init__(self, key):
    k1, k2 = jax.random.split(key)
    self.embedding = eqx.nn.Embedding(16, 4, key=k1)
    self.mlp = eqx.nn.MLP(4, 4, 8, depth=1, key=k2)
    self.norm = eqx.nn.LayerNorm(4)
    self.temperature = jnp.ones(())


def test_equinox_module_paths_use_attribute_names():
  model = _EqxModel(jax.random.key(0))
  params = eqx.filter(model, eqx.is_inexact_array)
  mask = optax_decay.decay_mask(params)
  assert _flat(mask) == {
    "embedding/weight": False,
    "mlp/layers/0/weight": True,
    "mlp/layers/0/bias": False,
    "mlp/layers/1/weight": True,
    "mlp/layers/1/bias": False,
    "norm/weight": False,
    "norm/bias": False,
    "temperature": False,
  }
  # Non-array leaves of an unfiltered module (the MLP's activation functions) are not decayed.
  assert _flat(optax_decay.decay_mask(model))["mlp/activation"] is False


def test_equinox_module_in_an_optimizer():
  keys = jax.random.split(jax.random.key(1), 2)
  model = [eqx.nn.Linear(3, 4, key=keys[0]), eqx.nn.LayerNorm(4), eqx.nn.Linear(4, 2, key=keys[1])]
  tx = optax_decay.sgdw(0.1, momentum=0.0, weight_decay=0.2, mask=optax_decay.decay_mask)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, model), tx.init(model), model)
  for i in (0, 2):
    np.testing.assert_allclose(updates[i].weight, -0.02 * model[i].weight, rtol=1e-6)
    np.testing.assert_array_equal(updates[i].bias, 0.0)
  np.testing.assert_array_equal(updates[1].weight, 0.0)


# --- use inside optimizers ---------------------------------------------------------------------


def test_partial_configures_the_mask_for_an_optimizer():
  params = _model_params()
  mask = functools.partial(optax_decay.decay_mask, exclude="cls_token")
  tx = optax_decay.adamw(1e-2, weight_decay=0.5, mask=mask)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  assert _flat(jax.tree.map(lambda u: bool(jnp.any(u != 0)), updates)) == _flat(mask(params))


def test_optax_decay_inject_hyperparams_keeps_the_mask_static():
  params = _model_params()
  tx = optax_decay.inject_hyperparams(optax_decay.adamw)(
    learning_rate=1e-2, weight_decay=0.5, mask=optax_decay.decay_mask
  )
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates["head"]["kernel"], -5e-3 * params["head"]["kernel"])
  np.testing.assert_array_equal(updates["head"]["bias"], 0.0)


def test_optax_inject_hyperparams_without_static_args_is_a_clear_error():
  tx = optax.inject_hyperparams(optax_decay.adamw)(
    learning_rate=1e-2, weight_decay=0.5, mask=optax_decay.decay_mask
  )
  with pytest.raises(TypeError, match=r"static_args=\('mask',\)"):
    tx.init(_model_params())


@pytest.mark.parametrize("count", [jnp.zeros([], jnp.int32), np.int64(3), 7])
def test_a_step_count_is_rejected(count):
  with pytest.raises(TypeError, match="optax_decay.inject_hyperparams"):
    optax_decay.decay_mask(count)


def test_bad_arguments():
  params = _model_params()
  with pytest.raises(ValueError, match=r"'\(' is not a regex"):
    optax_decay.decay_mask(params, exclude="(")
  with pytest.raises(TypeError, match="must hold regular expressions"):
    optax_decay.decay_mask(params, include=(3,))
  with pytest.raises(ValueError, match="non-negative"):
    optax_decay.decay_mask(params, min_ndim=-1)
  with pytest.raises(TypeError, match="min_ndim must be an int"):
    optax_decay.decay_mask(params, min_ndim=True)


@pytest.mark.parametrize("name", ["exclude", "include"])
@pytest.mark.parametrize("value", [None, 3, b"kernel"])
def test_patterns_that_are_not_a_str_or_an_iterable_are_a_clear_error(name, value):
  match = rf"decay_mask: {name} takes a regular expression \(str\) or an iterable of them"
  with pytest.raises(TypeError, match=match):
    optax_decay.decay_mask(_model_params(), **{name: value})
  with pytest.raises(TypeError, match=match):
    optax_decay.decay_mask(**{name: value})


def test_a_generator_of_patterns_configures_every_later_call():
  configured = optax_decay.decay_mask(exclude=(p for p in ["^head/"]))
  assert configured(_model_params())["head"]["kernel"] is False
  assert configured(_model_params())["head"]["kernel"] is False


def test_configuring_without_params_checks_the_arguments_at_once():
  with pytest.raises(ValueError, match=r"exclude pattern '\[' is not a regex"):
    optax_decay.decay_mask(exclude="[")
  with pytest.raises(TypeError, match="must hold regular expressions"):
    optax_decay.decay_mask(include=[b"kernel"])
  with pytest.raises(ValueError, match="non-negative"):
    optax_decay.decay_mask(min_ndim=-2)


def test_the_configured_mask_equals_the_direct_call():
  params = _model_params()
  configured = optax_decay.decay_mask(exclude="head", min_ndim=1, default_rules=False)
  assert callable(configured)
  direct = optax_decay.decay_mask(params, exclude="head", min_ndim=1, default_rules=False)
  assert configured(params) == direct
  assert direct != optax_decay.decay_mask(params)  # the arguments did change the mask
