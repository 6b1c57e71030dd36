"""Security checks of what a search exposes: the tracking server listens on the loopback unless
told otherwise, a password in the tracking URI is never printed or stored, and a Ray cluster that
requires token authentication runs searches for a driver holding the token and refuses others."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from checks import TEST_PRESETS, wait_for

from pipelines.cli import main
from pipelines.tracking.target import PASSWORD_ENV, USERNAME_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = f"pw-{secrets.token_hex(8)}"  # random, so no source file or log line holds it by chance
LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket
RAY_DRIVER_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _listening_addresses(port: int) -> set[str]:
    """The local addresses that sockets listening on TCP ``port`` are bound to (IPv4 and IPv6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == LISTEN and int(port_hex, 16) == port:
                # The kernel prints each 32-bit word of the address in host (little-endian) order.
                words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, width, 8)]
                family = socket.AF_INET if width == 8 else socket.AF_INET6
                found.add(socket.inet_ntop(family, b"".join(words)))
    return found


def _outside_address() -> str:
    """This machine's address on its default route, the one other machines would connect to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the route
        return probe.getsockname()[0]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except ConnectionRefusedError:
        return False


def test_the_tracking_server_listens_on_the_loopback_only_by_default(mlflow_server):
    """``mlflow/serve.sh`` without ``--host``: nobody on the network reaches the tracking server."""
    port = urlsplit(mlflow_server).port
    assert _listening_addresses(port) == {"127.0.0.1"}
    assert not _accepts(_outside_address(), port)


def test_host_0_0_0_0_serves_other_machines(spawn_service, tmp_path):
    """``--host 0.0.0.0`` is the one way to open the server to the network, and it does."""
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    port, server, log = spawn_service(
        [str(REPO_ROOT / "mlflow" / "serve.sh"), "--data", str(tmp_path / "data"), "--port", "{port}",
         "--workers", "1", "--host", "0.0.0.0"],
        {**os.environ, "MLFLOW_BIN": mlflow_bin},
    )
    # As for the session's server: MLflow imports slowly on a busy host.
    wait_for(lambda: _listening_addresses(port), f"a listener on port {port}", server, timeout_s=120, log=log)
    assert _listening_addresses(port) == {"0.0.0.0"}
    assert _accepts(_outside_address(), port)


def _tiny_preset(folder: Path) -> Path:
    """The tracked test preset cut to one short trial with two reports."""
    preset = yaml.safe_load((TEST_PRESETS / "tracked_grid25.yaml").read_text())
    preset["scheduler"]["grace_period"] = 50
    preset["budget"] = {"num_samples": 1, "max_steps": 100, "max_concurrent": 1}
    preset["params"].update(eval_every=50, eval_samples=200)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def _runs_holding(uri: str, experiment: str, needle: str, scratch: Path) -> list[str]:
    """Every run of ``experiment`` whose params, tags or artifacts contain ``needle``; asserts there are runs."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 2, "the search's parent run and its trial's child run"
    found = []
    for run in runs:
        for kind, entries in (("param", run.data.params), ("tag", run.data.tags)):
            found += [f"{run.info.run_id} {kind} {key}" for key, value in entries.items() if needle in f"{key}={value}"]
        artifacts = Path(client.download_artifacts(run.info.run_id, "", str(scratch / run.info.run_id)))
        found += _files_holding(artifacts, needle.encode())
    return found


def _reload_ray_auth() -> None:
    """Make this process's Ray read its authentication settings from the environment again.

    Ray reads RAY_AUTH_MODE and the token once per process. A user's driver is a fresh process;
    a test's is not, and an earlier local Ray in it may have turned token mode on and loaded the
    token of ~/.ray."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def driver_env():
    """Set the driver's Ray environment as a user's shell would, with no other Ray auth variable;
    restored at teardown."""
    patch = pytest.MonkeyPatch()

    def set_env(**values: str) -> None:
        for key in RAY_DRIVER_VARS:
            patch.delenv(key, raising=False)
        for key, value in values.items():
            patch.setenv(key, value)
        _reload_ray_auth()

    yield set_env
    patch.undo()
    _reload_ray_auth()


def test_a_search_on_a_token_cluster_tracked_at_a_password_uri_runs_and_leaks_neither_secret(
        ray_head_with_token, driver_env, mlflow_server, tmp_path, capfd, caplog, monkeypatch):
    """The README's way onto a cluster that requires a token (RAY_AUTH_MODE=token and the cluster's
    token file in RAY_AUTH_TOKEN_PATH), tracking to ``http://user:PASSWORD@host:port``: the search and
    ``gantune report`` work, the pair going to MLflow's client as its basic-auth variables, and
    neither the password nor the token is in any output, log record, file of the search folder
    (``best.json`` included), nor in any param, tag or artifact of the runs. (The test server
    ignores basic auth: what is checked is that the URI is accepted, not the login.)"""
    address, token = ray_head_with_token
    driver_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    caplog.set_level(logging.DEBUG)
    for name in (USERNAME_ENV, PASSWORD_ENV):
        monkeypatch.setenv(name, "")  # so that teardown undoes what the search sets
    uri = f"http://user:{PASSWORD}@{urlsplit(mlflow_server).netloc}"
    storage = tmp_path / "runs"
    assert main(["search", "--config", str(_tiny_preset(tmp_path)), "--address", address, "--storage", str(storage),
                 "--shared-storage", "--name", "creds", "--tracking-uri", uri, "--experiment", "creds"]) == 0
    assert main(["report", "--experiment", "creds", "--tracking-uri", uri, "--out", str(tmp_path / "report")]) == 0
    out, err = capfd.readouterr()
    assert "report of search creds written to" in out
    assert os.environ[PASSWORD_ENV] == PASSWORD

    best = json.loads((storage / "creds" / "best.json").read_text())
    assert best["trial_id"] and Path(best["checkpoint"]).is_file()
    leaks = []
    for secret in (PASSWORD, token.read_text().strip()):
        leaks += [f"printed: {line}" for line in (out + err).splitlines() if secret in line]
        leaks += [f"logged: {record.getMessage()}" for record in caplog.records if secret in record.getMessage()]
        leaks += _files_holding(storage, secret.encode())
        leaks += _runs_holding(mlflow_server, "creds", secret, tmp_path / "artifacts")
    assert not leaks, leaks


def test_a_driver_without_the_token_fails_and_says_why(ray_head_with_token, tmp_path):
    """``gantune search`` with no token stops with exit code 1 and one line saying the cluster refused its token
    instead of hanging.

    Run as a fresh process, as a user would: this pytest process's Ray may already hold a token.
    Ray retries the connection for 20 s by default; RAY_gcs_server_port_wait_time_s (a setting of
    Ray, open to users too) shortens the retries, not the outcome."""
    address, _ = ray_head_with_token
    env = {key: value for key, value in os.environ.items() if key not in RAY_DRIVER_VARS}
    env["RAY_gcs_server_port_wait_time_s"] = "2"
    gantune = str(Path(sys.executable).with_name("gantune"))
    done = subprocess.run([gantune, "search", "--config", str(_tiny_preset(tmp_path)), "--address", address,
                           "--storage", str(tmp_path / "runs"), "--shared-storage", "--name", "no-token"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "refused this driver's token" in done.stderr and "RAY_AUTH_MODE=token" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "runs" / "no-token" / "best.json").exists()
