"""Every bundled preset runs: ``gantune search --config`` on each ``search_spaces/presets/*.yaml``, shrunk as a
user shrinks one for a first try (fewer trials, steps and samples, smaller nets), starts, reaches its
first report and ends cleanly. A GPU request falls back to the CPU with one line, as it does for users.

The presets' own dataset, metric, searcher, scheduler kind, floor and searched keys stay as shipped."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml
from checks import BUNDLED_PRESETS, bundled_preset, trial_rows

from pipelines.cli import main
from trainables.data.datasets import DATASETS

EVAL_EVERY = 25
BUNDLED = {path.stem for path in BUNDLED_PRESETS.glob("*.yaml")}
# Run shrunk by tests/test_image_search.py (its conditional DCGAN search), on through every command
# that follows a search.
ON_THE_IMAGE_PATH = {"mnist"}
NAMES = sorted(BUNDLED - ON_THE_IMAGE_PATH)
# Test-sized nets: the architecture's width shrunk, the rest of the preset untouched.
WIDTHS = {"mlp": 32, "dcgan": 8}


def shrunk(name: str) -> dict:
    """The preset with two trials of two reports each, small nets, few samples per evaluation and
    one CPU a trial."""
    shipped = bundled_preset(name, {}, {})
    scheduler = dict(shipped["scheduler"]) if isinstance(shipped["scheduler"], dict) else {"name": shipped["scheduler"]}
    if scheduler["name"] == "asha":
        scheduler["grace_period"] = EVAL_EVERY
    if scheduler["name"] == "pbt":
        scheduler["perturbation_interval"] = EVAL_EVERY
    arch = shipped["params"].get("arch", "dcgan" if DATASETS[shipped["dataset"]].is_image else "mlp")
    params = {"eval_every": EVAL_EVERY, "eval_samples": 100, "batch_size": 16}
    if isinstance(arch, str):
        params["width"] = WIDTHS[arch]
    # One CPU a trial, so the two trials train side by side on a two-core machine; a GPU request stays.
    resources = {**shipped.get("resources", {}), "cpus_per_trial": 1}
    return bundled_preset(name, {"num_samples": 2, "max_steps": 2 * EVAL_EVERY, "max_concurrent": 2}, params,
                          scheduler=scheduler, resources=resources)


@pytest.mark.parametrize("name", NAMES)
def test_a_bundled_preset_starts_reports_and_ends_cleanly(name, data_root_exported, tmp_path):
    preset = shrunk(name)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(preset))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["search", "--config", str(config), "--storage", str(tmp_path), "--name", name])
    out = printed.getvalue()
    assert code == 0, out[-3000:]
    if preset["resources"].get("gpus_per_trial"):
        assert "gpus_per_trial" in out  # no GPU here: the preset's request became 0, saying so
    trials = trial_rows(tmp_path / name / "tune")
    assert len(trials) == 2
    for trial_id, rows in trials.items():
        assert rows[0]["step"] == EVAL_EVERY, trial_id  # the first report, where it is due
    best = json.loads((tmp_path / name / "best.json").read_text())
    assert best["metric"] == preset["metric"] and Path(best["checkpoint"]).is_file()
    assert any(line.startswith(f"best {preset['metric']} ") and "best.json" in line for line in out.splitlines())


def test_every_bundled_preset_is_run_by_a_test():
    assert ON_THE_IMAGE_PATH <= BUNDLED and set(NAMES) | ON_THE_IMAGE_PATH == BUNDLED
