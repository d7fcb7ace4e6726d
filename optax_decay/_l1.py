"""L1 regularization applied to the gradients: the subgradient `l1 · sign(w)`."""

from __future__ import annotations

import jax.numpy as jnp
import optax

from optax_decay import _add_scaled, _masks

_OWNER = "add_l1_to_grads"


def add_l1_to_grads(
  l1: optax.ScalarOrSchedule,
  mask: _masks.Mask = None,
) -> optax.GradientTransformation:
  r"""Adds a subgradient of an L1 penalty to the gradients: classic L1 regularization.

  .. math::

    g_t \leftarrow g_t + \lambda_t \, \operatorname{sign}(w_{t-1})
    \;\in\; \partial_w \Big[ f(w) + \lambda_t \lVert w \rVert_1 \Big]_{w = w_{t-1}},
    \qquad \operatorname{sign}(0) = 0

  Place it *first* in a chain, before the preconditioner, like :func:`add_l2_to_grads`: the
  penalty's subgradient then goes through the moment estimates with the loss's gradient. The
  learning rate that comes later in the chain multiplies it with everything else, so the penalty
  is coupled to the learning rate. A subgradient step overshoots zero and leaves weights
  oscillating around it rather than at it; for exact zeros use :func:`proximal_l1`.

  The term is computed in each parameter's dtype (complex parameters get ``w / |w|``).

  Args:
    l1: the penalty strength λ ≥ 0: a float, a scalar array, or a schedule of the step count.
      A schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``; in a chain it therefore equals the count of ``optax.scale_by_learning_rate``.
    mask: ``None`` (penalize every floating-point leaf), a pytree of bools with the structure
      of the parameters or of a prefix of them, or a callable returning one from the
      parameters. ``True`` marks leaves that are penalized. Integer and boolean leaves always
      pass through unchanged. Flax NNX ``Variable`` boxes are unwrapped on both sides.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` for a constant ``l1`` and a step count for a schedule.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax.chain(optax_decay.add_l1_to_grads(0.1), optax.sgd(1.0))
    >>> params = {"w": jnp.array([2.0, 0.0, -3.0])}
    >>> updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    >>> updates["w"]  # −lr·(g + λ·sign(w))
    Array([-1.1, -1. , -0.9], dtype=float32)

  References:
    Tibshirani, `Regression Shrinkage and Selection via the Lasso
    <https://doi.org/10.1111/j.2517-6161.1996.tb02080.x>`_, JRSS B 1996.
    Tsuruoka, Tsujii & Ananiadou, `Stochastic Gradient Descent Training for L1-regularized
    Log-linear Models with Cumulative Penalty <https://aclanthology.org/P09-1054/>`_, ACL 2009.
  """
  # The same mechanism as L2 with sign(w) in place of w: checks, mask resolution, warnings and
  # the schedule's step count are shared with add_l2_to_grads.
  return _add_scaled.add_scaled_params(l1, mask, owner=_OWNER, rate_name="l1", direction=jnp.sign)
