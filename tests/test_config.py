"""Config validation: each bad value is a ConfigError whose one line names the key.

What ``gantune train`` makes of them (exit code 2, nothing written) is tabled in ``test_cli_input.py``.
"""

import pytest

from trainables.core.config import ConfigError, config_from_dict, load_config

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
    ({"lr_g": float("nan")}, "lr_g must be finite"),
    ({"loss": "wgan", "clip": float("inf")}, "clip must be finite"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"mixed_precision": "fp16"}, "unknown mixed_precision .fp16.; choose one of fp32, bf16"),
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


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error():
    from trainables.core.config import resolve_device

    with pytest.raises(ConfigError, match="no CUDA device is available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
