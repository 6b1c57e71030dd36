"""The end of a tracked search: its summary on the parent run, and the best trial's generator as a model."""

from __future__ import annotations

import tempfile
import time

from pipelines.registry.downloads import bar_only_on_a_terminal
from pipelines.search.outcome import RUN_STATUS
from pipelines.tracking.tags import (
    CHECKPOINT_ARTIFACTS,
    TAG_BEST_RUN,
    TAG_BEST_STEP,
    TAG_BEST_VALUE,
    TAG_MODEL,
    TAG_STATUS,
    TAG_TRIAL_ID,
    lineage_tags,
)
from trainables.core.checkpoint import CHECKPOINT_FILE
from trainables.quality.objectives import best_first


def summarise_search(client, parent_id: str, children: list, metric: str, mode: str):
    """Log the trial counts by status and the best trial to the parent run (as metrics, tags and
    ``summary.json``); returns the best trial's run, or None when no trial logged a checkpoint."""
    from mlflow.entities import Metric, RunTag

    counts = dict.fromkeys(RUN_STATUS, 0)
    for run in children:
        status = run.data.tags.get(TAG_STATUS)
        if status in counts:
            counts[status] += 1
    ranked = sorted((run for run in children if TAG_BEST_VALUE in run.data.tags),
                    key=best_first(mode, lambda run: float(run.data.tags[TAG_BEST_VALUE])))
    now = int(time.time() * 1000)
    metrics = [Metric(f"trials_{name}", count, now, 0) for name, count in counts.items()]
    metrics.append(Metric("trials", len(children), now, 0))
    tags = []
    best = ranked[0] if ranked else None
    if best is not None:
        metrics.append(Metric(f"best_{metric}", float(best.data.tags[TAG_BEST_VALUE]), now, 0))
        tags += [RunTag(TAG_BEST_RUN, best.info.run_id), RunTag("gantune.best_trial_id", best.data.tags[TAG_TRIAL_ID])]
    client.log_batch(parent_id, metrics=metrics, tags=tags)
    summary = {
        "metric": metric,
        "mode": mode,
        "counts": counts,
        "best": None if best is None else {
            "run_id": best.info.run_id,
            "trial_id": best.data.tags[TAG_TRIAL_ID],
            "value": float(best.data.tags[TAG_BEST_VALUE]),
            "step": int(best.data.tags.get(TAG_BEST_STEP, 0)),
            "params": dict(best.data.params),
        },
    }
    client.log_dict(parent_id, summary, "summary.json")
    return best


def log_best_model(client, best, search_name: str) -> None:
    """Log the best trial's generator as its run's pyfunc model, from its best checkpoint."""
    from pipelines.registry.export_writer import record_from_checkpoint
    from pipelines.registry.pyfunc_model import MODEL_ARTIFACT_PATH, log_generator_model

    with tempfile.TemporaryDirectory() as scratch:
        with bar_only_on_a_terminal():
            path = client.download_artifacts(best.info.run_id, f"{CHECKPOINT_ARTIFACTS}/{CHECKPOINT_FILE}", scratch)
        lineage = lineage_tags(best, search_name)
        record = record_from_checkpoint(path, lineage)
        log_generator_model(client, best.info.run_id, record)
    client.set_tag(best.info.run_id, TAG_MODEL, MODEL_ARTIFACT_PATH)
