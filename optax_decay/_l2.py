"""L2 regularization applied to the gradients."""

from __future__ import annotations

import optax

from optax_decay import _add_scaled, _masks


def add_l2_to_grads(
  l2: optax.ScalarOrSchedule,
  mask: _masks.Mask = None,
) -> optax.GradientTransformation:
  r"""Adds the gradient of an L2 penalty to the gradients: classic L2 regularization.

  .. math::

    g_t \leftarrow g_t + \lambda_t \, w_{t-1}
    \;=\; \nabla_w \Big[ f(w) + \tfrac{\lambda_t}{2} \lVert w \rVert^2 \Big]_{w = w_{t-1}}

  Place it *first* in a chain, before the preconditioner (``optax.trace``,
  ``optax.scale_by_adam``, ...): the penalty's gradient then goes through the moment estimates
  and per-coordinate scaling like the loss's own gradient. That is what PyTorch's
  ``SGD(weight_decay=...)`` and ``Adam(weight_decay=...)`` do. For plain SGD it equals decoupled
  decay with the same λ (Loshchilov & Hutter, Prop. 1); with momentum or Adam it does not
  (Prop. 2), which is why :func:`decoupled_decay` exists.

  The learning rate that comes later in the chain multiplies the penalty's gradient with
  everything else, so L2 is always coupled to the learning rate.

  Args:
    l2: the penalty strength λ ≥ 0: a float, a scalar array, or a schedule of the step count.
      A schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``; in a chain it therefore equals the count of ``optax.scale_by_learning_rate``.
    mask: ``None`` (penalize every floating-point leaf), a pytree of bools with the structure
      of the parameters or of a prefix of them, or a callable returning one from the
      parameters. ``True`` marks leaves that are penalized. Integer and boolean leaves always
      pass through unchanged.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> sgd_l2 = optax.chain(optax_decay.add_l2_to_grads(0.1), optax.sgd(1.0))
    >>> params = {"w": jnp.array([2.0])}
    >>> state = sgd_l2.init(params)
    >>> updates, state = sgd_l2.update({"w": jnp.array([0.0])}, state, params)
    >>> updates["w"]
    Array([-0.2], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  return _add_scaled.add_scaled_params(l2, mask, owner="add_l2_to_grads", rate_name="l2")
