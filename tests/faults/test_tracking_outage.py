"""The MLflow server killed and restarted mid-search: no metric point lost, no run left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from checks import TEST_PRESETS
from faults_support import trial_rows

from mlflow import MlflowClient
from pipelines.tracking.tags import TAG_PARENT, TAG_TRIAL_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
CURVES = ("js_modes", "d_loss", "g_loss", "coverage")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen:
    """``mlflow/serve.sh`` on ``port`` with its store in ``data``, answering /health when this returns."""
    log = (data / "server.log").open("a")
    server = subprocess.Popen(
        [str(REPO_ROOT / "mlflow" / "serve.sh"), "--data", str(data), "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow"))},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, (data / "server.log").read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)  # polling a starting server
    raise AssertionError("mlflow server did not start")


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def test_a_restarted_server_gets_every_point_and_every_run_ends(tmp_path):
    data, port = tmp_path / "mlflow", free_port()
    data.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(data, port)
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "search", "--config", str(TEST_PRESETS / "interrupted_grid25.yaml"),
         "--storage", str(tmp_path), "--name", "outage", "--tracking-uri", uri],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    experiment = tmp_path / "outage" / "tune"
    output: list[str] = []
    try:
        lines = iter(driver.stdout)
        for line in lines:  # until the first reports are logged
            output.append(line)
            if sum(map(len, trial_rows(experiment).values())) >= 2:
                break
        kill_group(server)
        reported_while_down = sum(map(len, trial_rows(experiment).values()))
        for line in lines:  # until the trials have reported more while the server is down
            output.append(line)
            if sum(map(len, trial_rows(experiment).values())) >= reported_while_down + 4:
                break
        server = start_server(data, port)
        output += list(lines)
        assert driver.wait(timeout=600) == 0, "".join(output)[-3000:]
        text = "".join(output)
        assert "is unreachable" in text and "is back" in text
        assert_every_point_logged(uri, experiment)
    finally:
        for process in (driver, server):
            if process.poll() is None:
                kill_group(process)


def assert_every_point_logged(uri: str, experiment: Path) -> None:
    """One ended run per trial, holding every value of every curve that Tune's result.json files hold."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id], max_results=1000)
    assert all(run.info.status != "RUNNING" for run in runs)
    children = {run.data.tags[TAG_TRIAL_ID]: run for run in runs if run.data.tags.get(TAG_PARENT)}
    trials = trial_rows(experiment)
    assert sorted(children) == sorted(trials)  # one run per trial, none duplicated
    lost = 0
    for trial_id, rows in trials.items():
        for curve in CURVES:
            logged = {(m.step, m.value) for m in client.get_metric_history(children[trial_id].info.run_id, curve)}
            lost += len({(row["step"], row[curve]) for row in rows} - logged)
    assert lost == 0
