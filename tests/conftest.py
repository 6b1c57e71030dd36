"""Shared fixtures: a writable copy of the data root and a per-session evaluator cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A writable copy of ``$GANTUNE_DATA_ROOT`` (default ``../shared/data``), so torchvision can unpack it."""
    source = Path(os.environ.get("GANTUNE_DATA_ROOT") or REPO_ROOT.parent / "shared" / "data")
    if not (source / "MNIST" / "raw").is_dir():
        raise RuntimeError(f"MNIST is not under {source}; set GANTUNE_DATA_ROOT to the folder holding MNIST/raw")
    target = tmp_path_factory.mktemp("data")
    shutil.copytree(source / "MNIST", target / "MNIST")
    for entry in (target / "MNIST").rglob("*"):
        entry.chmod(0o644 if entry.is_file() else 0o755)
    return target


@pytest.fixture(scope="session", autouse=True)
def evaluator_cache(tmp_path_factory) -> Path:
    """One evaluator cache per test session, so the MNIST evaluator is trained once and never read from ~."""
    cache = tmp_path_factory.mktemp("evaluator-cache")
    previous = os.environ.get("GANTUNE_CACHE_DIR")
    os.environ["GANTUNE_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        del os.environ["GANTUNE_CACHE_DIR"]
    else:
        os.environ["GANTUNE_CACHE_DIR"] = previous
