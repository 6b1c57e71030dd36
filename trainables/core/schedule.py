"""When a run reports, for the single trainer and for every slot of a cohort alike.

A run reports every ``eval_every`` of its own steps, counted from step 0 whatever step it resumed
from (so a resumed run evaluates where the uninterrupted one did), and at its last step. A
completed or diverged report ends the run.
"""

from __future__ import annotations

from typing import Any, Mapping

ENDING_STATUSES = ("completed", "diverged")


def steps_to_report(step: int, eval_every: int, steps: int) -> int:
    """Steps from ``step`` to the next report of a run of ``steps`` steps."""
    return min(eval_every - step % eval_every, steps - step)


def reports_at(step: int, eval_every: int, steps: int) -> bool:
    """Whether a run of ``steps`` steps reports at ``step``."""
    return step % eval_every == 0 or step >= steps


def ends_run(report: Mapping[str, Any]) -> bool:
    return report["status"] in ENDING_STATUSES
