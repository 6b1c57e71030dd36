"""Search spaces and presets: conditional sampling with real Optuna studies, and preset validation."""

from __future__ import annotations

import optuna
import pytest
import yaml

from search_spaces.preset import PRESETS_DIR, load_preset, preset_from_dict, with_overrides
from search_spaces.space import Choice, DefineByRun, Pinned, Range, full_space
from trainables.core.config import ConfigError, config_from_dict

BUNDLED = sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def sample_configs(space: DefineByRun, count: int) -> list[tuple[dict, dict]]:
    """(everything the space chose, what Optuna recorded as sampled) for ``count`` random trials."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    chosen = []
    for _ in range(count):
        trial = study.ask()
        chosen.append((space.choose(trial), dict(trial.params)))
        study.tell(trial, 0.0)
    return chosen


def test_bundled_presets_include_the_issue_presets_and_load():
    assert {"mnist", "grid25", "wgan_family"} <= set(BUNDLED)
    for name in BUNDLED:
        preset = load_preset(name)
        assert preset.name == name


@pytest.mark.parametrize("name", BUNDLED)
def test_resolved_preset_round_trips_through_yaml(name):
    preset = load_preset(name)
    again = preset_from_dict(yaml.safe_load(yaml.safe_dump(preset.to_dict())), name=name)
    assert again == preset


def test_full_space_samples_conditional_keys_only_where_they_apply():
    space = DefineByRun({**full_space("mnist"), "dataset": Pinned("mnist"), "steps": Pinned(10)})
    seen_losses = set()
    for chosen, sampled in sample_configs(space, 300):
        loss = chosen["loss"]
        seen_losses.add(loss)
        assert ("clip" in sampled) == (loss == "wgan")
        assert ("gp_weight" in sampled) == (loss == "wgan-gp")
        assert ("label_smoothing" in sampled) == (loss == "gan")
        assert ("beta1" in sampled) == (loss != "wgan")  # WGAN trains with RMSprop, which has no betas
        assert 1 <= sampled["d_steps"] <= 5 and "g_steps" not in sampled and chosen["g_steps"] == 1
        assert 1e-5 <= sampled["lr_g"] <= 1e-2 and 1e-5 <= sampled["lr_d"] <= 1e-2
        assert "dataset" not in sampled and "steps" not in sampled
        config = config_from_dict(chosen)  # every sampled combination is a config the trainer accepts
        assert config.steps == 10
    assert seen_losses == {"gan", "lsgan", "hinge", "wgan", "wgan-gp"}


def test_pinned_values_are_returned_to_tune_and_never_sampled():
    space = DefineByRun({"loss": Choice(("wgan", "hinge")), "clip": Pinned(0.05), "lr_g": Range(1e-4, 1e-3, log=True)})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        constants = space(trial)
        if trial.params["loss"] == "wgan":
            assert constants == {"clip": 0.05}
        else:
            assert constants == {}
        assert "clip" not in trial.params
        study.tell(trial, 0.0)


def test_point_datasets_pin_the_mlp_architecture():
    assert full_space("grid25")["arch"] == Pinned("mlp")
    assert isinstance(full_space("mnist")["arch"], Choice)


def test_preset_narrows_pins_and_keeps_the_rest_of_the_full_space():
    preset = preset_from_dict({
        "dataset": "grid25",
        "params": {"loss": ["wgan", "wgan-gp"], "lr_g": {"low": "1e-4", "high": 1e-3, "log": True}, "width": 32,
                   "d_steps": {"low": 2, "high": 4}},
    })
    assert preset.params["loss"] == Choice(("wgan", "wgan-gp"))
    assert preset.params["lr_g"] == Range(1e-4, 1e-3, log=True)
    assert preset.params["d_steps"] == Range(2, 4, integer=True)
    assert preset.params["width"] == Pinned(32)
    assert preset.params["lr_d"] == full_space("grid25")["lr_d"]
    assert (preset.metric, preset.mode) == ("js_modes", "min")
    for chosen, _ in sample_configs(preset.define_by_run(), 50):
        assert chosen["dataset"] == "grid25" and chosen["steps"] == preset.budget.max_steps
        assert 2 <= chosen["d_steps"] <= 4


def test_command_line_overrides_replace_budget_and_resources_only_when_given():
    preset = load_preset("grid25")
    changed = with_overrides(preset, num_samples=3, cpus_per_trial=0.5, time_budget=None)
    assert changed.budget.num_samples == 3 and changed.resources.cpus_per_trial == 0.5
    assert changed.budget.max_steps == preset.budget.max_steps
    assert preset.budget.time_budget is not None  # the flag not given leaves the preset's budget
    assert changed.budget.time_budget == preset.budget.time_budget


BAD_PRESETS = [
    ({"dataset": "grid25", "params": {"loss": ["gan", "wgan-xl"]}}, "params.loss: unknown loss 'wgan-xl'"),
    ({"dataset": "grid25", "params": {"loss": []}}, "params.loss: empty choice list"),
    ({"dataset": "grid25", "budget": {"num_samples": -4}}, "budget.num_samples: must be an integer >= 1, got -4"),
    ({"dataset": "grid25", "budget": {"time_budget": -1}}, "budget.time_budget: must be a number > 0"),
    ({"dataset": "grid25", "budget": {"max_steps": 0}}, "budget.max_steps: must be an integer >= 1"),
    ({"dataset": "grid25", "budget": {"cohort": 0}}, "budget.cohort: must be an integer >= 1"),
    ({"dataset": "grid25", "budget": {"cohort": 8}, "scheduler": "pbt"},
     "budget.cohort: a cohort trains with the asha or fifo scheduler, not pbt"),
    ({"dataset": "grid25", "budget": {"cohort": 8}, "scheduler": {"name": "asha", "reduction_factor": 2.5}},
     "scheduler.reduction_factor: must be a whole number when trials train in cohorts"),
    ({"params": {}}, "dataset: missing"),
    ({"dataset": "svhn"}, "dataset: unknown value 'svhn'"),
    ({"dataset": "grid25", "metrics": "fd"}, "metrics: unknown key"),
    ({"dataset": "grid25", "metric": "fd"}, "metric: 'fd' is not reported for grid25"),
    ({"dataset": "mnist", "metric": "fd", "mode": "max"}, "mode: fd is better when lower; use mode: min"),
    ({"dataset": "grid25", "metric": "kl_modes"}, "metric: 'kl_modes' is a diagnostic that a bad generator can win"),
    ({"dataset": "mnist", "metric": "precision"}, "optimise one of fd, kid, coverage"),
    ({"dataset": "grid25", "floor": {"fd": 3}}, "floor.fd: unknown key"),
    ({"dataset": "grid25", "floor": {"modes_covered": "many"}}, "floor.modes_covered: must be a number >= 0"),
    ({"dataset": "grid25", "params": {"lr": 1e-3}}, "params.lr: unknown trainer key"),
    ({"dataset": "grid25", "params": {"steps": 100}}, "params.steps: set budget.max_steps instead"),
    ({"dataset": "grid25", "params": {"lr_g": {"low": 1e-2, "high": 1e-4}}}, "params.lr_g: low 0.01 is above high"),
    ({"dataset": "grid25", "params": {"lr_g": {"low": 0, "high": 1e-4, "log": True}}}, "params.lr_g.low: lr_g must be > 0"),
    ({"dataset": "grid25", "params": {"loss": {"low": 1, "high": 2}}}, "params.loss: a {low, high} range needs a numeric key"),
    ({"dataset": "grid25", "params": {"arch": "dcgan"}}, "params.arch: arch 'dcgan' needs an image dataset"),
    ({"dataset": "grid25", "params": {"loss": ["gan", "hinge"], "clip": 0.05}}, "params.clip: applies only to loss wgan"),
    ({"dataset": "grid25", "params": {"d_steps": [1, 2.5]}}, "params.d_steps: d_steps must be an integer"),
    ({"dataset": "grid25", "searcher": "cmaes"}, "searcher.name: unknown value 'cmaes'"),
    ({"dataset": "grid25", "scheduler": {"name": "asha", "grace_period": 10**6}}, "scheduler.grace_period: 1000000 steps exceeds"),
    ({"dataset": "grid25", "scheduler": {"name": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor: must be a number > 1"),
    ({"dataset": "grid25", "scheduler": {"name": "pbt", "mutate": ["clip"]}}, "'clip' does not apply to every trial"),
    ({"dataset": "grid25", "scheduler": {"name": "pbt", "mutate": ["width"]}}, "'width' is not a searched numeric param"),
    ({"dataset": "grid25", "resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial: must be a number > 0"),
    ({"dataset": "grid25", "params": {"optimizer": "rmsprop", "loss": "gan", "beta1": 0.5}}, None),
]


@pytest.mark.parametrize("raw, message", BAD_PRESETS, ids=[m or "betas-unused" for _, m in BAD_PRESETS])
def test_bad_presets_fail_with_one_line_naming_the_key(raw, message):
    if message is None:
        # Betas pinned for a search that only trains with RMSprop: harmless, never sampled or set.
        preset = preset_from_dict(raw, source="p.yaml")
        assert all("beta1" not in chosen for chosen, _ in sample_configs(preset.define_by_run(), 5))
        return
    with pytest.raises(ConfigError) as caught:
        preset_from_dict(raw, source="p.yaml")
    text = str(caught.value)
    assert text.startswith("preset p.yaml: ") and "\n" not in text
    assert message in text


def test_shipped_presets_optimise_an_objective_and_state_a_floor():
    from trainables.quality.objectives import IMAGE_OBJECTIVES, MIXTURE_OBJECTIVES

    for name in ("grid25", "ring8"):
        preset = load_preset(name)
        assert preset.metric == MIXTURE_OBJECTIVES[0] == "js_modes"
        assert preset.floor["modes_covered"] >= 0.8 * {"grid25": 25, "ring8": 8}[name]
    assert load_preset("mnist").metric in IMAGE_OBJECTIVES


def test_preset_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: grid25\nparams: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml.*not valid YAML"):
        load_preset(broken)
