"""Where a search's MLflow runs go, decided (and checked) before anything starts.

Runs are logged by the driver, from the trials' reports and checkpoints, so the trials never
talk to MLflow and any store the driver reaches will do. The one thing that can lose logs is
the checkpoint storage: on a Ray cluster the driver reads every trial's checkpoints (and so its
sample grids and best checkpoint) from ``--storage``, which only works when every node writes
to a place the driver reads: a URI (``s3://``, ``gs://``, ...) or a folder that every node
mounts at the same path, which the user vouches for with ``--shared-storage``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from trainables.errors import Unreachable, UsageError

TRACKING_ENV = "MLFLOW_TRACKING_URI"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
EMBEDDED_DB = "mlflow.db"
EMBEDDED_ARTIFACTS = "mlartifacts"
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class TrackingTarget:
    """An MLflow tracking URI and experiment; ``artifact_location`` is set for the embedded store."""

    uri: str
    experiment: str
    artifact_location: str | None = None


def redacted(uri: str) -> str:
    """``uri`` with any ``user:password@`` removed: what may be printed, logged or written to a file."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def credentials_to_env(uri: str) -> str:
    """``uri`` without its ``user:password@``, which go to this process's $MLFLOW_TRACKING_USERNAME
    and $MLFLOW_TRACKING_PASSWORD instead; a URI without a password is returned as it is.

    MLflow's client sends that pair as basic auth, as it would the pair in the URI. But to MLflow
    and Ray a URI is no secret: MLflow prints run links built from it, and Ray Tune pickles the
    tracking callback that holds it into the search folder.
    """
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    os.environ[USERNAME_ENV] = unquote(parts.username or "")
    os.environ[PASSWORD_ENV] = unquote(parts.password)
    return redacted(uri)


def embedded_target(search_path: str, experiment: str) -> TrackingTarget:
    """A sqlite store and an artifact folder inside the search folder, which ``mlflow ui`` opens."""
    folder = Path(search_path)
    return TrackingTarget(
        f"sqlite:///{folder / EMBEDDED_DB}", experiment, (folder / EMBEDDED_ARTIFACTS).resolve().as_uri()
    )


def check_reachable(uri: str) -> None:
    """An HTTP tracking server must answer now: MLflow's own client retries for minutes, then fails mid-search."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{redacted(uri).rstrip('/')}/health", timeout=CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered, if not with a health page
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise Unreachable(
            f"tracking URI {redacted(uri)}: no MLflow server answers ({reason}); "
            "start one with mlflow/serve.sh or fix the URI"
        ) from None


def resolve_tracking(
    tracking_uri: str | None,
    experiment: str | None,
    search_name: str,
    search_path: str,
    search_is_local: bool,
    address: str | None,
    shared_storage: bool,
) -> TrackingTarget:
    """The store for a search: ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else embedded."""
    if address is not None and search_is_local and not shared_storage:
        raise UsageError(
            f"--address runs trials on other nodes, but --storage {search_path.rsplit('/', 1)[0]} is local to this "
            "machine, so their checkpoints and MLflow artifacts would be lost; give a URI (s3://...) or, if every "
            "node mounts that folder at the same path, add --shared-storage"
        )
    uri = tracking_uri or os.environ.get(TRACKING_ENV) or None
    name = experiment or search_name
    if uri is not None:
        uri = credentials_to_env(uri)
        check_reachable(uri)
        return TrackingTarget(uri, name)
    if not search_is_local:
        raise UsageError(
            f"--storage {search_path.rsplit('/', 1)[0]} is not a local folder, so it cannot hold the embedded MLflow "
            f"store; give --tracking-uri (or ${TRACKING_ENV}) of an MLflow server (see mlflow/README.md)"
        )
    return embedded_target(search_path, name)
