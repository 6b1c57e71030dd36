"""Names shared by the runs a search logs and the commands that read them back.

``pipelines.tracking.callback`` writes these tags and artifacts; ``gantune promote``, ``export`` and
``generate`` find generators by them. Kept apart from the tracking callback so that reading
runs never imports Ray.
"""

from __future__ import annotations

PARENT_RUN_FILE = "mlflow_run.json"
CHECKPOINT_ARTIFACTS = "checkpoint"
SAMPLES_ARTIFACTS = "samples"

# Tags: what a search or trial is, read back by `gantune promote` and `gantune export`.
TAG_ROLE = "gantune.role"
TAG_SEARCH = "gantune.search"
TAG_METRIC = "gantune.metric"
TAG_MODE = "gantune.mode"
TAG_DATASET = "gantune.dataset"
TAG_TRIAL_ID = "gantune.trial_id"
TAG_OPTUNA_TRIAL = "gantune.optuna_trial"  # a cohort slot-trial's number in the search's study
TAG_STATUS = "gantune.status"
TAG_EVALUATOR = "gantune.evaluator_hash"
TAG_BEST_VALUE = "gantune.best_value"
TAG_BEST_STEP = "gantune.best_step"
TAG_BEST_RUN = "gantune.best_run_id"
TAG_MODEL = "gantune.model"
TAG_RESUME = "gantune.resume"  # on a run a signal stopped: the command that continues the search
TAG_PARENT = "mlflow.parentRunId"


def lineage_tags(run, search_name: str | None = None) -> dict[str, str]:
    """Where a trial's generator came from, as plain strings for a model card and a model version."""
    tags = run.data.tags
    return {
        "source_run": run.info.run_id,
        "search": search_name or tags.get(TAG_SEARCH, ""),
        "dataset": tags.get("dataset", run.data.params.get("dataset", "")),
        "evaluator_hash": tags.get(TAG_EVALUATOR, "none"),
        "metric": tags.get(TAG_METRIC, ""),
        "metric_value": tags.get(TAG_BEST_VALUE, ""),
        "trial_id": tags.get(TAG_TRIAL_ID, ""),
    }
