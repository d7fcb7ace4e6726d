"""decay_mask against the parameter names of the major model families and their no-decay choices.

Each fixture lists real parameter paths with real ranks (tiny sizes) and the decision
`decay_mask` should make for each, with the file the names and the no-decay choice come from.
Where the family's own choice differs from the rule documented in `decay_mask` (token and
position embedding tables, which this library spares), the comment says so.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from flax.core import freeze
from helpers import nnx_list

import optax_decay

DECAY, KEEP = True, False


def _params(fixture):
  """The nested dict of `jax.ShapeDtypeStruct` that a fixture's `{path: (shape, decided)}` holds."""
  tree = {}
  for path, (shape, _) in fixture.items():
    *parents, leaf = path.split("/")
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = jax.ShapeDtypeStruct(shape, jnp.float32)
  return tree


def _flat(mask):
  flat = {}
  for path, flag in jax.tree_util.tree_flatten_with_path(mask)[0]:
    names = [str(getattr(e, "key", getattr(e, "name", getattr(e, "idx", e)))) for e in path]
    flat["/".join(names)] = flag
  return flat


def _check(mask, expected, prefix=""):
  got = {path.removeprefix(prefix): flag for path, flag in _flat(mask).items()}
  assert got.keys() == expected.keys(), sorted(got.keys() ^ expected.keys())
  word = {True: "decay", False: "no decay"}
  wrong = [
    f"  {path}: expected {word[want]}, got {word[got[path]]}"
    for path, want in expected.items()
    if got[path] is not want
  ]
  if wrong:
    pytest.fail("decay_mask disagrees on:\n" + "\n".join(wrong), pytrace=False)


# --- the fixtures ----------------------------------------------------------------------------
# PyTorch families are written with their state-dict names, "." replaced by "/", as a converted
# checkpoint or an Equinox port has them; Flax families with their Linen parameter paths.

# huggingface/pytorch-image-models timm/models/vision_transformer.py (a DINOv2-style ViT with
# register tokens and layer scale) and timm/layers/{patch_embed,layer_scale,mlp}.py. No decay:
# `VisionTransformer.no_weight_decay` = {pos_embed, cls_token, reg_token, dist_token}, plus every
# parameter with ndim <= 1 or a name ending in ".bias" (timm/optim/_param_groups.py). The patch
# convolution `patch_embed.proj.weight` is decayed.
TIMM_VIT = {
  "cls_token": ((1, 1, 8), KEEP),
  "reg_token": ((1, 4, 8), KEEP),
  "pos_embed": ((1, 4, 8), KEEP),
  "patch_embed/proj/weight": ((8, 3, 2, 2), DECAY),
  "patch_embed/proj/bias": ((8,), KEEP),
  "blocks/0/norm1/weight": ((8,), KEEP),
  "blocks/0/norm1/bias": ((8,), KEEP),
  "blocks/0/attn/qkv/weight": ((24, 8), DECAY),
  "blocks/0/attn/qkv/bias": ((24,), KEEP),
  "blocks/0/attn/proj/weight": ((8, 8), DECAY),
  "blocks/0/attn/proj/bias": ((8,), KEEP),
  "blocks/0/ls1/gamma": ((8,), KEEP),
  "blocks/0/norm2/weight": ((8,), KEEP),
  "blocks/0/mlp/fc1/weight": ((32, 8), DECAY),
  "blocks/0/mlp/fc1/bias": ((32,), KEEP),
  "blocks/0/mlp/fc2/weight": ((8, 32), DECAY),
  "blocks/0/ls2/gamma": ((8,), KEEP),
  "norm/weight": ((8,), KEEP),
  "norm/bias": ((8,), KEEP),
  "head/weight": ((10, 8), DECAY),
  "head/bias": ((10,), KEEP),
}

# timm/models/deit.py (VisionTransformerDistilled): the distillation token and its head;
# `no_weight_decay` comes from vision_transformer.py and names `dist_token`.
TIMM_DEIT = {
  "cls_token": ((1, 1, 8), KEEP),
  "dist_token": ((1, 1, 8), KEEP),
  "pos_embed": ((1, 6, 8), KEEP),
  "patch_embed/proj/weight": ((8, 3, 2, 2), DECAY),
  "blocks/0/attn/qkv/weight": ((24, 8), DECAY),
  "head/weight": ((10, 8), DECAY),
  "head_dist/weight": ((10, 8), DECAY),
  "head_dist/bias": ((10,), KEEP),
}

# google-research/big_vision big_vision/models/vit.py (pool_type="tok", unscanned). No decay:
# big_vision/optax.py decays only `config.wd_mults`, by default [(".*/kernel$", 1.0)], so the
# patch convolution `embedding/kernel` is decayed and `cls`, `pos_embedding`, biases and
# LayerNorm scales are not.
BIG_VISION_VIT = {
  "embedding/kernel": ((2, 2, 3, 8), DECAY),
  "embedding/bias": ((8,), KEEP),
  "cls": ((1, 1, 8), KEEP),
  "pos_embedding": ((1, 4, 8), KEEP),
  "Transformer/encoderblock_0/LayerNorm_0/scale": ((8,), KEEP),
  "Transformer/encoderblock_0/LayerNorm_0/bias": ((8,), KEEP),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel": ((8, 2, 4), DECAY),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/bias": ((2, 4), KEEP),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/key/kernel": ((8, 2, 4), DECAY),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/value/kernel": ((8, 2, 4), DECAY),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/out/kernel": ((2, 4, 8), DECAY),
  "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/out/bias": ((8,), KEEP),
  "Transformer/encoderblock_0/LayerNorm_1/scale": ((8,), KEEP),
  "Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel": ((8, 32), DECAY),
  "Transformer/encoderblock_0/MlpBlock_0/Dense_0/bias": ((32,), KEEP),
  "Transformer/encoderblock_0/MlpBlock_0/Dense_1/kernel": ((32, 8), DECAY),
  "Transformer/encoder_norm/scale": ((8,), KEEP),
  "head/kernel": ((8, 10), DECAY),
  "head/bias": ((10,), KEEP),
}

# big_vision/models/vit.py as SigLIP uses it: scan=True (a leading depth axis on every block
# leaf, so biases and scales are two- and three-dimensional) and pool_type="map", whose MAPHead
# learns a query `probe`. Same wd_mults default as above.
BIG_VISION_SIGLIP = {
  "embedding/kernel": ((2, 2, 3, 8), DECAY),
  "pos_embedding": ((1, 4, 8), KEEP),
  "Transformer/encoderblock/LayerNorm_0/scale": ((2, 8), KEEP),
  "Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel": ((2, 8, 2, 4), DECAY),
  "Transformer/encoderblock/MultiHeadDotProductAttention_0/query/bias": ((2, 2, 4), KEEP),
  "Transformer/encoderblock/MlpBlock_0/Dense_0/kernel": ((2, 8, 32), DECAY),
  "Transformer/encoderblock/MlpBlock_0/Dense_0/bias": ((2, 32), KEEP),
  "Transformer/encoder_norm/scale": ((8,), KEEP),
  "MAPHead_0/probe": ((1, 1, 8), KEEP),
  "MAPHead_0/MultiHeadDotProductAttention_0/query/kernel": ((8, 2, 4), DECAY),
  "MAPHead_0/MultiHeadDotProductAttention_0/out/bias": ((8,), KEEP),
  "MAPHead_0/LayerNorm_0/scale": ((8,), KEEP),
  "MAPHead_0/MlpBlock_0/Dense_0/kernel": ((8, 32), DECAY),
}

# timm/models/swin_transformer.py as first ported (commit f606c45c, `ape=True`): no decay for
# `no_weight_decay` = {absolute_pos_embed} and `no_weight_decay_keywords` =
# {relative_position_bias_table} (the current file keeps the latter), plus ndim <= 1.
TIMM_SWIN = {
  "patch_embed/proj/weight": ((8, 3, 4, 4), DECAY),
  "patch_embed/proj/bias": ((8,), KEEP),
  "patch_embed/norm/weight": ((8,), KEEP),
  "absolute_pos_embed": ((1, 16, 8), KEEP),
  "layers/0/blocks/0/norm1/weight": ((8,), KEEP),
  "layers/0/blocks/0/attn/relative_position_bias_table": ((9, 2), KEEP),
  "layers/0/blocks/0/attn/qkv/weight": ((24, 8), DECAY),
  "layers/0/blocks/0/attn/qkv/bias": ((24,), KEEP),
  "layers/0/blocks/0/attn/proj/weight": ((8, 8), DECAY),
  "layers/0/blocks/0/norm2/weight": ((8,), KEEP),
  "layers/0/blocks/0/mlp/fc1/weight": ((32, 8), DECAY),
  "layers/0/blocks/0/mlp/fc2/weight": ((8, 32), DECAY),
  "layers/0/downsample/norm/weight": ((32,), KEEP),
  "layers/0/downsample/reduction/weight": ((16, 32), DECAY),
  "norm/weight": ((16,), KEEP),
  "head/weight": ((10, 16), DECAY),
  "head/bias": ((10,), KEEP),
}

# timm/models/convnext.py: no `no_weight_decay`; ndim <= 1 spares the LayerNorm2d weights
# (`stem.1`, `downsample.0`) and the layer-scale `gamma` vectors.
TIMM_CONVNEXT = {
  "stem/0/weight": ((8, 3, 4, 4), DECAY),
  "stem/0/bias": ((8,), KEEP),
  "stem/1/weight": ((8,), KEEP),
  "stem/1/bias": ((8,), KEEP),
  "stages/0/blocks/0/conv_dw/weight": ((8, 1, 7, 7), DECAY),
  "stages/0/blocks/0/conv_dw/bias": ((8,), KEEP),
  "stages/0/blocks/0/norm/weight": ((8,), KEEP),
  "stages/0/blocks/0/mlp/fc1/weight": ((32, 8), DECAY),
  "stages/0/blocks/0/mlp/fc1/bias": ((32,), KEEP),
  "stages/0/blocks/0/mlp/fc2/weight": ((8, 32), DECAY),
  "stages/0/blocks/0/gamma": ((8,), KEEP),
  "stages/1/downsample/0/weight": ((8,), KEEP),
  "stages/1/downsample/0/bias": ((8,), KEEP),
  "stages/1/downsample/1/weight": ((16, 8, 2, 2), DECAY),
  "stages/1/downsample/1/bias": ((16,), KEEP),
  "stages/1/blocks/0/gamma": ((16,), KEEP),
  "head/norm/weight": ((16,), KEEP),
  "head/fc/weight": ((10, 16), DECAY),
  "head/fc/bias": ((10,), KEEP),
}

# google/flax examples/imagenet/models.py (ResNet, two blocks); examples/imagenet/train.py adds
# an L2 penalty on every parameter with ndim > 1: the convolutions and the Dense head, not the
# BatchNorm scales and biases.
FLAX_RESNET = {
  "conv_init/kernel": ((7, 7, 3, 8), DECAY),
  "bn_init/scale": ((8,), KEEP),
  "bn_init/bias": ((8,), KEEP),
  "ResNetBlock_0/Conv_0/kernel": ((3, 3, 8, 8), DECAY),
  "ResNetBlock_0/BatchNorm_0/scale": ((8,), KEEP),
  "ResNetBlock_0/BatchNorm_0/bias": ((8,), KEEP),
  "ResNetBlock_0/Conv_1/kernel": ((3, 3, 8, 8), DECAY),
  "ResNetBlock_0/BatchNorm_1/scale": ((8,), KEEP),
  "ResNetBlock_1/Conv_0/kernel": ((3, 3, 8, 16), DECAY),
  "ResNetBlock_1/conv_proj/kernel": ((1, 1, 8, 16), DECAY),
  "ResNetBlock_1/norm_proj/scale": ((16,), KEEP),
  "ResNetBlock_1/norm_proj/bias": ((16,), KEEP),
  "Dense_0/kernel": ((16, 10), DECAY),
  "Dense_0/bias": ((10,), KEEP),
}

# huggingface/transformers src/transformers/models/resnet/modeling_flax_resnet.py
# (FlaxResNetForImageClassification, bottleneck layers): the stem convolution sits under
# `embedder/embedder` and is a kernel like the others; the BatchNorms are `normalization`.
HF_FLAX_RESNET = {
  "resnet/embedder/embedder/convolution/kernel": ((7, 7, 3, 8), DECAY),
  "resnet/embedder/embedder/normalization/scale": ((8,), KEEP),
  "resnet/embedder/embedder/normalization/bias": ((8,), KEEP),
  "resnet/encoder/stages/0/layers/0/shortcut/convolution/kernel": ((1, 1, 8, 32), DECAY),
  "resnet/encoder/stages/0/layers/0/shortcut/normalization/scale": ((32,), KEEP),
  "resnet/encoder/stages/0/layers/0/layer/0/convolution/kernel": ((1, 1, 8, 8), DECAY),
  "resnet/encoder/stages/0/layers/0/layer/0/normalization/scale": ((8,), KEEP),
  "resnet/encoder/stages/0/layers/0/layer/1/convolution/kernel": ((3, 3, 8, 8), DECAY),
  "resnet/encoder/stages/0/layers/0/layer/2/convolution/kernel": ((1, 1, 8, 32), DECAY),
  "classifier/1/kernel": ((32, 10), DECAY),
  "classifier/1/bias": ((10,), KEEP),
}

# huggingface/transformers src/transformers/models/gpt2/modeling_flax_gpt2.py
# (FlaxGPT2LMHeadModel; the tied lm_head has no parameter of its own). The Hugging Face Flax
# examples (examples/flax/language-modeling/run_clm_flax.py, `decay_mask_fn`) spare biases and
# LayerNorm parameters and decay `wte`/`wpe`; this library spares those tables (see decay_mask).
HF_FLAX_GPT2 = {
  "transformer/wte/embedding": ((50, 8), KEEP),
  "transformer/wpe/embedding": ((16, 8), KEEP),
  "transformer/h/0/ln_1/scale": ((8,), KEEP),
  "transformer/h/0/ln_1/bias": ((8,), KEEP),
  "transformer/h/0/attn/c_attn/kernel": ((24, 8), DECAY),
  "transformer/h/0/attn/c_attn/bias": ((24,), KEEP),
  "transformer/h/0/attn/c_proj/kernel": ((8, 8), DECAY),
  "transformer/h/0/attn/c_proj/bias": ((8,), KEEP),
  "transformer/h/0/ln_2/scale": ((8,), KEEP),
  "transformer/h/0/mlp/c_fc/kernel": ((32, 8), DECAY),
  "transformer/h/0/mlp/c_fc/bias": ((32,), KEEP),
  "transformer/h/0/mlp/c_proj/kernel": ((8, 32), DECAY),
  "transformer/ln_f/scale": ((8,), KEEP),
  "transformer/ln_f/bias": ((8,), KEEP),
}

# karpathy/nanoGPT model.py (`GPT`, tied lm_head): `configure_optimizers` decays every parameter
# with dim >= 2, embeddings included. `wte.weight`/`wpe.weight` carry no embedding word, so
# decay_mask cannot tell them from a Linear and decays them too: here it agrees with nanoGPT,
# not with the table policy (`exclude=r"(^|/)w[tp]e/"` would spare them).
NANOGPT = {
  "transformer/wte/weight": ((50, 8), DECAY),
  "transformer/wpe/weight": ((16, 8), DECAY),
  "transformer/h/0/ln_1/weight": ((8,), KEEP),
  "transformer/h/0/attn/c_attn/weight": ((24, 8), DECAY),
  "transformer/h/0/attn/c_attn/bias": ((24,), KEEP),
  "transformer/h/0/attn/c_proj/weight": ((8, 8), DECAY),
  "transformer/h/0/ln_2/weight": ((8,), KEEP),
  "transformer/h/0/mlp/c_fc/weight": ((32, 8), DECAY),
  "transformer/h/0/mlp/c_proj/weight": ((8, 32), DECAY),
  "transformer/ln_f/weight": ((8,), KEEP),
}

# huggingface/transformers src/transformers/models/llama/modeling_flax_llama.py
# (FlaxLlamaForCausalLM; FlaxLlamaRMSNorm's parameter is `weight`). No decay as in the Hugging
# Face examples (biases, norms) except `embed_tokens`, a table this library spares.
HF_FLAX_LLAMA = {
  "model/embed_tokens/embedding": ((50, 8), KEEP),
  "model/layers/0/input_layernorm/weight": ((8,), KEEP),
  "model/layers/0/self_attn/q_proj/kernel": ((8, 8), DECAY),
  "model/layers/0/self_attn/k_proj/kernel": ((8, 8), DECAY),
  "model/layers/0/self_attn/v_proj/kernel": ((8, 8), DECAY),
  "model/layers/0/self_attn/o_proj/kernel": ((8, 8), DECAY),
  "model/layers/0/post_attention_layernorm/weight": ((8,), KEEP),
  "model/layers/0/mlp/gate_proj/kernel": ((8, 24), DECAY),
  "model/layers/0/mlp/up_proj/kernel": ((8, 24), DECAY),
  "model/layers/0/mlp/down_proj/kernel": ((24, 8), DECAY),
  "model/norm/weight": ((8,), KEEP),
  "lm_head/kernel": ((8, 50), DECAY),
}

# google-deepmind/gemma gemma/gm/nn/{_transformer,_modules,_layers}.py (a multimodal Gemma 3
# layer with QK norms): `Embedder.input_embedding`, `Einsum` weights `w`, FeedForward's
# `gating_einsum` and `linear`, RMSNorm `scale`. Gemma's examples fine-tune with
# optax.adafactor and no decay mask, so the expectation is this library's: einsum weights
# decayed; norm scales and the embedding table not; `mm_input_projection` inside the embedder
# is a weight matrix.
GEMMA = {
  "embedder/input_embedding": ((50, 8), KEEP),
  "embedder/mm_soft_embedding_norm/scale": ((12,), KEEP),
  "embedder/mm_input_projection/w": ((12, 8), DECAY),
  "layer_0/pre_attention_norm/scale": ((8,), KEEP),
  "layer_0/attn/q_einsum/w": ((2, 8, 4), DECAY),
  "layer_0/attn/kv_einsum/w": ((2, 1, 8, 4), DECAY),
  "layer_0/attn/attn_vec_einsum/w": ((2, 4, 8), DECAY),
  "layer_0/attn/_query_norm/scale": ((4,), KEEP),
  "layer_0/attn/_key_norm/scale": ((4,), KEEP),
  "layer_0/post_attention_norm/scale": ((8,), KEEP),
  "layer_0/pre_ffw_norm/scale": ((8,), KEEP),
  "layer_0/mlp/gating_einsum": ((2, 24, 8), DECAY),
  "layer_0/mlp/linear": ((24, 8), DECAY),
  "layer_0/post_ffw_norm/scale": ((8,), KEEP),
  "final_norm/scale": ((8,), KEEP),
}

# huggingface/transformers src/transformers/models/t5/modeling_flax_t5.py
# (FlaxT5ForConditionalGeneration, gated-gelu, untied lm_head). The Hugging Face Trainer spares
# names containing "bias" (`relative_attention_bias`, an nn.Embed in block 0) and T5's layer
# norms (`weight`); `shared` is a table this library spares.
HF_FLAX_T5 = {
  "shared/embedding": ((50, 8), KEEP),
  "encoder/block/0/layer/0/SelfAttention/q/kernel": ((8, 8), DECAY),
  "encoder/block/0/layer/0/SelfAttention/k/kernel": ((8, 8), DECAY),
  "encoder/block/0/layer/0/SelfAttention/v/kernel": ((8, 8), DECAY),
  "encoder/block/0/layer/0/SelfAttention/o/kernel": ((8, 8), DECAY),
  "encoder/block/0/layer/0/SelfAttention/relative_attention_bias/embedding": ((32, 2), KEEP),
  "encoder/block/0/layer/0/layer_norm/weight": ((8,), KEEP),
  "encoder/block/0/layer/1/DenseReluDense/wi_0/kernel": ((8, 24), DECAY),
  "encoder/block/0/layer/1/DenseReluDense/wi_1/kernel": ((8, 24), DECAY),
  "encoder/block/0/layer/1/DenseReluDense/wo/kernel": ((24, 8), DECAY),
  "encoder/block/0/layer/1/layer_norm/weight": ((8,), KEEP),
  "encoder/block/1/layer/0/SelfAttention/q/kernel": ((8, 8), DECAY),
  "encoder/final_layer_norm/weight": ((8,), KEEP),
  "decoder/block/0/layer/0/SelfAttention/relative_attention_bias/embedding": ((32, 2), KEEP),
  "decoder/block/0/layer/1/EncDecAttention/q/kernel": ((8, 8), DECAY),
  "decoder/block/0/layer/1/layer_norm/weight": ((8,), KEEP),
  "decoder/block/0/layer/2/DenseReluDense/wo/kernel": ((24, 8), DECAY),
  "decoder/final_layer_norm/weight": ((8,), KEEP),
  "lm_head/kernel": ((8, 50), DECAY),
}

# huggingface/transformers src/transformers/models/bert/modeling_flax_bert.py
# (FlaxBertForPreTraining: `bert` and the `cls` heads; the tied decoder has no parameter). No
# decay for biases and LayerNorm parameters, as in the Flax examples' `decay_mask_fn`; the three
# embedding tables are spared by this library. `cls` is a module here, not a class token.
HF_FLAX_BERT = {
  "bert/embeddings/word_embeddings/embedding": ((50, 8), KEEP),
  "bert/embeddings/position_embeddings/embedding": ((16, 8), KEEP),
  "bert/embeddings/token_type_embeddings/embedding": ((2, 8), KEEP),
  "bert/embeddings/LayerNorm/scale": ((8,), KEEP),
  "bert/embeddings/LayerNorm/bias": ((8,), KEEP),
  "bert/encoder/layer/0/attention/self/query/kernel": ((8, 8), DECAY),
  "bert/encoder/layer/0/attention/self/query/bias": ((8,), KEEP),
  "bert/encoder/layer/0/attention/self/key/kernel": ((8, 8), DECAY),
  "bert/encoder/layer/0/attention/self/value/kernel": ((8, 8), DECAY),
  "bert/encoder/layer/0/attention/output/dense/kernel": ((8, 8), DECAY),
  "bert/encoder/layer/0/attention/output/LayerNorm/scale": ((8,), KEEP),
  "bert/encoder/layer/0/intermediate/dense/kernel": ((8, 32), DECAY),
  "bert/encoder/layer/0/intermediate/dense/bias": ((32,), KEEP),
  "bert/encoder/layer/0/output/dense/kernel": ((32, 8), DECAY),
  "bert/encoder/layer/0/output/LayerNorm/scale": ((8,), KEEP),
  "bert/pooler/dense/kernel": ((8, 8), DECAY),
  "bert/pooler/dense/bias": ((8,), KEEP),
  "cls/predictions/transform/dense/kernel": ((8, 8), DECAY),
  "cls/predictions/transform/LayerNorm/scale": ((8,), KEEP),
  "cls/predictions/bias": ((50,), KEEP),
  "cls/seq_relationship/kernel": ((8, 2), DECAY),
  "cls/seq_relationship/bias": ((2,), KEEP),
}

# huggingface/transformers src/transformers/models/clip/modeling_clip.py (PyTorch names; the
# patch convolution is `embeddings.patch_embedding`, the tables are nn.Embedding `weight`s, the
# pre-norm keeps its `pre_layrnorm` spelling). No decay as in mlfoundations/open_clip
# src/training/main.py: ndim < 2, "bn"/"ln"/"bias" in the name, `logit_scale`. open_clip decays
# the two-dimensional position and token tables; this library spares them.
HF_CLIP = {
  "vision_model/embeddings/class_embedding": ((8,), KEEP),
  "vision_model/embeddings/patch_embedding/weight": ((8, 3, 2, 2), DECAY),
  "vision_model/embeddings/position_embedding/weight": ((5, 8), KEEP),
  "vision_model/pre_layrnorm/weight": ((8,), KEEP),
  "vision_model/pre_layrnorm/bias": ((8,), KEEP),
  "vision_model/encoder/layers/0/self_attn/q_proj/weight": ((8, 8), DECAY),
  "vision_model/encoder/layers/0/self_attn/q_proj/bias": ((8,), KEEP),
  "vision_model/encoder/layers/0/self_attn/out_proj/weight": ((8, 8), DECAY),
  "vision_model/encoder/layers/0/layer_norm1/weight": ((8,), KEEP),
  "vision_model/encoder/layers/0/mlp/fc1/weight": ((32, 8), DECAY),
  "vision_model/encoder/layers/0/mlp/fc2/weight": ((8, 32), DECAY),
  "vision_model/post_layernorm/weight": ((8,), KEEP),
  "text_model/embeddings/token_embedding/weight": ((50, 8), KEEP),
  "text_model/embeddings/position_embedding/weight": ((16, 8), KEEP),
  "text_model/final_layer_norm/weight": ((8,), KEEP),
  "visual_projection/weight": ((6, 8), DECAY),
  "text_projection/weight": ((6, 8), DECAY),
  "logit_scale": ((), KEEP),
}

# huggingface/diffusers src/diffusers/models/unets/unet_2d_condition_flax.py,
# models/embeddings_flax.py (FlaxTimestepEmbedding: linear_1, linear_2), models/resnet_flax.py
# (FlaxResnetBlock2D: time_emb_proj). The time-embedding MLP and the per-block projections are
# weight matrices, decayed. diffusers' training examples pass every parameter to AdamW; this
# library spares the GroupNorm parameters and biases.
DIFFUSERS_FLAX_UNET = {
  "conv_in/kernel": ((3, 3, 4, 8), DECAY),
  "conv_in/bias": ((8,), KEEP),
  "time_embedding/linear_1/kernel": ((8, 32), DECAY),
  "time_embedding/linear_1/bias": ((32,), KEEP),
  "time_embedding/linear_2/kernel": ((32, 32), DECAY),
  "down_blocks_0/resnets_0/norm1/scale": ((8,), KEEP),
  "down_blocks_0/resnets_0/norm1/bias": ((8,), KEEP),
  "down_blocks_0/resnets_0/conv1/kernel": ((3, 3, 8, 8), DECAY),
  "down_blocks_0/resnets_0/time_emb_proj/kernel": ((32, 8), DECAY),
  "down_blocks_0/resnets_0/time_emb_proj/bias": ((8,), KEEP),
  "down_blocks_0/resnets_0/norm2/scale": ((8,), KEEP),
  "down_blocks_0/resnets_0/conv2/kernel": ((3, 3, 8, 8), DECAY),
  "down_blocks_0/downsamplers_0/conv/kernel": ((3, 3, 8, 8), DECAY),
  "conv_norm_out/scale": ((8,), KEEP),
  "conv_out/kernel": ((3, 3, 8, 4), DECAY),
}

FAMILIES = {
  "timm_vit": TIMM_VIT,
  "timm_deit": TIMM_DEIT,
  "big_vision_vit": BIG_VISION_VIT,
  "big_vision_siglip": BIG_VISION_SIGLIP,
  "timm_swin": TIMM_SWIN,
  "timm_convnext": TIMM_CONVNEXT,
  "flax_resnet": FLAX_RESNET,
  "hf_flax_resnet": HF_FLAX_RESNET,
  "hf_flax_gpt2": HF_FLAX_GPT2,
  "nanogpt": NANOGPT,
  "hf_flax_llama": HF_FLAX_LLAMA,
  "gemma": GEMMA,
  "hf_flax_t5": HF_FLAX_T5,
  "hf_flax_bert": HF_FLAX_BERT,
  "hf_clip": HF_CLIP,
  "diffusers_flax_unet": DIFFUSERS_FLAX_UNET,
}
LINEN_FAMILIES = [
  "big_vision_vit",
  "big_vision_siglip",
  "flax_resnet",
  "hf_flax_resnet",
  "hf_flax_gpt2",
  "hf_flax_llama",
  "gemma",
  "hf_flax_t5",
  "hf_flax_bert",
  "diffusers_flax_unet",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_decay_mask_follows_the_family(family):
  fixture = FAMILIES[family]
  _check(optax_decay.decay_mask(_params(fixture)), {p: d for p, (_, d) in fixture.items()})


@pytest.mark.parametrize("frozen", [False, True], ids=["dict", "frozendict"])
@pytest.mark.parametrize("family", LINEN_FAMILIES)
def test_linen_params_collection_wrapping_changes_nothing(family, frozen):
  fixture = FAMILIES[family]
  variables = {"params": _params(fixture)}
  mask = optax_decay.decay_mask(freeze(variables) if frozen else variables)
  _check(mask, {p: d for p, (_, d) in fixture.items()}, prefix="params/")


# --- Flax NNX: timm's ViT names as nnx.Module attributes --------------------------------------


class _PatchEmbed(nnx.Module):
  def __init__(self, rngs):
    self.proj = nnx.Conv(3, 8, kernel_size=(2, 2), strides=(2, 2), rngs=rngs)


class _Attention(nnx.Module):
  def __init__(self, rngs):
    self.qkv = nnx.Linear(8, 24, rngs=rngs)
    self.proj = nnx.Linear(8, 8, rngs=rngs)


class _Block(nnx.Module):
  def __init__(self, rngs):
    self.norm1 = nnx.LayerNorm(8, rngs=rngs)
    self.attn = _Attention(rngs)
    self.norm2 = nnx.LayerNorm(8, rngs=rngs)
    self.fc1 = nnx.Linear(8, 32, rngs=rngs)


class _NNXViT(nnx.Module):
  def __init__(self, rngs):
    self.patch_embed = _PatchEmbed(rngs)
    self.cls_token = nnx.Param(jnp.zeros((1, 1, 8)))
    self.reg_token = nnx.Param(jnp.zeros((1, 4, 8)))
    self.pos_embed = nnx.Param(jnp.zeros((1, 4, 8)))
    self.blocks = nnx_list([_Block(rngs)])
    self.norm = nnx.LayerNorm(8, rngs=rngs)
    self.head = nnx.Linear(8, 10, rngs=rngs)


NNX_VIT_EXPECTED = {
  "patch_embed/proj/kernel": DECAY,
  "patch_embed/proj/bias": KEEP,
  "cls_token": KEEP,
  "reg_token": KEEP,
  "pos_embed": KEEP,
  "blocks/0/norm1/scale": KEEP,
  "blocks/0/norm1/bias": KEEP,
  "blocks/0/attn/qkv/kernel": DECAY,
  "blocks/0/attn/qkv/bias": KEEP,
  "blocks/0/attn/proj/kernel": DECAY,
  "blocks/0/attn/proj/bias": KEEP,
  "blocks/0/norm2/scale": KEEP,
  "blocks/0/norm2/bias": KEEP,
  "blocks/0/fc1/kernel": DECAY,
  "blocks/0/fc1/bias": KEEP,
  "norm/scale": KEEP,
  "norm/bias": KEEP,
  "head/kernel": DECAY,
  "head/bias": KEEP,
}


def test_nnx_state_of_a_vit_with_and_without_variable_boxes():
  model = nnx.eval_shape(lambda: _NNXViT(nnx.Rngs(0)))  # shapes only: nothing to compute
  state = nnx.state(model, nnx.Param)
  _check(optax_decay.decay_mask(state), NNX_VIT_EXPECTED)
  _check(optax_decay.decay_mask(nnx.to_pure_dict(state)), NNX_VIT_EXPECTED)


# --- Equinox: the ViT and BERT of equinox's own examples ---------------------------------------
# patrick-kidger/equinox examples/vision_transformer.ipynb (PatchEmbedding, AttentionBlock,
# VisionTransformer) and examples/bert.ipynb (EmbedderBlock). Attribute names give the paths;
# `eqx.nn.Embedding` keeps its table as `weight`, as does every Linear.


class _EqxPatchEmbedding(eqx.Module):
  linear: eqx.nn.Linear

  def __init__(self, key):
    self.linear = eqx.nn.Linear(2 * 2 * 3, 8, key=key)


class _EqxAttentionBlock(eqx.Module):
  layer_norm: eqx.nn.LayerNorm
  attention: eqx.nn.MultiheadAttention
  linear1: eqx.nn.Linear
  linear2: eqx.nn.Linear

  def __init__(self, key):
    k1, k2, k3 = jax.random.split(key, 3)
    self.layer_norm = eqx.nn.LayerNorm(8)
    self.attention = eqx.nn.MultiheadAttention(2, 8, key=k1)
    self.linear1 = eqx.nn.Linear(8, 16, key=k2)
    self.linear2 = eqx.nn.Linear(16, 8, key=k3)


class _EqxVisionTransformer(eqx.Module):
  patch_embedding: _EqxPatchEmbedding
  positional_embedding: jax.Array
  cls_token: jax.Array
  attention_blocks: list
  mlp: eqx.nn.Sequential

  def __init__(self, key):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    self.patch_embedding = _EqxPatchEmbedding(k1)
    self.positional_embedding = jax.random.normal(k2, (5, 8))
    self.cls_token = jax.random.normal(k3, (1, 8))
    self.attention_blocks = [_EqxAttentionBlock(k4)]
    self.mlp = eqx.nn.Sequential([eqx.nn.LayerNorm(8), eqx.nn.Linear(8, 10, key=k5)])


EQX_VIT_EXPECTED = {
  "patch_embedding/linear/weight": DECAY,
  "patch_embedding/linear/bias": KEEP,
  "positional_embedding": KEEP,
  "cls_token": KEEP,
  "attention_blocks/0/layer_norm/weight": KEEP,
  "attention_blocks/0/layer_norm/bias": KEEP,
  "attention_blocks/0/attention/query_proj/weight": DECAY,
  "attention_blocks/0/attention/key_proj/weight": DECAY,
  "attention_blocks/0/attention/value_proj/weight": DECAY,
  "attention_blocks/0/attention/output_proj/weight": DECAY,
  "attention_blocks/0/linear1/weight": DECAY,
  "attention_blocks/0/linear1/bias": KEEP,
  "attention_blocks/0/linear2/weight": DECAY,
  "attention_blocks/0/linear2/bias": KEEP,
  "mlp/layers/0/weight": KEEP,  # the LayerNorm, one-dimensional
  "mlp/layers/0/bias": KEEP,
  "mlp/layers/1/weight": DECAY,
  "mlp/layers/1/bias": KEEP,
}


class _EqxEmbedderBlock(eqx.Module):
  token_embedder: eqx.nn.Embedding
  segment_embedder: eqx.nn.Embedding
  position_embedder: eqx.nn.Embedding
  layernorm: eqx.nn.LayerNorm

  def __init__(self, key):
    k1, k2, k3 = jax.random.split(key, 3)
    self.token_embedder = eqx.nn.Embedding(50, 8, key=k1)
    self.segment_embedder = eqx.nn.Embedding(2, 8, key=k2)
    self.position_embedder = eqx.nn.Embedding(16, 8, key=k3)
    self.layernorm = eqx.nn.LayerNorm(8)


EQX_BERT_EMBEDDER_EXPECTED = {
  "token_embedder/weight": KEEP,
  "segment_embedder/weight": KEEP,
  "position_embedder/weight": KEEP,
  "layernorm/weight": KEEP,
  "layernorm/bias": KEEP,
}


@pytest.mark.parametrize(
  "build,expected",
  [(_EqxVisionTransformer, EQX_VIT_EXPECTED), (_EqxEmbedderBlock, EQX_BERT_EMBEDDER_EXPECTED)],
  ids=["vision_transformer", "bert_embedder"],
)
def test_equinox_examples(build, expected):
  shapes = eqx.filter_eval_shape(build, jax.random.key(0))  # shapes only: nothing to compute
  params = eqx.filter(shapes, lambda x: isinstance(x, jax.ShapeDtypeStruct))
  _check(optax_decay.decay_mask(params), expected)
