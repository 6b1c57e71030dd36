"""Losing a worker node mid-search: its trial goes on from its last checkpoint on another node, and
nothing is lost or counted twice, neither in Tune's experiment nor in the MLflow runs.

A real cluster (``ray_cluster``: a head with no CPUs, two one-CPU worker nodes, each a ``ray start``
process) runs ``gantune search --address`` as a separate driver process. Once a trial on a worker
node has reported twice (so the driver holds its first checkpoint) and still has steps to go,
every process of that node is SIGKILLed. Tune's ``FailureConfig(max_failures=2)`` must then
restore the trial from its checkpoint on the surviving worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from checks import TEST_PRESETS, read_trials, wait_for

from pipelines.tracking.tags import TAG_ROLE, TAG_SEARCH, TAG_STATUS, TAG_TRIAL_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET = TEST_PRESETS / "node_loss_grid25.yaml"
NAME = "node-loss"
VICTIM_S = 300  # a worker trial with a checkpoint appears well before this
SEARCH_S = 480  # the whole search, node loss and restore included


def final_statuses(experiment: Path) -> dict[str, dict]:
    """Each trial's status and failure count in the driver's last experiment snapshot."""
    snapshot = max(experiment.glob("experiment_state-*.json"), key=lambda path: path.stat().st_mtime)
    trials = {}
    for trial_json, metadata_json in json.loads(snapshot.read_text())["trial_data"]:
        trial, metadata = json.loads(trial_json), json.loads(metadata_json)
        trials[trial["trial_id"]] = {"status": trial["status"], "num_failures": metadata["num_failures"],
                                     "error_file": metadata["error_filename"]}
    return trials


@dataclass(frozen=True)
class Victim:
    trial_id: str
    pid: int  # the worker process that ran the trial
    node: object  # the RayNode it ran on
    step: int  # its last report the driver had logged when it was chosen


def find_victim(cluster, experiment: Path, max_steps: int, every: int) -> Victim | None:
    """A running trial on a worker node whose checkpoint the driver has taken in, with two reports to go.

    Tune logs a report (its result.json row) first and takes in the report's checkpoint a moment
    later, in a separate call to the trial; it asks the trial for the next report only after that.
    So a trial's second row proves its first checkpoint is the driver's to restore from, whatever
    instant the node dies; the last row's own checkpoint may or may not be in yet."""
    for trial_id, trial in read_trials(experiment).items():
        rows = trial["rows"]
        if len(rows) < 2 or rows[-1]["status"] != "running" or rows[-1]["step"] > max_steps - 2 * every:
            continue
        last = rows[-1]
        node = cluster.node_of(last["pid"])
        if node in cluster.workers:
            return Victim(trial_id, last["pid"], node, last["step"])
    return None


def test_a_killed_worker_nodes_trial_resumes_from_its_checkpoint_and_nothing_is_lost(
        ray_cluster, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    preset = yaml.safe_load(PRESET.read_text())
    num_samples, max_steps = preset["budget"]["num_samples"], preset["budget"]["max_steps"]
    every = preset["params"]["eval_every"]
    expected_steps = list(range(every, max_steps + 1, every))
    experiment = tmp_path / NAME / "tune"
    log = tmp_path / "driver.log"
    started = time.monotonic()
    with log.open("w") as sink:
        driver = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "search", "--config", str(PRESET), "--address", ray_cluster.address,
             "--storage", str(tmp_path), "--shared-storage", "--name", NAME, "--tracking-uri", mlflow_server,
             "--experiment", "faults-node-loss"],
            cwd=REPO_ROOT, env=ray_cluster.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        victim = wait_for(lambda: find_victim(ray_cluster, experiment, max_steps, every),
                          "a running trial on a worker node with a checkpoint the driver has taken in",
                          driver, VICTIM_S, log)
        killed = victim.node.kill()
        killed_at = time.monotonic()
        assert victim.pid in killed
        survivor = next(node for node in ray_cluster.workers if node is not victim.node)
        assert survivor.members(), "the other worker node must still run"
        code = driver.wait(timeout=SEARCH_S)
        ended = time.monotonic()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    seconds = ended - started
    assert code == 0, log.read_text()[-4000:]

    trials = read_trials(experiment)
    statuses = final_statuses(experiment)
    steps = {trial_id: [row["step"] for row in trial["rows"]] for trial_id, trial in trials.items()}
    rows = trials[victim.trial_id]["rows"]
    before = [row for row in rows if row["pid"] == victim.pid]
    after = [row for row in rows if row["pid"] != victim.pid]
    client = MlflowClient(mlflow_server)
    experiment_id = client.get_experiment_by_name("faults-node-loss").experiment_id
    runs = client.search_runs([experiment_id], f"tags.`{TAG_SEARCH}` = '{NAME}'", max_results=1000)
    parents = [run for run in runs if run.data.tags.get(TAG_ROLE) == "search"]
    children = [run for run in runs if run.data.tags.get(TAG_ROLE) == "trial"]
    run_trial_ids = [run.data.tags[TAG_TRIAL_ID] for run in children]
    running = [run.info.run_id for run in runs if run.info.status == "RUNNING"]
    histories = {run.data.tags[TAG_TRIAL_ID]: sorted(point.step for point in
                                                     client.get_metric_history(run.info.run_id, "js_modes"))
                 for run in children}
    figures = {
        "node_start_s": {node.name: round(node.start_s, 1) for node in ray_cluster.nodes},
        "search_s": round(seconds, 1),
        "search_s_after_kill": round(ended - killed_at, 1),
        "victim": {"trial": victim.trial_id, "node_processes_killed": len(killed),
                   "last_step_before_kill": before[-1]["step"] if before else None,
                   "first_step_after": after[0]["step"] if after else None},
        "reports_repeated_after_restore": sum(len(trial) - len(set(trial)) for trial in steps.values()),
        "trials_lost": num_samples - sum(trial["rows"][-1]["step"] == max_steps for trial in trials.values()),
        "runs_left_running": len(running),
        "duplicated_runs": len(run_trial_ids) - len(set(run_trial_ids)),
        "metric_points_lost": num_samples * len(expected_steps) - sum(len(set(h)) for h in histories.values()),
        "metric_points_duplicated": sum(len(history) - len(set(history)) for history in histories.values()),
    }
    print(f"\nnode loss figures: {json.dumps(figures)}")

    # Tune: every trial is there and ended; every other trial reported each step exactly once.
    assert len(trials) == num_samples and sorted(statuses) == sorted(trials), figures
    assert {trial_id: trial["status"] for trial_id, trial in statuses.items()} == dict.fromkeys(trials, "TERMINATED")
    assert all(trial["rows"][-1]["status"] == "completed" for trial in trials.values())
    assert {trial_id: rows for trial_id, rows in steps.items() if trial_id != victim.trial_id} == {
        trial_id: expected_steps for trial_id in trials if trial_id != victim.trial_id}

    # The killed node's trial failed once, for the loss of its actor, and went on in another
    # process from a checkpoint: the one of its last report, or of the one before if the driver had
    # not taken that in yet; never from step 0.
    assert statuses[victim.trial_id]["num_failures"] == 1
    assert all(trial["num_failures"] == 0 for trial_id, trial in statuses.items() if trial_id != victim.trial_id)
    error = (trials[victim.trial_id]["folder"] / statuses[victim.trial_id]["error_file"]).read_text()
    assert re.search(r"unavailable|died|dead", error, re.IGNORECASE), error[-2000:]
    assert before and after and rows == before + after, [(row["step"], row["pid"]) for row in rows]
    assert not {row["pid"] for row in after} & set(killed)
    restored_from = after[0]["step"] - every
    assert victim.step - every <= restored_from <= before[-1]["step"] < max_steps, (victim, steps[victim.trial_id])
    assert restored_from >= every  # a restart from scratch would report `every` again
    assert [row["step"] for row in before] == list(range(every, before[-1]["step"] + 1, every))
    assert [row["step"] for row in after] == list(range(restored_from + every, max_steps + 1, every))
    assert after[0]["iterations_since_restore"] == 1  # Tune's own count: the first report since a restore

    # MLflow: one child run per trial, ended as finished, holding the trial's reports as Tune has them.
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(run_trial_ids) == sorted(trials), figures
    assert not running, figures
    ended_as = [(run.info.status, run.data.tags[TAG_STATUS]) for run in children]
    assert ended_as == [("FINISHED", "completed")] * num_samples
    assert histories == steps, figures  # the runs hold exactly what Tune recorded

    best = json.loads((tmp_path / NAME / "best.json").read_text())
    assert best["trial_id"] in trials
