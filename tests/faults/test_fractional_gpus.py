"""``--gpus-per-trial 0.5 --cohort K``: Ray places two cohorts on one GPU.

What is tested is Ray's placement of a logical GPU, not training on one: a one-node cluster
(``one_gpu_node``: two CPUs, and one GPU that the node declares to Ray but does not have) runs a
cohort search whose hosts each ask half the GPU. Both hosts must then train at once (on the CPU);
a host asking the whole GPU would make the second wait for the first to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from checks import TEST_PRESETS, trial_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
SEARCH_S = 600


def host_span(rows: list[dict]) -> tuple[float, float]:
    """When a host started training and when it made its last report, in seconds since the epoch."""
    return rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]


def test_ray_places_two_half_gpu_cohort_hosts_at_once_on_one_logical_gpu(one_gpu_node, tmp_path):
    """Ray's placement only: the node declares a GPU it does not have, so the hosts train on the CPU."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "search", "--config", str(TEST_PRESETS / "cohort_grid25.yaml"),
         "--address", one_gpu_node.address, "--storage", str(tmp_path), "--shared-storage", "--name", "shared-gpu",
         "--cohort", "2", "--num-samples", "4", "--gpus-per-trial", "0.5", "--cpus-per-trial", "1"],
        cwd=REPO_ROOT, env=one_gpu_node.env, capture_output=True, text=True, timeout=SEARCH_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "shared-gpu"
    assert yaml.safe_load((folder / "search.yaml").read_text())["resources"]["gpus_per_trial"] == 0.5
    hosts = trial_rows(folder / "tune")
    assert len(hosts) == 2, hosts
    (first_start, first_end), (second_start, second_end) = map(host_span, hosts.values())
    assert max(first_start, second_start) < min(first_end, second_end), "the two cohorts did not train at once"
