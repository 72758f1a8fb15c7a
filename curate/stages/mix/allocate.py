"""The mixing math: how many rows each unit (a source's task) contributes to the mix.

Model (T5 / FLAN examples-proportional mixing, with weights and groups on top):

- A *unit* is one task of one source (``dolly/closed_qa``; a source without tasks is one unit).
  Its mass is ``min(n, cap) ** (1 / temperature)``: examples-proportional with a cap K, flattened
  by the temperature.
- ``weights`` name sources, tasks, units or groups. A number ``<= 1`` is a fraction of the parent's
  rows (of the target at the top level); a whole number ``> 1`` is an absolute count. A group is
  ``{weight: w, members: {...}}``; its members split the group's rows the same way. The most
  specific name claims a unit (unit > task > source), so ``{flan_cot: 0.3, cot_gsm8k: 0.1}``
  gives gsm8k 10% and the other CoT tasks 30% between them.
- At every node: counts first, then fractions, and the rest goes to unweighted children in
  proportion to their mass. If every child is a fraction, the fractions are normalized.
- Integers by the largest-remainder method at every node (ties: first in order), so each
  node's children sum exactly to the node: shares hold to within rounding (< 1 row per level).
- The total is ``target``, else the capped size ``sum(min(n, cap))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.errors import StageError

_EPS = 1e-9


class Group(BaseModel):
    """A group of sources/tasks with its own weight; ``members`` split the group's rows."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None = Field(
        None, ge=0, description="Fraction (<= 1) or count (> 1) of the parent; none: by mass."
    )
    members: dict[str, float | Group | None] = Field(
        min_length=1,
        description="Names or nested groups splitting the group's rows, with the same values as weights.",
    )

    @model_validator(mode="after")
    def _check(self) -> Group:
        check_weights(self.members, "members")
        if self.weight is not None:
            _check_number(self.weight, "weight")
        return self


def _check_number(value: float, where: str) -> None:
    if value < 0:
        raise ValueError(f"{where}: a weight cannot be negative (got {value})")
    if value > 1 and not float(value).is_integer():
        raise ValueError(
            f"{where}: a weight above 1 is a row count and must be whole (got {value})"
        )


def check_weights(weights: dict[str, float | Group | None], where: str = "weights") -> None:
    """Fractions at one level must not add up to more than 1."""
    total = 0.0
    for name, value in weights.items():
        number = value.weight if isinstance(value, Group) else value
        if number is None:
            continue
        _check_number(number, f"{where}.{name}")
        if number <= 1:
            total += number
    if total > 1 + 1e-6:
        raise ValueError(f"{where}: fractions add up to {total:g}, more than 1")


def is_count(value: float | None) -> bool:
    return value is not None and value > 1


@dataclass
class Unit:
    name: str
    source: str
    task: str  # "" when the source has no tasks
    available: int

    def mass(self, cap: int | None, temperature: float) -> float:
        size = self.available if cap is None else min(self.available, cap)
        return float(size) ** (1.0 / temperature) if size > 0 else 0.0


@dataclass
class Node:
    path: str
    weight: float | None = None
    children: list[Node] = field(default_factory=list)
    unit: int | None = None  # leaf: index into units
    mass: float = 0.0
    real: float = 0.0  # rows before rounding
    rows: int = 0


@dataclass
class Allocation:
    units: list[Unit]
    counts: list[int]  # rows per unit
    expected: list[float]  # rows per unit before rounding
    entry: list[str | None]  # the weights entry that claimed each unit
    total: int
    unallocated: int

    def as_rows(self, cap: int | None, temperature: float) -> list[dict[str, Any]]:
        rows = []
        for unit, count, expected, entry in zip(
            self.units, self.counts, self.expected, self.entry, strict=True
        ):
            rows.append(
                {
                    "unit": unit.name,
                    "source": unit.source,
                    "task": unit.task or None,
                    "weight_entry": entry,
                    "available": unit.available,
                    "mass": round(unit.mass(cap, temperature), 6),
                    "expected": round(expected, 4),
                    "allocated": count,
                    "repeats": count // unit.available if unit.available else 0,
                }
            )
        return rows


def _specificity(unit: Unit, key: str) -> int:
    if key == unit.name:
        return 3
    if unit.task and key == unit.task:
        return 2
    if key == unit.source:
        return 1
    return 0


def _entries(weights: dict[str, float | Group | None], prefix: str = "") -> list[tuple[str, str]]:
    """(path, key) of every leaf entry (a name, not a group)."""
    found: list[tuple[str, str]] = []
    for key, value in weights.items():
        path = f"{prefix}{key}"
        if isinstance(value, Group):
            found.extend(_entries(value.members, f"{path}."))
        else:
            found.append((path, key))
    return found


def build_tree(
    units: list[Unit], weights: dict[str, float | Group | None]
) -> tuple[Node, list[str | None]]:
    """The allocation tree, and which entry (path) claimed each unit."""
    entries = _entries(weights)
    claim: list[str | None] = []
    claimed_by: dict[str, list[int]] = {path: [] for path, _ in entries}
    for index, unit in enumerate(units):
        scored = [(_specificity(unit, key), path) for path, key in entries]
        best = max((s for s, _ in scored), default=0)
        if best == 0:
            claim.append(None)
            continue
        winners = [path for s, path in scored if s == best]
        if len(winners) > 1:
            raise StageError(
                f"mix.weights: unit {unit.name!r} is named by more than one entry: {', '.join(winners)}"
            )
        claim.append(winners[0])
        claimed_by[winners[0]].append(index)
    empty = [path for path, ids in claimed_by.items() if not ids]
    if empty:
        sources = sorted({u.source for u in units})
        tasks = sorted({u.task for u in units if u.task})
        raise StageError(
            f"mix.weights: {', '.join(repr(p) for p in empty)} names no source, task or unit in the data; "
            f"sources: {', '.join(sources) or '-'}; tasks: {', '.join(tasks[:30]) or '-'}{' …' if len(tasks) > 30 else ''}"
        )

    def build(weights_level: dict[str, float | Group | None], prefix: str) -> list[Node]:
        nodes = []
        for key, value in weights_level.items():
            path = f"{prefix}{key}"
            if isinstance(value, Group):
                nodes.append(Node(path, value.weight, build(value.members, f"{path}.")))
            else:
                leaves = [Node(units[i].name, None, unit=i) for i in claimed_by[path]]
                nodes.append(Node(path, value, leaves))
        return nodes

    root = Node("", None, build(weights, ""))
    root.children.extend(
        Node(units[i].name, None, unit=i) for i, c in enumerate(claim) if c is None
    )
    return root, claim


def _masses(node: Node, units: list[Unit], cap: int | None, temperature: float) -> float:
    if node.unit is not None:
        node.mass = units[node.unit].mass(cap, temperature)
    else:
        node.mass = sum(_masses(child, units, cap, temperature) for child in node.children)
    return node.mass


def largest_remainder(reals: list[float], total: int) -> list[int]:
    """Integers summing to ``total``, each the floor or ceiling of its real share (ties: first)."""
    floors = [math.floor(r + _EPS) for r in reals]
    missing = total - sum(floors)
    if missing > 0:
        order = sorted(range(len(reals)), key=lambda i: (-(reals[i] - floors[i]), i))
        for i in order[:missing]:
            floors[i] += 1
    return floors


def _split(node: Node) -> int:
    """Give ``node.rows`` to its children (recursively). Returns rows left unallocated."""
    if node.unit is not None or not node.children:
        return 0 if node.unit is not None else node.rows
    rows = node.rows
    counts = [c for c in node.children if is_count(c.weight)]
    fractions = [c for c in node.children if c.weight is not None and not is_count(c.weight)]
    free = [c for c in node.children if c.weight is None]
    fixed = sum(int(c.weight or 0) for c in counts)
    if fixed > rows:
        raise StageError(
            f"mix.weights{'.' + node.path if node.path else ''}: counts ask for {fixed} rows but only {rows} are to be mixed (target)"
        )
    rest = rows - fixed
    for child in counts:
        child.real = float(child.weight or 0)
    fraction_sum = sum(c.weight or 0.0 for c in fractions)
    if free:
        for child in fractions:
            child.real = (child.weight or 0.0) * rows
        left = rest - sum(c.real for c in fractions)
        if left < -1e-6:
            raise StageError(
                f"mix.weights{'.' + node.path if node.path else ''}: counts and fractions ask for more than {rows} rows"
            )
        mass = sum(c.mass for c in free)
        for child in free:
            child.real = max(left, 0.0) * (child.mass / mass) if mass > 0 else 0.0
    elif fractions and fraction_sum > 0:
        for child in fractions:
            child.real = rest * (child.weight or 0.0) / fraction_sum
    else:
        for child in fractions:
            child.real = 0.0
    reals = [c.real for c in node.children]
    ints = largest_remainder(reals, round(sum(reals)))
    unallocated = rows - sum(ints)
    for child, value in zip(node.children, ints, strict=True):
        child.rows = value
        unallocated += _split(child)
    return unallocated


def _leaf_reals(node: Node, scale: float, out: dict[int, float]) -> None:
    # The expected (unrounded) rows of each unit: its share of every ancestor's real rows.
    for child in node.children:
        if child.unit is not None:
            out[child.unit] = child.real * scale
        else:
            inner = child.real / child.rows if child.rows else 0.0
            _leaf_reals(child, scale * inner, out)


def allocate(
    units: list[Unit],
    *,
    target: int | None = None,
    cap: int | None = None,
    temperature: float = 1.0,
    weights: dict[str, float | Group | None] | None = None,
) -> Allocation:
    """Rows per unit for the given target, cap, temperature and weights (see the module doc)."""
    root, claim = build_tree(units, weights or {})
    _masses(root, units, cap, temperature)
    capped = sum(u.available if cap is None else min(u.available, cap) for u in units)
    root.rows = capped if target is None else target
    root.real = float(root.rows)
    unallocated = _split(root)
    counts = [0] * len(units)

    def collect(node: Node) -> None:
        for child in node.children:
            if child.unit is not None:
                counts[child.unit] = child.rows
            else:
                collect(child)

    collect(root)
    expected: dict[int, float] = {}
    _leaf_reals(root, 1.0, expected)
    return Allocation(
        units,
        counts,
        [expected.get(i, 0.0) for i in range(len(units))],
        claim,
        root.rows,
        unallocated,
    )
