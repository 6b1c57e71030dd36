"""Finding a trained generator in MLflow: by registered model URI or by run id.

``gantune export`` and ``gantune generate`` accept the same sources, so both resolve them here,
and every lookup that fails (unknown model, alias, version or run, an unreachable server) ends
as one ``ConfigError`` line instead of an MLflow traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from pipelines.registry.export_writer import GeneratorRecord, record_from_checkpoint
from pipelines.registry.pyfunc_model import EXPORT_ARTIFACT
from pipelines.tracking.tags import CHECKPOINT_ARTIFACTS, CHECKPOINT_FILE, TAG_BEST_RUN, lineage_tags
from pipelines.tracking.target import TRACKING_ENV
from trainables.config import ConfigError, config_from_dict
from trainables.export_reader import ExportError, load_weights, read_export_config

_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")


def tracking_client(tracking_uri: str | None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri or os.environ.get(TRACKING_ENV) or None)


def mlflow_failure(what: str, err: Exception) -> ConfigError:
    """An MLflow error as one line: its first line, which names what was not found."""
    first = str(getattr(err, "message", None) or err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ConfigError(f"{what}: {first}")


def model_version(client, uri: str):
    """The registered version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names."""
    match = _MODEL_URI.fullmatch(uri)
    if match is None:
        raise ConfigError(f"--model {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(match["name"], match["alias"])
        return client.get_model_version(match["name"], match["version"])
    except Exception as err:
        raise mlflow_failure(f"--model {uri}", err) from None


def download_model_export(client, uri: str, scratch: str | Path) -> tuple[Path, dict[str, str]]:
    """Download a registered generator; returns its export folder and the version's lineage tags."""
    from mlflow.artifacts import download_artifacts

    version = model_version(client, uri)
    try:
        source = client.get_model_version_download_uri(version.name, version.version)
        local = Path(download_artifacts(artifact_uri=source, dst_path=str(scratch), tracking_uri=client.tracking_uri))
    except Exception as err:
        raise mlflow_failure(f"--model {uri}", err) from None
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    folder = local / flavor["artifacts"][EXPORT_ARTIFACT]["path"]
    lineage = {**version.tags, "model": f"models:/{version.name}/{version.version}"}
    return folder, lineage


def record_from_model(client, uri: str, scratch: str | Path) -> GeneratorRecord:
    folder, lineage = download_model_export(client, uri, scratch)
    try:
        info = read_export_config(folder)
        weights = load_weights(folder)
    except ExportError as err:
        raise ConfigError(f"--model {uri}: {err}") from None
    return GeneratorRecord(config_from_dict(info["config"]), weights, info["metrics"], {**info["lineage"], **lineage})


def record_from_run(client, run_id: str, scratch: str | Path) -> GeneratorRecord:
    """A trial run's best checkpoint; a search's parent run stands for its best trial."""
    try:
        run = client.get_run(run_id)
        if TAG_BEST_RUN in run.data.tags:
            run = client.get_run(run.data.tags[TAG_BEST_RUN])
        path = client.download_artifacts(run.info.run_id, f"{CHECKPOINT_ARTIFACTS}/{CHECKPOINT_FILE}", str(scratch))
    except Exception as err:
        raise mlflow_failure(f"--run-id {run_id}", err) from None
    return record_from_checkpoint(path, lineage_tags(run))
