"""``--gpus-per-trial 0.5 --cohort K``: two cohorts share one GPU.

A one-node cluster (``one_gpu_node``: two CPUs, one GPU as Ray sees it) runs a cohort search whose
hosts each ask half the GPU. Both hosts must then train at once; a host asking the whole GPU
would make the second wait for the first to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from checks import TEST_PRESETS

REPO_ROOT = Path(__file__).resolve().parents[2]
SEARCH_S = 600


def host_span(trial_folder: Path) -> tuple[float, float]:
    """When a host started training and when it made its last report, in seconds since the epoch."""
    reports = [json.loads(line) for line in (trial_folder / "result.json").read_text().splitlines()]
    return reports[0]["timestamp"] - reports[0]["time_this_iter_s"], reports[-1]["timestamp"]


def test_two_cohorts_at_half_a_gpu_each_train_at_once_on_one_gpu(one_gpu_node, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "search", "--config", str(TEST_PRESETS / "cohort_grid25.yaml"),
         "--address", one_gpu_node.address, "--storage", str(tmp_path), "--shared-storage", "--name", "shared-gpu",
         "--cohort", "2", "--num-samples", "4", "--gpus-per-trial", "0.5", "--cpus-per-trial", "1"],
        cwd=REPO_ROOT, env=one_gpu_node.env, capture_output=True, text=True, timeout=SEARCH_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "shared-gpu"
    assert yaml.safe_load((folder / "search.yaml").read_text())["resources"]["gpus_per_trial"] == 0.5
    hosts = sorted(path for path in (folder / "tune").iterdir() if (path / "result.json").is_file())
    assert len(hosts) == 2, hosts
    (first_start, first_end), (second_start, second_end) = map(host_span, hosts)
    assert max(first_start, second_start) < min(first_end, second_end), "the two cohorts did not train at once"
