"""optax_decay.with_decoupled_decay: any optax optimizer with decoupled decay, in each coupling.

Checked three ways: bit for bit against optax's own decoupled variants (adamw, nadamw, adamaxw,
lion) and optax_decay.sgdw; against NumPy loops of RMSprop, AdaBelief and Muon written from their
definitions (the section "Reference loops" below); and for the optimizers it must refuse. The
rest covers the joints: masks of every kind, schedules, optax_decay.inject_hyperparams, jit,
Orbax checkpoints, nnx.Optimizer and positional arguments.

Wrapping runs a probe (two small compilations), so each optimizer is wrapped once (`_wrap`), and
each run compiles its optimizer's update once, on a tiny two-layer least-squares problem.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import assert_trees_equal, enable_x64, needs_optax_decay_schedules, skip_before

import optax_decay

STEPS = 6
PEAK = 0.05
# A moving learning rate (cosine from PEAK down to PEAK/10) and a moving decay rate: both rates
# as schedules, seeing the same step count.
LR = optax.cosine_decay_schedule(PEAK, decay_steps=STEPS, alpha=0.1)
WD = optax.linear_schedule(0.3, 0.1, transition_steps=STEPS)
MASK = {"w1": True, "w2": True, "b": False}


@functools.cache
def _wrap(optimizer):
  return optax_decay.with_decoupled_decay(optimizer)


# --- the problem: 0.5·mean_i ‖x_i W1 W2 + b − y_i‖², gradients in JAX and, by hand, in NumPy ----


class TwoLayers:
  """Two matrices of transposed aspect ratios (3×5, 5×2) and a vector: Muon orthogonalizes the
  first as it is and the second transposed, scales only the first (fan_out/fan_in = 5/3), and
  hands the vector to its Adam partition."""

  def __init__(self, seed=0, n=8):
    rng = np.random.default_rng(seed)
    self.x, self.y = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    self.init = {
      "w1": rng.normal(size=(3, 5)) / 2,
      "w2": rng.normal(size=(5, 2)) / 2,
      "b": rng.normal(size=(2,)),
    }

  def params(self, dtype=jnp.float32):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), self.init)

  def loss(self, p):
    dtype = p["w1"].dtype
    r = jnp.asarray(self.x, dtype) @ p["w1"] @ p["w2"] + p["b"] - jnp.asarray(self.y, dtype)
    return 0.5 * jnp.mean(jnp.sum(r**2, axis=-1))

  def grad_np(self, p):
    h = self.x @ p["w1"]
    r = h @ p["w2"] + p["b"] - self.y
    n = self.x.shape[0]
    return {"w1": self.x.T @ (r @ p["w2"].T) / n, "w2": h.T @ r / n, "b": r.sum(0) / n}


PROBLEM = TwoLayers()


_grad = jax.jit(jax.grad(PROBLEM.loss))
_apply = jax.jit(optax.apply_updates)


def _run(tx, steps=STEPS, params=None):
  """The parameters after each of `steps` jitted steps, stacked on a leading axis.

  Only `tx.update` is compiled per run; the gradient and the apply are compiled once for the
  file (compilation, not arithmetic, is what a test here spends its time on).
  """
  params = PROBLEM.params() if params is None else params
  state, update, history = tx.init(params), jax.jit(tx.update), []
  for _ in range(steps):
    updates, state = update(_grad(params), state, params)
    params = _apply(params, updates)
    history.append(params)
  return jax.tree.map(lambda *xs: np.stack(xs), *history)


def _max_difference(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


# --- bit for bit: optax's own decoupled variants -------------------------------------------------

# (what is wrapped, its own arguments, the decoupled optimizer it must equal with the same
# arguments plus weight_decay and mask)
OPTAX_VARIANTS = {
  "adam->adamw": (optax.adam, {"b1": 0.8}, optax.adamw),
  "nadam->nadamw": (optax.nadam, {}, optax.nadamw),
  "adamax->adamaxw": (optax.adamax, {}, optax.adamaxw),
  "lion->lion": (optax.lion, {"b2": 0.95}, optax.lion),
  # adamw's own weight_decay is switched off, so the decay is applied once, not twice.
  "adamw->adamw": (optax.adamw, {"eps": 1e-6}, optax.adamw),
  "sgd->sgdw": (optax.sgd, {"momentum": 0.9}, optax_decay.sgdw),
  "sgd-nesterov->sgdw": (optax.sgd, {"momentum": 0.9, "nesterov": True}, optax_decay.sgdw),
}


@pytest.mark.parametrize("name", sorted(OPTAX_VARIANTS))
def test_equals_the_decoupled_variant_bit_for_bit(name):
  optimizer, kwargs, variant = OPTAX_VARIANTS[name]
  if variant is not optax_decay.sgdw:  # optax's own variant, with WD, a schedule
    needs_optax_decay_schedules()
  got = _run(_wrap(optimizer)(LR, weight_decay=WD, mask=MASK, **kwargs))
  want = _run(variant(LR, weight_decay=WD, mask=MASK, **kwargs))
  assert_trees_equal(got, want)


@pytest.mark.parametrize("coupling", ["schedule", "corrected", "none"])  # "lr": adamw above
def test_each_coupling_and_cautious_equal_optax_decay_adamw(coupling):
  peak = {"peak_learning_rate": PEAK} if coupling in ("schedule", "corrected") else {}
  decay = dict(weight_decay=0.02, mask=MASK, coupling=coupling, cautious=True, **peak)
  assert_trees_equal(_run(_wrap(optax.adam)(LR, **decay)), _run(optax_decay.adamw(LR, **decay)))


# --- the optimizer's own decay is switched off ---------------------------------------------------


def test_the_own_decay_of_adamw_is_off():
  assert_trees_equal(_run(_wrap(optax.adamw)(0.05, weight_decay=0.0)), _run(optax.adam(0.05)))


def test_muon_decays_both_partitions_once():
  muon = _wrap(optax.contrib.muon)
  assert {"weight_decay_mask", "adam_weight_decay"}.isdisjoint(
    muon.__signature__.parameters  # type: ignore[attr-defined]
  )
  with pytest.raises(TypeError, match="adam_weight_decay"):
    muon(0.05, adam_weight_decay=0.1)
  skip_before(
    "optax",
    "0.2.6",
    "with optax 0.2.5's muon, one entry of the Adam partition comes out 1 ulp apart from "
    "muon(weight_decay=λ, adam_weight_decay=λ)",
  )
  # weight_decay=λ is optax's lr-coupled decay of the matrices *and* of the Adam partition, each
  # applied once (its own two decays are off).
  assert_trees_equal(
    _run(muon(0.05, weight_decay=0.5)),
    _run(optax.contrib.muon(0.05, weight_decay=0.5, adam_weight_decay=0.5)),
  )


def test_the_own_decay_of_adafactor_is_off():
  adafactor = _wrap(optax.adafactor)
  assert {"weight_decay_rate", "weight_decay_mask"}.isdisjoint(
    adafactor.__signature__.parameters  # type: ignore[attr-defined]
  )
  # Not bit for bit: adafactor multiplies by the learning rate in the middle of its chain, the
  # wrapper at the end, so the products round differently (a few float32 ulps of the step).
  got = _run(adafactor(0.05, weight_decay=0.0))
  want = _run(optax.adafactor(0.05))
  np.testing.assert_allclose(got["w1"], want["w1"], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got["w2"], want["w2"], rtol=1e-6, atol=1e-7)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
  ("optimizer", "error", "reason"),
  [
    (optax.contrib.schedule_free_adamw, ValueError, "weights the average of its iterates"),
    (optax.lars, ValueError, "not proportional to its learning rate"),
    (optax.lbfgs, ValueError, "line search"),
    (optax.polyak_sgd, TypeError, "no learning_rate argument"),
  ],
  ids=["schedule_free_adamw", "lars", "lbfgs", "polyak_sgd"],
)
def test_refuses_optimizers_whose_step_is_not_lr_times_a_direction(optimizer, error, reason):
  with pytest.raises(error, match=f"with_decoupled_decay: .*{reason}"):
    optax_decay.with_decoupled_decay(optimizer)


def test_refuses_muons_independent_adam_learning_rate():
  skip_before("optax", "0.2.7", "optax.contrib.muon's adam_learning_rate, the argument refused")
  with pytest.raises(ValueError, match="adam_learning_rate is a second learning rate"):
    _wrap(optax.contrib.muon)(0.05, adam_learning_rate=1e-3)


# --- Defects found while writing this file (they fail until with_decoupled_decay is fixed) ------
# The probe runs each optimizer with its default arguments and with the parameters held fixed, so
# it misses (a) arguments that put a momentum *after* the learning rate (rmsprop's and
# adafactor's `momentum`, the reason lars is refused), and (b) state that weights the learning
# rate's history by how far the parameters moved (prodigy's step-size estimate). In both cases
# the wrapped optimizer with weight_decay=0 silently differs from the optimizer itself under a
# learning-rate schedule. It should either equal it or refuse, as it refuses lars. Separately,
# the wrapped signature keeps a default learning_rate=None that the wrapper then rejects.


@pytest.mark.parametrize(
  ("optimizer", "kwargs", "peak"),
  [
    (optax.rmsprop, {"momentum": 0.9}, 0.2),
    (optax.adafactor, {"momentum": 0.9}, 0.2),
    # Prodigy's learning rate is a multiplier of its own estimate, 1 by default.
    (optax.contrib.prodigy, {"estim_lr0": 1e-2}, 1.0),
  ],
  ids=["rmsprop-momentum", "adafactor-momentum", "prodigy"],
)
def test_without_decay_it_is_the_optimizer_itself_or_refused(optimizer, kwargs, peak):
  schedule = optax.linear_schedule(peak, peak / 10, transition_steps=STEPS)
  try:
    wrapped = _wrap(optimizer)(schedule, weight_decay=0.0, **kwargs)
  except ValueError as err:
    assert "proportional" in str(err)
    return
  # Both multiply the same float32 numbers in another order: a few ulps, not another algorithm.
  difference = _max_difference(_run(wrapped), _run(optimizer(schedule, **kwargs)))
  assert difference < 1e-5, (
    f"with_decoupled_decay({optimizer.__name__})(schedule, weight_decay=0.0, **{kwargs}) is "
    f"not {optimizer.__name__}(schedule, **{kwargs}): the weights differ by {difference:.3g} "
    f"after {STEPS} steps, and the wrapper did not refuse it"
  )


@pytest.mark.parametrize("optimizer", [optax.adafactor, optax.adadelta])
def test_the_advertised_default_learning_rate_is_accepted(optimizer):
  # adafactor and adadelta default learning_rate to None; the wrapped factory keeps that default
  # in its signature, but calling it without a learning rate raises "learning_rate must be a
  # float, ..., got None". It should either accept its own default or not advertise it.
  wrapped = _wrap(optimizer)
  default = wrapped.__signature__.parameters["learning_rate"].default  # type: ignore[attr-defined]
  if default is not None:
    return
  wrapped(weight_decay=1e-3)


# --- masks, schedules, injection, jit, checkpoints, NNX, positional arguments -------------------


def test_masks_of_each_kind():
  rmspropw = _wrap(optax.rmsprop)
  want = _run(rmspropw(LR, weight_decay=WD, mask=MASK))
  for mask in (
    lambda params: jax.tree.map(lambda p: p.ndim > 1, params),
    optax_decay.decay_mask,  # spares the leaf named `b`
  ):
    assert_trees_equal(_run(rmspropw(LR, weight_decay=WD, mask=mask)), want)
  # Not vacuous: without the mask the bias is decayed too, and everything moves differently.
  assert _max_difference(_run(rmspropw(LR, weight_decay=WD)), want) > 1e-4


def test_nnx_state_mask_inside_nnx_optimizer():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  mask = jax.tree.map(lambda p: p.ndim > 1, nnx.state(model, nnx.Param))  # Variables inside
  lr, wd = 0.1, 0.5
  tx = _wrap(optax.rmsprop)(lr, weight_decay=wd, mask=mask)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  kernel, bias = np.asarray(model.kernel[...]), np.asarray(model.bias[...])

  @nnx.jit
  def step(model, optimizer):
    # Zero gradients: RMSprop's direction is 0, so only the decay moves the weights.
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))

  for t in range(1, 3):
    step(model, optimizer)
    np.testing.assert_allclose(model.kernel[...], (1 - lr * wd) ** t * kernel, rtol=1e-6)
  np.testing.assert_array_equal(model.bias[...], bias)


def test_inject_hyperparams_equals_the_plain_form_and_can_be_changed():
  rmspropw = _wrap(optax.rmsprop)
  kwargs = dict(weight_decay=0.3, mask=optax_decay.decay_mask, coupling="schedule")
  injected = optax_decay.inject_hyperparams(rmspropw)(0.05, decay=0.8, **kwargs)
  plain = rmspropw(0.05, decay=0.8, **kwargs)
  np.testing.assert_allclose(
    _run(injected)["w1"], _run(plain)["w1"], rtol=1e-6, atol=1e-7
  )  # the injected rates are float32 arrays where the plain ones are Python floats

  params = PROBLEM.params()
  state = injected.init(params)
  assert {"learning_rate", "weight_decay", "decay"} <= set(state.hyperparams)
  # λ = 0 and a new learning rate take effect at the next step: plain RMSprop at that rate.
  state.hyperparams["weight_decay"] = jnp.asarray(0.0)
  state.hyperparams["learning_rate"] = jnp.asarray(0.01)
  grads = _grad(params)
  updates, _ = jax.jit(injected.update)(grads, state, params)
  rmsprop = optax.rmsprop(0.01, decay=0.8)
  want, _ = jax.jit(rmsprop.update)(grads, rmsprop.init(params), params)
  np.testing.assert_allclose(updates["w1"], want["w1"], rtol=1e-6)


def test_built_inside_jit_from_traced_rates():
  adabeliefw = _wrap(optax.adabelief)

  @jax.jit
  def final(lr, wd):
    tx = adabeliefw(lr, weight_decay=wd, mask=MASK, coupling="schedule", peak_learning_rate=lr)
    p = PROBLEM.params()
    state = tx.init(p)
    for _ in range(3):
      updates, state = tx.update(jax.grad(PROBLEM.loss)(p), state, p)
      p = optax.apply_updates(p, updates)
    return p

  got = final(jnp.float32(0.05), jnp.float32(0.1))
  want = _run(adabeliefw(0.05, weight_decay=0.1, mask=MASK, coupling="schedule"), steps=3)
  np.testing.assert_allclose(got["w1"], want["w1"][-1], rtol=1e-6, atol=1e-7)


def test_orbax_checkpoint_round_trip_continues_bit_for_bit(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")

  def make():
    return _wrap(optax.adabelief)(
      LR, weight_decay=WD, mask=MASK, coupling="corrected", peak_learning_rate=PEAK
    )

  tx = make()
  update = jax.jit(tx.update)

  def train(params, state, steps):
    for _ in range(steps):
      updates, state = update(_grad(params), state, params)
      params = _apply(params, updates)
    return params, state

  params = PROBLEM.params()
  want = train(params, tx.init(params), STEPS)
  mid = train(params, tx.init(params), 2)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "ckpt", {"params": mid[0], "opt_state": mid[1]})
  checkpointer.wait_until_finished()
  fresh = make()  # a restarted job: new transform, new parameters as the structure to fill
  fresh_params = TwoLayers(seed=1).params()
  target = {"params": fresh_params, "opt_state": fresh.init(fresh_params)}
  restored = checkpointer.restore(
    tmp_path / "ckpt", jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  )
  checkpointer.close()
  assert_trees_equal(restored["opt_state"], mid[1])
  got = train(restored["params"], restored["opt_state"], STEPS - 2)
  assert_trees_equal(got, want)


def test_positional_arguments_keep_their_meaning():
  adamw = _wrap(optax.adam)
  got = _run(adamw(0.05, 0.8, weight_decay=0.1))  # b1 = 0.8, as in optax.adam(0.05, 0.8)
  assert_trees_equal(got, _run(optax.adamw(0.05, 0.8, weight_decay=0.1)))
  # optax.adamw's 7th positional argument was its weight_decay: now keyword-only, never misread.
  with pytest.raises(TypeError):
    _wrap(optax.adamw)(0.05, 0.9, 0.999, 1e-8, 0.0, None, 0.1)


# =================================================================================================
# Reference loops: RMSprop, AdaBelief and Muon in plain NumPy float64, written from their
# definitions with optax's conventions (where eps sits, initial values, bias corrections). They are
# used only here; the project's shared references live in tests/references.py. Each `*_direction`
# returns a stateful function g_t, t ↦ u_t (t = 1, 2, ...), the direction before the learning rate;
# `decoupled_reference` takes the step
#     θ_t = θ_{t−1} − lr_t·u_t − c_t·λ_t·θ_{t−1}   (decayed leaves only),
# with c_t = lr_t ("lr"), lr_t/peak ("schedule"), lr_t²/peak ("corrected") or 1 ("none").
# =================================================================================================


def rmsprop_direction(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True):
  """ν_t = ρ·ν_{t−1} + (1−ρ)·g_t², ν_0 = initial_scale, no bias correction;
  u_t = g_t / sqrt(ν_t + ε) (eps_in_sqrt, optax's default) or g_t / (sqrt(ν_t) + ε)."""
  nu = {}

  def direction(grads, t):
    del t
    out = {}
    for k, g in grads.items():
      nu[k] = decay * nu.get(k, np.full_like(g, initial_scale)) + (1 - decay) * g**2
      out[k] = g / np.sqrt(nu[k] + eps) if eps_in_sqrt else g / (np.sqrt(nu[k]) + eps)
    return out

  return direction


def adabelief_direction(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16):
  """Zhuang et al. 2020, Alg. 2: m_t = β1·m + (1−β1)·g_t; s_t = β2·s + (1−β2)·(g_t − m_t)² + ε_root
  (ε_root enters the running average, so it accumulates); u_t = m̂_t / (sqrt(ŝ_t) + ε) with
  m̂_t = m_t/(1−β1^t), ŝ_t = s_t/(1−β2^t)."""
  m, s = {}, {}

  def direction(grads, t):
    out = {}
    for k, g in grads.items():
      m[k] = b1 * m.get(k, 0.0) + (1 - b1) * g
      s[k] = b2 * s.get(k, 0.0) + (1 - b2) * (g - m[k]) ** 2 + eps_root
      out[k] = (m[k] / (1 - b1**t)) / (np.sqrt(s[k] / (1 - b2**t)) + eps)
    return out

  return direction


def _nesterov_debiased(m, g, beta, t):
  """NAdam's look-ahead: β·m_t/(1−β^{t+1}) + (1−β)·g_t/(1−β^t)."""
  return beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)


def newton_schulz(x, coeffs=(3.4445, -4.775, 2.0315), steps=5, eps=1e-8):
  """Jordan et al.'s quintic iteration X ← aX + (bA + cA²)X, A = XXᵀ, from X/(‖X‖_F + ε); run
  on the wide orientation (a tall matrix is transposed first and back after)."""
  a, b, c = coeffs
  tall = x.shape[0] > x.shape[1]
  x = x.T if tall else x
  x = x / (np.linalg.norm(x) + eps)
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return x.T if tall else x


def muon_direction(beta=0.95, eps=1e-8, adam_b1=0.9, adam_b2=0.999):
  """Muon (Jordan et al. 2024, optax.contrib.muon's defaults) for the matrices: Nesterov momentum
  m_t = β·m + (1−β)·g_t, debiased as NAdam's, orthogonalized by `newton_schulz`, times
  sqrt(max(1, fan_out/fan_in)) for a (fan_in, fan_out) matrix. Every other leaf: NAdam with
  Muon's ε, u_t = m̂_t/(sqrt(v̂_t) + ε)."""
  m, v = {}, {}

  def direction(grads, t):
    out = {}
    for k, g in grads.items():
      if g.ndim == 2:
        m[k] = beta * m.get(k, 0.0) + (1 - beta) * g
        fan_in, fan_out = g.shape
        ortho = newton_schulz(_nesterov_debiased(m[k], g, beta, t), eps=eps)
        out[k] = np.sqrt(max(1.0, fan_out / fan_in)) * ortho
      else:
        m[k] = adam_b1 * m.get(k, 0.0) + (1 - adam_b1) * g
        v[k] = adam_b2 * v.get(k, 0.0) + (1 - adam_b2) * g**2
        m_hat = _nesterov_debiased(m[k], g, adam_b1, t)
        out[k] = m_hat / (np.sqrt(v[k] / (1 - adam_b2**t)) + eps)
    return out

  return direction


def cosine_lr(t, peak=PEAK, steps=STEPS, alpha=0.1):
  """The learning rate of `LR`: peak·((1−α)·½(1 + cos(π·t/T)) + α)."""
  return peak * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * min(t, steps) / steps)) + alpha)


def halving(value, steps=STEPS):
  """`value` falling linearly to value/2 over `steps` steps (optax.linear_schedule's shape)."""
  return lambda t: value * (1 - 0.5 * min(t, steps) / steps)


def decoupled_reference(
  direction, grad_fn, init, steps, *, learning_rate, weight_decay, coupling, peak, mask
):
  """The parameters after each step, stacked; both rates are functions of t = 0, 1, ...."""
  params = {k: np.array(v, np.float64) for k, v in init.items()}
  history = []
  for t in range(steps):
    u = direction(grad_fn(params), t + 1)
    lr_t, lam_t = learning_rate(t), weight_decay(t)
    c_t = {"lr": lr_t, "schedule": lr_t / peak, "corrected": lr_t**2 / peak, "none": 1.0}
    params = {
      k: w - lr_t * u[k] - (c_t[coupling] * lam_t * w if mask[k] else 0.0)
      for k, w in params.items()
    }
    history.append(params)
  return {k: np.stack([h[k] for h in history]) for k in init}


# The same per-step fraction c_t·λ (about 1 %) at the peak in each coupling, so that the decay
# moves the weights far beyond the tolerance in every case.
DECAY_PER_COUPLING = {"lr": 0.2, "schedule": 0.01, "corrected": 0.2, "none": 0.01}

REFERENCES = {
  # (the optax optimizer, its arguments, the NumPy direction with the same arguments)
  "rmsprop": (optax.rmsprop, {}, rmsprop_direction),
  "rmsprop-eps-outside-initial-scale": (
    optax.rmsprop,
    {"eps": 1e-3, "eps_in_sqrt": False, "initial_scale": 0.5},
    rmsprop_direction,
  ),
  "adabelief": (optax.adabelief, {"eps": 1e-8, "eps_root": 1e-6}, adabelief_direction),
  "muon": (optax.contrib.muon, {}, muon_direction),
}
REFERENCE_CASES = [
  *((name, c) for name in ("rmsprop", "adabelief", "muon") for c in optax_decay.COUPLINGS),
  ("rmsprop-eps-outside-initial-scale", "schedule"),
]


def _reference_case(name, coupling):
  """(the wrapped optimizer, the reference history as a function of the decay schedule)."""
  optimizer, kwargs, direction = REFERENCES[name]
  wd = DECAY_PER_COUPLING[coupling]
  peak = {"peak_learning_rate": PEAK} if coupling in ("schedule", "corrected") else {}
  wd_schedule = optax.linear_schedule(wd, wd / 2, transition_steps=STEPS)
  tx = _wrap(optimizer)(
    LR, weight_decay=wd_schedule, mask=MASK, coupling=coupling, **peak, **kwargs
  )

  def reference(weight_decay=None):
    return decoupled_reference(
      direction(**kwargs),
      PROBLEM.grad_np,
      PROBLEM.init,
      STEPS,
      learning_rate=cosine_lr,
      weight_decay=halving(wd) if weight_decay is None else weight_decay,
      coupling=coupling,
      peak=PEAK,
      mask=MASK,
    )

  return tx, reference


@pytest.mark.parametrize(("name", "coupling"), REFERENCE_CASES)
def test_equals_the_numpy_reference(name, coupling):
  tx, reference = _reference_case(name, coupling)
  got, want = _run(tx), reference()
  # float32 against float64. The largest differences seen are 1.8e-6 (AdaBelief, whose
  # (g_t − m_t)² cancels when the gradient is close to its average, and Muon, whose quintic
  # iterations amplify rounding) and 1.5e-7 (RMSprop), on weights of size 0.1 to 1.5 after six
  # steps of at most 0.05. Run in float64 (the next test) the same runs agree to 2e-9, the
  # float32 rounding of optax's schedules: what is left here is float32 arithmetic. The tolerance
  # is 3× the largest difference seen, and 5000× below what the decay changes (≥ 2.5e-2),
  # checked first so that the comparison cannot pass with the decay missing or misscaled.
  assert _max_difference(want, reference(lambda t: 0.0)) > 1e-3
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=0, atol=5e-6, err_msg=k)


@pytest.mark.parametrize(("name", "coupling"), [("adabelief", "lr"), ("muon", "corrected")])
def test_equals_the_numpy_reference_in_float64(name, coupling):
  tx, reference = _reference_case(name, coupling)
  with enable_x64(True):
    got = _run(tx, params=PROBLEM.params(jnp.float64))
  assert got["w1"].dtype == np.float64
  # optax evaluates the schedules in float32: 6e-8 relative on steps of at most 0.05.
  for k, want in reference().items():
    np.testing.assert_allclose(got[k], want, rtol=0, atol=2e-8, err_msg=k)
