"""The tables benchmarks/run.py prints and writes into docs/benchmarks.rst.

Every ratio is taken inside one repetition (both sides measured moments apart) and the
tables show the median of those ratios: only ratios from one run on one machine compare.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any

Ops = dict[str, list[float]]  # operation -> ns per call, one value per repetition
Http = dict[str, dict[str, list[float]]]  # view -> {"rps": [...], "p99_ms": [...]}
Scaling = dict[str, dict[str, list[float]]]  # workers -> view -> requests/s per rep
Backends = dict[str, dict[str, list[float]]]  # backend -> view -> requests/s per rep
Growth = dict[str, Any]  # {"sizes": [...], "rows": {row: {library: [ns per size]}}}

# (label, numerator, denominator, limit): the ratio must be <= limit (None: no target)
OPS_TARGETS: list[tuple[str, str, str, float | None]] = [
    ("get hit small, unsigned / raw get+pickle", "ours get small unsigned",
     "raw get+pickle small", 1.3),
    ("get hit small, signed / raw get+pickle", "ours get small signed",
     "raw get+pickle small", 1.3),
    ("cold signed get hit / raw get+pickle", "ours get small signed, cold",
     "raw get+pickle small", None),
    ("set small, unsigned / raw pickle+update", "ours set small unsigned",
     "raw pickle+update small", 1.5),
    ("set small, signed / raw pickle+update", "ours set small signed",
     "raw pickle+update small", 1.5),
    ("get miss, unsigned / cachelib get miss", "ours get miss unsigned",
     "cachelib get miss", 1.0),
    ("get miss, signed / cachelib get miss", "ours get miss signed",
     "cachelib get miss", 1.0),
    ("ext.get small / Flask-Caching ext.get", "ours ext.get small signed",
     "flask-caching ext.get small", 0.5),
    ("get 10 KB str, unsigned / raw get", "ours get 10KB str unsigned",
     "raw get 10KB", 4.0),
    ("get 10 KB str, signed / raw get", "ours get 10KB str signed",
     "raw get 10KB", 4.0),
    ("cachelib get / raw get+pickle", "cachelib get small", "raw get+pickle small", None),
    ("floor: minimal Python get / raw get+pickle", "floor get+expiry+pickle small",
     "raw get+pickle small", None),
    ("redis: ext.get small / Flask-Caching's", "redis: ours ext.get small",
     "redis: flask-caching ext.get small", 1.0),
    ("redis: ext.set small / Flask-Caching's", "redis: ours ext.set small",
     "redis: flask-caching ext.set small", None),
]  # fmt: skip
# (label, numerator, denominator, limit): the ratio of times must be >= limit
OPS_AT_LEAST: list[tuple[str, str, str, float | None]] = [
    ("redis: raw GET / tiered local hit (backend get)", "redis: raw GET small",
     "tiered: backend get small (local copy)", 50.0),
    ("redis: ext.get / tiered: ext.get (local copy)", "redis: ours ext.get small",
     "tiered: ours ext.get small (local copy)", None),
]  # fmt: skip
# (label, numerator, denominator, limit): requests/s ratio must be >= limit
HTTP_TARGETS: list[tuple[str, str, str, float | None]] = [
    ("cached view (ours) / hello", "cached (ours)", "hello", 1.0),
    ("cached view (Flask-Caching) / hello", "cached (Flask-Caching)", "hello", None),
    ("cached (ours) / cached (Flask-Caching)", "cached (ours)",
     "cached (Flask-Caching)", None),
    ("5 ms view / hello", "5 ms view", "hello", None),
    ("edge-cached view / hello", "edge-cached (ours)", "hello", 2.5),
    ("edge-cached / cached (ours)", "edge-cached (ours)", "cached (ours)", None),
]  # fmt: skip


@dataclass
class Ratio:
    """One row of the targets table."""

    label: str
    value: float
    limit: float | None
    at_most: bool  # the target is "<= limit" (else ">= limit")

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target."""
        if self.limit is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit


def median_ratio(top: list[float], bottom: list[float]) -> float:
    """The median of the ratios taken inside each repetition."""
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))


def ratios(ops: Ops, http: Http) -> list[Ratio]:
    """The targets table's rows whose operations were measured."""
    found = [
        Ratio(label, median_ratio(ops[top], ops[bottom]), limit, True)
        for label, top, bottom, limit in OPS_TARGETS
        if top in ops and bottom in ops
    ]
    found += [
        Ratio(label, median_ratio(ops[top], ops[bottom]), limit, False)
        for label, top, bottom, limit in OPS_AT_LEAST
        if top in ops and bottom in ops
    ]
    found += [
        Ratio(label, median_ratio(http[top]["rps"], http[bottom]["rps"]), limit, False)
        for label, top, bottom, limit in HTTP_TARGETS
        if top in http and bottom in http
    ]
    return found


def simple_table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """An RST simple table: the first ``left`` columns left-aligned, the others
    right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = " ".join("=" * width for width in widths)

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return " ".join(parts).rstrip()

    return [rule, line(header), rule, *map(line, rows), rule, ""]


def ops_table(ops: Ops) -> list[str]:
    """Nanoseconds per call of every operation (median of the repetitions)."""
    rows = [[name, f"{statistics.median(values):.0f}"] for name, values in ops.items()]
    return simple_table(["operation, in one uWSGI worker", "ns/op"], rows)


def http_table(http: Http) -> list[str]:
    """Requests/s and p99 latency per view, 4 workers."""
    rows = [
        [name, f"{statistics.median(values['rps']):.0f}",
         f"{statistics.median(values['p99_ms']):.2f}"]
        for name, values in http.items()
    ]  # fmt: skip
    return simple_table(["view (4 workers, wrk -c16)", "requests/s", "p99 (ms)"], rows)


def scaling_table(scaling: Scaling) -> list[str]:
    """Requests/s per view at each number of workers, with the machine's core count."""
    counts = list(scaling)
    views = list(next(iter(scaling.values()), {}))
    rows = [
        [view, *(f"{statistics.median(scaling[count][view]):.0f}" for count in counts)]
        for view in views
    ]
    header = ["requests/s (wrk -c16) at workers:", *counts]
    note = (
        f"This machine has {os.cpu_count()} cores: more workers than cores share them, "
        "and wrk runs on the same cores."
    )
    return [*simple_table(header, rows), note, ""]


def micros(nanoseconds: float | None) -> str:
    """``nanoseconds`` in µs, for the growth table ("-": not measured)."""
    if nanoseconds is None:
        return "-"
    return (
        f"{nanoseconds / 1000:.1f}"
        if nanoseconds < 10_000_000
        else f"{nanoseconds / 1000:.0f}"
    )


def growth_table(growth: Growth) -> list[str]:
    """µs per call of each operation at each store size, by library."""
    sizes: list[int] = growth["sizes"]
    rows = []
    for row in ("get", "set", "cached view", "clear()", "stats()", "delete_edge(path)"):
        by_library = growth["rows"].get(row, {})
        for library in ("ours", "flask-caching"):
            values = by_library.get(library) or [None] * len(sizes)
            rows.append([row, library, *map(micros, values)])
    header = ["operation (µs per call)", "library", *(f"{size:,} items" for size in sizes)]
    note = (
        "One uWSGI worker, a cache2 of blocksize 512 sized for the largest store, "
        "filled with this package's set of small values; ours signed. clear() is "
        "timed on a refilled store, the fastest of a few calls."
    )
    return [*simple_table(header, rows, left=2), note, ""]


def targets_table(found: list[Ratio]) -> list[str]:
    """Every ratio with its target and whether it is met."""
    rows = []
    for ratio in found:
        sign = "<=" if ratio.at_most else ">="
        target = "-" if ratio.limit is None else f"{sign} {ratio.limit:.1f}"
        met = {None: "-", True: "yes", False: "**no**"}[ratio.met]
        rows.append([ratio.label, f"{ratio.value:.2f}", target, met])
    return simple_table(["ratio (median of per-repetition ratios)", "value", "target",
                         "met"], rows)  # fmt: skip


def backends_table(backends: Backends) -> list[str]:
    """Requests/s of hello and the cached view on each backend, and their ratio."""
    rows = []
    for backend, views in backends.items():
        hello = statistics.median(views["hello"])
        cached = statistics.median(views["cached (ours)"])
        ratio = median_ratio(views["cached (ours)"], views["hello"])
        rows.append([backend, f"{hello:,.0f}", f"{cached:,.0f}", f"{ratio:.2f}"])
    header = ["backend (4 workers)", "hello req/s", "cached view req/s", "cached / hello"]
    return [*simple_table(header, rows), ""]


def backends_report(ops: Ops, backends: Backends) -> str:
    """What docs/tiered.rst shows: a read on each Redis path and the backends' views."""
    names = ["redis: raw GET small", "redis: ours ext.get small",
             "tiered: backend get small (local copy)",
             "tiered: ours ext.get small (local copy)"]  # fmt: skip
    rows = [[name, f"{statistics.median(ops[name]):.0f}"] for name in names if name in ops]
    lines = simple_table(["read of a small value, in one uWSGI worker", "ns/op"], rows)
    lines += [
        f"{ratio.label}: {ratio.value:.1f}"
        for ratio in ratios(ops, {})
        if ratio.label.startswith("redis: raw GET") or "tiered" in ratio.label
    ]
    if backends:
        lines += ["", *backends_table(backends)]
    return "\n".join(lines)


def report(
    ops: Ops, http: Http, scaling: Scaling, growth: Growth, backends: Backends | None = None
) -> str:
    """All the tables, as printed and as written into the docs."""
    lines = ops_table(ops)
    if growth:
        lines += growth_table(growth)
    if http:
        lines += http_table(http)
    if scaling:
        lines += scaling_table(scaling)
    if backends:
        lines += backends_table(backends)
    lines += targets_table(ratios(ops, http))
    return "\n".join(lines)
