"""Promotion by alias, export from the registry, and serving, against a real ``mlflow server``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from checks import http_body, read_trials, wait_for
from images import read_scatter

from pipelines.cli import main
from pipelines.registry.promote import decide
from pipelines.tracking.tags import TAG_BEST_STEP, TAG_PARENT, TAG_ROLE, TAG_SEARCH, TAG_TRIAL_ID
from trainables.core.checkpoint import CHECKPOINT_FILE, load_checkpoint

# A generator rate so fast against a frozen critic that every sample leaves the grid within ten
# steps: js_modes takes its maximum, log 2, so this search is surely no better than the tracked
# one on the same metric and evaluator, and it is below its own floor.
WORSE_PRESET = """
dataset: grid25
metric: js_modes
floor: {modes_covered: 20}
scheduler: fifo
budget: {num_samples: 1, max_steps: 20, max_concurrent: 1}
resources: {cpus_per_trial: 0.5}
params: {arch: mlp, conditional: false, loss: gan, lr_g: 0.5, lr_d: 1.0e-7, width: 32, latent_dim: 8, eval_every: 10, eval_samples: 1000}
"""


def promote(tracked, *flags: str) -> int:
    return main(["promote", "--experiment", tracked["experiment"], "--tracking-uri", tracked["uri"],
                 "--model-name", "grid25-gen", *flags])


@pytest.fixture(scope="module")
def promotions(tracked_search, tmp_path_factory):
    """Promote the tracked search, then a worse search into the same experiment; the registry after each."""
    from mlflow import MlflowClient

    client = MlflowClient(tracked_search["uri"])
    assert promote(tracked_search) == 0
    first = client.get_model_version_by_alias("grid25-gen", "champion")
    storage = tmp_path_factory.mktemp("worse")
    (storage / "worse.yaml").write_text(WORSE_PRESET)
    assert main(["search", "--config", str(storage / "worse.yaml"), "--storage", str(storage), "--name", "worse",
                 "--tracking-uri", tracked_search["uri"], "--experiment", tracked_search["experiment"]]) == 0
    refused = promote(tracked_search)
    versions_when_refused = len(client.search_model_versions("name = 'grid25-gen'"))
    assert promote(tracked_search, "--force") == 0
    versions = client.search_model_versions("name = 'grid25-gen'")
    second = client.get_model_version_by_alias("grid25-gen", "champion")
    return {"client": client, "first": first, "second": second, "versions": versions, "tracked": tracked_search,
            "refused": refused, "versions_when_refused": versions_when_refused}


def test_first_promotion_takes_the_alias_with_lineage(promotions):
    first = promotions["first"]
    assert first.version == "1"
    tags = first.tags
    for key in ("source_run", "search", "dataset", "evaluator_hash", "metric", "metric_value"):
        assert tags[key], key
    assert tags["search"] == "tracked" and tags["dataset"] == "grid25" and tags["metric"] == "js_modes"
    parent_best = promotions["client"].get_run(tags["source_run"]).data.tags["gantune.best_value"]
    assert float(tags["metric_value"]) == pytest.approx(float(parent_best))


def test_a_search_below_its_floor_is_refused_unless_forced(promotions, capsys):
    assert promotions["refused"] == 2
    assert promotions["versions_when_refused"] == 1
    assert sorted(v.version for v in promotions["versions"]) == ["1", "2"]
    assert promote(promotions["tracked"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "modes_covered" in err[0] and "floor 20" in err[0] and "--force" in err[0]


def test_a_worse_search_is_registered_but_the_alias_stays(promotions):
    versions = {v.version: v for v in promotions["versions"]}
    assert sorted(versions) == ["1", "2"]
    assert float(versions["2"].tags["metric_value"]) > float(versions["1"].tags["metric_value"])
    assert versions["2"].tags["search"] == "worse"
    assert promotions["second"].version == "1"


def test_promoting_again_registers_nothing_new(promotions, capsys):
    assert promote(promotions["tracked"], "--force") == 0
    assert "stays on version 1" in capsys.readouterr().out
    assert len(promotions["client"].search_model_versions("name = 'grid25-gen'")) == 2


def search_parent(promotions, search: str):
    """The parent run of the search named ``search`` in the tracked experiment."""
    client = promotions["client"]
    experiment = client.get_experiment_by_name(promotions["tracked"]["experiment"])
    parent, = client.search_runs([experiment.experiment_id],
                                 f"tags.`{TAG_SEARCH}` = '{search}' and tags.`{TAG_ROLE}` = 'search'")
    return parent


def values_at_best_checkpoints(client, parent, folder: Path, metric: str) -> dict[str, float]:
    """Each trial run of the search -> ``metric`` as its best checkpoint (the logged one, at the run's
    best step) recorded it on disk: the trainer's own report, read without MLflow's metric curves."""
    recorded = {}  # (trial id, step) -> the report saved with that checkpoint
    for trial_id, trial in read_trials(folder / "tune").items():
        for checkpoint in trial["folder"].glob(f"checkpoint_*/{CHECKPOINT_FILE}"):
            state = load_checkpoint(checkpoint)
            recorded[trial_id, state["step"]] = state["metrics"]
    values = {}
    for run in client.search_runs([parent.info.experiment_id], f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'"):
        if TAG_BEST_STEP in run.data.tags:
            values[run.info.run_id] = recorded[run.data.tags[TAG_TRIAL_ID], int(run.data.tags[TAG_BEST_STEP])][metric]
    return values


def promote_into(tracked, model_name: str, *flags: str) -> int:
    """``gantune promote`` into a model of its own, so the grid25-gen versions above stay as they are."""
    return main(["promote", "--experiment", tracked["experiment"], "--tracking-uri", tracked["uri"],
                 "--model-name", model_name, *flags])


@pytest.mark.parametrize("metric, mode", [("coverage", "max"), ("kl_modes", "min")])
def test_promote_by_another_metric_takes_the_best_trial_on_that_metric(promotions, metric, mode, capsys):
    """An objective the search did not optimise (coverage) or a diagnostic (kl_modes), each in its direction."""
    client, tracked = promotions["client"], promotions["tracked"]
    parent = search_parent(promotions, "tracked")
    values = values_at_best_checkpoints(client, parent, tracked["folder"], metric)
    assert len(values) >= 2
    best = max(values.values()) if mode == "max" else min(values.values())
    name = f"grid25-by-{metric.replace('_', '-')}"
    assert promote_into(tracked, name, "--search", parent.info.run_id, "--metric", metric) == 0
    assert f"promoted {name} version 1 to @champion" in capsys.readouterr().out
    version = client.get_model_version_by_alias(name, "champion")
    assert (version.tags["metric"], version.tags["mode"], version.tags["search"]) == (metric, mode, "tracked")
    assert float(version.tags["metric_value"]) == pytest.approx(best)
    assert values[version.tags["source_run"]] == pytest.approx(best)


def test_promote_names_an_older_search_with_search(promotions, capsys):
    """The worse search is the experiment's latest; --search picks the tracked one before it."""
    client, tracked = promotions["client"], promotions["tracked"]
    older, latest = search_parent(promotions, "tracked"), search_parent(promotions, "worse")
    assert older.info.start_time < latest.info.start_time
    assert promote_into(tracked, "grid25-older", "--search", older.info.run_id) == 0
    assert "promoted grid25-older version 1 to @champion" in capsys.readouterr().out
    version = client.get_model_version_by_alias("grid25-older", "champion")
    assert version.tags["search"] == "tracked" and version.tags["metric"] == "js_modes"
    assert version.tags["source_run"] == promotions["first"].tags["source_run"]  # the tracked search's best trial
    assert float(version.tags["metric_value"]) == pytest.approx(older.data.metrics["best_js_modes"])
    # The latest search alone is below its floor: without --search nothing is registered.
    assert promote_into(tracked, "grid25-latest") == 2
    assert "floor" in capsys.readouterr().err
    assert client.search_model_versions("name = 'grid25-latest'") == []


def test_an_unknown_or_non_search_run_given_to_search_is_one_line(promotions, capsys):
    client, tracked = promotions["client"], promotions["tracked"]
    trial_run = promotions["first"].tags["source_run"]
    for search, message in (("0123456789abcdef0123456789abcdef", "--search 0123456789abcdef0123456789abcdef: "),
                            (trial_run, f"--search {trial_run} is not the parent run of a search")):
        assert promote_into(tracked, "grid25-nowhere", "--search", search) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gantune promote: ") and message in err[0], err
    assert client.search_model_versions("name = 'grid25-nowhere'") == []


@pytest.mark.parametrize(
    "champion, move",
    [
        (None, True),
        ({"metric": "js_modes", "evaluator_hash": "none", "metric_value": "0.5"}, True),
        ({"metric": "js_modes", "evaluator_hash": "none", "metric_value": "0.2"}, False),
        ({"metric": "js_modes", "evaluator_hash": "none", "metric_value": "0.3"}, False),  # a tie keeps the holder
        ({"metric": "js_modes", "evaluator_hash": "other", "metric_value": "9.0"}, False),
        ({"metric": "modes_covered", "evaluator_hash": "none", "metric_value": "1"}, False),
    ],
)
def test_the_alias_moves_only_on_a_strictly_better_comparable_score(champion, move):
    assert decide(0.3, "none", "js_modes", "min", champion)[0] is move


def test_export_from_the_registry_and_generate(promotions, tmp_path):
    tracked = promotions["tracked"]
    out = tmp_path / "champion"
    assert main(["export", "--model", "models:/grid25-gen@champion", "--tracking-uri", tracked["uri"],
                 "--out", str(out)]) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["lineage"]["model"] == "models:/grid25-gen/1"
    assert info["lineage"]["source_run"] == promotions["first"].run_id
    assert "source_run" in (out / "model_card.md").read_text()
    grid = tmp_path / "points.png"
    assert main(["generate", "--model", "models:/grid25-gen@champion", "--tracking-uri", tracked["uri"],
                 "--n", "300", "--out", str(grid)]) == 0
    read_scatter(grid)
    by_run = tmp_path / "by-run"
    assert main(["export", "--run-id", promotions["first"].run_id, "--tracking-uri", tracked["uri"],
                 "--out", str(by_run)]) == 0
    assert json.loads((by_run / "config.json").read_text())["config"] == info["config"]


def test_export_into_a_log_says_what_it_downloaded_in_one_line(promotions, tmp_path):
    """Piped (not a terminal), ``gantune export`` shows no progress bar redrawn with carriage returns,
    only one line for the download: what, how many files, how big, how long."""
    out = tmp_path / "piped"
    done = subprocess.run([str(Path(sys.executable).with_name("gantune")), "export", "--model",
                           "models:/grid25-gen@champion", "--tracking-uri", promotions["tracked"]["uri"],
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\r" not in done.stderr and "\r" not in done.stdout
    downloads = [line for line in done.stderr.splitlines() if line.startswith("downloaded ")]
    assert len(downloads) == 1, done.stderr[-3000:]
    found = re.fullmatch(r"downloaded models:/grid25-gen@champion \((\d+) files, [\d.]+ (?:B|kB|MB)\) in [\d.]+ s",
                         downloads[0])
    assert found and int(found[1]) >= 5, downloads  # MLmodel, requirements, pickle, code, the export's files
    assert done.stdout.strip().endswith(f"to {out}") and (out / "generator.pt2").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--model", "models:/grid25-gen@nobody", "--out", "{tmp}/x"], "--model models:/grid25-gen@nobody"),
        (["export", "--model", "runs:/abc", "--out", "{tmp}/x"], "is not models:/NAME@ALIAS"),
        (["export", "--run-id", "0123456789abcdef", "--out", "{tmp}/x"], "--run-id 0123456789abcdef"),
        (["generate", "--model", "models:/no-such-model/3", "--out", "{tmp}/x.png"], "--model models:/no-such-model/3"),
        (["promote", "--experiment", "no-such-experiment"], "does not exist"),
    ],
)
def test_wrong_uri_or_run_id_is_one_line(argv, message, promotions, tmp_path, capsys):
    argv = [part.format(tmp=tmp_path) for part in argv] + ["--tracking-uri", promotions["tracked"]["uri"]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_mlflow_models_serve_answers_with_samples(promotions, spawn_service, tmp_path):
    """The registered pyfunc model, served from this environment, turns rows of noise into points."""
    latent_dim = int(promotions["client"].get_run(promotions["first"].run_id).data.params["latent_dim"])
    # As in an activated virtualenv: the server runs the environment's own `uvicorn`.
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": promotions["tracked"]["uri"], "PATH": path}
    port, server, log = spawn_service(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/grid25-gen@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"], env)
    rows = [[0.1] * latent_dim, [-0.4] * latent_dim]
    body = json.dumps({"dataframe_split": {"columns": [f"z{i}" for i in range(latent_dim)], "data": rows}})
    url = f"http://127.0.0.1:{port}/invocations"
    answer = wait_for(lambda: http_body(url, body.encode()), "an answer from mlflow models serve", server,
                      timeout_s=120, log=log)
    predictions = json.loads(answer)
    assert [len(point) for point in predictions["predictions"]] == [2, 2]
