"""The MLflow server killed and restarted mid-search: no metric point lost, no run left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from checks import TEST_PRESETS, free_port, start_mlflow_server, stop_process_group
from faults_support import trial_rows

from mlflow import MlflowClient
from pipelines.tracking.tags import TAG_PARENT, TAG_TRIAL_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
CURVES = ("js_modes", "d_loss", "g_loss", "coverage")


def test_a_restarted_server_gets_every_point_and_every_run_ends(tmp_path):
    data, port = tmp_path / "mlflow", free_port()
    data.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(data, port)
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
        os.killpg(server.pid, signal.SIGKILL)  # the server dies without a word to its clients
        server.wait()
        reported_while_down = sum(map(len, trial_rows(experiment).values()))
        for line in lines:  # until the trials have reported more while the server is down
            output.append(line)
            if sum(map(len, trial_rows(experiment).values())) >= reported_while_down + 4:
                break
        server = start_mlflow_server(data, port)
        output += list(lines)
        assert driver.wait(timeout=600) == 0, "".join(output)[-3000:]
        text = "".join(output)
        assert "is unreachable" in text and "is back" in text
        assert_every_point_logged(uri, experiment)
    finally:
        for process in (driver, server):
            if process.poll() is None:
                stop_process_group(process)


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
