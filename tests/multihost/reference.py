"""Computes the single-device runs that the multi-process scenarios compare with, once.

  PYTHONPATH=tests python -m multihost.reference OUT.pkl

One plain JAX process (no jax.distributed), the whole arrays on its first CPU device: every case
of `cases.ALL_CASES` for `cases.TRAIN_STEPS` steps, pickled as {name: (init state, [(updates,
state, params) after each step])}. The launches pass OUT to their workers (`--reference`), so
that N processes do not each compile and run the same reference.
"""

from __future__ import annotations

import sys

from multihost import cases


def main(argv=None) -> None:
  (path,) = sys.argv[1:] if argv is None else argv
  cases.write_references(path)


if __name__ == "__main__":
  main()
