"""Small checks several test modules share: the one-line error contract, objective margins, test presets."""

from __future__ import annotations

from pathlib import Path

TEST_PRESETS = Path(__file__).resolve().parent / "presets"


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line; returns it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def worse_by(value: float, reference: float, mode: str) -> float:
    """How much worse ``value`` is than ``reference`` in direction ``mode``, positive when worse."""
    return value - reference if mode == "min" else reference - value
