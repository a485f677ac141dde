"""What the examples' last step shares: choosing the best-scored candidate, recording why each
other one lost."""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import flowtrail


def select_best(step: flowtrail.Step, scored: Sequence[Tuple[float, str, Any]],
                reason: str = "lower_score") -> List[Tuple[float, str, Any]]:
    """Observes ``(score, candidate_id, payload)`` triples in ``step`` from the highest score
    down: the first ``selected``, every other ``rejected`` with ``reason`` and its rank. The
    triples in that order (the selected one first; empty when there was none)."""
    ranked = sorted(scored, key=lambda triple: -triple[0])
    for rank, (score, candidate_id, _) in enumerate(ranked):
        step.observe(candidate_id, "selected" if rank == 0 else "rejected", score=score,
                     reasons=None if rank == 0 else [(reason, f"rank {rank + 1}")])
    return ranked
