"""Every path, URI and number a user types: a mistake is one line on stderr, exit code 2, nothing written.

One table per command. Each case runs ``gantune`` in-process with the working directory set to a
fresh folder (so that defaults such as ``./mlflow.db`` or ``./runs`` would show up there) and
compares that folder before and after. Tests run as root, which ignores permission bits, so an
unwritable place is one nobody can write: under ``/proc``, or under a regular file. Downloads go
to a closed proxy port, so a dataset that is not there fails fast instead of being fetched.
Search's number flags and preset errors are tabled in ``test_search_cli.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from checks import TEST_PRESETS, free_port, one_error_line

from pipelines.cli import main

PRESET = str(TEST_PRESETS / "fifo_grid25.yaml")
GRID = ["dataset=grid25", "arch=mlp"]


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """The working directory of one case: a file, an empty folder and a folder named like an image."""
    (tmp_path / "file.txt").write_text("keep me\n")
    (tmp_path / "broken.yaml").write_text("loss: [gan\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "folder.png").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(proxy, f"http://127.0.0.1:{free_port()}")
    for bypass in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(bypass, "127.0.0.1,localhost")
    return tmp_path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A grid25 run folder holding a freshly initialised checkpoint: what --resume and --checkpoint read."""
    from trainables.core.config import config_from_dict
    from trainables.core.trainer import Trainer

    run = tmp_path_factory.mktemp("run")
    config = config_from_dict({"dataset": "grid25", "arch": "mlp", "width": 16, "latent_dim": 4, "device": "cpu"})
    Trainer(config).save_checkpoint(run / "checkpoint.pt")
    return run


def listing(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None for path in root.rglob("*")}


def refused(argv: list[str], capsys, workspace: Path, **values) -> str:
    """Run ``gantune ARGV`` (``{tmp}``, ``{port}`` and ``values`` filled in): exit 2, one line naming the command,
    nothing new or changed in the workspace, Ray not started. Returns the line."""
    argv = [part.format(tmp=workspace, port=free_port(), **values) for part in argv]
    before = listing(workspace)
    code = main(argv)
    line = one_error_line(capsys)
    assert code == 2, line
    assert line.startswith(f"gantune {argv[0]}: "), line
    assert listing(workspace) == before
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    return line


def case(name: str, argv: list[str], *words: str):
    """One row: the arguments after the command, and the words the line must hold."""
    return pytest.param(argv, words, id=name)


def assert_says(line: str, words) -> None:
    for word in words:
        assert word in line, line


# ------------------------------------------------------------------------------------------------- train

TRAIN = [
    case("config is a folder", ["--config", "{tmp}/dir"], "--config", "is a folder; give a YAML file"),
    case("config is missing", ["--config", "{tmp}/missing.yaml"], "missing.yaml", "does not exist"),
    case("config is not YAML", ["--config", "{tmp}/broken.yaml"], "not valid YAML"),
    case("config is not a mapping", ["--config", "{tmp}/file.txt"], "must hold a mapping"),
    case("out is a file", [*GRID, "--out", "{tmp}/file.txt"], "--out", "is a file; give a folder"),
    case("out under a file", [*GRID, "--out", "{tmp}/file.txt/run"], "cannot be written", "is not a writable folder"),
    case("out in /proc", [*GRID, "--out", "/proc/gantune-test/run"], "cannot be written", "/proc is not a writable"),
    case("steps text", [*GRID, "steps=abc"], "steps must be an integer, got 'abc'"),
    case("steps negative", [*GRID, "steps=-3"], "steps must be >= 1, got -3"),
    case("steps zero", [*GRID, "steps=0"], "steps must be >= 1"),
    case("steps fraction", [*GRID, "steps=2.5"], "steps must be an integer, got 2.5"),
    case("steps true", [*GRID, "steps=true"], "steps must be an integer"),
    case("d_steps nan", [*GRID, "d_steps=.nan"], "d_steps must be an integer"),
    case("d_steps zero", [*GRID, "d_steps=0"], "d_steps must be >= 1"),
    case("lr_g nan", [*GRID, "lr_g=nan"], "lr_g must be finite"),
    case("lr_g inf", [*GRID, "lr_g=inf"], "lr_g must be finite"),
    case("lr_d -inf", [*GRID, "lr_d=-.inf"], "lr_d must be finite"),
    case("lr_g text", [*GRID, "lr_g=fast"], "lr_g must be a number, got 'fast'"),
    case("lr_g negative", [*GRID, "lr_g=-1"], "lr_g must be > 0"),
    case("batch_size one", [*GRID, "batch_size=1"], "batch_size must be >= 2"),
    case("eval_samples too few", [*GRID, "eval_samples=5"], "eval_samples must be >= 100"),
    case("seed negative", [*GRID, "seed=-1"], "seed must be >= 0"),
    case("override without =", [*GRID, "steps"], "override 'steps' is not of the form key=value"),
    case("unknown key", [*GRID, "nonsense=1"], "unknown key 'nonsense'"),
    case("clip with gan", [*GRID, "loss=gan", "clip=0.1"], "clip does not apply"),
    case("gp_weight with wgan", [*GRID, "loss=wgan", "gp_weight=1"], "gp_weight does not apply"),
    case("data_root missing", ["dataset=mnist", "arch=mlp", "data_root={tmp}/nodata"], "could not be downloaded"),
    case("data_root without the data", ["dataset=mnist", "arch=mlp", "data_root={tmp}/dir"], "could not be downloaded"),
    case("data_root is a file", ["dataset=mnist", "arch=mlp", "data_root={tmp}/file.txt"], "could not be downloaded"),
    case("resume missing", ["--resume", "{tmp}/missing"], "--resume", "does not exist"),
    case("resume a file", ["--resume", "{tmp}/file.txt"], "--resume", "is a file; give the run folder"),
    case("resume no checkpoint", ["--resume", "{tmp}/dir"], "holds no checkpoint.pt"),
    case("resume with config", ["--resume", "{run}", "--config", "{tmp}/file.txt"], "drop --config"),
    case("resume bad number", ["--resume", "{run}", "steps=-5"], "steps must be >= 1"),
]


@pytest.mark.parametrize("argv, words", TRAIN)
def test_train(argv, words, run_folder, workspace, capsys):
    out = [] if "--out" in argv or "--resume" in argv else ["--out", "{tmp}/run"]
    assert_says(refused(["train", *argv, *out], capsys, workspace, run=run_folder), words)


# --------------------------------------------------------------------------------------------- evaluator

EVALUATOR = [
    case("cache-dir is a file", ["--cache-dir", "{tmp}/file.txt"], "--cache-dir", "is a file; give a folder"),
    case("cache-dir under a file", ["--cache-dir", "{tmp}/file.txt/cache"], "--cache-dir", "cannot be written"),
    case("cache-dir in /proc", ["--cache-dir", "/proc/gantune-test"], "--cache-dir", "cannot be written"),
    case("data-root is a file", ["--data-root", "{tmp}/file.txt"], "--data-root", "is a file"),
    case("data-root missing", ["--data-root", "{tmp}/nodata"], "mnist is not under", "could not be downloaded"),
    case("data-root without the data", ["--data-root", "{tmp}/dir"], "could not be downloaded"),
]


@pytest.mark.parametrize("argv, words", EVALUATOR)
def test_evaluator(argv, words, workspace, capsys):
    line = refused(["evaluator", "train", "--dataset", "mnist", "--device", "cpu", *argv], capsys, workspace)
    assert_says(line, words)


# ------------------------------------------------------------------------------------------------ search

SEARCH = [
    case("config is a folder", ["--config", "{tmp}/dir"], "--config", "is a folder"),
    case("storage is a file", ["--storage", "{tmp}/file.txt"], "--storage", "is a file; give a folder"),
    case("storage under a file", ["--storage", "{tmp}/file.txt/runs"], "--storage", "cannot be written"),
    case("tracking ftp", ["--tracking-uri", "ftp://x"], "--tracking-uri ftp://x is not an MLflow tracking URI"),
    case("tracking a folder path", ["--tracking-uri", "{tmp}/dir"], "is not an MLflow tracking URI", "sqlite:///"),
    case("tracking db under a file", ["--tracking-uri", "sqlite:///{tmp}/file.txt/mlflow.db"], "cannot be written"),
    case("tracking db folder missing", ["--tracking-uri", "sqlite:///{tmp}/nodir/mlflow.db"], "nodir does not exist"),
    case("tracking db not SQLite", ["--tracking-uri", "sqlite:///{tmp}/file.txt"], "is not an SQLite database"),
    case("study db under a file", ["--optuna-storage", "sqlite:///{tmp}/file.txt/optuna.db"], "--optuna-storage",
         "cannot be written"),
    case("study db is a folder", ["--optuna-storage", "sqlite:///{tmp}/dir"], "is not an SQLite database"),
    case("study db in /proc", ["--optuna-storage", "sqlite:////proc/optuna.db"], "--optuna-storage",
         "cannot be written"),
]


@pytest.mark.parametrize("argv, words", SEARCH)
def test_search(argv, words, workspace, capsys):
    config = [] if "--config" in argv else ["--config", PRESET]
    storage = [] if "--storage" in argv else ["--storage", "{tmp}/runs"]
    assert_says(refused(["search", *config, *storage, *argv], capsys, workspace), words)


# ------------------------------------------------------------------------------------------------ report

REPORT = [
    case("out in /proc", ["--out", "/proc/gantune-test/report"], "--out", "cannot be written"),
    case("data-root is a file", ["--data-root", "{tmp}/file.txt"], "--data-root", "is not a folder"),
    case("data-root missing", ["--data-root", "{tmp}/nodata"], "--data-root", "is not a folder"),
    case("no store behind a new out", ["--out", "{tmp}/report", "--tracking-uri", "sqlite:///{tmp}/none.db"],
         "does not exist"),
]


@pytest.mark.parametrize("argv, words", REPORT)
def test_report(argv, words, workspace, capsys):
    assert_says(refused(["report", "--experiment", "e", *argv], capsys, workspace), words)


@pytest.fixture(scope="module")
def store_with_a_bare_search(tmp_path_factory) -> str:
    """A SQLite MLflow store whose experiment ``e`` holds a search run that records no metric, so that a
    report of it fails after its folder was made."""
    from mlflow import MlflowClient
    from pipelines.tracking.tags import TAG_ROLE

    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("e"), tags={TAG_ROLE: "search"})
    client.set_terminated(run.info.run_id)
    return uri


@pytest.mark.parametrize("out", [["--out", "{tmp}/reports/e"], []], ids=["new --out", "temporary folder"])
def test_a_report_that_fails_midway_takes_its_folder_with_it(out, store_with_a_bare_search, workspace, monkeypatch,
                                                             capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(workspace / "dir"))  # where the temporary folder would stay
    line = refused(["report", "--experiment", "e", "--tracking-uri", store_with_a_bare_search, *out], capsys, workspace)
    assert "records no search metric and mode" in line


# ------------------------------------------------------------------------------------------------ export

EXPORT = [
    case("checkpoint missing", ["--checkpoint", "{tmp}/missing.pt"], "missing.pt' is not a file"),
    case("checkpoint folder without one", ["--checkpoint", "{tmp}/dir"], "checkpoint.pt' is not a file"),
    case("out is a file", ["--out", "{tmp}/file.txt"], "--out", "is a file; give a folder"),
    case("out is a file, overwrite", ["--out", "{tmp}/file.txt", "--overwrite"], "is a file; give a folder"),
    case("out under a file", ["--out", "{tmp}/file.txt/export"], "--out", "cannot be written"),
    case("out in /proc", ["--out", "/proc/gantune-test/export"], "--out", "cannot be written"),
]


@pytest.mark.parametrize("argv, words", EXPORT)
def test_export(argv, words, run_folder, workspace, capsys):
    source = [] if "--checkpoint" in argv else ["--checkpoint", "{run}"]
    out = [] if "--out" in argv else ["--out", "{tmp}/export"]
    assert_says(refused(["export", *source, *argv, *out], capsys, workspace, run=run_folder), words)


# ---------------------------------------------------------------------------------------------- generate

GENERATE = [
    case("n negative", ["--n", "-3"], "--n must be an integer >= 1, got '-3'"),
    case("n text", ["--n", "many"], "--n must be an integer >= 1"),
    case("n nan", ["--n", "nan"], "--n must be an integer >= 1"),
    case("n inf", ["--n", "inf"], "--n must be an integer >= 1"),
    case("n fraction", ["--n", "2.5"], "--n must be an integer >= 1"),
    case("seed negative", ["--seed", "-1"], "--seed must be an integer >= 0"),
    case("seed fraction", ["--seed", "1.5"], "--seed must be an integer >= 0"),
    case("model is a checkpoint", ["--model", "{run}/checkpoint.pt"], "is not a folder"),
    case("model folder is not an export", ["--model", "{tmp}/dir"], "lacks generator.pt2"),
    case("model is not a URI", ["--model", "notamodel"], "'notamodel' is not a folder"),
    case("out is not an image", ["--out", "{tmp}/dir"], "must end in .png"),
    case("out folder missing", ["--out", "/proc/gantune-test/samples.png"], "does not exist"),
    case("out is a folder", ["--out", "{tmp}/folder.png"], "is a folder"),
    case("out under a file", ["--out", "{tmp}/file.txt/samples.png"], "cannot be written"),
    case("out in /proc", ["--out", "/proc/samples.png"], "cannot be written"),
]


@pytest.mark.parametrize("argv, words", GENERATE)
def test_generate(argv, words, run_folder, workspace, capsys):
    """Every check here comes before the model is read, so a folder that holds none stands in for it."""
    model = [] if "--model" in argv else ["--model", "{tmp}/dir"]
    out = [] if "--out" in argv else ["--out", "{tmp}/samples.png"]
    assert_says(refused(["generate", *model, *argv, *out], capsys, workspace, run=run_folder), words)


# ------------------------------------------------- the tracking store of promote, report, export, generate

READERS = {
    "promote": ["promote", "--experiment", "e"],
    "report": ["report", "--experiment", "e"],
    "export model": ["export", "--model", "models:/m@champion", "--out", "{tmp}/export"],
    "export run": ["export", "--run-id", "0123456789abcdef", "--out", "{tmp}/export"],
    "generate": ["generate", "--model", "models:/m@champion", "--out", "{tmp}/samples.png"],
}
STORES = [
    case("ftp", ["--tracking-uri", "ftp://x"], "--tracking-uri ftp://x is not an MLflow tracking URI"),
    case("a folder path", ["--tracking-uri", "{tmp}/dir"], "is not an MLflow tracking URI", "sqlite:///"),
    case("sqlite missing", ["--tracking-uri", "sqlite:///{tmp}/mlflow.db"], "mlflow.db does not exist"),
    case("sqlite not a database", ["--tracking-uri", "sqlite:///{tmp}/file.txt"], "is not an SQLite database"),
    case("unreachable server", ["--tracking-uri", "http://127.0.0.1:{port}"], "no MLflow server answers"),
    case("no store at MLflow's default", [], "MLflow's default tracking URI", "mlflow.db does not exist",
         "--tracking-uri"),
]


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("argv, words", STORES)
def test_tracking_store(command, argv, words, workspace, capsys):
    assert_says(refused([*READERS[command], *argv], capsys, workspace), words)


# --------------------------------------------------------------------------- paths from the environment

FROM_ENVIRONMENT = [
    ("MLFLOW_TRACKING_URI", "ftp://x", ["promote", "--experiment", "e"], "$MLFLOW_TRACKING_URI ftp://x is not"),
    ("MLFLOW_TRACKING_URI", "ftp://x", ["search", "--config", PRESET, "--storage", "{tmp}/runs"],
     "$MLFLOW_TRACKING_URI ftp://x is not"),
    ("GANTUNE_CACHE_DIR", "{tmp}/file.txt", ["evaluator", "train", "--dataset", "mnist"], "$GANTUNE_CACHE_DIR"),
    ("GANTUNE_DATA_ROOT", "{tmp}/file.txt", ["evaluator", "train", "--dataset", "mnist"], "$GANTUNE_DATA_ROOT"),
]


@pytest.mark.parametrize("variable, value, argv, named", FROM_ENVIRONMENT,
                         ids=[f"{variable} {argv[0]}" for variable, _, argv, _ in FROM_ENVIRONMENT])
def test_a_path_from_the_environment_is_named_by_its_variable(variable, value, argv, named, workspace, monkeypatch,
                                                              capsys):
    monkeypatch.setenv(variable, value.format(tmp=workspace))
    assert named in refused(argv, capsys, workspace)
