"""The usual decay mask, by name and shape: decay kernels, not biases, norms or embeddings."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optax_decay import _tree

NO_DECAY_WORDS = frozenset(
  {
    "bias",
    "biases",
    "norm",
    "norms",
    "ln",
    "bn",
    "layernorm",
    "batchnorm",
    "groupnorm",
    "rmsnorm",
    "instancenorm",
  }
)

EMBEDDING_WORDS = frozenset(
  {"emb", "embed", "embeds", "embedding", "embeddings", "embedder", "embedders"}
)

# Learned tokens: timm's `cls_token`, `reg_token`, `dist_token`, DINOv2's `register_tokens` and
# `mask_token`, big_vision's `cls` and its MAP head's `probe`. Leaf keys only: `cls/...` is also
# the name of BERT's pre-training heads.
_TOKEN_WORDS = frozenset({"token", "tokens", "cls", "probe"})
# The key under which an embedding module keeps its table, when the module's own key names it.
_TABLE_KEYS = frozenset({"weight", "table", "embedding", "embeddings"})

# Words of a path: an acronym (`RMS` in `RMSNorm`), a capitalised or lower-case word, or a number.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_OWNER = "decay_mask"


def _entry_name(entry: Any) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(entry, attribute):
      return str(getattr(entry, attribute))
  return str(entry)


def _path_names(path: tuple[Any, ...]) -> list[str]:
  return [_entry_name(entry) for entry in path]


def _words(name: str) -> set[str]:
  return {word.lower() for word in _WORDS.findall(name)}


def _has_default_no_decay_name(names: list[str], ndim: int) -> bool:
  if not names:
    return False
  leaf = names[-1]
  if leaf.lower() == "b" or any(_words(name) & NO_DECAY_WORDS for name in names):
    return True
  if _words(leaf) & (EMBEDDING_WORDS | _TOKEN_WORDS):
    return True
  # A table kept under a generic key (`eqx.nn.Embedding`'s `weight`) is named by its module; a
  # convolution stored the same way (`patch_embedding/weight`) has more than two dimensions.
  return (
    len(names) > 1
    and leaf.lower() in _TABLE_KEYS
    and ndim == 2
    and bool(_words(names[-2]) & EMBEDDING_WORDS)
  )


def _patterns(patterns: Any, name: str) -> tuple[str, ...]:
  if isinstance(patterns, str):
    return (patterns,)
  if isinstance(patterns, (bytes, bytearray)) or not isinstance(patterns, Iterable):
    raise TypeError(
      f"{_OWNER}: {name} takes a regular expression (str) or an iterable of them, got "
      f"{patterns!r}; pass () for none."
    )
  patterns = tuple(patterns)  # once: a generator would be empty at the next call
  for pattern in patterns:
    if not isinstance(pattern, str):
      raise TypeError(f"{_OWNER}: {name} must hold regular expressions (str), got {pattern!r}.")
  return patterns


def _compile(patterns: tuple[str, ...], name: str) -> list[re.Pattern[str]]:
  compiled = []
  for pattern in patterns:
    try:
      compiled.append(re.compile(pattern, re.IGNORECASE))
    except re.error as err:
      raise ValueError(f"{_OWNER}: {name} pattern {pattern!r} is not a regex: {err}.") from err
  return compiled


def _check_not_a_step_count(params: Any) -> None:
  # optax.inject_hyperparams calls every callable argument with the step count (an int32 scalar).
  if isinstance(params, (int, np.integer)) or (
    isinstance(params, (np.ndarray, jax.Array))
    and np.ndim(params) == 0
    and jnp.issubdtype(params.dtype, jnp.integer)
  ):
    raise TypeError(
      f"{_OWNER} was called with a scalar integer instead of the parameters: "
      "optax.inject_hyperparams treats a callable mask as a schedule of the step count. Use "
      "optax_decay.inject_hyperparams, or pass static_args=('mask',) to "
      "optax.inject_hyperparams."
    )


def _is_float_array(leaf: Any) -> bool:
  dtype = getattr(leaf, "dtype", None)
  return hasattr(leaf, "shape") and dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


_CONFIGURE = object()  # the `params` of a call that only configures the mask


def decay_mask(
  params: Any = _CONFIGURE,
  *,
  exclude: str | Iterable[str] = (),
  include: str | Iterable[str] = (),
  min_ndim: int = 2,
  default_rules: bool = True,
) -> Any:
  r"""The mask that decays kernels and leaves biases, norm layers, embeddings and tokens alone.

  A floating-point array leaf with path :math:`p` and :math:`d` dimensions is decayed when

  .. math::

    \mathrm{include}(p) \;\lor\;
    \big(\lnot\,\mathrm{exclude}(p) \,\land\, \lnot\,\mathrm{rules}(p) \,\land\, d \ge
    \texttt{min\_ndim}\big)

  so ``include`` wins over everything, ``exclude`` and the default name rules forbid decay, and
  what neither names is decayed when it has at least ``min_ndim`` dimensions. Integer, boolean
  and non-array leaves are never decayed.

  **Paths.** The path of a leaf is its keys joined by ``/``: dict keys, attribute names
  (Equinox modules) and list indices, after Flax NNX ``Variable`` boxes are unwrapped, so it is
  the same whether ``nnx.Optimizer`` passes an ``nnx.State`` of ``nnx.Param`` (at ``init``) or
  of plain arrays (at ``update``). Linen's ``{"params": {"Dense_0": {"kernel": ...}}}`` gives
  ``params/Dense_0/kernel``; an Equinox ``eqx.nn.MLP`` gives ``layers/0/weight``.

  **Default rules** (``default_rules=True``). Each key is split into lower-cased words at
  non-letters, digits and camelCase boundaries (``LayerNorm_0`` → layer, norm, 0; ``RMSNorm``
  → rms, norm; ``ln_f`` → ln, f; ``norm1`` → norm, 1; ``embed_tokens`` → embed, tokens), and
  whole words count: ``normal``, ``unembed``, ``kernel_b`` and ``abnormal`` match nothing. A
  leaf is not decayed when

  - a key anywhere in its path has a word of :data:`NO_DECAY_WORDS` (``bias``, ``biases``,
    ``norm``, ``norms``, ``ln``, ``bn``, ``layernorm``, ``batchnorm``, ``groupnorm``,
    ``rmsnorm``, ``instancenorm``), which covers every leaf of a norm layer, its ``scale``
    included, T5's ``relative_attention_bias`` and Swin's ``relative_position_bias_table``; or
    its own key is exactly ``b`` (Haiku's bias);
  - it is an embedding table: its own key has a word of :data:`EMBEDDING_WORDS` (``emb``,
    ``embed``, ``embeds``, ``embedding``, ``embeddings``, ``embedder``, ``embedders``), as in
    Flax ``Embed``'s ``embedding``, Haiku's ``embeddings``, Gemma's ``input_embedding``,
    ``pos_embed``, ``pos_embedding``, ``position_embeddings``; or it is a two-dimensional
    ``weight`` or ``table`` directly under a key with such a word, as an ``eqx.nn.Embedding``
    or a PyTorch-named ``nn.Embedding`` keeps it (``token_embedder/weight``,
    ``embed_tokens/weight``);
  - it is a learned token: its own key has the word ``token``, ``tokens`` or ``cls``
    (``cls_token``, ``reg_token``, ``register_tokens``, ``dist_token``, ``mask_token``,
    big_vision's ``cls``), or ``probe`` (big_vision's attention-pooling query).

  Embedding words count only at the leaf and, for a table under a generic key, its parent, so
  the weight matrices of embedding *modules* are decayed like every kernel: a timm-style ViT's
  patch convolution ``patch_embed/proj/kernel``, big_vision's ``embedding/kernel``, a diffusion
  model's ``time_embedding/linear_1/kernel``, a PyTorch-named ``patch_embedding/weight``
  convolution (four dimensions). These choices follow timm's ``no_weight_decay`` and
  big_vision's kernels-only default; the tests check them against the parameter names of ViT,
  Swin, ConvNeXt, ResNet, GPT-2, LLaMA, Gemma, T5, BERT and CLIP.

  **Embedding tables are not decayed.** This is where the model families disagree: timm and
  big_vision spare position embeddings and class tokens, while the Hugging Face Trainer and
  nanoGPT decay token embeddings like any other matrix. ``decay_mask`` spares the tables it
  recognises, because a token's row gets a gradient only in the steps whose batch holds that
  token, while decoupled decay shrinks every row at every step, so rare tokens are pulled
  toward zero between sightings. To decay them as nanoGPT does, name them in ``include``:
  ``decay_mask(include=r"/embedding$")`` decays Flax ``Embed`` tables. A table known only by
  its module's name (GPT-2's ``wte/weight`` in PyTorch naming) is not recognised and is
  decayed, as are names outside these lists; add them to ``exclude`` to spare them.

  **Stacked or scanned layers** (``nnx.scan``, ``nn.scan``, ``vmap``-ed init) give every leaf
  extra leading axes, so a stacked bias or norm scale has two dimensions and passes the
  ``min_ndim`` test; the name rules still exclude it. A stacked one-dimensional parameter with a
  name the rules do not know (a gate, a learned temperature) *is* decayed: name it in
  ``exclude``. There is no ``stacked_axes`` option because the same tree usually mixes stacked
  and unstacked leaves, and a name says what a leaf is more reliably than its shape.

  **Configuring it.** Pass ``decay_mask`` itself as a ``mask``; the optimizer calls it with the
  parameters at ``init`` and ``update``. To change the rules, call it with keyword arguments
  only: ``decay_mask(exclude=r"(^|/)head/")`` checks the patterns and ``min_ndim`` at once and
  returns the configured mask function.

  Args:
    params: the parameters: a pytree (dict, Linen ``FrozenDict``, ``nnx.State`` with or
      without ``Variable`` boxes, Equinox module, ...). Left out, the call returns the mask
      function with the other arguments fixed.
    exclude: regular expressions, matched case-insensitively with ``re.search`` against each
      leaf's path: a match means no decay. They add to the default rules. One ``str`` is one
      pattern.
    include: regular expressions in the same form: a match means decay, whatever ``exclude``,
      the default rules and ``min_ndim`` say (floating-point leaves only).
    min_ndim: the fewest dimensions a leaf needs to be decayed (include aside). 0 decays
      scalars and vectors too.
    default_rules: apply the default name rules above. With ``False`` only ``exclude``,
      ``include`` and ``min_ndim`` decide.

  Returns:
    A pytree of Python bools with the structure of ``params`` (Variables unwrapped), ``True``
    where the leaf is decayed; without ``params``, a function of the parameters returning it.

  Raises:
    TypeError: when called with a scalar integer, which is what ``optax.inject_hyperparams``
      passes to a mask it takes for a schedule (use :func:`inject_hyperparams` or
      ``static_args=('mask',)``), for an ``exclude`` or ``include`` that is neither a
      ``str`` nor an iterable of them, or for a pattern that is not a ``str``.
    ValueError: for a pattern that is not a valid regular expression, or a negative
      ``min_ndim``.

  Example:
    >>> import functools, jax.numpy as jnp, optax_decay
    >>> params = {"params": {
    ...     "Embed_0": {"embedding": jnp.ones((10, 4))},
    ...     "Dense_0": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)},
    ...     "LayerNorm_0": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
    ...     "head": {"kernel": jnp.ones((4, 2))}}}
    >>> mask = optax_decay.decay_mask(params)["params"]
    >>> mask["Dense_0"], mask["head"]
    ({'bias': False, 'kernel': True}, {'kernel': True})
    >>> mask["LayerNorm_0"], mask["Embed_0"]
    ({'bias': False, 'scale': False}, {'embedding': False})
    >>> optax_decay.decay_mask(params, include=r"/embedding$")["params"]["Embed_0"]
    {'embedding': True}
    >>> tx = optax_decay.adamw(1e-3, weight_decay=0.1, mask=optax_decay.decay_mask)
    >>> no_head = optax_decay.decay_mask(exclude=r"(^|/)head/")
    >>> no_head(params)["params"]["head"]
    {'kernel': False}
    >>> optax_decay.decay_mask(exclude="head[")
    Traceback (most recent call last):
    ValueError: decay_mask: exclude pattern 'head[' is not a regex: ...

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  if isinstance(min_ndim, bool) or not isinstance(min_ndim, (int, np.integer)):
    raise TypeError(f"{_OWNER}: min_ndim must be an int, got {min_ndim!r}.")
  if min_ndim < 0:
    raise ValueError(f"{_OWNER}: min_ndim must be non-negative, got {min_ndim}.")
  exclude = _patterns(exclude, "exclude")
  include = _patterns(include, "include")
  excluded = _compile(exclude, "exclude")
  included = _compile(include, "include")
  if params is _CONFIGURE:
    return functools.partial(
      decay_mask, exclude=exclude, include=include, min_ndim=min_ndim, default_rules=default_rules
    )
  _check_not_a_step_count(params)

  def decide(path: tuple[Any, ...], leaf: Any) -> bool:
    if not _is_float_array(leaf):
      return False
    names = _path_names(path)
    joined = "/".join(names)
    if any(p.search(joined) for p in included):
      return True
    if default_rules and _has_default_no_decay_name(names, len(leaf.shape)):
      return False
    if any(p.search(joined) for p in excluded):
      return False
    return len(leaf.shape) >= min_ndim

  return jax.tree_util.tree_map_with_path(decide, _tree.unwrap_variables(params))
