"""What several test modules share: the one-line error contract, objective margins, test presets, the one
poller, free ports, the MLflow server, reading Tune's result files, and a search's runs by trial."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_PRESETS = Path(__file__).resolve().parent / "presets"


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line; returns it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def worse_by(value: float, reference: float, mode: str) -> float:
    """How much worse ``value`` is than ``reference`` in direction ``mode``, positive when worse."""
    return value - reference if mode == "min" else reference - value


def wait_for(predicate, what: str, process: subprocess.Popen | None = None, timeout_s: float = 300.0,
             log: Path | None = None):
    """The suite's one poller: call ``predicate`` until it returns something true, which is returned.

    Fails if ``process`` (the search or server being watched) ends first or the time runs out, with
    the tail of its ``log`` when there is one."""
    tail = lambda: f":\n{log.read_text()[-3000:]}" if log else ""  # noqa: E731
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{Path(str(process.args[0])).name} ended (exit {process.returncode}) before "
                                 f"{what}{tail()}")
        time.sleep(0.25)  # polling files and a server another process writes
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{tail()}")


def http_body(url: str, data: bytes | None = None, content_type: str = "application/json") -> bytes | None:
    """The body of a 200 answer to GET (or POST ``data``) at ``url``; None while nothing answers."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.read() if answer.status == 200 else None
    except OSError:  # refused while it starts; URLError and HTTPError are OSErrors
        return None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_server(data: Path, port: int) -> subprocess.Popen:
    """``mlflow/serve.sh`` (sqlite + proxied artifacts under ``data``) on ``port``, in a session of its own,
    answering /health when this returns; stop it with ``stop_process_group``."""
    log = data / "server.log"
    with log.open("a") as sink:
        server = subprocess.Popen(
            [str(REPO_ROOT / "mlflow" / "serve.sh"), "--data", str(data), "--port", str(port), "--workers", "1"],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow"))},
        )
    try:  # MLflow imports slowly on a busy host
        wait_for(lambda: http_body(f"http://127.0.0.1:{port}/health") is not None, "the MLflow server's /health",
                 server, timeout_s=120, log=log)
    except BaseException:
        stop_process_group(server)
        raise
    return server


def stop_process_group(process: subprocess.Popen) -> None:
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


def result_rows(result: Path) -> list[dict]:
    """The reports in a trial's ``result.json``; a line still being written is left out."""
    rows = []
    for line in result.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def read_trials(experiment: Path) -> dict[str, dict]:
    """The suite's one reader of what Tune wrote: each trial's folder, config and reports, by trial id.

    A trial that has not reported yet is listed by its folder's name, with no reports; one whose
    ``params.json`` Tune is still writing is not listed yet."""
    trials = {}
    for params in experiment.glob("*/params.json"):
        try:
            config = json.loads(params.read_text())
        except json.JSONDecodeError:
            continue
        folder = params.parent
        rows = result_rows(folder / "result.json") if (folder / "result.json").is_file() else []
        trial_id = rows[0]["trial_id"] if rows else folder.name
        trials[trial_id] = {"folder": folder, "config": config, "rows": rows}
    return trials


def trial_rows(experiment: Path) -> dict[str, list[dict]]:
    """Each trial's reports by trial id, for the trials that have reported."""
    return {trial_id: trial["rows"] for trial_id, trial in read_trials(experiment).items() if trial["rows"]}


def runs_by_trial(runs: list) -> dict[str, object]:
    """A search's child MLflow runs by trial id (a Tune trial's, or a cohort's slot-trial's); a trial id
    twice fails the test: a resume must reopen a trial's run, never start another."""
    from pipelines.tracking.tags import TAG_TRIAL_ID

    by_trial = {run.data.tags[TAG_TRIAL_ID]: run for run in runs}
    assert len(by_trial) == len(runs), "a trial has two child runs"
    return by_trial


BUNDLED_PRESETS = REPO_ROOT / "search_spaces" / "presets"


def bundled_preset(name: str, budget: dict, params: dict, **sections) -> dict:
    """A bundled preset as a user would copy and shrink it: its own YAML with ``budget`` and ``params``
    keys replaced and any other section (``scheduler``, ``resources`` ...) replaced whole.

    The preset's metric, searcher and floor stay its own, so a retuned preset is what the test runs."""
    import yaml

    preset = yaml.safe_load((BUNDLED_PRESETS / f"{name}.yaml").read_text())
    preset["budget"] = {**preset.get("budget", {}), **budget}
    preset["params"] = {**preset.get("params", {}), **params}
    preset.update(sections)
    return preset
