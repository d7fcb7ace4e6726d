"""Sparse MLP on sklearn's digits: AdamW followed by proximal L1 gives exact zeros.

Trains a one-hidden-layer MLP on the 8x8 digits (1,347 training, 450 test images) with
`optax_decay.adamw` and `optax_decay.proximal_l1` last in the chain, once per L1 strength, and
reports the fraction of weight-matrix entries that are exactly 0.0 and the test accuracy. Biases
are neither decayed nor thresholded: `optax_decay.decay_mask` picks the weight matrices for both.

Run: python examples/sparse_digits.py [--epochs 20] [--l1 0 0.1 0.3 1]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import optax_decay


def init_mlp(key, sizes):
  k1, k2 = jax.random.split(key)
  (n_in, n_hidden, n_out) = sizes
  return {
    "hidden": {
      "w": jax.random.normal(k1, (n_in, n_hidden)) * np.sqrt(2.0 / n_in),
      "b": jnp.zeros(n_hidden),
    },
    "out": {
      "w": jax.random.normal(k2, (n_hidden, n_out)) * np.sqrt(1.0 / n_hidden),
      "b": jnp.zeros(n_out),
    },
  }


def logits(params, x):
  h = jax.nn.relu(x @ params["hidden"]["w"] + params["hidden"]["b"])
  return h @ params["out"]["w"] + params["out"]["b"]


def loss(params, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def sparsity(params) -> float:
  """The fraction of weight-matrix entries that are exactly zero."""
  kernels = [params["hidden"]["w"], params["out"]["w"]]
  zeros = sum(int(jnp.sum(k == 0.0)) for k in kernels)
  return zeros / sum(k.size for k in kernels)


def train(l1: float, data, args) -> dict:
  x_train, y_train, x_test, y_test = data
  tx = optax.chain(
    optax_decay.adamw(args.lr, weight_decay=args.weight_decay, mask=optax_decay.decay_mask),
    optax_decay.proximal_l1(l1, optax_decay.decay_mask, learning_rate=args.lr),
  )
  params = init_mlp(jax.random.key(args.seed), (64, args.hidden, 10))
  state = tx.init(params)

  @jax.jit
  def step(params, state, x, y):
    updates, state = tx.update(jax.grad(loss)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  rng = np.random.default_rng(args.seed)
  n_batches = len(x_train) // args.batch_size
  for _ in range(args.epochs):
    order = rng.permutation(len(x_train))[: n_batches * args.batch_size]
    for rows in order.reshape(n_batches, args.batch_size):
      params, state = step(params, state, x_train[rows], y_train[rows])
  predictions = jnp.argmax(logits(params, x_test), axis=1)
  return {
    "l1": l1,
    "sparsity": sparsity(params),
    "test_accuracy": float(jnp.mean(predictions == y_test)),
  }


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--weight-decay", type=float, default=1e-4)
  parser.add_argument("--l1", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  digits = load_digits()
  x_train, x_test, y_train, y_test = train_test_split(
    (digits.data / 16.0).astype(np.float32), digits.target, test_size=0.25, random_state=0
  )
  data = (x_train, y_train, x_test, y_test)

  results = [train(l1, data, args) for l1 in args.l1]
  print(f"{'l1':>8} {'exact zeros':>12} {'test acc':>9}")
  for r in results:
    print(f"{r['l1']:>8g} {r['sparsity']:>12.1%} {r['test_accuracy']:>9.1%}")
  return results


if __name__ == "__main__":
  main()
