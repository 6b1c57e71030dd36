"""Reading back from MLflow what a search logged: the client, a search's parent run, and failures as one line.

``gantune promote``, ``report``, ``export`` and ``generate`` all read the store; every lookup that
fails (unknown experiment, search, run; an unreachable server) ends as one ``UsageError`` line
instead of an MLflow traceback.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from pipelines.tracking.tags import TAG_ROLE
from pipelines.tracking.target import TRACKING_ENV
from trainables.errors import UsageError

T = TypeVar("T")


def tracking_client(tracking_uri: str | None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri or os.environ.get(TRACKING_ENV) or None)


def mlflow_failure(what: str, err: Exception) -> UsageError:
    """An MLflow error as one line: its first line, which names what was not found."""
    first = str(getattr(err, "message", None) or err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UsageError(f"{what}: {first}")


def ask(what: str, request: Callable[[], T]) -> T:
    """The answer to one MLflow request; any failure is one line naming ``what`` was asked for."""
    try:
        return request()
    except Exception as err:
        raise mlflow_failure(what, err) from None


def find_search(client, experiment_name: str, run_id: str | None):
    """The parent run of ``--search RUN_ID`` in the experiment, else the experiment's latest search."""
    experiment = ask(f"--experiment {experiment_name}", lambda: client.get_experiment_by_name(experiment_name))
    if experiment is None:
        raise UsageError(f"--experiment {experiment_name!r} does not exist at {client.tracking_uri}; "
                         "check the name and --tracking-uri")
    if run_id:
        run = ask(f"--search {run_id}", lambda: client.get_run(run_id))
        if run.data.tags.get(TAG_ROLE) != "search" or run.info.experiment_id != experiment.experiment_id:
            raise UsageError(f"--search {run_id} is not the parent run of a search in experiment {experiment_name!r}")
        return run
    found = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'search'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        raise UsageError(f"experiment {experiment_name!r} holds no search; run `gantune search` into it first")
    return found[0]
