"""The image user's path, end to end: the bundled ``mnist`` preset, shrunk as a user would for a first try,
searched through ``gantune search``, then ``report``, ``promote`` (against the preset's own floor),
``export``, ``generate`` and ``train --resume`` on what the search found.

Two searches: an unconditional ``mlp`` one of two trials, and a conditional DCGAN one (the preset's own
architecture), whose generator is then sampled per class.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from checks import bundled_preset, trial_rows
from images import read_image_grid

from pipelines.cli import main
from pipelines.report import sections
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE, load_checkpoint
from trainables.core.pictures import picture_size
from trainables.data.datasets import DATASETS
from trainables.export_reader import CONFIG_FILE, load_exported

REPORT_FILES = {"report.html", sections.PROGRESS_FILE, sections.STATUS_FILE, sections.IMPORTANCES_FILE,
                sections.SLICES_FILE, sections.SAMPLES_FILE}
STEPS, EVAL_EVERY = 100, 50
TEST_SIZED = {"eval_every": EVAL_EVERY, "eval_samples": 300, "batch_size": 64}
MNIST_FLOOR = bundled_preset("mnist", {}, {})["floor"]


def run_search(folder: Path, name: str, preset: dict, tracking_uri: str) -> dict:
    """``gantune search`` on ``preset`` written as a user's YAML file; what it printed and left behind."""
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump(preset))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["search", "--config", str(config), "--storage", str(folder), "--name", name,
                     "--tracking-uri", tracking_uri, "--experiment", name])
    assert code == 0, printed.getvalue()[-3000:]
    best = json.loads((folder / name / "best.json").read_text())
    return {"name": name, "uri": tracking_uri, "folder": folder / name, "printed": printed.getvalue(), "best": best}


@pytest.fixture(scope="module")
def mlp_search(data_root_exported, mlflow_server, tmp_path_factory) -> dict:
    """Two unconditional MLP trials to the end (FIFO), each reporting twice."""
    preset = bundled_preset("mnist", {"num_samples": 2, "max_steps": STEPS, "max_concurrent": 2},
                            {"arch": "mlp", "conditional": False, "width": 64, "latent_dim": 32, **TEST_SIZED},
                            scheduler="fifo", searcher={"name": "random", "seed": 0},
                            resources={"cpus_per_trial": 1, "gpus_per_trial": 0.25})
    return run_search(tmp_path_factory.mktemp("mlp-search"), "mnist-mlp", preset, mlflow_server)


@pytest.fixture(scope="module")
def dcgan_search(data_root_exported, mlflow_server, tmp_path_factory) -> dict:
    """One conditional DCGAN trial under the preset's own searcher and ASHA, its first cut at the first report."""
    scheduler = {**bundled_preset("mnist", {}, {})["scheduler"], "grace_period": EVAL_EVERY}
    preset = bundled_preset("mnist", {"num_samples": 1, "max_steps": STEPS, "max_concurrent": 1},
                            {"conditional": True, "width": 8, "latent_dim": 16, "loss": "hinge", **TEST_SIZED},
                            scheduler=scheduler, resources={"cpus_per_trial": 1, "gpus_per_trial": 0.25})
    return run_search(tmp_path_factory.mktemp("dcgan-search"), "mnist-cdcgan", preset, mlflow_server)


@pytest.fixture(scope="module", params=["mlp", "dcgan"])
def searched(request) -> dict:
    return request.getfixturevalue(f"{request.param}_search")


def test_the_search_trains_on_the_cpu_and_names_its_best_checkpoint(searched):
    assert "gpus_per_trial" in searched["printed"]  # the preset's 0.25 GPU fell back to the CPU, saying so
    reports = trial_rows(searched["folder"] / "tune")
    assert all(rows[-1]["step"] == STEPS and rows[-1]["status"] == "completed" for rows in reports.values()), reports
    best = searched["best"]
    assert (best["metric"], best["mode"]) == ("fd", "min")
    every_fd = [row["fd"] for rows in reports.values() for row in rows]
    assert best["value"] == min(every_fd) and all(0 < fd < 1e4 for fd in every_fd)
    state = load_checkpoint(best["checkpoint"])
    assert state["metrics"]["fd"] == best["value"] and state["config"]["dataset"] == "mnist"
    assert re.fullmatch(r"[0-9a-f]{64}", state["metrics"]["evaluator_hash"])
    _, rows = picture_size(DATASETS["mnist"], state["config"]["conditional"])
    read_image_grid(Path(best["checkpoint"]).parent / SAMPLES_FILE, rows)


def test_a_conditional_search_reports_how_well_samples_follow_their_labels(dcgan_search):
    rows = next(iter(trial_rows(dcgan_search["folder"] / "tune").values()))
    assert all(0 <= row["label_accuracy"] <= 1 for row in rows)


def test_report_draws_every_figure_of_the_image_search(mlp_search, tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--experiment", mlp_search["name"], "--tracking-uri", mlp_search["uri"],
                 "--out", str(out)]) == 0
    assert {path.name for path in out.iterdir()} == REPORT_FILES
    page = (out / "report.html").read_text()
    assert set(re.findall(r'<img src="([^"]+)"', page)) == REPORT_FILES - {"report.html"}
    assert "fd" in page


def promote(search: dict, model_name: str, *flags: str) -> int:
    return main(["promote", "--experiment", search["name"], "--tracking-uri", search["uri"],
                 "--model-name", model_name, *flags])


@pytest.fixture(scope="module")
def promoted(searched) -> dict:
    """The search's generator promoted as a user does when a short first search misses the preset's floor:
    refused, then registered with ``--force``."""
    from mlflow import MlflowClient

    model_name = f"test-{searched['name']}"
    client = MlflowClient(searched["uri"])
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        refused = promote(searched, model_name)
    registered_when_refused = client.search_model_versions(f"name = '{model_name}'")
    with contextlib.redirect_stdout(io.StringIO()):
        forced = promote(searched, model_name, "--force")
    return {**searched, "model": f"models:/{model_name}@champion", "refused": refused,
            "refusal": err.getvalue().strip().splitlines(), "forced": forced, "client": client,
            "model_name": model_name, "registered_when_refused": registered_when_refused}


def test_promote_holds_the_image_search_to_the_presets_floor(promoted):
    best_fd = promoted["best"]["value"]
    assert best_fd > MNIST_FLOOR["fd"]  # a hundred steps do not draw digits
    assert promoted["refused"] == 2 and len(promoted["refusal"]) == 1, promoted["refusal"]
    assert f"floor {MNIST_FLOOR['fd']:g}" in promoted["refusal"][0] and "--force" in promoted["refusal"][0]
    assert promoted["registered_when_refused"] == []
    assert promoted["forced"] == 0
    version = promoted["client"].get_model_version_by_alias(promoted["model_name"], "champion")
    assert version.tags["dataset"] == "mnist" and version.tags["metric"] == "fd"
    assert float(version.tags["metric_value"]) == pytest.approx(best_fd)
    assert version.tags["evaluator_hash"] == load_checkpoint(promoted["best"]["checkpoint"])["metrics"]["evaluator_hash"]


@pytest.fixture(scope="module")
def exported(promoted, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("export") / promoted["name"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", "--model", promoted["model"], "--tracking-uri", promoted["uri"], "--out", str(out)])
    assert code == 0
    return {**promoted, "export": out}


def test_export_of_the_promoted_image_generator_loads_with_torch_alone(exported):
    import torch

    info = json.loads((exported["export"] / CONFIG_FILE).read_text())
    conditional = exported["best"]["config"]["conditional"]
    assert info["spec"]["sample_shape"] == [1, 28, 28] and info["spec"]["conditional"] == conditional
    generator = load_exported(exported["export"])
    samples = generator.generate(8, seed=1)
    assert samples.shape == (8, 1, 28, 28) and bool(samples.isfinite().all())
    assert torch.equal(samples, generator.generate(8, seed=1))


def test_generate_draws_a_grid_from_the_export(exported, tmp_path):
    flags = ["--labels", "3"] if exported["best"]["config"]["conditional"] else []
    out = tmp_path / "samples.png"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["generate", "--model", str(exported["export"]), "--n", "16", *flags, "--out", str(out)]) == 0
    read_image_grid(out, 4)


def test_train_resume_continues_the_best_checkpoint(searched, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(Path(searched["best"]["checkpoint"]).parent, run)
    started = load_checkpoint(run / CHECKPOINT_FILE)["step"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--resume", str(run), f"steps={started + EVAL_EVERY}"]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [started + EVAL_EVERY]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["fd"] > 0
    assert load_checkpoint(run / CHECKPOINT_FILE)["step"] == started + EVAL_EVERY
