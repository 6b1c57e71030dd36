"""Config validation: each bad input is one line naming the key, exit code 2, nothing written."""

import subprocess
import sys

import pytest

from trainables.config import ConfigError, config_from_dict, load_config

BAD_CONFIGS = [
    ({"lr_g": 0}, "lr_g must be > 0"),
    ({"lr_d": -1e-4}, "lr_d must be > 0"),
    ({"loss": "wgan", "clip": 0}, "clip must be > 0"),
    ({"loss": "wgan-gp", "gp_weight": -1}, "gp_weight must be >= 0"),
    ({"d_steps": 0}, "d_steps must be >= 1"),
    ({"loss": "bogus"}, "unknown loss 'bogus'"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"clip": 0.01}, "clip does not apply to loss 'gan'"),
    ({"loss": "wgan", "gp_weight": 10}, "gp_weight does not apply to loss 'wgan'"),
    ({"loss": "hinge", "label_smoothing": 0.1}, "label_smoothing does not apply to loss 'hinge'"),
    ({"lr_gen": 1e-4}, "unknown key 'lr_gen'"),
    ({"batch_size": "big"}, "batch_size must be an integer"),
    ({"conditional": "yes"}, "conditional must be true or false"),
    ({"dataset": "grid25", "arch": "dcgan"}, "arch 'dcgan' needs an image dataset"),
]


@pytest.mark.parametrize("raw, message", BAD_CONFIGS)
def test_bad_config_names_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_variant_defaults_apply_only_to_their_variant():
    wgan = config_from_dict({"loss": "wgan"})
    assert (wgan.clip, wgan.optimizer, wgan.d_steps, wgan.gp_weight, wgan.beta1) == (0.01, "rmsprop", 5, None, None)
    gp = config_from_dict({"loss": "wgan-gp"})
    assert (gp.gp_weight, gp.clip, gp.d_steps, gp.optimizer) == (10.0, None, 5, "adam")
    gan = config_from_dict({})
    assert (gan.minimax, gan.label_smoothing, gan.clip, gan.d_steps) == (False, 0.0, None, 1)
    assert config_from_dict(gp.to_dict()) == gp


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: grid25\narch: mlp\nlr_g: 1.0e-4\n")
    config = load_config(path, ["lr_g=3e-4", "loss=wgan-gp", "gp_weight=0.5"])
    assert (config.dataset, config.lr_g, config.gp_weight) == ("grid25", 3e-4, 0.5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["lr_g=-1"], "lr_g must be > 0"),
        (["loss=gan", "clip=0.1"], "clip does not apply"),
        (["loss=wgan", "gp_weight=1"], "gp_weight does not apply"),
        (["nonsense=1"], "unknown key 'nonsense'"),
        (["d_steps=0"], "d_steps must be >= 1"),
    ],
)
def test_cli_rejects_bad_config_before_writing(tmp_path, extra, message):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "train", "dataset=grid25", "arch=mlp", *extra, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_cli_rejects_missing_and_malformed_yaml(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("loss: [gan\n")
    for config, message in ((tmp_path / "missing.yaml", "does not exist"), (broken, "not valid YAML")):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "train", "--config", str(config)], capture_output=True, text=True
        )
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error():
    from trainables.config import resolve_device

    with pytest.raises(ConfigError, match="no CUDA device is available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.parametrize("under_file", [False, True], ids=["out-is-a-file", "out-under-a-file"])
def test_train_out_naming_a_file_is_one_line_and_writes_nothing(tmp_path, under_file):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n")
    out = existing / "run" if under_file else existing
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "train", "dataset=grid25", "arch=mlp", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    expected = "is not a writable folder" if under_file else "is a file; give a folder"
    assert len(lines) == 1 and f"--out {out}" in lines[0] and expected in lines[0]
    assert existing.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
