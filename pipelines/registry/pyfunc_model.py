"""The generator as an MLflow pyfunc model: noise (and labels) in, samples out.

The model's one artifact is an export folder (see ``pipelines.registry.export_writer``), so what the
registry serves, what ``gantune export`` writes and what ``trainables.export_reader`` loads are the
same files. Loading the model imports this module, so at import it pulls in only what loading and
predicting need (``PIP_REQUIREMENTS``); the export writer is imported where a model is saved.

Input is a DataFrame with one float column per latent dimension (``z0`` ... ``z{d-1}``) plus an
integer ``label`` column for conditional generators (one column layout for Python callers and for
``mlflow models serve``'s ``dataframe_split`` JSON alike); output is a float32 array of shape
(N, *sample_shape), images in [-1, 1].
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.pyfunc
import numpy as np
import pandas as pd

from trainables.export_reader import GeneratorSpec, load_exported

if TYPE_CHECKING:
    from pipelines.registry.export_writer import GeneratorRecord

MODEL_ARTIFACT_PATH = "model"
EXPORT_ARTIFACT = "export"
LABEL_COLUMN = "label"
# Explicit requirements: MLflow's inference of them imports the model and costs seconds per call.
# Exactly what loading and predicting import (tests/test_export.py loads the model with all else blocked).
PIP_REQUIREMENTS = ["torch", "numpy", "pandas"]
_PACKAGE_DIRS = [Path(__file__).resolve().parents[2] / name for name in ("trainables", "pipelines")]


def noise_columns(latent_dim: int) -> list[str]:
    return [f"z{i}" for i in range(latent_dim)]


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.generator = load_exported(context.artifacts[EXPORT_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        import torch

        spec = self.generator.spec
        z = torch.tensor(model_input[noise_columns(spec.latent_dim)].to_numpy(dtype=np.float32))
        labels = torch.tensor(model_input[LABEL_COLUMN].to_numpy(dtype=np.int64)) if spec.conditional else None
        return self.generator(z, labels).numpy().astype(np.float32)


def input_example(spec: GeneratorSpec, rows: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((rows, spec.latent_dim)).astype(np.float32), columns=noise_columns(spec.latent_dim))
    if spec.conditional:
        frame[LABEL_COLUMN] = np.arange(rows, dtype=np.int64) % spec.num_classes
    return frame


def signature(spec: GeneratorSpec):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    columns = [ColSpec("float", name) for name in noise_columns(spec.latent_dim)]
    if spec.conditional:
        columns.append(ColSpec("long", LABEL_COLUMN))
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *spec.sample_shape))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def save_generator_model(record: GeneratorRecord, path: str | Path) -> Path:
    """Save the pyfunc model folder at ``path`` (which must not exist).

    MLflow copies the export into the model as a "download" with a progress bar; a local copy of
    a few files needs none, and in a search's or a command's log the bar is only noise.
    """
    from pipelines.registry.downloads import progress_bar_off
    from pipelines.registry.export_writer import write_export

    with tempfile.TemporaryDirectory() as scratch, progress_bar_off():
        export = write_export(record, Path(scratch) / EXPORT_ARTIFACT)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=GeneratorModel(),
            artifacts={EXPORT_ARTIFACT: str(export)},
            signature=signature(record.spec),
            input_example=input_example(record.spec),
            pip_requirements=PIP_REQUIREMENTS,
            code_paths=[str(d) for d in _PACKAGE_DIRS],
        )
    return Path(path)


def log_generator_model(client, run_id: str, record: GeneratorRecord) -> str:
    """Log the pyfunc model under ``run_id`` (an ended run is fine); returns its ``runs:/`` URI."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = save_generator_model(record, Path(scratch) / MODEL_ARTIFACT_PATH)
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT_PATH)
    return f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"
