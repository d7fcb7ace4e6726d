"""PyTorch's optimizers as contenders; everything here is skipped when torch is not installed."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import numpy as np

from benchmarks import _contenders as C

IMPLEMENTATIONS = ("foreach", "fused")


def available() -> bool:
  return importlib.util.find_spec("torch") is not None


def version() -> str | None:
  if not available():
    return None
  import torch

  return torch.__version__


def set_passive_waiting() -> None:
  """Makes PyTorch's OpenMP workers sleep, not spin, between parallel regions.

  Must run before torch is imported. Interleaved in one process with JAX, whose own thread pool
  wakes between torch's steps, torch's spinning workers and JAX's threads fight over the cores:
  measured here, fused AdamW at 10M parameters in 200 leaves went from 18 ms alone to 343 ms
  interleaved with the default policy, and stayed at 19–23 ms either way with PASSIVE. A value
  the user set in the environment is kept.
  """
  if "torch" in sys.modules:
    raise RuntimeError("set OMP_WAIT_POLICY before importing torch")
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads: int) -> None:
  import torch

  torch.set_num_threads(threads)


def has_equivalent(alias: str) -> bool:
  """PyTorch has no SGD with decoupled decay: `SGD(weight_decay=...)` is L2."""
  return alias != "sgdw"


def _optimizer(alias: str, groups: list[dict[str, Any]], impl: str):
  import torch

  flags = {impl: True}
  if alias == "adamw":
    return torch.optim.AdamW(groups, lr=C.LR_ADAM, weight_decay=C.WD_ADAMW, **flags)
  if alias == "adam_l2":
    return torch.optim.Adam(groups, lr=C.LR_ADAM, weight_decay=C.L2_ADAM, **flags)
  if alias == "sgd_l2":
    return torch.optim.SGD(groups, lr=C.LR_SGD, momentum=C.MOMENTUM, weight_decay=C.WD_SGD, **flags)
  raise ValueError(f"PyTorch has no equivalent of {alias!r}")


def contender(
  alias: str,
  impl: str,
  params: dict[str, np.ndarray],
  grads: dict[str, np.ndarray],
  mask: dict[str, bool] | None = None,
) -> C.Contender:
  """`torch.optim` with `foreach=True` or `fused=True` on copies of the same arrays.

  A mask becomes two parameter groups, the undecayed one with `weight_decay=0`: that is how
  PyTorch users exclude biases.
  """
  import torch

  tensors = {}
  for name, value in params.items():
    tensor = torch.from_numpy(value.copy()).requires_grad_(True)
    tensor.grad = torch.from_numpy(grads[name].copy())
    tensors[name] = tensor
  if mask is None:
    groups = [{"params": list(tensors.values())}]
  else:
    groups = [
      {"params": [t for n, t in tensors.items() if mask[n]]},
      {"params": [t for n, t in tensors.items() if not mask[n]], "weight_decay": 0.0},
    ]
  optimizer = _optimizer(alias, groups, impl)
  # PyTorch allocates its state lazily, at the first step: take it before counting the bytes.
  optimizer.step()
  state_bytes = sum(
    value.nbytes
    for per_param in optimizer.state.values()
    for value in per_param.values()
    if isinstance(value, torch.Tensor)
  )
  return C.Contender(f"torch {impl}", optimizer.step, state_bytes=int(state_bytes))
