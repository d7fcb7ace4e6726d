"""A minimal Flax NNX training loop with `optax_decay.adamw` and a no-decay mask.

The model is Linear → LayerNorm → ReLU → Linear on scikit-learn's 8×8 digits. Only the two
kernels are decayed: biases and the LayerNorm scale are left alone, the usual practice (decaying
a norm's scale towards 0 fights the normalization instead of regularizing). The mask is
`optax_decay.decay_mask` applied once to `nnx.state(model, nnx.Param)`, and handed to
`nnx.Optimizer`, which works because optax_decay matches masks to parameters by path after
unwrapping NNX Variables.

Run: python examples/nnx_minimal.py [--steps 300]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optax_decay


class Classifier(nnx.Module):
  """64 → hidden → LayerNorm → ReLU → 10."""

  def __init__(self, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, hidden, rngs=rngs)
    self.norm = nnx.LayerNorm(hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def decay_mask(model: nnx.Module):
  """The model's mask as a plain tree of bools: True for the kernels only, by path name."""
  return optax_decay.decay_mask(nnx.state(model, nnx.Param))


def load_digits_split(seed: int = 0):
  """Digits scaled to [0, 1]: a fixed split of 1297 training and 500 test images."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
  return x[:-500], y[:-500], x[-500:], y[-500:]


def loss_fn(model, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
  loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  optimizer.update(model, grads)  # decays the kernels only, as the mask says
  return loss


@nnx.jit
def accuracy(model, x, y):
  return jnp.mean(jnp.argmax(model(x), -1) == y)


def main(argv=None) -> dict[str, list[float]]:
  """Trains for --steps minibatch steps; returns the per-step losses and final test accuracy."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--weight-decay", type=float, default=1e-2)
  args = parser.parse_args(argv)

  x_train, y_train, x_test, y_test = load_digits_split()
  model = Classifier(args.hidden, rngs=nnx.Rngs(0))
  mask = decay_mask(model)
  print(
    "decayed:",
    {jax.tree_util.keystr(p): bool(m) for p, m in jax.tree_util.tree_flatten_with_path(mask)[0]},
  )
  schedule = optax.cosine_decay_schedule(args.lr, args.steps)
  tx = optax_decay.adamw(schedule, weight_decay=args.weight_decay, mask=mask)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  rng = np.random.default_rng(0)
  losses = []
  for step in range(args.steps):
    batch = rng.integers(0, len(x_train), args.batch_size)
    losses.append(float(train_step(model, optimizer, x_train[batch], y_train[batch])))
    if step % max(args.steps // 10, 1) == 0 or step == args.steps - 1:
      print(f"step {step:4d}  loss {losses[-1]:.4f}")
  test_accuracy = float(accuracy(model, x_test, y_test))
  print(f"test accuracy {test_accuracy:.3f}")
  return {"losses": losses, "test_accuracy": test_accuracy}


if __name__ == "__main__":
  main()
