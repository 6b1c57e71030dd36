"""What of a search becomes MLflow data: which report keys are curves, and settings as flat params."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from trainables.core.trainer import TRAINING_SIGNALS
from trainables.data.datasets import DATASETS


def curve_names(dataset: str) -> frozenset[str]:
    """The report keys worth a curve: the trainer's signals and the dataset's metrics (not Tune's bookkeeping)."""
    return frozenset(TRAINING_SIGNALS) | frozenset(DATASETS[dataset].metrics)


def report_metrics(result: Mapping[str, Any], curves: frozenset[str]) -> dict[str, float]:
    """The finite values of a report's ``curves``."""
    return {
        key: float(value)
        for key, value in result.items()
        if key in curves and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def flat_params(prefix: str, value: Any) -> dict[str, str]:
    """Nested settings as dotted MLflow params."""
    if isinstance(value, Mapping):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(flat_params(f"{prefix}.{key}" if prefix else str(key), inner))
        return flat
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}
