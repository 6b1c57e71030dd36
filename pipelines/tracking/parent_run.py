"""A search's parent run: its experiment, and the run made once and found again on ``--resume``.

The parent run's id is kept in the search folder (``PARENT_RUN_FILE``), so a resumed search
reopens its parent instead of making a second one, and child runs find it by tag.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import yaml

from pipelines.search.folder import SearchFolder
from pipelines.tracking.run_values import flat_params
from pipelines.tracking.tags import (
    PARENT_RUN_FILE,
    TAG_DATASET,
    TAG_METRIC,
    TAG_MODE,
    TAG_RESUME,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
)
from pipelines.tracking.target import TrackingTarget, redacted

# The experiment kind MLflow's UI is meant to read to choose the model-training view (runs table,
# metric charts) over the GenAI overview. The 3.17.2 UI ignores it and opens on the GenAI
# overview unless the URL ends in ?workflowType=machine_learning (tests/test_mlflow_ui.py).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client, target: TrackingTarget) -> str:
    """The target's experiment, made (tagged with its kind) when it does not exist."""
    found = client.get_experiment_by_name(target.experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(target.experiment, artifact_location=target.artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def reopen(client, run_id: str) -> None:
    """A run of an interrupted search runs again, without the tags that said how to resume it."""
    tags = client.get_run(run_id).data.tags
    for stale in (TAG_RESUME, TAG_STATUS):
        if stale in tags:
            client.delete_tag(run_id, stale)
    client.update_run(run_id, status="RUNNING")


def resumed_parent(client, folder: SearchFolder) -> str | None:
    """The parent run of an interrupted search, running again; None for a new search."""
    try:
        record = json.loads(folder.read_text(PARENT_RUN_FILE))
    except OSError:  # no record yet: a new search
        return None
    run_id = record["parent_run_id"]
    reopen(client, run_id)
    return run_id


def new_parent(client, experiment: str, folder: SearchFolder, settings: Mapping[str, Any],
               target: TrackingTarget) -> str:
    """The parent run of a new search: its preset as params and as ``search.yaml``, its id recorded."""
    from mlflow.entities import Param

    tags = {
        TAG_ROLE: "search",
        TAG_SEARCH: folder.name,
        TAG_METRIC: settings["metric"],
        TAG_MODE: settings["mode"],
        TAG_DATASET: str(settings.get("dataset")),
        "mlflow.runName": folder.name,
    }
    run_id = client.create_run(experiment, tags=tags, run_name=folder.name).info.run_id
    params = flat_params("", {key: value for key, value in settings.items() if key != "params"})
    params.update(flat_params("space", settings.get("params", {})))
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    client.log_text(run_id, yaml.safe_dump(dict(settings), sort_keys=False), "search.yaml")
    folder.write_text(PARENT_RUN_FILE, json.dumps({"parent_run_id": run_id, "tracking_uri": redacted(target.uri)}))
    return run_id
