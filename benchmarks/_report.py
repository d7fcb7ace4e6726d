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
    # The device JAX runs the steps on ("cpu" on a CPU, the GPU's model name on a GPU).
    "device_kind": jax.devices()[0].device_kind,
    "device_count": jax.device_count(),
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


def machine_table(info: dict[str, Any], bandwidth: dict[str, Any]) -> str:
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
      f"| devices | JAX: {info.get('device_kind', '?')} ({info['backend']}, "
      f"{info.get('device_count', '?')} device(s)); "
      f"torch: {info.get('torch_device') or 'not run'} |",
      f"| streaming bandwidth | triad {bandwidth['triad_gbps']:.1f} GB/s on "
      f"{bandwidth.get('triad_device', '?')} (where the steps run), numpy copy "
      f"{bandwidth['copy_gbps']:.1f} GB/s (host memory), over {bandwidth['mbytes']:.0f} MB |",
      f"| load average (1, 5, 15 min) | before: {load}; after: {after} |",
      f"| date | {info['date']} |",
    ]
  )


def plot(rows: Sequence[dict[str, Any]], figures: Path, suffix: str = "") -> list[Path]:
  """bench_sizes.png (time against size, one leaf) and bench_leaves.png (time against leaves).

  `suffix` goes before `.png`, so that a GPU run does not overwrite the CPU run's figures.
  """
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
    (f"bench_sizes{suffix}.png", lambda r: r["n_leaves"] == 1, "n_params", "parameters (one leaf)"),
    (
      f"bench_leaves{suffix}.png",
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


# Issue target 4, stated for a GPU: from 100M float32 parameters on, optax_decay's AdamW step
# reaches at least 85% of the memory roofline and is no slower than torch's fused AdamW.
TARGET_MIN_PARAMS = 100_000_000
TARGET_ROOFLINE = 0.85
TARGET_VS_FUSED = 1.0


def target_check(
  rows: Sequence[dict[str, Any]], min_params: int = TARGET_MIN_PARAMS
) -> list[dict[str, Any]]:
  """Target 4 for every AdamW configuration of at least `min_params` parameters in `rows`.

  The roofline fraction is optax_decay's `roofline` column (the interleaved triad's time over the
  step's, on the device the step ran on); the torch ratio is the median of per-repeat ratios of
  optax_decay's time to torch fused's. A check is None where torch fused did not run.
  """
  groups: dict[tuple, dict[str, dict]] = {}
  for row in rows:
    if row["alias"] == "adamw" and row["n_params"] >= min_params:
      key = (row["n_params"], row["n_leaves"], row["masked"])
      groups.setdefault(key, {})[row["contender"]] = row
  checks = []
  for (n, leaves, masked), by in groups.items():
    ours, fused = by.get(OURS), by.get(FUSED)
    if ours is None:
      continue
    versus = None
    if fused is not None:
      versus = float(np.median(np.divide(ours["times_ms"], fused["times_ms"])))
    checks.append(
      {
        "n_params": n,
        "n_leaves": leaves,
        "masked": masked,
        "roofline": ours["roofline"],
        "gbps": ours["gbps"],
        "roofline_pass": ours["roofline"] >= TARGET_ROOFLINE,
        "vs_fused": versus,
        "vs_fused_pass": None if versus is None else versus <= TARGET_VS_FUSED,
      }
    )
  return checks


def target_verdict(checks: Sequence[dict[str, Any]]) -> str:
  """One word for all checks: fail if any failed, incomplete if torch fused was missing, or pass."""
  if not checks:
    return "not checked"
  results = [c["roofline_pass"] for c in checks] + [c["vs_fused_pass"] for c in checks]
  if False in results:
    return "fail"
  return "incomplete" if None in results else "pass"


def _verdict(passed: bool | None) -> str:
  return {True: "pass", False: "FAIL", None: "no torch fused"}[passed]


def target_markdown(checks: Sequence[dict[str, Any]], info: dict[str, Any]) -> str:
  """The target check as Markdown: a sentence on where it ran, a table, and the verdict."""
  backend, kind = info["backend"], info.get("device_kind", "?")
  lines = [
    f"Issue target 4 is stated for a GPU: AdamW with at least {_millions(TARGET_MIN_PARAMS)} "
    f"float32 parameters reaches at least {TARGET_ROOFLINE:.2f} of the memory roofline (the "
    "interleaved triad, i.e. measured bandwidth, not the datasheet's) and optax_decay / torch "
    f"fused is at most {TARGET_VS_FUSED:.2f}. This run used backend `{backend}` ({kind}).",
  ]
  if backend != "gpu":
    lines[0] += f" It is not a GPU result: it says nothing about the GPU target, only about {kind}."
  verdict = target_verdict(checks)
  if not checks:
    lines += ["", f"No AdamW configuration of {_millions(TARGET_MIN_PARAMS)}+ parameters ran."]
  else:
    lines += [
      "",
      f"| params | leaves | mask | roofline (>= {TARGET_ROOFLINE:.2f}) | GB/s"
      f" | optax_decay / torch fused (<= {TARGET_VS_FUSED:.2f}) |",
      "|--:|--:|:-:|--:|--:|--:|",
    ]
    for c in checks:
      versus = "–" if c["vs_fused"] is None else f"{c['vs_fused']:.2f}"
      lines.append(
        f"| {_millions(c['n_params'])} | {c['n_leaves']} | {'half' if c['masked'] else '–'}"
        f" | {c['roofline']:.2f} {_verdict(c['roofline_pass'])} | {c['gbps']:.0f}"
        f" | {versus} {_verdict(c['vs_fused_pass'])} |"
      )
  lines += ["", f"Verdict on `{backend}` ({kind}): **{verdict}**."]
  return "\n".join(lines)


def write_block(path: Path, name: str, text: str, title: str) -> None:
  """Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->` in `path`.

  Prose written around the markers by hand survives a re-run; a missing file or block is
  created. A marker counts only on a line of its own: prose that quotes it inline (as the top of
  docs/benchmarks.md does) is not mistaken for the block, which would replace the prose too.
  """
  begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
  block = f"{begin}\n{text.strip()}\n{end}"
  old = path.read_text() if path.exists() else f"# {title}\n"
  opened = re.search(rf"^{re.escape(begin)}[ \t]*$", old, re.MULTILINE)
  closed = None
  if opened:
    closed = re.compile(rf"^{re.escape(end)}[ \t]*$", re.MULTILINE).search(old, opened.end())
  if opened and closed:
    new = old[: opened.start()] + block + old[closed.end() :]
  else:
    new = old.rstrip() + "\n\n" + block + "\n"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(new)
