"""Export folders: written whole or not at all, loaded by torch alone, sampled by ``gantune generate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines.cli import main
from trainables.checkpoint import save_checkpoint
from trainables.config import config_from_dict
from trainables.export_reader import CARD_FILE, CONFIG_FILE, PROGRAM_FILE, SAMPLES_FILE, WEIGHTS_FILE
from trainables.models import build_discriminator, build_generator

EXPORT_FILES = {PROGRAM_FILE, WEIGHTS_FILE, CONFIG_FILE, SAMPLES_FILE, CARD_FILE}

# Loads an export in a fresh interpreter where importing MLflow, Ray or Optuna fails.
BLOCKED_LOAD = """
import importlib.abc, json, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "ray", "optuna"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Blocked())
from trainables.export_reader import load_exported
generator = load_exported(sys.argv[1])
samples = generator.generate(int(sys.argv[2]), seed=3)
again = generator.generate(int(sys.argv[2]), seed=3)
print(json.dumps({"shape": list(samples.shape), "min": samples.min().item(), "max": samples.max().item(),
                  "finite": bool(samples.isfinite().all()), "repeatable": bool((samples == again).all()),
                  "loaded": sorted(m for m in ("mlflow", "ray", "optuna") if m in sys.modules)}))
"""


def make_checkpoint(path: Path, **config) -> Path:
    """A checkpoint as the trainer writes it, with freshly initialised networks."""
    cfg = config_from_dict(config)
    torch.manual_seed(0)
    save_checkpoint(path, {
        "config": cfg.to_dict(), "step": 7,
        "generator": build_generator(cfg).state_dict(), "discriminator": build_discriminator(cfg).state_dict(),
        "opt_g": {}, "opt_d": {}, "rng": {}, "metrics": {"step": 7, "status": "running", "kl_modes": 1.5},
    })
    return path


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt",
                           dataset="mnist", arch="mlp", width=32, latent_dim=16, conditional=True)


@pytest.fixture(scope="module")
def image_export(image_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "mnist"
    assert main(["export", "--checkpoint", str(image_checkpoint), "--out", str(out)]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_export_writes_every_file_and_a_card(image_export):
    assert {p.name for p in image_export.iterdir()} == EXPORT_FILES
    info = json.loads((image_export / CONFIG_FILE).read_text())
    assert info["spec"] == {"latent_dim": 16, "conditional": True, "num_classes": 10, "sample_shape": [1, 28, 28]}
    assert info["lineage"]["checkpoint_step"] == "7"
    card = (image_export / CARD_FILE).read_text()
    for expected in ("mlp architecture, conditional", "| lr_g |", "kl_modes", "checkpoint_step"):
        assert expected in card


def test_export_loads_with_torch_only(image_export):
    """Downstream code gets images of the right shape and range without MLflow, Ray or Optuna."""
    n = 37  # not the batch the program was exported with: the batch size is free
    answer = subprocess.run([sys.executable, "-c", BLOCKED_LOAD, str(image_export), str(n)],
                            capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(answer.stdout)
    assert loaded["shape"] == [n, 1, 28, 28]
    assert -1.0 <= loaded["min"] <= loaded["max"] <= 1.0 and loaded["finite"]
    assert loaded["repeatable"] and loaded["loaded"] == []


def test_export_program_matches_the_trained_module(image_export, image_checkpoint):
    from trainables.checkpoint import load_checkpoint
    from trainables.export_reader import load_exported

    state = load_checkpoint(image_checkpoint)
    module = build_generator(config_from_dict(state["config"]))
    module.load_state_dict(state["generator"])
    module.eval()
    z, labels = torch.randn(3, 16), torch.tensor([0, 4, 9])
    with torch.no_grad():
        assert torch.allclose(load_exported(image_export)(z, labels), module(z, labels), atol=1e-6)


def test_existing_out_is_refused_and_left_alone(image_checkpoint, image_export, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in image_export.iterdir()}
    assert main(["export", "--checkpoint", str(image_checkpoint), "--out", str(image_export)]) == 2
    assert "already exists" in one_error_line(capsys)
    assert {p.name: p.stat().st_mtime_ns for p in image_export.iterdir()} == before


def test_bad_checkpoint_leaves_nothing(tmp_path, capsys):
    bogus = tmp_path / "checkpoint.pt"
    bogus.write_bytes(b"not a checkpoint")
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(bogus), "--out", str(out)]) == 2
    assert "not a gantune checkpoint" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_generate_writes_a_grid_with_chosen_labels(image_export, tmp_path):
    from PIL import Image

    out = tmp_path / "grid.png"
    assert main(["generate", "--model", str(image_export), "--n", "12", "--labels", "0,1,2", "--seed", "1",
                 "--out", str(out)]) == 0
    width, height = Image.open(out).size
    assert width == 4 * 28 + 5 * 2 and height == 3 * 28 + 4 * 2  # 4 columns x 3 rows with 2 px padding
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_generate_scatter_for_points(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "checkpoint.pt", dataset="grid25", arch="mlp", width=16, latent_dim=4)
    export = tmp_path / "export"
    assert main(["export", "--checkpoint", str(tmp_path), "--out", str(export)]) == 0
    assert checkpoint.is_file()
    out = tmp_path / "points.png"
    assert main(["generate", "--model", str(export), "--n", "500", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "{missing}"], "is not a folder"),
        (["--model", "{export}", "--labels", "3,12"], "--labels must be"),
        (["--model", "{export}", "--n", "0"], "--n must be an integer >= 1"),
        (["--model", "{export}", "--out", "{tmp}/grid.txt"], "must end in .png"),
    ],
)
def test_generate_bad_input_is_one_line(argv, message, image_export, tmp_path, capsys):
    values = {"missing": str(tmp_path / "nowhere"), "export": str(image_export), "tmp": str(tmp_path)}
    argv = [part.format(**values) for part in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "grid.png")]
    assert main(["generate", *argv]) == 2
    assert message in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []
