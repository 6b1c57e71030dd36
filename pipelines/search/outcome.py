"""How a trial ended, in the words a GAN search uses, and the status its MLflow run records.

A trial ends in one of four ways that matter to someone watching a GAN search: it ``finished``
its step budget, the scheduler ``stopped`` it early, it ``diverged`` (and ended itself), or it
``errored``. Tune only knows TERMINATED and ERROR, so the outcome is read from the last report.
The progress line counts outcomes; tracking records each as a status tag and a run status.
"""

from __future__ import annotations

from typing import Any, Mapping

OUTCOMES = ("running", "pending", "finished", "stopped", "diverged", "errored")
# The ``gantune.status`` tag of each way a trial ends, and the MLflow status its run ends with.
STATUS_TAG = {"finished": "completed", "stopped": "early_stopped", "diverged": "diverged", "errored": "errored"}
# ``interrupted``: a trial a signal stopped, or one the resumed Tune no longer knows; ``--resume``
# continues the former.
RUN_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "diverged": "FAILED", "errored": "FAILED",
              "interrupted": "KILLED"}


def outcome(status: str, last_result: Mapping[str, Any]) -> str:
    """One of OUTCOMES for a Tune trial status and the trial's last report."""
    if status == "ERROR":
        return "errored"
    if status in ("PENDING", "PAUSED"):
        return "pending"
    if status == "RUNNING":
        return "running"
    if last_result.get("diverged") or last_result.get("status") == "diverged":
        return "diverged"
    return "finished" if last_result.get("status") == "completed" else "stopped"


def end_status(last_report: Mapping[str, Any], errored: bool = False) -> str:
    """The status tag of an ended trial (or slot-trial) from its last report: completed,
    early_stopped, diverged or errored. Every place that records how a trial ended asks this."""
    return STATUS_TAG[outcome("ERROR" if errored else "TERMINATED", last_report)]
