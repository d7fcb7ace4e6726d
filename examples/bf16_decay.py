"""Weight decay in bfloat16: measured with and without `compensated_summation`.

Trains the same MLP on scikit-learn's digits three times with AdamW (lr·λ per step below half
the bfloat16 spacing, so the decay rounds away): float32 weights (the reference), bfloat16
weights, and bfloat16 weights with `optax_decay.compensated_summation()` chained last. Prints
the weight norm each run ends with and its test accuracy.

Run: python examples/bf16_decay.py [--epochs 30 --weight-decay 0.05]
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_decay


def load_digits_split(seed: int = 0):
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  order = np.random.default_rng(seed).permutation(len(x))
  cut = int(0.8 * len(x))
  return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def init_mlp(key, hidden: int, dtype):
  k1, k2 = jax.random.split(key)
  return {
    "w1": (jax.random.normal(k1, (64, hidden)) / 8.0).astype(dtype),
    "b1": jnp.zeros(hidden, dtype),
    "w2": (jax.random.normal(k2, (hidden, 10)) / np.sqrt(hidden)).astype(dtype),
    "b2": jnp.zeros(10, dtype),
  }


def logits(params, x):
  h = jax.nn.relu(x.astype(params["w1"].dtype) @ params["w1"] + params["b1"])
  return (h @ params["w2"] + params["b2"]).astype(jnp.float32)


def train(tx, params, data, epochs: int, batch: int):
  x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)

  def loss(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb).mean()

  @jax.jit
  def epoch(carry, perm):
    def step(c, idx):
      p, s = c
      grads = jax.grad(loss)(p, x_train[idx], y_train[idx])
      updates, s = tx.update(grads, s, p)
      return (optax.apply_updates(p, updates), s), None

    return jax.lax.scan(step, carry, perm.reshape(-1, batch))[0]

  carry = (params, tx.init(params))
  rng = np.random.default_rng(1)
  usable = (len(x_train) // batch) * batch
  for _ in range(epochs):
    carry = epoch(carry, rng.permutation(len(x_train))[:usable])
  params = carry[0]
  accuracy = float((logits(params, x_test).argmax(-1) == y_test).mean())
  norm = float(jnp.sqrt(sum(jnp.sum(params[k].astype(jnp.float32) ** 2) for k in ("w1", "w2"))))
  return norm, accuracy


def main(argv=None) -> dict[str, tuple[float, float]]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--learning-rate", type=float, default=1e-3)
  parser.add_argument("--weight-decay", type=float, default=1.0)
  args = parser.parse_args(argv)

  data = load_digits_split()
  results = {}
  for name, dtype, compensate in [
    ("float32", jnp.float32, False),
    ("bfloat16", jnp.bfloat16, False),
    ("bfloat16 + compensated_summation", jnp.bfloat16, True),
  ]:
    with warnings.catch_warnings():
      # The rounding warning is the point of this example for the bfloat16 runs.
      warnings.simplefilter("ignore", UserWarning)
      tx = optax_decay.adamw(
        args.learning_rate, weight_decay=args.weight_decay, mask=optax_decay.decay_mask
      )
      if compensate:
        tx = optax.chain(tx, optax_decay.compensated_summation())
      params = init_mlp(jax.random.key(0), args.hidden, dtype)
      results[name] = train(tx, params, data, args.epochs, args.batch)
  no_decay = optax_decay.adamw(args.learning_rate, weight_decay=0.0)
  results["float32, no decay"] = train(
    no_decay, init_mlp(jax.random.key(0), args.hidden, jnp.float32), data, args.epochs, args.batch
  )
  print(
    f"AdamW lr={args.learning_rate} λ={args.weight_decay}: lr·λ = "
    f"{args.learning_rate * args.weight_decay:.2g} per step (bfloat16 eps/2 = {2.0**-8:.2g})"
  )
  for name, (norm, accuracy) in results.items():
    print(f"{name:34s} weight norm {norm:8.3f}   test accuracy {accuracy:.3f}")
  return results


if __name__ == "__main__":
  main()
