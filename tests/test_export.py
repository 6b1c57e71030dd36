"""Export folders: written whole or not at all, loaded by torch alone, sampled by ``gantune generate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from checks import one_error_line
from images import read_image_grid, read_scatter

from pipelines.cli import main
from trainables.core.checkpoint import load_checkpoint, save_checkpoint
from trainables.core.config import config_from_dict
from trainables.core.models import build_discriminator, build_generator
from trainables.export_reader import CARD_FILE, CONFIG_FILE, PROGRAM_FILE, SAMPLES_FILE, WEIGHTS_FILE

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

# Loads a saved pyfunc model and predicts in a fresh interpreter that sees only the standard
# library, the model's own code and the distributions of ``argv[1]`` (the model's requirements
# with their dependencies): as in an environment built from its requirements.txt alone, every
# other module and distribution is absent to the import system, not merely failing to import.
REQUIREMENTS_ONLY_PREDICT = """
import importlib.abc, importlib.machinery, json, re, sys
visible = json.loads(sys.argv[1])
modules, distributions = set(visible["modules"]), set(visible["distributions"])
stdlib_dirs = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]

def is_visible(top):
    return (top in modules or top in sys.stdlib_module_names or top in sys.builtin_module_names
            or importlib.machinery.PathFinder.find_spec(top, stdlib_dirs) is not None)

class RequirementsOnly(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if not is_visible(name.partition(".")[0]):
            return None
        specs = (finder.find_spec(name, path, target) for finder in self.finders)
        return next((spec for spec in specs if spec is not None), None)
    def find_distributions(self, context=None):
        for finder in self.finders:
            for dist in getattr(finder, "find_distributions", lambda context: ())(context):
                if re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower() in distributions:
                    yield dist
    def invalidate_caches(self):
        for finder in self.finders:
            getattr(finder, "invalidate_caches", lambda: None)()

sys.meta_path[:] = [RequirementsOnly(list(sys.meta_path))]
import mlflow.pyfunc
import numpy as np
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[2])
given = np.load(sys.argv[3])
frame = pd.DataFrame(given["z"], columns=[f"z{i}" for i in range(given["z"].shape[1])])
frame["label"] = given["labels"]
np.save(sys.argv[4], model.predict(frame))
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
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



def test_export_writes_every_file_and_a_card(image_export):
    assert {p.name for p in image_export.iterdir()} == EXPORT_FILES
    info = json.loads((image_export / CONFIG_FILE).read_text())
    assert info["spec"] == {"latent_dim": 16, "conditional": True, "num_classes": 10, "sample_shape": [1, 28, 28]}
    assert info["lineage"]["checkpoint_step"] == "7"
    card = (image_export / CARD_FILE).read_text()
    for expected in ("mlp architecture, conditional", "| lr_g |", "kl_modes", "checkpoint_step"):
        assert expected in card
    read_image_grid(image_export / SAMPLES_FILE, 10)  # a conditional model: a row of 10 per class


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
    from trainables.export_reader import load_exported

    state = load_checkpoint(image_checkpoint)
    module = build_generator(config_from_dict(state["config"]))
    module.load_state_dict(state["generator"])
    module.eval()
    z, labels = torch.randn(3, 16), torch.tensor([0, 4, 9])
    with torch.no_grad():
        assert torch.allclose(load_exported(image_export)(z, labels), module(z, labels), atol=1e-6)


def folder_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def test_existing_out_is_refused_and_left_alone(image_checkpoint, image_export, capsys):
    before = folder_state(image_export)
    assert main(["export", "--checkpoint", str(image_checkpoint), "--out", str(image_export)]) == 2
    error = one_error_line(capsys)
    assert "already exists" in error and "--overwrite" in error
    assert folder_state(image_export) == before


def test_overwrite_replaces_an_export_whole(tmp_path, capsys):
    """Exporting again to the same --out: refused without --overwrite, replaced with it."""
    from trainables.export_reader import load_exported

    first = make_checkpoint(tmp_path / "first" / "checkpoint.pt", dataset="grid25", arch="mlp", width=16, latent_dim=4)
    second = tmp_path / "second" / "checkpoint.pt"
    state = load_checkpoint(first)
    with torch.no_grad():
        for tensor in state["generator"].values():
            tensor.mul_(-3.0)  # other weights, so the two exports generate different points
    state["step"] = 11
    save_checkpoint(second, state)
    out = tmp_path / "exports" / "grid"
    assert main(["export", "--checkpoint", str(first), "--out", str(out)]) == 0
    capsys.readouterr()
    kept = folder_state(out)

    assert main(["export", "--checkpoint", str(second), "--out", str(out)]) == 2
    error = one_error_line(capsys)
    assert "already exists" in error and "--overwrite" in error
    assert folder_state(out) == kept  # the first export is intact, byte for byte

    assert main(["export", "--checkpoint", str(second), "--out", str(out), "--overwrite"]) == 0
    assert {p.name for p in out.iterdir()} == EXPORT_FILES
    info = json.loads((out / CONFIG_FILE).read_text())
    assert info["lineage"] == {"checkpoint": str(second.resolve()), "checkpoint_step": "11"}
    assert (out / WEIGHTS_FILE).read_bytes() != kept[WEIGHTS_FILE][1]
    z = torch.randn(5, 4)
    module = build_generator(config_from_dict(state["config"]))
    module.load_state_dict(state["generator"])
    with torch.no_grad():
        assert torch.allclose(load_exported(out)(z), module.eval()(z), atol=1e-6)
    read_scatter(out / SAMPLES_FILE)
    # Nothing but the export is left beside it: no staging or retired copy.
    assert [p.name for p in out.parent.iterdir()] == ["grid"]


def test_bad_checkpoint_leaves_nothing(tmp_path, capsys):
    bogus = tmp_path / "checkpoint.pt"
    bogus.write_bytes(b"not a checkpoint")
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(bogus), "--out", str(out)]) == 2
    assert "not a gantune checkpoint" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_generate_writes_a_grid_with_chosen_labels(image_export, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["generate", "--model", str(image_export), "--n", "12", "--labels", "0,1,2", "--seed", "1",
                 "--out", str(out)]) == 0
    read_image_grid(out, columns=4, rows=3)  # 12 samples: 4 columns x 3 rows with 2 px padding
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_generate_scatter_for_points(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "checkpoint.pt", dataset="grid25", arch="mlp", width=16, latent_dim=4)
    export = tmp_path / "export"
    assert main(["export", "--checkpoint", str(tmp_path), "--out", str(export)]) == 0
    # Given a folder, export found the checkpoint.pt inside it and says so in the lineage.
    info = json.loads((export / CONFIG_FILE).read_text())
    assert info["lineage"] == {"checkpoint": str(checkpoint.resolve()), "checkpoint_step": "7"}
    assert info["spec"] == {"latent_dim": 4, "conditional": False, "num_classes": 25, "sample_shape": [2]}
    read_scatter(export / SAMPLES_FILE)
    out = tmp_path / "points.png"
    assert main(["generate", "--model", str(export), "--n", "500", "--out", str(out)]) == 0
    read_scatter(out)


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


# ------------------------------------------------------------- DCGAN generators from the trainer


@pytest.fixture(scope="module")
def dcgan_exports(mnist, tmp_path_factory):
    """``dcgan_exports(conditional)``: a DCGAN generator a few steps into training (so BatchNorm's
    running statistics have moved), saved by the trainer and exported with ``gantune export``;
    made once per module."""
    from trainables.core.trainer import Trainer

    made: dict[bool, dict] = {}

    def export(conditional: bool) -> dict:
        if conditional not in made:
            config = config_from_dict(dict(dataset="mnist", arch="dcgan", width=8, latent_dim=16, batch_size=16,
                                           conditional=conditional, device="cpu"))
            trainer = Trainer(config, mnist)
            trainer.run_steps(3)
            folder = tmp_path_factory.mktemp("dcgan")
            trainer.save_checkpoint(folder / "checkpoint.pt")
            out = folder / "export"
            assert main(["export", "--checkpoint", str(folder / "checkpoint.pt"), "--out", str(out)]) == 0
            made[conditional] = {"trainer": trainer, "export": out, "checkpoint": folder / "checkpoint.pt"}
        return made[conditional]

    return export


@pytest.mark.parametrize("conditional", [False, True], ids=["dcgan", "conditional-dcgan"])
def test_dcgan_export_program_is_the_trained_generator(dcgan_exports, conditional):
    from trainables.export_reader import load_exported, load_weights

    dcgan_export = dcgan_exports(conditional)
    out = dcgan_export["export"]
    assert {p.name for p in out.iterdir()} == EXPORT_FILES
    info = json.loads((out / CONFIG_FILE).read_text())
    assert info["spec"] == {"latent_dim": 16, "conditional": conditional, "num_classes": 10, "sample_shape": [1, 28, 28]}
    assert info["config"]["arch"] == "dcgan" and info["lineage"]["checkpoint_step"] == "3"
    read_image_grid(out / SAMPLES_FILE, 10 if conditional else 8)

    exported = load_exported(out)
    rebuilt = build_generator(config_from_dict(info["config"]))
    rebuilt.load_state_dict(load_weights(out))
    rebuilt.eval()
    trained = dcgan_export["trainer"].generator.eval()
    for n in (1, 7, 33):  # the batch size is free, and BatchNorm runs on its statistics in eval mode
        z = torch.randn(n, 16, generator=torch.Generator().manual_seed(n))
        labels = torch.arange(n) % 10 if conditional else None
        images = exported(z, labels)
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
        assert images.isfinite().all() and images.min() >= -1.0 and images.max() <= 1.0
        with torch.no_grad():
            assert torch.allclose(images, rebuilt(z, labels), atol=1e-5)
            assert torch.allclose(images, trained(z, labels), atol=1e-5)
    if conditional:
        z = torch.randn(1, 16).repeat(10, 1)
        per_class = exported(z, torch.arange(10))
        assert all(not torch.equal(per_class[0], per_class[k]) for k in range(1, 10))  # labels are used


def test_conditional_pyfunc_model_takes_a_label_column(dcgan_exports, tmp_path):
    """The MLflow model of a conditional generator: z columns plus ``label`` in, one image per row out."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from pipelines.registry.export_writer import record_from_checkpoint
    from pipelines.registry.pyfunc_model import save_generator_model
    from trainables.export_reader import load_exported

    dcgan_export = dcgan_exports(True)
    saved = save_generator_model(record_from_checkpoint(dcgan_export["checkpoint"]), tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(saved))
    input_names = model.metadata.signature.inputs.input_names()
    assert input_names == [f"z{i}" for i in range(16)] + ["label"]

    z = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32).repeat(4, axis=0)
    frame = pd.DataFrame(z, columns=[f"z{i}" for i in range(16)])
    frame["label"] = np.array([3, 3, 5, 8], dtype=np.int64)
    images = model.predict(frame)
    assert images.shape == (4, 1, 28, 28) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= -1.0 and images.max() <= 1.0
    assert np.array_equal(images[0], images[1])  # same noise, same label: same image
    assert not np.allclose(images[0], images[2]) and not np.allclose(images[2], images[3])
    expected = load_exported(dcgan_export["export"])(torch.from_numpy(z), torch.tensor([3, 3, 5, 8]))
    np.testing.assert_allclose(images, expected.numpy(), atol=1e-5)


def requirement_names(requirements: Path) -> set[str]:
    """The distributions a requirements file names, normalised."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = [line.strip() for line in requirements.read_text().splitlines()]
    return {canonicalize_name(Requirement(line).name) for line in lines if line and not line.startswith(("#", "-"))}


def with_dependencies(names: set[str]) -> set[str]:
    """The installed distributions among ``names`` and everything they depend on, recursively."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pending, found = list(names), set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # an optional dependency that is not installed here
        found.add(name)
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules the installed ``distributions`` provide."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    return {module for module, dists in packages_distributions().items()
            if any(canonicalize_name(dist) in distributions for dist in dists)}


def test_pyfunc_model_loads_and_predicts_with_nothing_but_its_requirements(image_checkpoint, tmp_path):
    """Serving installs the model's requirements.txt and nothing else: loading and predicting must
    import no other package (torchvision, safetensors, Ray, ...), and each requirement is used."""
    import mlflow.pyfunc
    import numpy as np

    from pipelines.registry.export_writer import record_from_checkpoint
    from pipelines.registry.pyfunc_model import save_generator_model

    record = record_from_checkpoint(image_checkpoint)
    saved = save_generator_model(record, tmp_path / "model")
    named = requirement_names(Path(mlflow.pyfunc.get_model_dependencies(str(saved))))
    distributions = with_dependencies(named)
    own_code = {path.name for path in (saved / "code").iterdir()}
    visible = {"modules": sorted(modules_of(distributions) | own_code), "distributions": sorted(distributions)}
    z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    labels = np.arange(6, dtype=np.int64) % 10
    np.savez(tmp_path / "input.npz", z=z, labels=labels)

    answer = subprocess.run([sys.executable, "-c", REQUIREMENTS_ONLY_PREDICT, json.dumps(visible), str(saved),
                             str(tmp_path / "input.npz"), str(tmp_path / "output.npy")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert answer.returncode == 0, answer.stderr[-3000:]
    imported = set(json.loads(answer.stdout.splitlines()[-1]))
    unused = [name for name in sorted(named) if not modules_of({name}) & imported]
    assert unused == []  # no requirement is listed for nothing
    with torch.no_grad():
        expected = record.build()(torch.from_numpy(z), torch.from_numpy(labels))
    np.testing.assert_allclose(np.load(tmp_path / "output.npy"), expected.numpy(), atol=1e-5)
