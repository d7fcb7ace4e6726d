"""Machine description, Markdown tables, plots, and the generated block of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

OURS, OPTAX, OPTAX_AGAIN, FOREACH, FUSED, STREAM = (
  "optax_decay",
  "optax",
  "optax A/A",
  "torch foreach",
  "torch fused",
  "stream triad",
)


def cpu_model() -> str:
  try:
    text = Path("/proc/cpuinfo").read_text()
  except OSError:
    return platform.processor() or "unknown"
  found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
  return found.group(1).strip() if found else "unknown"


def memory_gib() -> float | None:
  try:
    text = Path("/proc/meminfo").read_text()
  except OSError:
    return None
  found = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
  return int(found.group(1)) / 2**20 if found else None


def machine(torch_version: str | None) -> dict[str, Any]:
  import jax
  import jaxlib
  import numpy
  import optax

  return {
    "cpu": cpu_model(),
    "cores": os.cpu_count(),
    "memory_gib": memory_gib(),
    "python": platform.python_version(),
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "optax": optax.__version__,
    "numpy": numpy.__version__,
    "torch": torch_version or "not installed",
    "backend": jax.default_backend(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "load_before": os.getloadavg(),
  }


def _millions(n: int) -> str:
  return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"


def _ratio(row: dict[str, Any] | None) -> str:
  if row is None:
    return "–"
  return f"{row['ratio']:.2f} [{row['ratio_lo']:.2f}, {row['ratio_hi']:.2f}]"


def _fmt(value: float | None, spec: str) -> str:
  return "–" if value is None else format(value, spec)


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
  """One line per (optimizer, size, leaves, mask): ratios vs optax with 95% intervals."""
  groups: dict[tuple, dict[str, dict]] = {}
  for row in rows:
    key = (row["alias"], row["n_params"], row["n_leaves"], row["masked"])
    groups.setdefault(key, {})[row["contender"]] = row
  lines = [
    "| optimizer | params | leaves | mask | optax ms | optax_decay / optax | optax A/A (noise)"
    " | torch foreach / optax | torch fused / optax | roofline: ours · optax · fused"
    " | XLA passes: ours · optax (min) | same HLO | compile s: ours · optax"
    " | state MB: ours · optax · torch |",
    "|---|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|",
  ]
  for (alias, n, leaves, masked), by in groups.items():
    ours, ref = by[OURS], by[OPTAX]
    fused = by.get(FUSED)
    torch_state = fused["state_bytes"] / 1e6 if fused else None
    lines.append(
      f"| {alias} | {_millions(n)} | {leaves} | {'half' if masked else '–'}"
      f" | {ref['median_ms']:.2f} | {_ratio(ours)} | {_ratio(by.get(OPTAX_AGAIN))}"
      f" | {_ratio(by.get(FOREACH))} | {_ratio(fused)}"
      f" | {ours['roofline']:.2f} · {ref['roofline']:.2f} · "
      f"{_fmt(fused and fused['roofline'], '.2f')}"
      f" | {ours['xla_passes']:.1f} · {ref['xla_passes']:.1f} ({ours['min_passes']})"
      f" | {'yes' if ours['same_hlo_as_optax'] else 'no'}"
      f" | {ours['compile_s']:.2f} · {ref['compile_s']:.2f}"
      f" | {ours['state_bytes'] / 1e6:.1f} · {ref['state_bytes'] / 1e6:.1f} · "
      f"{_fmt(torch_state, '.1f')} |"
    )
  return "\n".join(lines)


def overhead_table(rows: Sequence[dict[str, Any]]) -> str:
  by = {(r["n_params"], r["n_leaves"], r["contender"]): r for r in rows}
  lines = [
    "| params | leaves | optax_decay ms | vs one leaf | torch fused ms | vs one leaf"
    " | optax_decay / torch fused |",
    "|--:|--:|--:|--:|--:|--:|--:|",
  ]
  for (n, leaves, name), ours in by.items():
    if name != OURS:
      continue
    fused = by.get((n, leaves, FUSED))
    versus = "–"
    if fused is not None:  # paired per repeat, like every other ratio here
      versus = f"{np.median(np.divide(ours['times_ms'], fused['times_ms'])):.2f}"
    lines.append(
      f"| {_millions(n)} | {leaves} | {ours['median_ms']:.2f} | {_ratio(ours)}"
      f" | {_fmt(fused and fused['median_ms'], '.2f')} | {_ratio(fused)} | {versus} |"
    )
  return "\n".join(lines)


def machine_table(info: dict[str, Any], bandwidth: dict[str, float]) -> str:
  load = ", ".join(f"{x:.1f}" for x in info["load_before"])
  after = ", ".join(f"{x:.1f}" for x in info.get("load_after", ()))
  return "\n".join(
    [
      "| | |",
      "|---|---|",
      f"| CPU | {info['cpu']}, {info['cores']} cores, {_fmt(info['memory_gib'], '.0f')} GiB |",
      f"| software | Python {info['python']}, jax {info['jax']} (jaxlib {info['jaxlib']}), "
      f"optax {info['optax']}, numpy {info['numpy']}, torch {info['torch']} |",
      f"| backend | {info['backend']}; XLA_FLAGS={info['xla_flags'] or '(unset)'}; "
      f"torch threads: {_fmt(info.get('torch_threads'), 'd')}, "
      f"OMP_WAIT_POLICY={info['omp_wait_policy']} |",
      f"| streaming bandwidth | triad {bandwidth['triad_gbps']:.1f} GB/s, numpy copy "
      f"{bandwidth['copy_gbps']:.1f} GB/s (over {bandwidth['mbytes']:.0f} MB) |",
      f"| load average (1, 5, 15 min) | before: {load}; after: {after} |",
      f"| date | {info['date']} |",
    ]
  )


def plot(rows: Sequence[dict[str, Any]], figures: Path) -> list[Path]:
  """bench_sizes.png (time against size, one leaf) and bench_leaves.png (time against leaves)."""
  try:
    import matplotlib
  except ImportError:
    print("matplotlib is not installed: no plots")
    return []
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  figures.mkdir(parents=True, exist_ok=True)
  aliases = list(dict.fromkeys(r["alias"] for r in rows))
  contenders = list(dict.fromkeys(r["contender"] for r in rows))
  styles = {OURS: "o-", OPTAX: "s--", FOREACH: "^:", FUSED: "v-.", STREAM: "k-"}
  contenders = [c for c in contenders if c != OPTAX_AGAIN]
  leaf_sizes = sorted({r["n_params"] for r in rows if r["n_leaves"] > 1 and not r["masked"]})
  leaf_size = leaf_sizes[-1] if leaf_sizes else None
  written = []
  for name, pick, xkey, xlabel in [
    ("bench_sizes.png", lambda r: r["n_leaves"] == 1, "n_params", "parameters (one leaf)"),
    (
      "bench_leaves.png",
      lambda r: r["n_params"] == leaf_size,
      "n_leaves",
      f"leaves ({_millions(leaf_size or 0)} parameters in all)",
    ),
  ]:
    # Top: median ms. Bottom: fraction of the roofline, which the interleaved triad measured
    # under the same load, so it stays comparable across sizes even when the load does not.
    fig, axes = plt.subplots(
      2, len(aliases), figsize=(4 * len(aliases), 6.4), squeeze=False, sharex="col"
    )
    for column, alias in enumerate(aliases):
      for contender in contenders:
        points = sorted(
          (r[xkey], r["median_ms"], r["roofline"])
          for r in rows
          if r["alias"] == alias and r["contender"] == contender and not r["masked"] and pick(r)
        )
        if not points:
          continue
        xs, ms, roofline = zip(*points, strict=True)
        label = "stream bound" if contender == STREAM else contender
        style = styles.get(contender, "x-")
        axes[0][column].plot(xs, ms, style, label=label, markersize=4)
        if contender != STREAM:
          axes[1][column].plot(xs, roofline, style, label=label, markersize=4)
      axes[0][column].set_title(alias)
      axes[0][column].set_yscale("log")
      axes[1][column].set_xlabel(xlabel)
      axes[1][column].set_ylim(bottom=0)
      axes[1][column].axhline(1.0, color="k", linewidth=0.8)
      for ax in axes[:, column]:
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ms per step (median)")
    axes[1][0].set_ylabel("fraction of memory roofline")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
      axes[0][0].legend(handles, labels, fontsize=8)
    fig.tight_layout()
    path = figures / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
  return written


def write_block(path: Path, name: str, text: str, title: str) -> None:
  """Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->` in `path`.

  Prose written around the markers by hand survives a re-run; a missing file or block is
  created.
  """
  begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
  block = f"{begin}\n{text.strip()}\n{end}"
  old = path.read_text() if path.exists() else f"# {title}\n"
  if begin in old and end in old:
    head, rest = old.split(begin, 1)
    new = head + block + rest.split(end, 1)[1]
  else:
    new = old.rstrip() + "\n\n" + block + "\n"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(new)
