"""The chart of a benchmark run (needs matplotlib: ``pip install -e '.[bench]'``).

Like with like, each panel one unit and one direction: time per operation by library
(lower is better), requests/s by kind of view (higher is better), and time per call
against the number of items in the store (lower is better).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import Growth, Http, Ops

# (library, [row for get hit, set, get miss])
LIBRARIES = [
    ("raw uWSGI + pickle", ["raw get+pickle small", "raw pickle+update small",
                            "raw get miss"]),
    ("ours, unsigned", ["ours get small unsigned", "ours set small unsigned",
                        "ours get miss unsigned"]),
    ("ours, signed", ["ours get small signed", "ours set small signed",
                      "ours get miss signed"]),
    ("cachelib", ["cachelib get small", "cachelib set small", "cachelib get miss"]),
    ("Flask-Caching backend", ["flask-caching get small", "flask-caching set small",
                               "flask-caching get miss"]),
]  # fmt: skip
OPERATIONS = ["get hit (small dict)", "set (small dict)", "get miss"]
VIEWS = ["hello", "5 ms view", "cached (Flask-Caching)", "cached (ours)",
         "edge-cached (ours)"]  # fmt: skip


def operations_panel(axes: Any, ops: Ops) -> None:
    """Grouped bars: ns per operation, one bar per library, log scale."""
    width = 0.8 / len(LIBRARIES)
    for index, (library, rows) in enumerate(LIBRARIES):
        values = [statistics.median(ops[row]) if row in ops else 0.0 for row in rows]
        positions = [group + (index - (len(LIBRARIES) - 1) / 2) * width for group in
                     range(len(OPERATIONS))]  # fmt: skip
        bars = axes.bar(positions, values, width, label=library)
        axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=6, rotation=90,
                       padding=2)  # fmt: skip
    axes.set_xticks(range(len(OPERATIONS)), OPERATIONS)
    axes.set_yscale("log")
    axes.margins(y=0.15)
    axes.set_ylabel("ns per operation (log scale): lower is better")
    axes.set_title("One operation in a uWSGI worker")
    axes.legend(fontsize=7)


def views_panel(axes: Any, http: Http) -> None:
    """Bars: requests/s per kind of view."""
    views = [view for view in VIEWS if view in http]
    values = [statistics.median(http[view]["rps"]) for view in views]
    bars = axes.bar(range(len(views)), values, color="#55a868")
    axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7)
    axes.set_xticks(range(len(views)), views, rotation=20, ha="right", fontsize=8)
    axes.margins(y=0.1)
    axes.set_ylabel("requests/s: higher is better")
    axes.set_title("A view end to end (uWSGI, 4 workers, wrk -c16)")


def growth_panel(axes: Any, growth: Growth) -> None:
    """Lines: µs per call against items in the store, log-log; ours solid,
    Flask-Caching dashed, one color per operation."""
    sizes = growth["sizes"]
    for index, (row, by_library) in enumerate(growth["rows"].items()):
        color = f"C{index}"
        for library, values in by_library.items():
            style = "-" if library == "ours" else "--"
            axes.plot(sizes, [v / 1000 for v in values], style, color=color, marker="o",
                      markersize=3, label=f"{row}, {library}")  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("items in the store (log scale)")
    axes.set_ylabel("µs per call (log scale): lower is better")
    axes.set_title("Cost against the store's size")
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)


def chart(ops: Ops, http: Http, growth: Growth, path: Path, title: str) -> bool:
    """Draw the panels there is data for into ``path``; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return False
    panels: list[tuple[Callable[[Any, Any], None], Any]] = [(operations_panel, ops)]
    if http:
        panels.append((views_panel, http))
    if growth:
        panels.append((growth_panel, growth))
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 4.8 * len(panels)))
    for (draw, data), panel_axes in zip(panels, list(figure.axes), strict=True):
        draw(panel_axes, data)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
