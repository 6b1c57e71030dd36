"""Resource requests are checked against the cluster before a trial starts: no search waits forever."""

from __future__ import annotations

import pytest
from checks import TEST_PRESETS, one_error_line

from pipelines.cli import main
from pipelines.search.resources import NodeCapacity, fit_to_nodes
from search_spaces.preset import load_preset, with_overrides
from trainables.errors import UsageError

CPU_ONLY = [NodeCapacity(cpus=2, gpus=0)]
GPU_CLUSTER = [NodeCapacity(cpus=8, gpus=0), NodeCapacity(cpus=4, gpus=1)]


def preset_asking(cpus: float, gpus: float):
    return with_overrides(load_preset(str(TEST_PRESETS / "fifo_grid25.yaml")), cpus_per_trial=cpus, gpus_per_trial=gpus)


def test_a_presets_gpu_request_falls_back_to_the_cpu_on_this_machine_with_one_line(capsys):
    fitted = fit_to_nodes(preset_asking(0.5, 0.25), CPU_ONLY, embedded=True, gpus_typed=False)
    assert fitted.resources.gpus_per_trial == 0 and fitted.resources.cpus_per_trial == 0.5
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.parametrize("cpus, gpus, nodes, embedded, typed, named", [
    (1, 1, CPU_ONLY, True, True, "--gpus-per-trial"),  # typed by the user: never silently dropped
    (4, 0, CPU_ONLY, True, False, "this machine has 2 CPUs"),
    (0.5, 0.25, CPU_ONLY, False, False, "largest node"),  # a cluster may be missing its GPU nodes
    (6, 1, GPU_CLUSTER, False, False, "4 CPUs and 1 GPUs"),  # each fits some node, not both at once
])
def test_a_request_no_node_can_meet_is_a_usage_error(cpus, gpus, nodes, embedded, typed, named):
    with pytest.raises(UsageError, match=named):
        fit_to_nodes(preset_asking(cpus, gpus), nodes, embedded=embedded, gpus_typed=typed)


def test_requests_some_node_meets_are_kept():
    for cpus, gpus in ((4, 1), (8, 0), (0.5, 0.25)):
        assert fit_to_nodes(preset_asking(cpus, gpus), GPU_CLUSTER, embedded=False, gpus_typed=True) \
            .resources.gpus_per_trial == gpus


@pytest.mark.parametrize("flag, value", [("--gpus-per-trial", "1000"), ("--cpus-per-trial", "64")])
def test_search_refuses_an_impossible_request_before_a_trial_starts(flag, value, tmp_path, capsys):
    code = main(["search", "--config", str(TEST_PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path),
                 "--name", "impossible", flag, value])
    assert code == 2
    assert flag in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written
