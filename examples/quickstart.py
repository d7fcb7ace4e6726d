"""Quick start: the same problem under Adam with L2 and under AdamW, side by side.

Fits a ridge-regularized least-squares problem on synthetic data with `optax_decay.adam_l2` and
`optax_decay.adamw`, and shows that the two end at different weights once Adam's per-coordinate
scaling enters, while SGD with L2 and SGDW (no momentum) take identical steps.

Run: python examples/quickstart.py [--steps 500]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import optax_decay


def fit(tx: optax.GradientTransformation, x, y, steps: int):
  params = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}

  def loss(p):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

  @jax.jit
  def step(p, s):
    updates, s = tx.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, updates), s

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, float(loss(params))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=500)
  args = parser.parse_args(argv)

  kx, kw, kn = jax.random.split(jax.random.key(0), 3)
  # Features on very different scales: Adam's per-coordinate scaling then treats them unequally.
  x = jax.random.normal(kx, (256, 8)) * jnp.logspace(-1, 1, 8)
  y = x @ jax.random.normal(kw, (8,)) + 0.1 * jax.random.normal(kn, (256,))
  # A literal tree, the plainest form of mask, as in docs/getting-started.md. The weights of this
  # linear model are a vector, which `optax_decay.decay_mask` would leave undecayed by default.
  no_bias = {"w": True, "b": False}

  runs = {
    "adam_l2 (l2=0.1)": optax_decay.adam_l2(1e-2, l2=0.1, mask=no_bias),
    "adamw   (wd=0.1)": optax_decay.adamw(1e-2, weight_decay=0.1, mask=no_bias),
    "sgd_l2  (no momentum)": optax_decay.sgd_l2(1e-3, momentum=0.0, l2=0.1, mask=no_bias),
    "sgdw    (no momentum)": optax_decay.sgdw(1e-3, momentum=0.0, weight_decay=0.1, mask=no_bias),
  }
  results = {}
  for name, tx in runs.items():
    params, final = fit(tx, x, y, args.steps)
    results[name] = params["w"]
    print(f"{name:24s} loss={final:.4f} |w|={float(jnp.linalg.norm(params['w'])):.4f}")
  names = list(results)
  adam_gap = float(jnp.max(jnp.abs(results[names[0]] - results[names[1]])))
  sgd_gap = float(jnp.max(jnp.abs(results[names[2]] - results[names[3]])))
  print(f"max |w_adam_l2 - w_adamw| = {adam_gap:.3g}   (L2 and decoupled decay differ under Adam)")
  print(f"max |w_sgd_l2  - w_sgdw | = {sgd_gap:.3g}   (identical for plain SGD)")


if __name__ == "__main__":
  main()
