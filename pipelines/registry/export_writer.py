"""Writing an export folder: the generator as weights, program, config, samples and model card.

Every consumer of a trained generator (``gantune export``, the MLflow model of a search's best
trial) goes through ``write_export``, so the registry and a downloaded folder hold the same
files. The folder is built beside its destination and renamed into place: a failure leaves
nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainables.core.checkpoint import load_checkpoint
from trainables.core.config import TrainConfig, config_from_dict
from trainables.core.models import build_generator
from trainables.core.pictures import picture_size, write_picture
from trainables.data.datasets import spec_of
from trainables.data.loading import balanced_labels
from trainables.data.records import DatasetSpec
from trainables.errors import UsageError
from trainables.export_reader import (
    CARD_FILE,
    CONFIG_FILE,
    EXPORT_FORMAT,
    PROGRAM_FILE,
    SAMPLES_FILE,
    WEIGHTS_FILE,
    GeneratorSpec,
)

EXAMPLE_BATCH = 4
SAMPLE_SEED = 0
MAX_BATCH = 1 << 20


@dataclass
class GeneratorRecord:
    """A trained generator with what is known about where it came from."""

    config: TrainConfig
    weights: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> GeneratorSpec:
        dataset = spec_of(self.config)
        return GeneratorSpec(self.config.latent_dim, self.config.conditional, dataset.num_classes, dataset.shape)

    def build(self) -> torch.nn.Module:
        generator = build_generator(self.config)
        generator.load_state_dict(self.weights)
        return generator.eval()


def record_from_checkpoint(path: str | Path, lineage: dict[str, str] | None = None) -> GeneratorRecord:
    state = load_checkpoint(path)
    metrics = {k: v for k, v in state.get("metrics", {}).items() if isinstance(v, (int, float, str, bool))}
    return GeneratorRecord(
        config_from_dict(state["config"]),
        state["generator"],
        metrics,
        {"checkpoint_step": str(state["step"]), **(lineage or {})},
    )


def _export_program(generator: torch.nn.Module, spec: GeneratorSpec, path: Path) -> None:
    """A ``torch.export`` program whose batch size is free, so callers choose how many samples."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    z = torch.randn(EXAMPLE_BATCH, spec.latent_dim)
    if spec.conditional:
        args = (z, torch.arange(EXAMPLE_BATCH) % spec.num_classes)
        dynamic = ({0: batch}, {0: batch})
    else:
        args, dynamic = (z,), ({0: batch},)
    torch.export.save(torch.export.export(generator, args, dynamic_shapes=dynamic), str(path))


@torch.no_grad()
def write_samples(path: Path, generator: torch.nn.Module, spec: GeneratorSpec, dataset: DatasetSpec) -> None:
    """The same picture the trainer draws, from noise of a fixed seed."""
    count, rows = picture_size(dataset, spec.conditional)
    z = torch.randn(count, spec.latent_dim, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    labels = balanced_labels(count, spec.num_classes) if spec.conditional else None
    write_picture(path, generator(z, labels), dataset, rows)


def _model_card(record: GeneratorRecord) -> str:
    config = record.config
    variant = f"{config.loss} loss, {config.arch} architecture" + (", conditional" if config.conditional else "")
    if config.spectral_norm:
        variant += ", spectral norm in D"
    dataset = spec_of(config)
    lines = [
        f"# GAN generator: {config.dataset}",
        "",
        f"**Variant**: {variant}.",
        "",
        "## Data",
        f"- dataset: `{config.dataset}`, samples of shape {dataset.shape}, {dataset.num_classes} classes/modes",
        "",
        "## Hyperparameters",
        "| key | value |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in config.to_dict().items() if value is not None),
        "",
        "## Metrics (at the exported checkpoint)",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in sorted(record.metrics.items())),
        "",
        "## Lineage",
        *(f"- {key}: `{value}`" for key, value in sorted(record.lineage.items())),
        "",
        "## Use",
        "```python",
        "from trainables.export_reader import load_exported  # torch only",
        "generator = load_exported('THIS_FOLDER')",
        "samples = generator.generate(64, seed=0)  # values in [-1, 1] for images",
        "```",
        f"Without gantune: `torch.export.load('{PROGRAM_FILE}').module()(z{', labels' if config.conditional else ''})` "
        f"with `z` of shape (N, {config.latent_dim}).",
        "",
    ]
    return "\n".join(lines)


def _fill_folder(folder: Path, record: GeneratorRecord) -> None:
    from safetensors.torch import save_file

    generator = record.build()
    spec = record.spec
    save_file({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}, str(folder / WEIGHTS_FILE))
    info = {
        "format": EXPORT_FORMAT,
        "spec": spec.to_dict(),
        "config": record.config.to_dict(),
        "metrics": record.metrics,
        "lineage": record.lineage,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    _export_program(generator, spec, folder / PROGRAM_FILE)
    write_samples(folder / SAMPLES_FILE, generator, spec, spec_of(record.config))
    (folder / CARD_FILE).write_text(_model_card(record))


def check_export_target(out: Path, overwrite: bool) -> None:
    """An existing ``out`` is replaced only with ``overwrite``; checked before any work is done."""
    if out.exists() and not overwrite:
        raise UsageError(f"--out {str(out)!r} already exists; choose a new --out folder or pass --overwrite")


def write_export(record: GeneratorRecord, out: str | Path, overwrite: bool = False) -> Path:
    """Write the export folder at ``out``; an existing folder is replaced only with ``overwrite``."""
    out = Path(out)
    check_export_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    staging.chmod(0o755)
    try:
        _fill_folder(staging, record)
        if out.exists():
            retired = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
            os.replace(out, retired / out.name)
            os.replace(staging, out)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
