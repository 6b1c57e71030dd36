"""Shared fixtures: a writable copy of the data root, a per-session evaluator cache, an MLflow server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    """Poll ``/health`` until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"mlflow server did not answer {url}/health in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started in its own session and every worker it forked, by its group id."""
    for sig, grace_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            os.killpg(process.pid, signal.SIGKILL)  # workers still importing ignore SIGTERM
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real ``mlflow server`` (sqlite + proxied artifacts) on a free loopback port; yields its URI."""
    data = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = data / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(REPO_ROOT / "mlflow" / "serve.sh"), "--data", str(data), "--port", str(port), "--workers", "1"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow"))},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log)
        yield url
    finally:
        _stop_process_group(process)


TRACKED_PRESET = """
dataset: grid25
metric: js_modes
searcher: {name: random, seed: 1}
scheduler: {name: asha, grace_period: 200, reduction_factor: 3}
budget: {num_samples: 6, max_steps: 600, max_concurrent: 3}
resources: {cpus_per_trial: 0.5}
params:
  arch: mlp
  conditional: false
  loss: [gan, lsgan, hinge]
  lr_g: {low: 3.0e-4, high: 3.0e-3, log: true}
  lr_d: {low: 3.0e-4, high: 3.0e-3, log: true}
  width: 64
  batch_size: 128
  latent_dim: 8
  eval_every: 200
  eval_samples: 1000
"""


@pytest.fixture(scope="session")
def tracked_search(mlflow_server, tmp_path_factory) -> dict:
    """One small ASHA search of grid25 logged to the MLflow server; shared by tracking and promotion tests."""
    from pipelines.cli import main

    storage = tmp_path_factory.mktemp("tracked")
    preset = storage / "tracked.yaml"
    preset.write_text(TRACKED_PRESET)
    started = time.monotonic()
    code = main(["search", "--config", str(preset), "--storage", str(storage), "--name", "tracked",
                 "--tracking-uri", mlflow_server, "--experiment", "tracked"])
    assert code == 0
    return {"uri": mlflow_server, "experiment": "tracked", "folder": storage / "tracked",
            "seconds": time.monotonic() - started}


@pytest.fixture
def spawn_service(tmp_path):
    """Start a server process in its own session on a free loopback port; stopped by its group at teardown.

    Call it with the command (``{port}`` in it is replaced) and the environment; returns
    (port, process, log path)."""
    started: list[subprocess.Popen] = []

    def spawn(command: list[str], env: dict[str, str]) -> tuple[int, subprocess.Popen, Path]:
        port = _free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("w") as sink:
            process = subprocess.Popen([part.format(port=port) for part in command], stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True, env=env)
        started.append(process)
        return port, process, log

    yield spawn
    for process in started:
        _stop_process_group(process)
