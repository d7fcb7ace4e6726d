"""Wrappers of transform factories: hyperparameters injected as state, with masks kept static."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax._src.lax.lax import _convert_element_type
from jax.core import Tracer

from optax_decay import _coupling, _errors

# Arguments that are not hyperparameters: masks and labels are trees or functions of the
# parameters, restart periods are Python ints that decide the schedule's structure, and dtypes
# are callables (jnp.float32) that optax.inject_hyperparams would take for schedules.
_ALWAYS_STATIC = (
  "mask",
  "param_labels",
  "first_period_steps",
  "period_multiplier",
  "mu_dtype",
  "accumulator_dtype",
)
_NEEDS_PEAK = ("schedule", "corrected")


def inject_hyperparams(
  inner_factory: Callable[..., optax.GradientTransformation],
  static_args: str | Iterable[str] = (),
  hyperparam_dtype: Any = jnp.float32,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  """``optax.inject_hyperparams`` without its pitfalls: the injected transform is the plain one.

  * ``mask`` and ``param_labels`` arguments are always static (as are the restart periods of
    :func:`adamwr` and :func:`sgdwr`, and ``mu_dtype`` and ``accumulator_dtype``).
    ``optax.inject_hyperparams`` calls every callable argument as a schedule of the step count,
    so a mask function would be evaluated on an integer and decay nothing (or everything); here
    it is passed through untouched.
  * Hyperparameters are stored in float32 by default rather than in the parameters' dtype, so
    ``b2=0.999`` does not round to 1.0 for bfloat16 parameters (which makes Adam's first step
    NaN), and reach the transform *weakly typed*, as the Python floats they replace: the
    updates and the inner state have exactly the dtypes of the plain transform (a float32
    array would promote bfloat16 moments and updates to float32, and a jitted step would
    retrace). ``hyperparam_dtype=None`` stores them in the parameters' dtype, as optax does.
  * The arguments are checked when the injected transform is built, by building the plain
    one: an argument the plain transform rejects is the same error here, at construction.
  * With ``coupling="schedule"`` or ``"corrected"`` and a constant learning rate but no
    ``peak_learning_rate``, the learning rate given here becomes the peak (as for the plain
    transform) and is injected as a hyperparameter of its own; changing the injected
    learning rate between steps then changes lr_t/peak, as a schedule would. A learning-rate
    schedule needs an explicit peak, as it does without injection.

  Everything else is ``optax.inject_hyperparams``: numeric arguments become entries of
  ``state.hyperparams`` that can be read and changed between steps, and callables other than
  the static arguments are schedules.

  Args:
    inner_factory: a function returning a transform, e.g. :func:`adamw`.
    static_args: further arguments to keep static, as in ``optax.inject_hyperparams``.
    hyperparam_dtype: dtype of the stored hyperparameters.

  Returns:
    A factory with the signature of ``inner_factory``.

  Example:
    >>> import jax, jax.numpy as jnp, optax_decay
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    >>> no_bias = lambda p: {"w": True, "b": False}
    >>> tx = optax_decay.inject_hyperparams(optax_decay.adamw)(
    ...     learning_rate=1e-3, weight_decay=1e-2, mask=no_bias)
    >>> state = tx.init(params)
    >>> state.hyperparams["weight_decay"]
    Array(0.01, dtype=float32)
  """
  static = {static_args} if isinstance(static_args, str) else set(static_args)
  signature = inspect.signature(inner_factory)
  static.update(name for name in _ALWAYS_STATIC if name in signature.parameters)
  injected = optax.inject_hyperparams(
    _weakly_typed(inner_factory),
    static_args=tuple(sorted(static)),
    hyperparam_dtype=hyperparam_dtype,
  )

  @functools.wraps(inner_factory)
  def factory(*args, **kwargs) -> optax.GradientTransformationExtraArgs:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    if (
      arguments.get("coupling") in _NEEDS_PEAK
      and "peak_learning_rate" in arguments
      and arguments["peak_learning_rate"] is None
      and isinstance(arguments.get("learning_rate"), (int, float, np.generic))
    ):
      arguments["peak_learning_rate"] = arguments["learning_rate"]
    inner_factory(**arguments)  # the plain transform's construction-time checks, now
    return injected(**arguments)

  return factory


def _weakly_typed(factory: Callable[..., optax.GradientTransformation]):
  """`factory` receiving each floating-point scalar array argument weakly typed.

  A weakly typed float32 scalar takes part in arithmetic as a Python float does: it adopts the
  dtype of the array it meets (bfloat16 moments stay bfloat16) while holding a float32 value.
  """

  @functools.wraps(factory)
  def weak_factory(*args, **kwargs):
    return factory(*args, **{name: _weak(value) for name, value in kwargs.items()})

  return weak_factory


def _weak(value: Any) -> Any:
  if isinstance(value, jax.Array) and value.ndim == 0 and jnp.issubdtype(value.dtype, jnp.floating):
    # There is no public API for a weak type; this is what jnp.asarray(1.0) produces.
    return _convert_element_type(value, weak_type=True)
  return value


def passing_none(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """`tx` answering ``update(None, state, params)`` with ``(None, state)``.

  optax's transforms accept a call without updates (``optax.add_decayed_weights`` returns None),
  but ``optax.scale_by_adam`` fails on it and ``optax.trace`` replaces its buffer by None, which
  the next step cannot take. An optimizer called without updates is left as it was.
  """
  tx = optax.with_extra_args_support(tx)

  def update_fn(updates, state, params=None, **extra_args) -> tuple[Any, Any]:
    if updates is None:
      return None, state
    return tx.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


# --- decoupled decay for any optimizer ---------------------------------------------------------

# The arguments with which optax's optimizers decay themselves, switched off by the wrapper.
_OWN_DECAY = {
  "weight_decay": 0.0,
  "weight_decay_rate": None,  # adafactor: None is no decay
  "adam_weight_decay": 0.0,  # muon's Adam partition
  "mask": None,
  "weight_decay_mask": None,
}
_DECAY_ARGS = ("weight_decay", "mask", "coupling", "peak_learning_rate", "cautious")
# Optimizers whose step is not their learning rate times a direction: refused with the reason.
_NOT_PROPORTIONAL = {
  "schedule_free": "the learning rate also weights the average of its iterates",
  "schedule_free_adamw": "the learning rate also weights the average of its iterates",
  "schedule_free_sgd": "the learning rate also weights the average of its iterates",
  "polyak_sgd": "its step size is computed from the loss value, not given",
  "lbfgs": "a line search chooses its step",
}
# A probe: parameters, gradients over a few steps and a learning-rate schedule that moves, on
# which an optimizer's update must be the schedule's value times its update at learning rate 1.
_PROBE_STEPS = 6


def _probe_trees():
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,))}
  grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(_PROBE_STEPS)]
  as_f32 = functools.partial(jax.tree.map, lambda a: jnp.asarray(a, jnp.float32))
  return as_f32(params), [as_f32(g) for g in grads]


def _check_proportional(build: Callable[[Any], optax.GradientTransformation], name: str) -> None:
  """Raises unless `build(schedule)` steps as `build(1.0)` scaled by the schedule's value.

  Both runs apply their own updates, so an optimizer whose state depends on how far the
  parameters moved (a learned step size, a momentum of learning-rate-scaled steps) diverges.
  """

  # Far from 1 and moving, so that a learning rate used inside the optimizer's state (Prodigy's
  # step-size estimate) shows within a few steps.
  def schedule(count):
    return 2.0 + count.astype(jnp.float32)

  params, grads = _probe_trees()

  @functools.partial(jax.jit, static_argnums=0)
  def run(scaled_outside):
    if scaled_outside:  # what the wrapper builds: learning rate 1, then the schedule
      tx = optax.chain(build(1.0), optax.scale_by_schedule(schedule))
    else:
      tx = build(schedule)
    p, updates = params, []
    state = tx.init(p)
    for g in grads:
      u, state = tx.update(g, state, p)
      p = optax.apply_updates(p, u)
      updates.append(u)
    return updates

  try:
    outside = run(True)
  except Exception as err:  # noqa: BLE001 -- any failure means the probe cannot vouch for it
    raise ValueError(
      f"with_decoupled_decay: could not run {name} on a small probe to check that its update "
      f"is proportional to its learning rate ({type(err).__name__}: {err}). It must run as "
      "optax.chain(direction, scale_by_learning_rate(learning_rate)) does, with all arguments "
      "but learning_rate defaulted (bind others with functools.partial)."
    ) from err
  try:
    inside = run(False)
  except Exception as err:  # noqa: BLE001
    raise ValueError(
      f"with_decoupled_decay: {name} does not take a learning-rate schedule "
      f"({type(err).__name__}), so whether its update is proportional to its learning rate at "
      "every step cannot be checked. Add the decay inside its chain instead."
    ) from err
  for t, (a, b) in enumerate(zip(outside, inside, strict=True)):
    if not all(
      np.allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7, equal_nan=True)
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ):
      raise ValueError(
        f"with_decoupled_decay: {name}'s update is not proportional to its learning rate (at "
        f"step {t} a learning-rate schedule does not scale its update by its value: its state "
        "depends on the learning rate), so the learning rate cannot scale a decoupled decay "
        "from outside. Add the decay inside its chain instead."
      )


def _probe_arguments(arguments: dict[str, Any]) -> dict[str, Any] | None:
  """`arguments` as Python values for the probe; None when one of them is traced."""
  probe = {}
  for key, value in arguments.items():
    if isinstance(value, Tracer):
      return None
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
      value = value.item()
    probe[key] = value
  return probe


@_errors.public
def with_decoupled_decay(
  optimizer: Callable[..., optax.GradientTransformation],
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  r"""Gives any optax optimizer decoupled weight decay, with the paper's couplings.

  ``with_decoupled_decay(optax.adam)`` is a factory with ``optax.adam``'s arguments plus the
  keyword-only ``weight_decay``, ``mask``, ``coupling``, ``peak_learning_rate`` and ``cautious``
  of :func:`adamw`. It builds the optimizer with learning rate 1, whose update is then the
  direction :math:`-u_t`, and chains the decay and the learning rate after it:

  .. math::

    w_t = w_{t-1} - \mathrm{lr}_t\, u_t - c_t\, \lambda_t\, w_{t-1}

  with :math:`c_t` set by ``coupling`` (see :func:`scale_by_learning_rate_and_decay`). With the
  default ``coupling="lr"`` the decay joins the direction before the learning rate scales both,
  as in ``optax.adamw``: ``with_decoupled_decay(optax.adam)(lr, weight_decay=λ)`` is
  ``optax.adamw(lr, weight_decay=λ)`` bit for bit, and likewise ``nadam``, ``adamax`` and
  ``lion`` give ``nadamw``, ``adamaxw`` and ``optax.lion(weight_decay=λ)``, and ``sgd`` gives
  :func:`sgdw`. RMSprop, AdaBelief, Muon and the others get the decoupled variant optax does not
  offer.

  The optimizer's own decay (``weight_decay``, ``weight_decay_rate``, ``adam_weight_decay`` and
  their masks) is switched off and replaced, never added a second time. The construction needs
  the optimizer's update to be its learning rate times a direction that does not depend on the
  learning rate. That is checked on a small probe: six steps with a learning-rate schedule that
  moves far from 1, against six steps at learning rate 1 with the schedule applied after, each
  run moving its own parameters; the steps must agree. The probe runs when the optimizer is
  wrapped, with its defaults, and again when the factory is called with other arguments. It
  refuses schedule-free variants (whose learning rate also weights an average), Polyak step
  sizes, line searches, and optimizers whose state depends on the learning rate: a momentum of
  learning-rate-scaled steps (``optax.lars``, ``optax.rmsprop(momentum=...)``), a learned step
  size that weights it (Prodigy, D-Adaptation). A second, independent learning rate
  (``optax.contrib.muon``'s ``adam_learning_rate``) is refused too. The table in
  :doc:`migration` lists what happens with every optax optimizer.

  Args:
    optimizer: an optax optimizer factory with a ``learning_rate`` argument, whose other
      arguments all have defaults (bind others with ``functools.partial``).

  Returns:
    A factory with the optimizer's arguments (its own decay arguments removed) plus
    ``weight_decay`` (λ ≥ 0, default 1e-4), ``mask``, ``coupling``, ``peak_learning_rate`` and
    ``cautious`` as in :func:`adamw`. It returns an ``optax.GradientTransformationExtraArgs``:
    the optimizer at learning rate 1, ``optax.scale(-1.0)``, and the two links of
    :func:`scale_by_learning_rate_and_decay`.

  Raises:
    ValueError: for an optimizer whose update is not proportional to its learning rate, or
      that cannot be built with its defaults.
    TypeError: for a factory without a ``learning_rate`` argument.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> adamw = optax_decay.with_decoupled_decay(optax.adam)
    >>> params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 0.5)}
    >>> ours, theirs = adamw(1e-3, weight_decay=1e-2), optax.adamw(1e-3, weight_decay=1e-2)
    >>> a, _ = ours.update(grads, ours.init(params), params)
    >>> b, _ = theirs.update(grads, theirs.init(params), params)
    >>> bool((a["w"] == b["w"]).all())
    True
    >>> rmspropw = optax_decay.with_decoupled_decay(optax.rmsprop)
    >>> tx = rmspropw(1e-3, weight_decay=0.1, coupling="schedule")  # 0.1·w per step at the peak

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  name = getattr(optimizer, "__qualname__", None) or repr(optimizer)
  if isinstance(optimizer, functools.partial):
    name = f"partial({getattr(optimizer.func, '__qualname__', optimizer.func)})"
  if not callable(optimizer):
    raise TypeError(_errors.named(f"optimizer must be an optimizer factory, got {optimizer!r}."))
  signature = inspect.signature(optimizer)
  if "learning_rate" not in signature.parameters:
    raise TypeError(
      _errors.named(f"{name} has no learning_rate argument, so it has no rate to scale the decay.")
    )
  short_name = getattr(
    optimizer, "__name__", getattr(getattr(optimizer, "func", None), "__name__", "")
  )
  if short_name in _NOT_PROPORTIONAL:
    raise ValueError(
      _errors.named(
        f"{name}'s update is not its learning rate times a direction: "
        f"{_NOT_PROPORTIONAL[short_name]}. Its decay cannot be decoupled from outside."
      )
    )
  own = {k: v for k, v in _OWN_DECAY.items() if k in signature.parameters}

  def build(learning_rate: Any, **kwargs: Any) -> optax.GradientTransformation:
    return optimizer(learning_rate=learning_rate, **kwargs, **own)

  # Checked here with the optimizer's defaults, and again with a user's other arguments when
  # they differ (rmsprop's `momentum` comes after its learning rate), once per set of values.
  _check_proportional(build, name)
  checked = {repr({})}

  # The learning rate scales the decay: it has no default (adafactor's None means "none").
  kept = [
    p.replace(default=inspect.Parameter.empty) if k == "learning_rate" else p
    for k, p in signature.parameters.items()
    if k not in own
  ]
  first_removed = min(
    (i for i, k in enumerate(signature.parameters) if k in own), default=len(kept)
  )
  parameters = [
    p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
    if i >= first_removed and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    else p
    for i, p in enumerate(kept)
  ]
  taken = {p.name for p in parameters}
  clash = taken & set(_DECAY_ARGS)
  if clash:
    raise TypeError(
      _errors.named(f"{name} already has arguments named {sorted(clash)}; rename them first.")
    )
  parameters += [
    inspect.Parameter("weight_decay", inspect.Parameter.KEYWORD_ONLY, default=1e-4),
    inspect.Parameter("mask", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("coupling", inspect.Parameter.KEYWORD_ONLY, default="lr"),
    inspect.Parameter("peak_learning_rate", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("cautious", inspect.Parameter.KEYWORD_ONLY, default=False),
  ]
  # Keyword-only parameters must follow the others (and **kwargs stays last).
  order = {
    inspect.Parameter.POSITIONAL_ONLY: 0,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: 1,
    inspect.Parameter.VAR_POSITIONAL: 2,
    inspect.Parameter.KEYWORD_ONLY: 3,
    inspect.Parameter.VAR_KEYWORD: 4,
  }
  parameters.sort(key=lambda p: order[p.kind])
  wrapped_signature = signature.replace(
    parameters=parameters, return_annotation=optax.GradientTransformationExtraArgs
  )

  def factory(*args: Any, **kwargs: Any) -> optax.GradientTransformationExtraArgs:
    bound = wrapped_signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    decay = {k: arguments.pop(k) for k in _DECAY_ARGS}
    learning_rate = arguments.pop("learning_rate")
    if arguments.get("adam_learning_rate") is not None:
      raise ValueError(
        _errors.named(
          "adam_learning_rate is a second learning rate, independent of learning_rate, so no "
          "one learning rate can scale a decoupled decay of every parameter. Leave it None (the "
          "Adam parameters then follow learning_rate), or decay inside the optimizer."
        )
      )
    for k, p in wrapped_signature.parameters.items():
      if p.kind is inspect.Parameter.VAR_KEYWORD and k in arguments:
        arguments.update(arguments.pop(k))
    given = {
      k: v
      for k, v in arguments.items()
      if signature.parameters[k].default is inspect.Parameter.empty
      or v is not signature.parameters[k].default
    }
    probe = _probe_arguments(given)
    if probe is not None and repr(probe) not in checked:
      _check_proportional(functools.partial(build, **probe), f"{name} with {probe}")
      checked.add(repr(probe))
    return passing_none(
      optax.chain(
        build(1.0, **arguments),
        optax.scale(-1.0),  # the direction u_t: the decay joins it as optax.adamw's does
        *_coupling.decay_parts(
          learning_rate,
          decay["weight_decay"],
          decay["mask"],
          coupling=decay["coupling"],
          peak_learning_rate=decay["peak_learning_rate"],
          cautious=decay["cautious"],
        ),
      )
    )

  factory.__signature__ = wrapped_signature  # type: ignore[attr-defined]
  factory.__name__ = factory.__qualname__ = f"with_decoupled_decay({name})"
  factory.__doc__ = (
    f"{name} with decoupled weight decay: see optax_decay.with_decoupled_decay.\n\n"
    + (optimizer.__doc__ or "")
  )
  return _errors.public(factory)
