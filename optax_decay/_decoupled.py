"""Decoupled weight decay: shrink the weights outside the optimizer's moment estimates."""

from __future__ import annotations

import optax

from optax_decay import _add_scaled, _masks


def decoupled_decay(
  weight_decay: optax.ScalarOrSchedule,
  mask: _masks.Mask = None,
  *,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""Adds the weights, scaled by the decay rate, to the preconditioned update.

  .. math::

    u_t \leftarrow u_t + \kappa_t \, w_{t-1}

  Place it *after* the preconditioner (``optax.scale_by_adam``, ``optax.trace``, ...) so the
  decay never enters the moment estimates (Loshchilov & Hutter, Alg. 1 and 2). Whatever comes
  after it in the chain multiplies the decay too. In the standard position, just before
  ``optax.scale_by_learning_rate(lr)``, the step is
  :math:`w_t = w_{t-1} - \mathrm{lr}_t (u_t + \kappa_t w_{t-1})`: the decay is coupled to the
  learning rate exactly as in ``optax.adamw`` and PyTorch's ``AdamW``, and

  ``optax.chain(optax.scale_by_adam(), decoupled_decay(wd), optax.scale_by_learning_rate(lr))``

  equals ``optax.adamw(lr, weight_decay=wd)`` bit for bit.

  Every other coupling is this transform with another rate κ_t (or in another place), which
  :func:`scale_by_learning_rate_and_decay` builds for you:

  - ``"lr"``, lr_t·λ·w per step: ``decoupled_decay(λ)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"schedule"``, (lr_t/peak)·λ·w: ``decoupled_decay(λ / peak)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"corrected"``, (lr_t²/peak)·λ·w: ``decoupled_decay(lambda t: λ * lr(t) / peak)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"none"``, λ·w: ``optax.scale_by_learning_rate(lr, flip_sign=False)``, then
    ``decoupled_decay(λ)``, then ``optax.scale(-1.0)``.

  Args:
    weight_decay: the rate κ ≥ 0: a float, a scalar array, or a schedule of the step count. A
      schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``, the same count ``optax.scale_by_learning_rate`` sees in the same chain.
    mask: ``None`` (decay every floating-point leaf), a pytree of bools with the structure of
      the parameters or of a prefix of them, or a callable returning one from the parameters.
      ``True`` marks leaves that are decayed. Integer and boolean leaves always pass through.
    cautious: cautious weight decay (Chen et al. 2025): decay only the coordinates where the
      update and the weight agree in sign, :math:`u_t \leftarrow u_t + \kappa_t\,
      \mathbb{1}[u_t \odot w_{t-1} \ge 0] \odot w_{t-1}`, so the decay never pushes a weight
      against the direction the optimizer is already moving it.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` for a constant rate and a step count for a schedule.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> adamw = optax.chain(
    ...     optax.scale_by_adam(),
    ...     optax_decay.decoupled_decay(1e-2),
    ...     optax.scale_by_learning_rate(1e-3),
    ... )
    >>> params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 0.5)}
    >>> ours, _ = adamw.update(grads, adamw.init(params), params)
    >>> reference = optax.adamw(1e-3, weight_decay=1e-2)
    >>> theirs, _ = reference.update(grads, reference.init(params), params)
    >>> bool((ours["w"] == theirs["w"]).all())
    True

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
    Chen et al., `Cautious Weight Decay <https://arxiv.org/abs/2510.12402>`_, 2025.
  """
  return _add_scaled.add_scaled_params(
    weight_decay, mask, owner="decoupled_decay", rate_name="weight_decay", cautious=cautious
  )
