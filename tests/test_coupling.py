"""The four couplings of decay to learning rate, against NumPy loops of the paper's algorithms.

Per step the decay removes c_t·λ·w_{t−1}, with c_t = lr_t ("lr"), lr_t/peak ("schedule", the
paper's η_t), lr_t²/peak ("corrected") or 1 ("none").
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import (
  LeastSquares,
  assert_histories_close,
  assert_histories_equal,
  assert_trees_close,
  assert_trees_equal,
  run_float64,
  run_optimizer,
)

import optax_decay

PROBLEM = LeastSquares(seed=3)
STEPS = 60
PEAK = 0.05
WARMUP = 10
END = 0.005

# --- schedules, in optax and written out again in NumPy ---------------------------------------

# name: (the schedule passed to the optimizer, the same schedule by hand in NumPy)
SCHEDULES = {
  "cosine": (
    optax.cosine_decay_schedule(PEAK, STEPS, alpha=0.1),
    references.cosine_decay_schedule(PEAK, STEPS, alpha=0.1),
  ),
  "warmup-cosine": (  # lr_0 = 0
    optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, STEPS, END),
    references.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, STEPS, END),
  ),
  "constant": (PEAK, lambda t: PEAK),
}


def tol_for(schedule):
  # optax computes the warmup (linear) part in float32 at an int32 count even with x64 on, so
  # lr_t carries float32 rounding there; the cosine schedule and constants are float64 under x64.
  if schedule == "warmup-cosine":
    return {"rtol": 1e-6, "atol": 1e-7}
  return {"rtol": 1e-10, "atol": 1e-12}


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine"])
def test_reference_schedules_are_the_intended_ones(schedule):
  sched, np_sched = SCHEDULES[schedule]
  for t in range(STEPS + 5):
    np.testing.assert_allclose(float(sched(jnp.int32(t))), np_sched(t), rtol=2e-6, atol=1e-9)
  if schedule == "warmup-cosine":
    assert float(sched(jnp.int32(0))) == 0.0 == np_sched(0)


# --- NumPy references --------------------------------------------------------------------------

# c_t, the factor of λ·w_{t−1} in the step, as a function of the learning rate lr_t.
DECAY_FACTOR = {
  "lr": lambda lr_t: lr_t,
  "schedule": lambda lr_t: lr_t / PEAK,
  "corrected": lambda lr_t: lr_t**2 / PEAK,
  "none": lambda lr_t: 1.0,
}


def numpy_adam_decay(np_lr, lam, coupling, steps, mask=None):
  """Adam direction u_t;  w_t = w_{t−1} − lr_t·u_t − c_t·λ_t·w_{t−1}  (`lam` a number or λ(t)).

  For coupling="schedule" this is the paper's Alg. 2, line 12, with η_t = lr_t/peak and
  α = peak:  θ_t = θ_{t−1} − η_t(α·m̂_t/(√v̂_t + ε) + λ·θ_{t−1}).
  """
  factor = DECAY_FACTOR[coupling]
  return references.adam(
    PROBLEM.init,
    PROBLEM.grad_np,
    steps,
    np_lr,
    weight_decay=lam,
    decay_factor=lambda t: factor(np_lr(t)),
    mask=mask,
  )


def numpy_sgdw_decay(np_lr, lam, coupling, steps, momentum=0.9):
  """b_t = β·b_{t−1} + g_t;  w_t = w_{t−1} − lr_t·b_t − c_t·λ·w_{t−1}."""
  factor = DECAY_FACTOR[coupling]
  return references.sgd(
    PROBLEM.init,
    PROBLEM.grad_np,
    steps,
    np_lr,
    momentum=momentum,
    weight_decay=lam,
    decay_factor=lambda t: factor(np_lr(t)),
  )


def _peak_kwarg(coupling, lr):
  return {"peak_learning_rate": PEAK} if coupling in ("schedule", "corrected") else {}


LAM = {"lr": 2.0, "schedule": 0.02, "corrected": 10.0, "none": 0.01}  # c_t·λ of order 1e-3..0.1


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_adamw_couplings_match_numpy(coupling, schedule):
  lr, np_lr = SCHEDULES[schedule]
  lam = LAM[coupling]
  tx = optax_decay.adamw(lr, weight_decay=lam, coupling=coupling, **_peak_kwarg(coupling, lr))
  got = run_float64(tx, PROBLEM, STEPS)
  want = numpy_adam_decay(np_lr, lam, coupling, STEPS)
  assert_histories_close(got, want, **tol_for(schedule))
  # the reference is sensitive to the coupling: another c_t gives another trajectory
  same_when_constant = [{"lr", "corrected"}, {"schedule", "none"}]  # with lr_t = peak
  for other in optax_decay.COUPLINGS:
    if other == coupling or (schedule == "constant" and {coupling, other} in same_when_constant):
      continue
    other_ref = numpy_adam_decay(np_lr, lam, other, STEPS)
    assert np.abs(other_ref[-1]["w"] - want[-1]["w"]).max() > 1e-4, other


@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_adamw_couplings_with_weight_decay_schedule(coupling):
  """A scheduled λ_t and a scheduled lr_t: both see the same step count, 0 at the first update."""
  lr, np_lr = SCHEDULES["cosine"]
  lam0 = LAM[coupling]
  wd = optax.linear_schedule(lam0, 0.0, STEPS)
  tx = optax_decay.adamw(lr, weight_decay=wd, coupling=coupling, **_peak_kwarg(coupling, lr))
  got = run_float64(tx, PROBLEM, STEPS)
  # optax's linear schedule is float32 at an int32 count (see tol_for)
  want = numpy_adam_decay(np_lr, lambda t: lam0 * (1 - t / STEPS), coupling, STEPS)
  assert_histories_close(got, want, rtol=1e-6, atol=1e-7)
  shifted = numpy_adam_decay(np_lr, lambda t: lam0 * (1 - (t + 1) / STEPS), coupling, STEPS)
  assert np.abs(shifted[-1]["w"] - want[-1]["w"]).max() > 1e-5  # an off-by-one would show


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine"])
@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_adamw_couplings_float32(coupling, schedule):
  lr, np_lr = SCHEDULES[schedule]
  lam = LAM[coupling]
  tx = optax_decay.adamw(lr, weight_decay=lam, coupling=coupling, **_peak_kwarg(coupling, lr))
  got = run_optimizer(tx, jax.grad(PROBLEM.loss), PROBLEM.params(jnp.float32), STEPS)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(got[-1]))
  want = numpy_adam_decay(np_lr, lam, coupling, STEPS)
  assert_histories_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_sgdw_couplings_match_numpy(coupling, schedule):
  lr, np_lr = SCHEDULES[schedule]
  lam = LAM[coupling]
  tx = optax_decay.sgdw(
    lr, momentum=0.9, weight_decay=lam, coupling=coupling, **_peak_kwarg(coupling, lr)
  )
  got = run_float64(tx, PROBLEM, STEPS)
  want = numpy_sgdw_decay(np_lr, lam, coupling, STEPS)
  assert_histories_close(got, want, **tol_for(schedule))


@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_scale_by_learning_rate_and_decay_in_user_chain(coupling):
  """The transform used directly after scale_by_adam, with a mask: masked leaves get no decay."""
  lr, np_lr = SCHEDULES["cosine"]
  lam = LAM[coupling]
  mask = {"w": True, "b": False}
  tx = optax.chain(
    optax.scale_by_adam(),
    optax_decay.scale_by_learning_rate_and_decay(
      lr, lam, mask, coupling=coupling, **_peak_kwarg(coupling, lr)
    ),
  )
  got = run_float64(tx, PROBLEM, STEPS)
  want = numpy_adam_decay(np_lr, lam, coupling, STEPS, mask=mask)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12)


# --- Alg. 1 built by a user from primitives ---------------------------------------------------


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine"])
@pytest.mark.parametrize("jit", [True, False])
def test_paper_alg1_sgdw_user_chain(schedule, jit):
  lr, np_lr = SCHEDULES[schedule]
  lam, beta = 0.02, 0.9
  tx = optax.chain(
    optax.scale_by_learning_rate(lr, flip_sign=False),
    optax.trace(beta),
    optax_decay.decoupled_decay(lambda t: lam * lr(t) / PEAK),
    optax.scale(-1.0),
  )
  steps = STEPS if jit else 20
  got = run_float64(tx, PROBLEM, steps, jit=jit)
  want = references.sgdw_paper(
    PROBLEM.init,
    PROBLEM.grad_np,
    steps,
    alpha=PEAK,
    schedule_multiplier=lambda t: np_lr(t) / PEAK,
    momentum=beta,
    weight_decay=lam,
  )
  assert_histories_close(got, want, **tol_for(schedule))
  # Alg. 1 keeps α·η_t inside the buffer; with a changing lr that differs from optax.trace's
  # convention (lr applied after the buffer), as in sgdw(coupling="schedule"):
  other = numpy_sgdw_decay(np_lr, lam, "schedule", steps, momentum=beta)
  assert np.abs(other[-1]["w"] - want[-1]["w"]).max() > 1e-5


# --- "none" is exact at lr_t = 0 ----------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_none_coupling_decays_when_lr_is_zero(jit):
  lr, _ = SCHEDULES["warmup-cosine"]
  assert float(lr(0)) == 0.0
  lam = 0.01
  params = PROBLEM.params(jnp.float32)
  grads = jax.grad(PROBLEM.loss)(params)
  for opt in (
    optax_decay.adamw(lr, weight_decay=lam, coupling="none"),
    optax_decay.sgdw(lr, momentum=0.9, weight_decay=lam, coupling="none"),
  ):
    update = jax.jit(opt.update) if jit else opt.update
    updates, _ = update(grads, opt.init(params), params)
    # the gradient step is 0·u; the decay removes exactly λ·w
    expected = jax.tree.map(lambda w: -(jnp.float32(lam) * w), params)
    assert_trees_equal(updates, expected)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["w"], (1 - lam) * np.asarray(params["w"]), rtol=1e-6)


@pytest.mark.parametrize("coupling", ["lr", "schedule", "corrected"])
def test_lr_coupled_decay_vanishes_when_lr_is_zero(coupling):
  lr, _ = SCHEDULES["warmup-cosine"]
  params = PROBLEM.params(jnp.float32)
  grads = jax.grad(PROBLEM.loss)(params)
  opt = optax_decay.adamw(
    lr, weight_decay=LAM[coupling], coupling=coupling, **_peak_kwarg(coupling, lr)
  )
  updates, _ = opt.update(grads, opt.init(params), params)
  for u in jax.tree.leaves(updates):
    np.testing.assert_array_equal(u, 0.0)


# --- peak_learning_rate -------------------------------------------------------------------------


@pytest.mark.parametrize("coupling", ["schedule", "corrected"])
def test_peak_required_with_schedule(coupling):
  lr = optax.cosine_decay_schedule(1e-2, 100)
  with pytest.raises(ValueError, match="peak_learning_rate"):
    optax_decay.scale_by_learning_rate_and_decay(lr, 0.1, coupling=coupling)
  with pytest.raises(ValueError, match="peak_learning_rate"):
    optax_decay.adamw(lr, weight_decay=0.1, coupling=coupling)
  with pytest.raises(ValueError, match="peak_learning_rate"):
    optax_decay.sgdw(lr, weight_decay=0.1, coupling=coupling)
  # with the peak given it builds
  optax_decay.adamw(lr, weight_decay=0.1, coupling=coupling, peak_learning_rate=1e-2)


@pytest.mark.parametrize("coupling", ["schedule", "corrected"])
def test_peak_defaults_to_constant_learning_rate(coupling):
  lr, lam = 0.03, 0.05
  default = optax_decay.adamw(lr, weight_decay=lam, coupling=coupling)
  explicit = optax_decay.adamw(lr, weight_decay=lam, coupling=coupling, peak_learning_rate=lr)
  grad_fn = jax.grad(PROBLEM.loss)
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(default, grad_fn, params, 30)
  want = run_optimizer(explicit, grad_fn, params, 30)
  assert_histories_equal(got, want)
  # and with peak = lr: "schedule" removes λ·w per step, "corrected" removes lr·λ·w
  got64 = run_float64(optax_decay.adamw(lr, weight_decay=lam, coupling=coupling), PROBLEM, 30)
  per_step = lam if coupling == "schedule" else lr * lam
  want64 = numpy_adam_decay(lambda t: lr, per_step, "none", 30)
  assert_histories_close(got64, want64, rtol=1e-10, atol=1e-12)


# --- separability of "schedule" with a constant lr --------------------------------------------


@pytest.mark.parametrize("lr", [1e-4, 1e-2, 0.5])
def test_schedule_coupling_removes_lambda_w_whatever_lr(lr):
  lam = 0.05
  params = PROBLEM.params(jnp.float32)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for opt in (
    optax_decay.adamw(lr, weight_decay=lam, coupling="schedule"),
    optax_decay.sgdw(lr, momentum=0.9, weight_decay=lam, coupling="schedule"),
  ):
    updates, _ = opt.update(zeros, opt.init(params), params)
    # zero gradient: the whole step is the decay, −λ·w, independent of lr
    assert_trees_close(updates, jax.tree.map(lambda w: -lam * w, params), rtol=1e-6, atol=0)
  # contrast: "lr" coupling removes lr·λ·w
  opt = optax_decay.adamw(lr, weight_decay=lam, coupling="lr")
  updates, _ = opt.update(zeros, opt.init(params), params)
  assert_trees_close(updates, jax.tree.map(lambda w: -lr * lam * w, params), rtol=1e-6, atol=0)


def test_schedule_coupling_decay_part_independent_of_lr_with_real_gradients():
  """With real gradients, the decay part of the trajectory does not move with lr.

  For two learning rates, the per-step removal λ·w is the same; checked on the NumPy
  reference's form (paper's Alg. 2 with constant η = 1) at each lr.
  """
  lam = 0.02
  for lr in (5e-3, 5e-2):
    tx = optax_decay.adamw(lr, weight_decay=lam, coupling="schedule")
    got = run_float64(tx, PROBLEM, 40)
    want = numpy_adam_decay(lambda t, lr=lr: lr, lam, "none", 40)
    assert_histories_close(got, want, rtol=1e-10, atol=1e-12)
