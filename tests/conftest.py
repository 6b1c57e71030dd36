"""Shared fixtures: a writable copy of the data root, a per-session evaluator cache, an MLflow server."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from checks import TEST_PRESETS, free_port, start_mlflow_server, stop_process_group, wait_for

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


@pytest.fixture(scope="module")
def data_root_exported(data_root):
    """``$GANTUNE_DATA_ROOT`` set to the data root, as a user exports it for an image search (the trials
    read it as well as the driver); restored after the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANTUNE_DATA_ROOT", str(data_root))
        yield data_root


@pytest.fixture(scope="session")
def mnist(data_root):
    """MNIST as CPU tensors, loaded once for every test that needs it."""
    from trainables.data.datasets import load_dataset

    return load_dataset("mnist", str(data_root))


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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real ``mlflow server`` (sqlite + proxied artifacts) on a free loopback port; yields its URI."""
    port = free_port()
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(server)


@pytest.fixture(scope="session")
def tracked_search(mlflow_server, tmp_path_factory) -> dict:
    """The session's one shared search (tests/presets/tracked_grid25.yaml, ASHA over every loss) logged to
    the MLflow server; the search, tracking, report, promotion and UI tests read it. ``preset`` is
    its YAML as a dict, so tests read budgets and rungs from it rather than copy them."""
    import yaml

    from pipelines.cli import main

    storage = tmp_path_factory.mktemp("tracked")
    preset = storage / "tracked.yaml"
    preset.write_text((TEST_PRESETS / "tracked_grid25.yaml").read_text())
    started = time.monotonic()
    code = main(["search", "--config", str(preset), "--storage", str(storage), "--name", "tracked",
                 "--tracking-uri", mlflow_server, "--experiment", "tracked"])
    assert code == 0
    return {"uri": mlflow_server, "experiment": "tracked", "folder": storage / "tracked",
            "seconds": time.monotonic() - started, "preset": yaml.safe_load(preset.read_text())}


@pytest.fixture
def spawn_service(tmp_path):
    """Start a server process in its own session on a free loopback port; stopped by its group at teardown.

    Call it with the command (``{port}`` in it is replaced) and the environment; returns
    (port, process, log path)."""
    started: list[subprocess.Popen] = []

    def spawn(command: list[str], env: dict[str, str]) -> tuple[int, subprocess.Popen, Path]:
        port = free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("w") as sink:
            process = subprocess.Popen([part.format(port=port) for part in command], stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True, env=env)
        started.append(process)
        return port, process, log

    yield spawn
    for process in started:
        stop_process_group(process)


@contextmanager
def _ray_head(env: dict[str, str]):
    """Run ``ray start --head --block`` in its own session with ``env`` (whose $RAY_TMPDIR it uses);
    yields its address once it is up, and stops it by its process group."""
    temp = Path(env["RAY_TMPDIR"])
    log = temp / "ray-start.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={free_port()}",
             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
    address_file = temp / "ray" / "ray_current_cluster"  # written once the head is up
    try:
        wait_for(address_file.is_file, "the Ray head's address file", process, timeout_s=120, log=log)
        yield address_file.read_text().strip()
    finally:
        stop_process_group(process)


def _ray_temp() -> Path:
    """A private $RAY_TMPDIR: short and under /tmp, since Ray's socket paths inside it must fit in 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="gt-ray-", dir="/tmp"))


@pytest.fixture
def ray_head(monkeypatch):
    """A Ray head started with ``ray start --head --block`` in its own session; yields its address.

    Its temp folder ($RAY_TMPDIR) is private to the test, so ``--address auto`` finds this cluster
    and no other on the host; stopped at teardown by its process group. Token authentication is
    off for it and its clients alike, whatever token ~/.ray or an earlier local Ray left behind."""
    temp = _ray_temp()
    monkeypatch.setenv("RAY_TMPDIR", str(temp))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        with _ray_head(dict(os.environ)) as address:
            yield address
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head_with_token():
    """A Ray head that requires token authentication; yields ``(address, token file)``.

    The head reads a fresh random token from its own file ($RAY_AUTH_TOKEN_PATH), never
    ~/.ray/auth_token, so a client holding only the home token is refused. This process's
    environment is left alone: a test gives its driver the token the way a user would."""
    temp = _ray_temp()
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(RAY_TMPDIR=str(temp), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    try:
        with _ray_head(env) as address:
            yield address, token
    finally:
        shutil.rmtree(temp, ignore_errors=True)
