"""Low precision: when a decay rounds away on 16-bit weights, and how to keep it from doing so."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.core import Tracer

from optax_decay import _errors, _tree


def warn_if_below_resolution(fraction: float, leaves: list[Any]) -> None:
  """Warns when a constant decay of `fraction` per step rounds away on a 16-bit leaf.

  Only 16-bit leaves: there a whole run of decay steps rounds away (measured in
  examples/bf16_decay.py). In float32 and wider, a fraction below half an ulp still moves the
  weights, because it is added to the optimizer's own step before the sum is rounded.
  """
  for leaf in leaves:
    dtype = jnp.result_type(leaf)
    half_ulp = float(jnp.finfo(dtype).eps) / 2
    if jnp.finfo(dtype).bits <= 16 and fraction < half_ulp:
      _errors.warn(
        f"the decay removes {fraction:.3g} of each weight per step, less than half the "
        f"spacing of {dtype} numbers near 1 ({half_ulp:.3g}); on its own w·(1 - fraction) "
        "rounds back to w, so the decay barely acts. Chain optax_decay.compensated_summation() "
        "last to carry the rounding error over, or keep float32 parameters."
      )
      return


class CompensatedSummationState(NamedTuple):
  """Per-leaf rounding error not yet applied to the weights (float32); empty for wide leaves."""

  error: Any


def _needs_compensation(leaf: Any) -> bool:
  dtype = getattr(leaf, "dtype", None)
  return dtype is not None and jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32


def _zeros_laid_out_like(param: Any) -> jax.Array:
  # A concrete parameter lends its sharding to its error buffer; under tracing the compiler
  # decides, as for the optimizer's other state.
  if isinstance(param, jax.Array) and not isinstance(param, Tracer):
    return jnp.zeros(param.shape, jnp.float32, device=param.sharding)
  return jnp.zeros(jnp.shape(param), jnp.float32)


@_errors.public
def compensated_summation() -> optax.GradientTransformation:
  r"""Carries the rounding error of each low-precision weight update over to the next step.

  With bfloat16 weights, a step smaller than half the spacing of bfloat16 numbers around a weight
  (relative size :math:`2^{-9}`) is rounded away entirely. Weight decay is the first victim: a
  per-step shrink ``lr·λ`` of 1e-4 changes no bfloat16 weight at all. Placed *last* in a chain,
  this transform keeps a float32 error :math:`e` per weight (Kahan summation) and returns the
  update that lands each weight on the bfloat16 number nearest to the exactly accumulated one:

  .. math::

    s = w + u + e, \qquad w' = \mathrm{round}(s), \qquad u \leftarrow w' - w,
    \qquad e \leftarrow s - w'

  computed in float32. ``optax.apply_updates`` then gives exactly :math:`w'`. Leaves of 32 or
  more bits pass through unchanged and hold no error buffer; each 16-bit leaf costs a float32
  buffer of its size.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> params = {"w": jnp.ones(4, jnp.bfloat16)}
    >>> tx = optax.chain(optax_decay.sgdw(1.0, momentum=0.0, weight_decay=1e-4),
    ...                  optax_decay.compensated_summation())
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...   warnings.simplefilter("ignore")  # init warns that the decay rounds away in bfloat16
    ...   state = tx.init(params)
    >>> zero = {"w": jnp.zeros(4, jnp.bfloat16)}
    >>> for _ in range(1000):
    ...   updates, state = tx.update(zero, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> float(params["w"][0])  # (1 - 1e-4)**1000 = 0.905; without compensation it stays 1.0
    0.90625

  References:
    Zamirai et al., `Revisiting BFloat16 Training <https://arxiv.org/abs/2010.06192>`_, 2020.
  """

  def init_fn(params):
    params = _tree.unwrap_variables(params)
    return CompensatedSummationState(
      error=jax.tree.map(
        lambda p: _zeros_laid_out_like(p) if _needs_compensation(p) else optax.MaskedNode(),
        params,
        is_leaf=_tree.is_placeholder,
      )
    )

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    if updates is None:
      return None, state

    def leaf(u, p, e):
      if isinstance(e, optax.MaskedNode) or _tree.is_placeholder(u):
        return u, e
      exact = p.astype(jnp.float32) + u.astype(jnp.float32) + e
      rounded = exact.astype(p.dtype)
      step = rounded - p
      # Book the error against what apply_updates will actually produce.
      landed = (p + step).astype(p.dtype)
      return step.astype(u.dtype), exact - landed.astype(jnp.float32)

    leaves = _tree.align(updates, params, (state.error,))
    results = [
      leaf(u, p, e) for u, p, e in zip(leaves.updates, leaves.params, leaves.others[0], strict=True)
    ]
    new_updates = leaves.rebuild([u for u, _ in results])
    new_error = leaves.plain.unflatten([e for _, e in results])
    return new_updates, CompensatedSummationState(error=new_error)

  return optax.GradientTransformation(init_fn, update_fn)
