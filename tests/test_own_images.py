"""The user's own images: ``dataset: folder`` (class subfolders or flat) and ``dataset: array`` (.npz/.npy),
read, resized, split and scored, and trained on through ``gantune train``, ``--resume``, ``export``
and ``generate``; nets for every square size from 16 to 128 pixels.

The data are MNIST digits written as the user would have them: PNG files in one folder per
class and in one flat folder, an ``.npz`` with labels, and RGB pictures of 64 pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from images import grid_side, read_picture
from PIL import Image

from pipelines.cli import main
from trainables.core.config import config_from_dict
from trainables.core.models import build_discriminator, build_generator
from trainables.data.datasets import load_data, resolve_files, spec_of
from trainables.data.files import MIN_IMAGES, TEST_FRACTION
from trainables.errors import ConfigError
from trainables.export_reader import load_exported
from trainables.quality.objectives import FEATURE_METRICS, IMAGE_METRICS

DIGITS = 300


@pytest.fixture(scope="module")
def own(mnist, tmp_path_factory) -> dict[str, Path]:
    """The first ``DIGITS`` MNIST digits in every layout a user may bring them in, and RGB pictures."""
    root = tmp_path_factory.mktemp("own")
    digits = mnist.train_x[:DIGITS, 0].numpy()
    labels = mnist.train_y[:DIGITS].numpy()
    for index, (digit, label) in enumerate(zip(digits, labels)):
        (root / "classes" / f"digit-{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(digit).save(root / "classes" / f"digit-{label}" / f"{index:04d}.png")
        (root / "flat").mkdir(exist_ok=True)
        Image.fromarray(digit).save(root / "flat" / f"{index:04d}.png")
    np.savez(root / "digits.npz", images=digits, labels=labels * 10)  # any integers name the classes
    rgb = np.random.default_rng(0).integers(0, 256, (MIN_IMAGES, 64, 64, 3), dtype=np.uint8)
    np.save(root / "rgb64.npy", rgb)
    (root / "rgb64").mkdir()
    for index, picture in enumerate(rgb):
        Image.fromarray(picture).save(root / "rgb64" / f"{index:04d}.jpg", quality=95)
    return {"root": root, "classes": root / "classes", "flat": root / "flat", "npz": root / "digits.npz",
            "npy": root / "rgb64.npy", "jpegs": root / "rgb64", "digits": digits, "labels": labels}


def resolved(dataset: str, path: Path, **keys):
    return resolve_files(config_from_dict({"dataset": dataset, "data_root": str(path), "arch": "dcgan", **keys}))


def test_class_folders_are_labels_and_the_digits_come_back_unchanged(own):
    config = resolved("folder", own["classes"])
    assert (config.image_size, config.channels, config.num_classes) == (28, 1, 10)
    assert spec_of(config).metrics == IMAGE_METRICS
    data = load_data(config)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (1, 28, 28)
    test_count = round(DIGITS * TEST_FRACTION)
    assert (data.train_x.shape[0], data.test_x.shape[0]) == (DIGITS - test_count, test_count)
    # The same pixels, each under its own folder's class, in some order.
    pairs = sorted((int(label), bytes(image.numpy())) for image, label in
                   zip(torch.cat([data.train_x, data.test_x])[:, 0], torch.cat([data.train_y, data.test_y])))
    assert pairs == sorted((int(label), bytes(digit)) for digit, label in zip(own["digits"], own["labels"]))
    again = load_data(config)  # the held-out split is fixed
    assert torch.equal(again.test_x, data.test_x)


def test_a_flat_folder_has_no_labels_and_is_scored_without_classes(own):
    config = resolved("folder", own["flat"])
    assert (config.image_size, config.channels, config.num_classes) == (28, 1, 0)
    assert spec_of(config).metrics == FEATURE_METRICS
    with pytest.raises(ConfigError, match="conditional needs two or more classes.*no labels"):
        resolved("folder", own["flat"], conditional=True)


def test_arrays_carry_their_labels_and_are_resized_and_converted(own):
    labelled = resolved("array", own["npz"])
    assert (labelled.image_size, labelled.channels, labelled.num_classes) == (28, 1, 10)
    data = load_data(labelled)
    assert set(torch.cat([data.train_y, data.test_y]).tolist()) == set(range(10))

    rgb = resolved("array", own["npy"], image_size=32)
    assert (rgb.image_size, rgb.channels, rgb.num_classes) == (32, 3, 0)
    grey = resolved("array", own["npy"], image_size=16, channels=1)
    assert load_data(grey).train_x.shape[1:] == (1, 16, 16)


def test_jpeg_pictures_keep_their_size_or_take_image_size(own):
    own_size = resolved("folder", own["jpegs"])
    assert (own_size.image_size, own_size.channels) == (64, 3)
    smaller = load_data(resolved("folder", own["jpegs"], image_size=48))
    assert smaller.train_x.shape[1:] == (3, 48, 48)


@pytest.mark.parametrize("size", [16, 18, 28, 32, 48, 64, 100, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_nets_build_for_every_square_size(size, channels):
    config = config_from_dict({"dataset": "folder", "data_root": "unused", "image_size": size, "channels": channels,
                               "num_classes": 4, "conditional": True, "arch": "dcgan", "width": 8, "latent_dim": 8})
    generator, critic = build_generator(config), build_discriminator(config)
    labels = torch.tensor([0, 3])
    images = generator(torch.randn(2, 8), labels)
    assert images.shape == (2, channels, size, size)
    assert critic(images, labels).shape == (2,)


def test_a_changed_folder_trains_a_new_evaluator(own, tmp_path):
    from trainables.quality.evaluator_cache import load_or_train_evaluator

    folder = tmp_path / "changing"
    folder.mkdir()
    for path in sorted(own["flat"].iterdir())[:MIN_IMAGES]:
        (folder / path.name).write_bytes(path.read_bytes())
    first = load_or_train_evaluator(load_data(resolved("folder", folder)), torch.device("cpu"), tmp_path / "cache")
    assert first.recipe.task == "rotation"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(next(folder.iterdir()))
    from trainables.data.loading import file_images

    file_images.cache_clear()  # a new process would read the folder afresh
    second = load_or_train_evaluator(load_data(resolved("folder", folder)), torch.device("cpu"), tmp_path / "cache")
    assert second.trained_now and second.weights_path != first.weights_path


def test_train_resume_export_and_generate_on_a_flat_folder(own, tmp_path, capsys):
    """The README's path for a folder of images, by ``gantune`` commands alone."""
    run = tmp_path / "run"
    keys = [f"data_root={own['flat']}", "dataset=folder", "arch=dcgan", "width=8", "latent_dim=16", "batch_size=32",
            "steps=20", "eval_every=10", "eval_samples=100"]
    assert main(["train", *keys, "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "steps=30"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["step"] == 30 and set(FEATURE_METRICS) <= set(metrics) and "is" not in metrics
    assert main(["export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "export")]) == 0
    generator = load_exported(tmp_path / "export")
    assert generator.generate(5).shape == (5, 1, 28, 28)
    assert main(["generate", "--model", str(tmp_path / "export"), "--n", "16", "--out", str(tmp_path / "g.png")]) == 0
    read_picture(tmp_path / "g.png", grid_side(4))


def write_digits(folder: Path, count: int, size: int = 28) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(np.full((size, size), index % 256, np.uint8)).save(folder / f"{index:04d}.png")


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    """One folder or file per way a user's data can be wrong."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    write_digits(root / "corrupt", MIN_IMAGES)
    (root / "corrupt" / "0007.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_digits(root / "mixed", MIN_IMAGES)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "mixed" / "0000.png")
    write_digits(root / "one-class" / "only", MIN_IMAGES)
    write_digits(root / "few", MIN_IMAGES // 2)
    write_digits(root / "huge", MIN_IMAGES, size=256)
    np.savez(root / "unnamed.npz", np.zeros((MIN_IMAGES, 28, 28), np.uint8))
    np.save(root / "floats.npy", np.zeros((MIN_IMAGES, 28, 28), np.float32))
    return root


BAD = [
    ("missing", ["dataset=folder", "data_root={bad}/nothing"], ["does not exist"]),
    ("no data_root", ["dataset=folder"], ["needs data_root"]),
    ("empty folder", ["dataset=folder", "data_root={bad}/empty"], ["no PNG or JPEG images"]),
    ("corrupt file", ["dataset=folder", "data_root={bad}/corrupt"], ["0007.png", "not a readable", "remove or replace"]),
    ("mixed sizes", ["dataset=folder", "data_root={bad}/mixed"], ["differ in size", "set image_size"]),
    ("too large", ["dataset=folder", "data_root={bad}/huge"], ["256 px", "set image_size"]),
    ("too few", ["dataset=folder", "data_root={bad}/few"], [f"{MIN_IMAGES} or more"]),
    ("one class", ["dataset=folder", "data_root={bad}/one-class", "conditional=true"], ["one class", "conditional"]),
    ("npz without images", ["dataset=array", "data_root={bad}/unnamed.npz"], ["no array named 'images'"]),
    ("float pixels", ["dataset=array", "data_root={bad}/floats.npy"], ["float32", "uint8"]),
    ("folder as array", ["dataset=array", "data_root={bad}/empty"], ["not a .npy or .npz file"]),
    ("image_size out of range", ["dataset=folder", "data_root={bad}/mixed", "image_size=8"], ["image_size must be 16"]),
    ("channels 2", ["dataset=folder", "data_root={bad}/mixed", "channels=2"], ["channels must be 1"]),
    ("image_size on mnist", ["dataset=mnist", "image_size=32"], ["image_size applies only to", "folder"]),
]


@pytest.mark.parametrize("argv, words", [pytest.param(argv, words, id=name) for name, argv, words in BAD])
def test_bad_data_is_one_line_exit_2_and_nothing_written(argv, words, bad_data, tmp_path, capsys):
    from checks import one_error_line

    before = sorted(bad_data.rglob("*"))
    code = main(["train", "arch=dcgan", *(part.format(bad=bad_data) for part in argv), "--out", str(tmp_path / "run")])
    line = one_error_line(capsys)
    assert code == 2, line
    for word in words:
        assert word in line, line
    assert not (tmp_path / "run").exists() and sorted(bad_data.rglob("*")) == before


@pytest.mark.parametrize("layout", ["classes", "flat", "npz"])
def test_a_search_on_own_images_runs_through_report_promote_export_and_generate(layout, own, mlflow_server, tmp_path):
    """``gantune search`` on a preset naming the user's data, then every command that follows a search."""
    import contextlib
    import io

    import yaml

    labelled = layout != "flat"
    preset = {"dataset": "array" if layout == "npz" else "folder", "metric": "fd", "scheduler": "fifo",
              "searcher": {"name": "random", "seed": 0},
              "budget": {"num_samples": 1, "max_steps": 20, "max_concurrent": 1}, "resources": {"cpus_per_trial": 1},
              "params": {"data_root": str(own[layout]), "arch": "mlp", "conditional": labelled, "width": 32,
                         "latent_dim": 16, "batch_size": 32, "eval_every": 10, "eval_samples": 100}}
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(preset))
    name, uri = f"own-{layout}", mlflow_server
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["search", "--config", str(tmp_path / "own.yaml"), "--storage", str(tmp_path), "--name", name,
                     "--tracking-uri", uri, "--experiment", name]) == 0
        best = json.loads((tmp_path / name / "best.json").read_text())
        assert (best["config"]["image_size"], best["config"]["num_classes"]) == (28, 10 if labelled else 0)
        assert main(["report", "--experiment", name, "--tracking-uri", uri, "--out", str(tmp_path / "report")]) == 0
        assert main(["promote", "--experiment", name, "--tracking-uri", uri, "--model-name", name]) == 0
        assert main(["export", "--model", f"models:/{name}@champion", "--tracking-uri", uri,
                     "--out", str(tmp_path / "export")]) == 0
        labels = ["--labels", "3"] if labelled else []
        assert main(["generate", "--model", str(tmp_path / "export"), "--n", "16", *labels,
                     "--out", str(tmp_path / "samples.png")]) == 0
    assert (tmp_path / "report" / "report.html").is_file()
    assert load_exported(tmp_path / "export").generate(4).shape == (4, 1, 28, 28)
    read_picture(tmp_path / "samples.png", grid_side(4))


class FlatFeatures(torch.nn.Module):
    """A feature extractor as a user might export one: a fixed random projection of the pixels."""

    def __init__(self, pixels: int, width: int = 16):
        super().__init__()
        self.project = torch.nn.Linear(pixels, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(images.flatten(1))


@pytest.fixture(scope="module")
def user_evaluators(tmp_path_factory) -> dict[str, Path]:
    """The same extractor saved with torch.export (batch size free) and TorchScript, and one that
    returns images instead of feature vectors."""
    folder = tmp_path_factory.mktemp("evaluators")
    torch.manual_seed(0)
    module = FlatFeatures(28 * 28).eval()
    example = (torch.zeros(4, 1, 28, 28),)
    program = torch.export.export(module, example, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(folder / "features.pt2"))
    torch.jit.save(torch.jit.script(module), str(folder / "features.pt"))
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(folder / "images.pt"))
    return {"export": folder / "features.pt2", "script": folder / "features.pt", "wrong": folder / "images.pt"}


@pytest.mark.parametrize("kind", ["export", "script"])
def test_a_users_feature_extractor_scores_the_run(kind, user_evaluators, own, tmp_path, capsys):
    import hashlib

    path = user_evaluators[kind]
    assert main(["train", "dataset=folder", f"data_root={own['classes']}", "conditional=true", f"evaluator={path}",
                 "arch=mlp", "width=32", "latent_dim=8", "steps=10", "eval_every=10", "eval_samples=100",
                 "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["evaluator_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(FEATURE_METRICS) <= set(metrics) and not {"is", "label_accuracy"} & set(metrics)


def test_a_feature_extractor_that_returns_images_or_a_class_floor_is_one_line_before_the_search(user_evaluators, own, tmp_path, capsys):
    import yaml
    from checks import one_error_line

    preset = {"dataset": "folder", "params": {"data_root": str(own["flat"]), "evaluator": str(user_evaluators["wrong"])}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    code = main(["search", "--config", str(tmp_path / "p.yaml"), "--storage", str(tmp_path / "runs")])
    line = one_error_line(capsys)
    assert code == 2 and "must return one feature vector per image" in line, line
    assert not (tmp_path / "runs").exists()
    preset["floor"] = {"is": 2.0}  # a class metric, which these features cannot give
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    assert main(["search", "--config", str(tmp_path / "p.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    assert "floor.is: 'is' needs class labels" in one_error_line(capsys)


NETS = ["dataset=grid25", "arch=tests.own_nets:sequential_pair", "latent_dim=4", "steps=100", "eval_every=50",
        "eval_samples=500"]


def test_a_users_nets_train_resume_export_and_generate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *NETS, "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "steps=150"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 150
    assert main(["export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "export")]) == 0
    info = json.loads((tmp_path / "export" / "config.json").read_text())
    assert info["config"]["arch"] == "tests.own_nets:sequential_pair"  # where the nets came from
    points = load_exported(tmp_path / "export").generate(7)  # torch alone: the exported program
    assert points.shape == (7, 2)


def test_a_search_trains_a_users_nets_in_its_trials(tmp_path, capsys):
    import yaml

    preset = {"dataset": "grid25", "scheduler": "fifo", "budget": {"num_samples": 2, "max_steps": 100, "max_concurrent": 2},
              "resources": {"cpus_per_trial": 0.5},
              "params": {"arch": "tests.own_nets:sequential_pair", "loss": ["gan", "wgan-gp"], "latent_dim": 4,
                         "spectral_norm": True, "eval_every": 50, "eval_samples": 500}}
    (tmp_path / "nets.yaml").write_text(yaml.safe_dump(preset))
    assert main(["search", "--config", str(tmp_path / "nets.yaml"), "--storage", str(tmp_path), "--name", "nets"]) == 0
    best = json.loads((tmp_path / "nets" / "best.json").read_text())
    assert best["config"]["arch"] == "tests.own_nets:sequential_pair" and best["value"] < 1e9


@pytest.mark.parametrize("arch, words", [
    ("tests.no_such_module:pair", ["cannot be imported", "PYTHONPATH"]),
    ("tests.own_nets:no_such_function", ["has no function 'no_such_function'"]),
    ("tests.own_nets:wrong_shape_pair", ["the generator made (2, 3)", "(2, 2)"]),
])
def test_a_users_nets_that_do_not_import_or_fit_are_one_line(arch, words, tmp_path, capsys):
    from checks import one_error_line

    code = main(["train", *NETS, f"arch={arch}", "--out", str(tmp_path / "run")])
    line = one_error_line(capsys)
    assert code == 2, line
    for word in words:
        assert word in line, line
    assert not (tmp_path / "run").exists()
