"""The cost-quality plot: single models and the line between them, random mixes on it, the oracle,
the hand-set router, the kept learned router and its margin sweep."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

from .policies import Score  # noqa: E402


def plot(path: Path, singles: Sequence[Score], line: list[tuple[float, float]], scores: Sequence[Score],
         handset: Sequence[Score], learned: Sequence[Score], sweep: Sequence[tuple[float, float]], variant: str,
         cpu: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    ax.plot(*zip(*line), "-", color="grey", lw=1, label="line between single models")
    for s in singles:
        ax.plot(s.cpu_s, s.accuracy, "o", color="black", ms=7)
        ax.annotate(s.name, (s.cpu_s, s.accuracy), textcoords="offset points", xytext=(6, -12), fontsize=8)
    mixes = [s for s in scores if s.name.startswith("random")]
    ax.plot([s.cpu_s for s in mixes], [s.accuracy for s in mixes], ".", color="grey", label="random mixes")
    if sweep:
        xs, ys = zip(*sorted(sweep))
        ax.plot(xs, ys, ":", color="tab:blue", lw=1, label=f"learned ({variant}): margin swept")
    for group, marker, color, label in ((handset, "s", "tab:orange", "router, hand-set"),
                                        (learned, "D", "tab:blue", f"router, learned ({variant})")):
        ax.plot([s.cpu_s for s in group], [s.accuracy for s in group], marker, color=color, ms=7, label=label)
        for s in group:
            ax.annotate(s.name.split()[1], (s.cpu_s, s.accuracy), textcoords="offset points", xytext=(6, 4),
                        fontsize=7, color=color)
    best = next((s for s in scores if s.name == "oracle"), None)
    if best:
        ax.plot(best.cpu_s, best.accuracy, "*", color="tab:green", ms=12, label="oracle")
    ax.set_xlabel("engine CPU-seconds per answer")
    ax.set_ylabel("accuracy (held-out split)")
    ax.set_title(f"Routing: quality against cost\n{cpu}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
