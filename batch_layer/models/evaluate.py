"""Ranking metrics at k over a held-out period, and the publication gate.

For each user with relevant held-out titles (:func:`batch_layer.models.matrix.relevant_items`) and a list of
recommended titles (best first, the user's training titles excluded):

- precision@k: relevant titles among the k, over k;
- recall@k: relevant titles among the k, over all the user's relevant titles;
- MAP@k: the mean over users of average precision at k (precision at each hit, summed, over min(relevant, k));
- NDCG@k: discounted cumulative gain of the hits over the best possible for that many relevant titles;
- catalog coverage: distinct titles recommended to anyone, over the catalog.

Users a recommender cannot serve (an empty list) count with zeros, so a model that skips cold users pays for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "catalog_coverage")
GATE_METRIC = "ndcg_at_10"
"""The figure a new model's hybrid must keep within the margin of the current model's."""


def precision_at(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for item in recommended[:k] if item in relevant) / k


def recall_at(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def average_precision_at(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), k)


def ndcg_at(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(recommended[:k], start=1) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def evaluate(recommended: Mapping[str, Sequence[str]], relevant: Mapping[str, set[str]], *, catalog_size: int,
             k: int = 10) -> dict[str, float]:
    """The metrics of one recommender over the users in ``relevant`` (a user missing from ``recommended`` scores
    zero)."""
    users = [u for u, items in relevant.items() if items]
    if not users:
        raise ValueError("no held-out user has a relevant title: hold out more days or read a longer range")
    lists = {u: list(recommended.get(u, ()))[:k] for u in users}
    n = len(users)
    recommended_titles: set[str] = set()
    for items in lists.values():
        recommended_titles.update(items)
    return {
        f"precision_at_{k}": sum(precision_at(lists[u], relevant[u], k) for u in users) / n,
        f"recall_at_{k}": sum(recall_at(lists[u], relevant[u], k) for u in users) / n,
        f"map_at_{k}": sum(average_precision_at(lists[u], relevant[u], k) for u in users) / n,
        f"ndcg_at_{k}": sum(ndcg_at(lists[u], relevant[u], k) for u in users) / n,
        "catalog_coverage": len(recommended_titles) / catalog_size if catalog_size else 0.0,
        "users": float(n),
    }


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    reason: str


def gate(candidate: Mapping[str, float], current: Mapping[str, float] | None, margin: float) -> GateDecision:
    """Publish the candidate unless its hybrid :data:`GATE_METRIC` is below ``(1 - margin)`` x the current
    model's (as each was measured on its own held-out period)."""
    new = candidate.get(GATE_METRIC)
    if new is None:
        return GateDecision(False, f"the candidate has no {GATE_METRIC}")
    if current is None or current.get(GATE_METRIC) is None:
        return GateDecision(True, "no current model: the first one is published")
    floor = (1 - margin) * float(current[GATE_METRIC])
    if new >= floor:
        return GateDecision(True, f"{GATE_METRIC} {new:.4f} >= {floor:.4f} (current {current[GATE_METRIC]:.4f} "
                                  f"less the {margin:.0%} margin)")
    return GateDecision(False, f"{GATE_METRIC} {new:.4f} < {floor:.4f} (current {current[GATE_METRIC]:.4f} less "
                               f"the {margin:.0%} margin): the current model stays")


def names(ids: Sequence[object] | np.ndarray, rows: Iterable[Sequence[int]]) -> list[list[str]]:
    """Catalog indices -> ids, row by row (-1, an empty place, is skipped)."""
    return [[str(ids[i]) for i in row if i >= 0] for row in rows]
