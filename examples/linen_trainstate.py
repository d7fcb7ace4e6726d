"""The NNX example in Flax Linen: `TrainState` with `optax_decay.adamw` and a callable mask.

The mask is `optax_decay.decay_mask`, a function of Linen's nested parameter dict: it decays the
two kernels and, by their paths (`hidden/bias`, `norm/scale`, ...), leaves the biases and the
LayerNorm's scale and bias alone. A callable (rather than a fixed tree) keeps working if the
model changes shape, since it is evaluated on the parameters the optimizer actually sees.

Run: python examples/linen_trainstate.py [--steps 300]
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from flax.training import train_state

import optax_decay


class Classifier(nn.Module):
  """64 → hidden → LayerNorm → ReLU → 10."""

  hidden: int = 64

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.hidden, name="hidden")(x)
    x = nn.relu(nn.LayerNorm(name="norm")(x))
    return nn.Dense(10, name="out")(x)


def load_digits_split(seed: int = 0):
  """Digits scaled to [0, 1]: a fixed split of 1297 training and 500 test images."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
  return x[:-500], y[:-500], x[-500:], y[-500:]


@jax.jit
def train_step(state: train_state.TrainState, x, y):
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  # apply_gradients calls tx.update(grads, opt_state, params): the decay needs the params.
  return state.apply_gradients(grads=grads), loss


@jax.jit
def accuracy(state: train_state.TrainState, x, y):
  return jnp.mean(jnp.argmax(state.apply_fn({"params": state.params}, x), -1) == y)


def make_state(hidden: int, lr, weight_decay: float, seed: int = 0) -> train_state.TrainState:
  """A TrainState for `Classifier` with masked AdamW."""
  model = Classifier(hidden)
  params = model.init(jax.random.key(seed), jnp.zeros((1, 64)))["params"]
  tx = optax_decay.adamw(lr, weight_decay=weight_decay, mask=optax_decay.decay_mask)
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


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
  schedule = optax.cosine_decay_schedule(args.lr, args.steps)
  state = make_state(args.hidden, schedule, args.weight_decay)
  flags = traverse_util.flatten_dict(optax_decay.decay_mask(state.params), sep="/")
  print("decayed:", flags)

  rng = np.random.default_rng(0)
  losses = []
  for step in range(args.steps):
    batch = rng.integers(0, len(x_train), args.batch_size)
    state, loss = train_step(state, x_train[batch], y_train[batch])
    losses.append(float(loss))
    if step % max(args.steps // 10, 1) == 0 or step == args.steps - 1:
      print(f"step {step:4d}  loss {losses[-1]:.4f}")
  test_accuracy = float(accuracy(state, x_test, y_test))
  print(f"test accuracy {test_accuracy:.3f}")
  return {"losses": losses, "test_accuracy": test_accuracy}


if __name__ == "__main__":
  main()
