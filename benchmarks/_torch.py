"""PyTorch's optimizers as contenders; everything here is skipped when torch is not installed.

Torch runs on the device JAX runs on, picked once by `device_for`: the CPU when JAX is on the CPU,
`cuda` when JAX is on a GPU and torch was built with CUDA, and not at all otherwise, so that a GPU
step of JAX is never compared with a CPU step of torch. The CUDA path could not be run where this
was written (no GPU): it follows PyTorch's documented behaviour but has not been executed.
"""

from __future__ import annotations

import gc
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


def choose_device(jax_backend: str, cuda_available: bool) -> str | None:
  """The torch device matching JAX's backend, or None when torch has nothing to match it with.

  Pure, so that the choice is testable without a GPU. A ROCm build of torch also calls its GPU
  `cuda`, as JAX calls a ROCm GPU `gpu`; a TPU has no torch counterpart here.
  """
  if jax_backend == "cpu":
    return "cpu"
  if jax_backend == "gpu" and cuda_available:
    return "cuda"
  return None


def device_for(jax_backend: str) -> str | None:
  """`choose_device` for this machine; imports torch only when JAX is not on the CPU.

  On the CPU torch is not imported here, so `set_passive_waiting` may still run after this.
  """
  if jax_backend == "cpu":
    return "cpu"
  import torch

  return choose_device(jax_backend, torch.cuda.is_available())


def device_name(device: str) -> str:
  """What the machine table records for torch's device."""
  if device == "cuda":
    import torch

    return torch.cuda.get_device_name(torch.cuda.current_device())
  return device


def release(device: str | None) -> None:
  """Frees what the last group left behind: Python cycles, then torch's cached CUDA blocks.

  JAX's own arrays go as soon as nothing refers to them; its allocator keeps the memory for
  reuse, which is why JAX must not preallocate (see run.py) when torch shares the GPU.
  """
  gc.collect()
  if device == "cuda":
    import torch

    torch.cuda.empty_cache()


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
  device: str = "cpu",
) -> C.Contender:
  """`torch.optim` with `foreach=True` or `fused=True` on copies of the same arrays.

  A mask becomes two parameter groups, the undecayed one with `weight_decay=0`: that is how
  PyTorch users exclude biases.

  On `device="cuda"` (untested here: no GPU) parameters and gradients are copied to the GPU
  before `requires_grad_`, so each parameter is a leaf whose `.grad` lives on the same device
  with the same dtype, as the `.grad` setter demands. CUDA kernels return before they finish,
  so the step synchronizes, as the JAX contenders block until their outputs are ready; without
  it the timer would measure only the kernel launches.
  """
  import torch

  tensors = {}
  for name, value in params.items():
    # copy=True: on the CPU `.to` would otherwise share the NumPy array's memory.
    tensor = torch.from_numpy(value).to(device, copy=True).requires_grad_(True)
    tensor.grad = torch.from_numpy(grads[name]).to(device, copy=True)
    tensors[name] = tensor
  if mask is None:
    groups = [{"params": list(tensors.values())}]
  else:
    groups = [
      {"params": [t for n, t in tensors.items() if mask[n]]},
      {"params": [t for n, t in tensors.items() if not mask[n]], "weight_decay": 0.0},
    ]
  optimizer = _optimizer(alias, groups, impl)

  if device == "cuda":

    def step() -> None:
      optimizer.step()
      torch.cuda.synchronize()

  else:
    step = optimizer.step
  # PyTorch allocates its state lazily, at the first step: take it before counting the bytes.
  step()
  state_bytes = sum(
    value.nbytes
    for per_param in optimizer.state.values()
    for value in per_param.values()
    if isinstance(value, torch.Tensor)
  )
  return C.Contender(f"torch {impl}", step, state_bytes=int(state_bytes))
