"""A search stopped every way a driver stops, each time continued by the ``--resume`` command it
printed, until it ends: one lineage of real ``gantune search`` processes (embedded Ray) logging to
a real MLflow server, run once for the module.

1. The MLflow server is SIGKILLed while trials report and restarted a few reports later; then the
   driver gets SIGTERM, as ``timeout`` sends it, once a trial has finished and another has
   reported three times.
2. That running trial's newest checkpoint is cut in half (a full disk, a node lost mid-write). The
   resumed driver is SIGKILLed with everything it started once one more trial has ended: it ends
   nothing, and the next resume finds Tune's trials, the study and the runs where they were.
3. The next resume gets SIGINT at its first report.
4. The last resume runs the search to its end.

Each stage's checks are a test of their own; the last test checks the search as a whole.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import optuna
import pytest
import yaml
from checks import TEST_PRESETS, free_port, runs_by_trial, start_mlflow_server, stop_process_group, trial_rows
from faults_support import Driver

from mlflow import MlflowClient
from pipelines.tracking.tags import TAG_PARENT, TAG_RESUME, TAG_ROLE, TAG_STATUS
from trainables.core.checkpoint import CHECKPOINT_FILE, RESTORE_NOTE, load_checkpoint

PRESET = TEST_PRESETS / "interrupted_grid25.yaml"
NAME = "interrupted"
CURVES = ("js_modes", "d_loss", "g_loss", "coverage")


def reports(experiment: Path) -> int:
    return sum(map(len, trial_rows(experiment).values()))


def one_finished_one_three_reports_in(experiment: Path) -> bool:
    """A finished trial, and a running one with an older checkpoint behind its newest."""
    trials = trial_rows(experiment).values()
    return (any(rows[-1]["status"] == "completed" for rows in trials)
            and any(len(rows) >= 3 and rows[-1]["status"] == "running" for rows in trials))


def snapshot_trials(experiment: Path) -> dict[str, str]:
    """Each trial's status in the newest experiment snapshot (each driver writes its own file, named
    by its start time): the trials a resume knows. Empty while there is none, or while the driver
    is rewriting it."""
    snapshots = sorted(experiment.glob("experiment_state-*.json"))
    try:
        trial_data = json.loads(snapshots[-1].read_text())["trial_data"] if snapshots else []
    except json.JSONDecodeError:
        return {}
    return {trial["trial_id"]: trial["status"] for trial in (json.loads(trial_json) for trial_json, _ in trial_data)}


def finished(experiment: Path) -> dict[str, list[dict]]:
    """The reports of each trial that reported its last step and that the newest snapshot records as
    ended: what a resume will not run again."""
    ended = {tid for tid, status in snapshot_trials(experiment).items() if status == "TERMINATED"}
    return {tid: rows for tid, rows in trial_rows(experiment).items()
            if tid in ended and rows[-1]["status"] == "completed"}


def truncate_newest_checkpoint(experiment: Path, trial_id: str, rows: list[dict]) -> tuple[str, int]:
    """Cut the trial's newest checkpoint in half; the name and step of the one before it."""
    trial_folder = next(p.parent for p in experiment.glob("*/result.json") if f"_{trial_id}_" in p.parent.name)
    # The checkpoint of the last report Tune recorded is the one it restores (a newer folder may
    # hold a report that never reached the driver).
    newest = trial_folder / rows[-1]["checkpoint_dir_name"]
    previous = max(folder for folder in trial_folder.glob("checkpoint_*") if folder.name < newest.name)
    previous_step = load_checkpoint(previous / CHECKPOINT_FILE)["step"]  # Tune may delete it once resumed
    weights = newest / CHECKPOINT_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return previous.name, previous_step


def search_runs(uri: str) -> tuple[list, dict]:
    """The search's parent runs, and its child runs by trial id (a trial id twice fails the test)."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id], max_results=1000)
    children = [run for run in runs if run.data.tags.get(TAG_PARENT)]
    return [run for run in runs if run.data.tags.get(TAG_ROLE) == "search"], runs_by_trial(children)


def points_not_logged(uri: str, trials: dict[str, list[dict]]) -> int:
    """Values of the curves in Tune's result files that the trial's MLflow run does not hold."""
    client = MlflowClient(uri)
    _, children = search_runs(uri)
    lost = 0
    for trial_id, rows in trials.items():
        for curve in CURVES:
            logged = {(m.step, m.value) for m in client.get_metric_history(children[trial_id].info.run_id, curve)}
            lost += len({(row["step"], row[curve]) for row in rows} - logged)
    return lost


def points_logged_twice(uri: str, trials: dict[str, list[dict]]) -> int:
    """Points of the curves at a step their MLflow run already holds: a replayed report logged again."""
    client = MlflowClient(uri)
    _, children = search_runs(uri)
    twice = 0
    for trial_id in trials:
        for curve in CURVES:
            history = client.get_metric_history(children[trial_id].info.run_id, curve)
            twice += len(history) - len({point.step for point in history})
    return twice


def resume_driver(resume: str) -> Driver:
    command = shlex.split(resume)
    assert command[:3] == ["gantune", "search", "--resume"], resume
    return Driver(command[1:])


@pytest.fixture(scope="module")
def lineage(tmp_path_factory) -> dict:
    storage = tmp_path_factory.mktemp("interrupted")
    experiment = storage / NAME / "tune"
    data, port = storage / "mlflow", free_port()
    data.mkdir()
    uri = f"http://127.0.0.1:{port}"
    seen: dict = {"uri": uri, "experiment": experiment}
    server = start_mlflow_server(data, port)
    try:
        # 1. An outage of the tracking server, then SIGTERM.
        first = Driver(["search", "--config", str(PRESET), "--storage", str(storage), "--name", NAME,
                        "--tracking-uri", uri])
        first.until(lambda: reports(experiment) >= 2, "two reports")
        os.killpg(server.pid, signal.SIGKILL)  # the server dies without a word to its clients
        server.wait()
        down_at = reports(experiment)
        first.until(lambda: reports(experiment) >= down_at + 4, "four reports while the server is away")
        server = start_mlflow_server(data, port)
        first.until(lambda: one_finished_one_three_reports_in(experiment), "a finished trial and a running one")
        seen["term"] = {"code": first.finish(signal.SIGTERM), "lines": first.lines, "runs": search_runs(uri),
                        "trials": trial_rows(experiment)}
        seen["term"]["points_not_logged"] = points_not_logged(uri, seen["term"]["trials"])
        seen["term"]["finished"] = finished(experiment)

        # 2. A truncated checkpoint, and a resumed driver SIGKILLed once one more trial has ended.
        running = {tid: rows for tid, rows in seen["term"]["trials"].items() if rows[-1]["status"] == "running"}
        cut_id, cut_rows = next((tid, rows) for tid, rows in running.items() if len(rows) >= 3)
        previous, previous_step = truncate_newest_checkpoint(experiment, cut_id, cut_rows)
        seen["cut"] = {"trial_id": cut_id, "rows": cut_rows, "previous": previous, "previous_step": previous_step}
        killed = resume_driver(seen["term"]["lines"][-1])
        # The kill waits for the cut trial's note too: a driver SIGKILLed between writing a report and
        # printing it prints nothing, and the trial then goes on from a checkpoint that reads.
        note = f"unreadable: continued from {previous}"
        killed.until(lambda: len(finished(experiment)) > len(seen["term"]["finished"]) and note in killed.output,
                     "one more trial ended, and the cut trial's note printed")
        seen["kill"] = {"ended": finished(experiment),
                        "run_ids": {tid: run.info.run_id for tid, run in search_runs(uri)[1].items()}}
        killed.finish(signal.SIGKILL)
        seen["kill"]["lines"] = killed.lines

        # 3. SIGINT at the next resume's first report.
        reports_before = reports(experiment)
        interrupted = resume_driver(seen["term"]["lines"][-1])
        interrupted.until(lambda: reports(experiment) > reports_before, "a report")
        seen["int"] = {"code": interrupted.finish(signal.SIGINT), "lines": interrupted.lines,
                       "runs": search_runs(uri)}

        # 4. The last resume runs to the end.
        last = resume_driver(seen["int"]["lines"][-1])
        seen["end"] = {"code": last.finish(), "lines": last.lines, "runs": search_runs(uri)}
        yield seen
    finally:
        stop_process_group(server)


def test_the_tracking_server_away_loses_no_point_and_sigterm_ends_every_run(lineage):
    term = lineage["term"]
    assert term["code"] == 143, "\n".join(term["lines"])[-3000:]
    output = "\n".join(term["lines"])
    assert "is unreachable" in output and "is back" in output
    resume = term["lines"][-1]
    assert resume.startswith(f"gantune search --resume --name {NAME}"), output[-3000:]
    assert "Traceback" not in output and "core dumped" not in output.lower()
    (parent,), children = term["runs"]
    assert parent.info.status == "KILLED" and parent.data.tags[TAG_RESUME] == resume
    assert set(term["trials"]) <= set(children) and all(run.info.status != "RUNNING" for run in children.values())
    interrupted = [run for run in children.values() if run.info.status == "KILLED"]
    assert interrupted and all(run.data.tags[TAG_RESUME] == resume for run in interrupted)
    assert all(run.data.tags[TAG_STATUS] == "interrupted" for run in interrupted)
    # Reports made while the server was away reached it once it was back.
    assert term["points_not_logged"] == 0


def test_sigint_ends_every_run_with_the_resume_command_last(lineage):
    sigint = lineage["int"]
    assert sigint["code"] == 130, "\n".join(sigint["lines"])[-3000:]
    assert sigint["lines"][-1].startswith(f"gantune search --resume --name {NAME}")
    (parent,), children = sigint["runs"]
    assert parent.info.status == "KILLED"
    assert children and all(run.info.status in ("FINISHED", "KILLED") for run in children.values())


def test_the_resumes_finish_the_search_with_nothing_rerun_lost_or_duplicated(lineage):
    end, term, kill, cut = lineage["end"], lineage["term"], lineage["kill"], lineage["cut"]
    assert end["code"] == 0, "\n".join(end["lines"])[-3000:]
    experiment = lineage["experiment"]
    preset = yaml.safe_load(PRESET.read_text())
    num_samples, max_steps, eval_every = (preset["budget"]["num_samples"], preset["budget"]["max_steps"],
                                          preset["params"]["eval_every"])
    known = snapshot_trials(experiment)
    assert len(known) == num_samples and set(known.values()) == {"TERMINATED"}
    trials = trial_rows(experiment)
    # A trial started after the SIGKILLed driver's last snapshot is unknown to the resume, which
    # starts another in its place: it may leave a folder, never a report.
    assert set(trials) <= set(known)
    assert all(rows[-1]["status"] == "completed" and rows[-1]["step"] == max_steps for rows in trials.values())

    # A trial that had ended, before SIGTERM or before SIGKILL, did not run again: not one more report.
    assert term["finished"] and len(kill["ended"]) > len(term["finished"])
    for tid, rows in {**term["finished"], **kill["ended"]}.items():
        assert trials[tid] == rows, tid
    # A trial running at SIGTERM went on from its checkpoint, not from step 0 ...
    for tid, rows in term["trials"].items():
        if rows[-1]["status"] == "running" and tid != cut["trial_id"]:
            assert trials[tid][len(rows)]["step"] == rows[-1]["step"] + eval_every, tid
    # ... and the one whose newest checkpoint was cut went on from the checkpoint before it: its
    # steps since are trained again, and both the driver's log and its first new report say so.
    assert f"unreadable: continued from {cut['previous']}" in "\n".join(kill["lines"])
    first_new = trials[cut["trial_id"]][len(cut["rows"])]
    assert cut["previous"] in first_new[RESTORE_NOTE]
    assert first_new["step"] == cut["previous_step"] + eval_every <= cut["rows"][-1]["step"]

    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{experiment.parent / 'optuna.db'}")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == num_samples
    assert json.loads((experiment.parent / "best.json").read_text())["trial_id"] in trials

    parents, children = end["runs"]
    assert [(parent.info.status, TAG_RESUME in parent.data.tags) for parent in parents] == [("FINISHED", False)]
    # Each resume reopened a trial's run rather than starting another; a trial the resume did not
    # know (started after the last snapshot) has its run ended as interrupted.
    assert {tid: children[tid].info.run_id for tid in kill["run_ids"]} == kill["run_ids"]
    for tid, run in children.items():
        expected = ("FINISHED", "completed") if tid in known else ("KILLED", "interrupted")
        assert (run.info.status, run.data.tags[TAG_STATUS]) == expected, tid
        assert TAG_RESUME not in run.data.tags
    figures = {"trials": num_samples, "trials_lost": num_samples - len(trials),
               "runs_left_running": sum(run.info.status == "RUNNING" for run in [*parents, *children.values()]),
               "duplicated_runs": 0,  # search_runs fails on a trial id twice
               "metric_points_lost": points_not_logged(lineage["uri"], trials),
               "metric_points_logged_twice": points_logged_twice(lineage["uri"], trials)}
    print(f"\ninterruption figures: {json.dumps(figures)}")
    assert figures["runs_left_running"] == figures["metric_points_lost"] == figures["metric_points_logged_twice"] == 0
