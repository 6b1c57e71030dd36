"""Reading back from MLflow what a search logged: the client, a search's parent run, and failures as one line.

``gantune promote``, ``report``, ``export`` and ``generate`` all read the store; every lookup that
fails (unknown experiment, search, run; an unreachable server) ends as one ``UsageError`` line
instead of an MLflow traceback. The store itself is checked before MLflow opens it: MLflow would
create a missing SQLite file (leaving an empty ``mlflow.db`` behind a command that then fails),
retry an unreachable server for minutes, and answer an unknown scheme with a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

from pipelines.output_folder import check_sqlite_target, is_sqlite_database
from pipelines.tracking.tags import TAG_ROLE
from pipelines.tracking.target import TRACKING_ENV, check_reachable, credentials_to_env, redacted
from trainables.errors import UsageError

T = TypeVar("T")

SERVER_SCHEMES = ("http", "https")
DATABASE_DIALECTS = ("postgresql", "mysql", "mssql")  # each may carry a driver: postgresql+psycopg2://
HOSTED_STORES = ("databricks", "databricks-uc", "uc")
STORE_HINT = ("pass --tracking-uri http(s)://HOST:PORT of an MLflow server "
              "or sqlite:///STORAGE/NAME/mlflow.db of a search")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL; None for any other URL and for an in-memory database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def chosen_store(tracking_uri: str | None) -> tuple[str, str]:
    """The tracking URI a command uses, and what named it: ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``,
    else MLflow's default."""
    if tracking_uri:
        return tracking_uri, "--tracking-uri"
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV], f"${TRACKING_ENV}"
    import mlflow

    return mlflow.get_tracking_uri(), "MLflow's default tracking URI"


def check_store(uri: str, named: str, *, existing: bool) -> None:
    """A tracking URI MLflow can open: a server that answers, or a SQLite file that exists (``existing``, for
    commands that read a store) or can be created; other databases and hosted stores are left to MLflow."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in SERVER_SCHEMES:
        check_reachable(uri)
        return
    if scheme.split("+")[0] in DATABASE_DIALECTS or uri.split(":")[0].lower() in HOSTED_STORES:
        return
    database = sqlite_path(uri)
    if database is None:
        raise UsageError(f"{named} {uri} is not an MLflow tracking URI; {STORE_HINT}")
    if not existing:
        check_sqlite_target(named, uri, database)
    elif not database.exists():
        raise UsageError(f"{named} {uri}: {database} does not exist; {STORE_HINT}")
    elif not is_sqlite_database(database):
        raise UsageError(f"{named} {uri}: {database} is not an SQLite database; {STORE_HINT}")


def tracking_client(tracking_uri: str | None):
    """A client of the store a reading command names, checked first (see the module's docstring).

    A password in the URI moves to MLflow's credential variables, so no message or link shows it."""
    named_uri, named = chosen_store(tracking_uri)
    uri = credentials_to_env(named_uri)
    check_store(uri, named, existing=True)
    from mlflow import MlflowClient

    return ask(f"{named} {uri}", lambda: MlflowClient(uri))


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
        raise UsageError(f"--experiment {experiment_name!r} does not exist at {redacted(client.tracking_uri)}; "
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
