"""The search report: its numbers on handmade trials, and the report of a real tracked search."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from checks import one_error_line

from pipelines.cli import main
from pipelines.report.stats import ALL_TRIALS, best_so_far, progress_curves, ranked, saved_seconds, status_rows
from pipelines.report.store import TrialRecord, read_search
from pipelines.report.study import importances, infer_distribution, rebuild_study, typed_values
from pipelines.tracking.tags import TAG_PARENT, TAG_ROLE, TAG_SEARCH

FIGURES = {"progress.png", "importances.png", "slices.png", "samples.png", "status.png"}


def trial(index: int, loss: str, value: float | None, status: str = "completed", seconds: float = 10.0,
          last_step: int = 600, **params: str) -> TrialRecord:
    return TrialRecord(f"run{index}", f"t{index}", status, {"loss": loss, "width": "64", **params}, index, seconds,
                       value, None if value is None else last_step, last_step)


# ------------------------------------------------------------------------------- pure numbers


def test_best_so_far_keeps_the_best_value_seen_in_the_mode_direction():
    assert best_so_far([3, 5, 1, 2], "min") == [3, 3, 1, 1]
    assert best_so_far([3, 5, 1, 2], "max") == [3, 5, 5, 5]
    assert best_so_far([None, 4, None, 2], "min") == [None, 4, 4, 2]


def test_curves_per_loss_count_trials_and_seconds_in_start_order():
    trials = [trial(0, "gan", 0.5, seconds=10), trial(1, "hinge", 0.7, seconds=20), trial(2, "gan", None, seconds=5),
              trial(3, "gan", 0.2, seconds=1)]
    curves = {curve.label: curve for curve in progress_curves(trials, "min")}
    assert set(curves) == {"gan", "hinge", ALL_TRIALS}
    assert curves["gan"].trials == [1, 2, 3] and curves["gan"].seconds == [10, 15, 16]
    assert curves["gan"].best == [0.5, 0.5, 0.2]
    assert curves[ALL_TRIALS].best == [0.5, 0.5, 0.5, 0.2] and curves[ALL_TRIALS].seconds[-1] == 36
    assert [curve.label for curve in progress_curves(trials[:1], "min")] == ["gan"]
    assert [t.trial_id for t in ranked(trials, "min", 2)] == ["t3", "t0"]
    assert [t.trial_id for t in ranked(trials, "max", 5)] == ["t1", "t0", "t3"]


def test_status_counts_and_what_early_stopping_saved():
    trials = [trial(0, "gan", 0.5, "early_stopped", seconds=30, last_step=200),
              trial(1, "gan", 0.4, "completed", seconds=80), trial(2, "gan", None, "diverged", seconds=4),
              trial(3, "gan", None, "running", seconds=7)]
    rows = {row.status: row for row in status_rows(trials)}
    assert list(rows) == ["completed", "early_stopped", "diverged", "errored", "running"]
    assert sum(row.count for row in rows.values()) == len(trials) and rows["errored"].count == 0
    assert rows["early_stopped"].seconds == 30 and rows["diverged"].seconds == 4
    # Stopped at step 200 of 600 after 30 s: the 400 steps it skipped would have taken 60 s more.
    assert saved_seconds(trials, 600) == pytest.approx(60)
    assert saved_seconds(trials, None) is None


def test_distributions_are_inferred_from_the_logged_text():
    assert typed_values(["True", "False"]) == [True, False]
    assert typed_values(["1", "5"]) == [1, 5] and typed_values(["1", "2.5"]) == [1.0, 2.5]
    assert typed_values(["adam", "1"]) == ["adam", "1"]
    wide = infer_distribution(typed_values(["1e-05", "0.003", "0.0002"]))
    assert type(wide).__name__ == "FloatDistribution" and wide.log and wide.low == 1e-5 and wide.high == 0.003
    narrow = infer_distribution([1, 5])
    assert type(narrow).__name__ == "IntDistribution" and not narrow.log
    assert infer_distribution([True, False]).choices == (False, True)


def test_importances_cover_conditional_params_and_skip_pinned_ones():
    trials = []
    for index in range(12):
        loss = ("gan", "hinge", "wgan")[index % 3]
        extra = {"clip": str(0.005 * (1 + index))} if loss == "wgan" else {}
        # The learning rate decides the value; clip and loss barely matter.
        lr = 1e-4 * (1 + index % 4)
        trials.append(trial(index, loss, lr * 1000 + 0.01 * (index % 2), lr_g=str(lr), **extra))
    trials.append(trial(12, "gan", None, "diverged", lr_g="0.5"))  # no value: left out
    study = rebuild_study(trials, "min")
    assert len(study.trials) == 12
    assert {name for t in study.trials for name in t.params} == {"loss", "lr_g", "clip"}  # width was pinned
    assert all(("clip" in t.params) == (t.params["loss"] == "wgan") for t in study.trials)
    found = importances(study, "js_modes")
    assert found.note is None and set(found.values) == {"loss", "lr_g", "clip"}
    assert next(iter(found.values)) == "lr_g" and sum(found.values.values()) == pytest.approx(1.0)
    assert "at least 2 trials" in importances(rebuild_study(trials[:1], "min"), "js_modes").note


def test_real_images_are_a_grid_of_training_images(data_root, tmp_path):
    from matplotlib.image import imread

    from pipelines.report.figures import write_real_picture
    from trainables.core.train_config import TrainConfig

    picture = imread(write_real_picture(TrainConfig(dataset="mnist", data_root=str(data_root)), tmp_path / "real.png"))
    assert picture.shape[0] == picture.shape[1] == 2 + 8 * 30  # torchvision's 8x8 grid of 28-pixel images
    assert picture.std() > 0.1


# ---------------------------------------------------------------------- a real tracked search


@pytest.fixture(scope="module")
def reported(tracked_search, tmp_path_factory):
    """The tracked search's parent run, what the search's end logged under report/, then ``gantune report``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracked_search["uri"])
    experiment = client.get_experiment_by_name(tracked_search["experiment"])
    # Other tests may log further searches into the experiment: name this one with --search.
    query = f"tags.`{TAG_SEARCH}` = '{tracked_search['folder'].name}' and tags.`{TAG_ROLE}` = 'search'"
    parent, = client.search_runs([experiment.experiment_id], query)
    logged_at_end = sorted(f.path for f in client.list_artifacts(parent.info.run_id, "report"))
    out = tmp_path_factory.mktemp("report") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["report", "--experiment", tracked_search["experiment"], "--search", parent.info.run_id,
                     "--out", str(out), "--tracking-uri", tracked_search["uri"]])
    return {"client": client, "parent": parent, "logged_at_end": logged_at_end, "out": out, "code": code,
            "printed": printed.getvalue().strip().splitlines(), "preset": tracked_search["preset"]}


def test_the_search_logged_its_report_and_the_command_writes_and_logs_it_again(reported):
    assert reported["logged_at_end"] == sorted(f"report/{name}" for name in {"report.html", *FIGURES})
    assert reported["code"] == 0
    assert len(reported["printed"]) == 1 and str(reported["out"] / "report.html") in reported["printed"][0]
    written = sorted(path.name for path in reported["out"].iterdir())
    assert written == sorted({"report.html", *FIGURES})
    logged = reported["client"].list_artifacts(reported["parent"].info.run_id, "report")
    assert sorted(Path(f.path).name for f in logged) == written


def test_the_page_references_every_figure_it_wrote(reported):
    page = (reported["out"] / "report.html").read_text()
    assert set(re.findall(r'<img src="([^"]+)"', page)) == FIGURES
    assert reported["parent"].info.run_id in page and "Trials by status" in page


def pixels_of(picture, rgb=None) -> int:
    """How many pixels of a figure are ``rgb`` (within rounding), or of any strong colour when None:
    matplotlib draws axes, ticks and text in black and grey, so coloured pixels are marks of data."""
    channels = picture[..., :3]
    if rgb is None:
        return int(((channels.max(axis=2) - channels.min(axis=2)) > 0.25).sum())
    return int((abs(channels - rgb).max(axis=2) < 0.05).sum())


def test_every_figure_draws_the_searchs_data(reported):
    """Each figure shows marks of the trials it is drawn from, not only its axes and labels."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    from pipelines.report.figures import STATUS_COLOURS, draw_progress

    figures = {name: imread(reported["out"] / name) for name in FIGURES}
    for name, picture in figures.items():
        assert picture.ndim == 3 and min(picture.shape[:2]) >= 150, (name, picture.shape)
    search = read_search(reported["client"], reported["parent"])
    # A bar per status that some trial ended with, in that status's colour.
    for row in status_rows(search.trials):
        if row.count:
            assert pixels_of(figures["status.png"], to_rgb(STATUS_COLOURS[row.status])) > 200, row.status
    # Each loss's best-so-far marks (matplotlib's colour cycle, in the curves' order): more of its colour
    # than the same figure drawn with every value taken out, which holds the legend's sample alone.
    curves = progress_curves(search.trials, search.mode)
    blank = imread(draw_progress([replace(curve, best=[None] * len(curve.best)) for curve in curves],
                                 search.metric, search.mode, reported["out"].parent / "blank.png"))
    losses = [curve for curve in curves if curve.label != ALL_TRIALS]
    for index, curve in enumerate(losses):
        colour = to_rgb(f"C{index}")
        assert pixels_of(figures["progress.png"], colour) > pixels_of(blank, colour), curve.label
    # Importance bars, the trials' points against each param, and the samples (red mode centres).
    for name in ("importances.png", "slices.png", "samples.png"):
        assert pixels_of(figures[name]) > 100, name


def test_the_records_behind_the_report(reported):
    client, parent = reported["client"], reported["parent"]
    search = read_search(client, parent)
    children = client.search_runs([parent.info.experiment_id], f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'")
    assert len(search.trials) == len(children) > 0
    assert sum(row.count for row in status_rows(search.trials)) == len(children)
    assert all(t.seconds > 0 for t in search.trials)
    assert search.max_steps == reported["preset"]["budget"]["max_steps"]
    sign = 1 if search.mode == "min" else -1
    for curve in progress_curves(search.trials, search.mode):
        seen = [sign * value for value in curve.best if value is not None]
        assert seen == sorted(seen, reverse=True), curve.label  # never gets worse
        assert curve.seconds == sorted(curve.seconds)
    best = ranked(search.trials, search.mode, 1)[0]
    assert best.best_value == pytest.approx(parent.data.metrics[f"best_{search.metric}"])


# ------------------------------------------------------------------------------- bad input



def test_an_unknown_experiment_is_one_line_and_exit_2(mlflow_server, capsys):
    assert main(["report", "--experiment", "nope", "--tracking-uri", mlflow_server]) == 2
    assert "--experiment 'nope' does not exist" in one_error_line(capsys)


def test_an_experiment_without_a_search_is_one_line_and_exit_2(mlflow_server, capsys):
    from mlflow import MlflowClient

    MlflowClient(mlflow_server).create_experiment("no-search-here")
    assert main(["report", "--experiment", "no-search-here", "--tracking-uri", mlflow_server]) == 2
    assert "holds no search" in one_error_line(capsys)


def test_an_out_that_is_a_file_or_lies_under_one_is_one_line_and_exit_2(mlflow_server, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    assert main(["report", "--experiment", "nope", "--out", str(taken), "--tracking-uri", mlflow_server]) == 2
    assert "is a file" in one_error_line(capsys)
    assert main(["report", "--experiment", "nope", "--out", str(taken / "sub"), "--tracking-uri", mlflow_server]) == 2
    assert "cannot be written" in one_error_line(capsys)
    assert taken.read_text() == "keep me"


def test_a_report_that_cannot_be_made_does_not_fail_the_search(mlflow_server, tmp_path, capsys):
    from pipelines.report.build import report_after_search
    from pipelines.search.folder import SearchFolder
    from pipelines.tracking.target import TrackingTarget

    report_after_search(TrackingTarget(mlflow_server, "lost"), SearchFolder(str(tmp_path), "never-ran"))
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "could not be made" in printed[0]
    assert f"gantune report --experiment lost --tracking-uri {mlflow_server}" in printed[0]
