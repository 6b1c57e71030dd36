"""One checkpoint file per training state, written atomically and read without unpickling code.

The file is a ``torch.save`` of tensors, numbers, strings and dicts only, so ``torch.load`` with
``weights_only=True`` reads it: a checkpoint from someone else can never run code on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainables.atomic import write_atomically
from trainables.errors import UnreadableCheckpoint

CHECKPOINT_FORMAT = 1
# The files of one evaluation's checkpoint folder, as every report destination writes them (Tune's
# checkpoint directories, the MLflow artifacts logged from them, ``gantune train``'s run folder).
CHECKPOINT_FILE = "checkpoint.pt"
SAMPLES_FILE = "samples.png"

# Set on the first report of a trial whose newest checkpoint could not be read: what it continued from.
RESTORE_NOTE = "restored_from"

def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Written atomically, so a crash never leaves half a checkpoint."""
    write_atomically(path, lambda temporary: torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpoint(f"checkpoint: {str(path)!r} is not a file; give the path of a checkpoint.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise UnreadableCheckpoint(f"checkpoint: {str(path)!r} is not a gantune checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UnreadableCheckpoint(f"checkpoint: {str(path)!r} is not a gantune checkpoint of format {CHECKPOINT_FORMAT}")
    return state
