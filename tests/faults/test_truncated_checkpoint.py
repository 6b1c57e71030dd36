"""A trial whose newest checkpoint was truncated (a full disk, a node lost mid-write) continues from
the checkpoint before it on ``--resume``, and the search's output says so."""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

import yaml

from faults_support import CLI, PRESET, REPO_ROOT, interrupt, trial_rows
from trainables.checkpoint import CHECKPOINT_FILE, RESTORE_NOTE, load_checkpoint


def a_trial_with_three_reports(experiment: Path) -> bool:
    return any(len(rows) >= 3 and rows[-1]["status"] == "running" for rows in trial_rows(experiment).values())


def test_resume_continues_from_the_checkpoint_before_a_truncated_one(tmp_path):
    code, lines = interrupt(signal.SIGTERM, tmp_path, "cut", "--num-samples", "2", ready=a_trial_with_three_reports)
    assert code == 143, "\n".join(lines)[-3000:]
    experiment = tmp_path / "cut" / "tune"
    trial_id, rows = next((tid, rows) for tid, rows in trial_rows(experiment).items()
                          if len(rows) >= 3 and rows[-1]["status"] == "running")
    trial_folder = next(p.parent for p in experiment.glob("*/result.json") if f"_{trial_id}_" in p.parent.name)
    # The checkpoint of the last report Tune recorded is the one it restores (a newer folder may
    # hold a report that never reached the driver).
    newest = trial_folder / rows[-1]["checkpoint_dir_name"]
    previous = max(folder for folder in trial_folder.glob("checkpoint_*") if folder.name < newest.name)
    previous_step = load_checkpoint(previous / CHECKPOINT_FILE)["step"]  # Tune may delete it once resumed
    weights = newest / CHECKPOINT_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    resumed = subprocess.run([*CLI, *shlex.split(lines[-1])[1:]], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"unreadable: continued from {previous.name}" in resumed.stdout, resumed.stdout[-3000:]
    after = trial_rows(experiment)[trial_id]
    first_new = after[len(rows)]
    assert previous.name in first_new[RESTORE_NOTE]
    # Training went on from the older checkpoint's step, so the truncated one's step is trained again.
    eval_every = yaml.safe_load(PRESET.read_text())["params"]["eval_every"]
    assert first_new["step"] == previous_step + eval_every <= rows[-1]["step"]
    assert after[-1]["status"] == "completed"
