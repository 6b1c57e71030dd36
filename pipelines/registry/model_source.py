"""Finding a trained generator: a checkpoint file, a run's best checkpoint, a registered model, an export.

``gantune export`` and ``gantune generate`` accept the same sources, so both resolve them here,
and every lookup that fails (unknown model, alias, version or run, an unreachable server) ends
as one ``UsageError`` line instead of an MLflow traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.registry.downloads import download
from pipelines.registry.export_writer import GeneratorRecord, record_from_checkpoint
from pipelines.registry.pyfunc_model import EXPORT_ARTIFACT
from pipelines.tracking.lookup import ask, tracking_client
from pipelines.tracking.tags import CHECKPOINT_ARTIFACTS, TAG_BEST_RUN, lineage_tags
from trainables.core.checkpoint import CHECKPOINT_FILE
from trainables.core.config import config_from_dict
from trainables.errors import UsageError
from trainables.export_reader import ExportedGenerator, load_exported, load_weights, read_export_config

_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")


def model_version(client, uri: str):
    """The registered version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names."""
    match = _MODEL_URI.fullmatch(uri)
    if match is None:
        raise UsageError(f"--model {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    if match["alias"]:
        return ask(f"--model {uri}", lambda: client.get_model_version_by_alias(match["name"], match["alias"]))
    return ask(f"--model {uri}", lambda: client.get_model_version(match["name"], match["version"]))


def download_model_export(client, uri: str, scratch: str | Path) -> tuple[Path, dict[str, str]]:
    """Download a registered generator; returns its export folder and the version's lineage tags."""
    from mlflow.artifacts import download_artifacts

    version = model_version(client, uri)
    source = ask(f"--model {uri}", lambda: client.get_model_version_download_uri(version.name, version.version))
    local = ask(f"--model {uri}", lambda: download(uri, download_artifacts, artifact_uri=source, dst_path=str(scratch),
                                                   tracking_uri=client.tracking_uri))
    folder = local / _export_path(local, uri)
    lineage = {**version.tags, "model": f"models:/{version.name}/{version.version}"}
    return folder, lineage


def _export_path(model_folder: Path, uri: str) -> str:
    """Where the pyfunc model keeps its export artifact, as its MLmodel file records it."""
    from mlflow.models import Model

    flavor = ask(f"--model {uri}", lambda: Model.load(str(model_folder))).flavors.get("python_function", {})
    artifact = (flavor.get("artifacts") or {}).get(EXPORT_ARTIFACT)
    if not artifact:
        raise UsageError(f"--model {uri} is not a gantune generator: its python_function flavor has no "
                         f"{EXPORT_ARTIFACT!r} artifact")
    return artifact["path"]


def record_from_model(client, uri: str, scratch: str | Path) -> GeneratorRecord:
    folder, lineage = download_model_export(client, uri, scratch)
    info, weights = read_export_config(folder), load_weights(folder)
    return GeneratorRecord(config_from_dict(info["config"]), weights, info["metrics"], {**info["lineage"], **lineage})


def record_from_run(client, run_id: str, scratch: str | Path) -> GeneratorRecord:
    """A trial run's best checkpoint; a search's parent run stands for its best trial."""
    what = f"--run-id {run_id}"
    run = ask(what, lambda: client.get_run(run_id))
    if TAG_BEST_RUN in run.data.tags:
        run = ask(what, lambda: client.get_run(run.data.tags[TAG_BEST_RUN]))
    artifact = f"{CHECKPOINT_ARTIFACTS}/{CHECKPOINT_FILE}"
    path = ask(what, lambda: download(f"runs:/{run.info.run_id}/{artifact}", client.download_artifacts,
                                      run.info.run_id, artifact, str(scratch)))
    return record_from_checkpoint(path, lineage_tags(run))


def record_from_source(checkpoint: str | None, model: str | None, run_id: str | None, tracking_uri: str | None,
                       scratch: str | Path) -> GeneratorRecord:
    """The generator of exactly one source: a checkpoint (file, or folder holding ``checkpoint.pt``),
    a ``models:/`` URI, or a run id."""
    if checkpoint:
        path = Path(checkpoint) / CHECKPOINT_FILE if Path(checkpoint).is_dir() else Path(checkpoint)
        return record_from_checkpoint(path, {"checkpoint": str(path.resolve())})
    client = tracking_client(tracking_uri)
    return record_from_model(client, model, scratch) if model else record_from_run(client, run_id, scratch)


def load_generator(model: str, tracking_uri: str | None, scratch: str | Path) -> ExportedGenerator:
    """An export folder, or a ``models:/`` URI downloaded into ``scratch``, loaded with torch alone."""
    folder = Path(model)
    if ":/" in model and not folder.exists():
        folder, _ = download_model_export(tracking_client(tracking_uri), model, scratch)
    return load_exported(folder)
