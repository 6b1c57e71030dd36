"""The hyperparameter space as Optuna define-by-run code.

A GAN's hyperparameters are conditional: ``clip`` only means something for WGAN, ``gp_weight``
only for WGAN-GP, Adam's betas only for Adam. Define-by-run lets each trial sample its loss first
(and its optimizer, when a preset searches it) and then ask only for the parameters that variant
uses, so a parameter that has no effect is never sampled, never recorded, and never misleads TPE.

``FULL_SPACE`` leaves two keys pinned to the trainer's defaults: ``optimizer`` (each loss's own:
Adam, RMSprop for WGAN) and ``minimax`` (false: the non-saturating generator loss, which Lucic et
al. 2018 and Goodfellow et al. 2014 recommend). A preset searches them by naming them, e.g.
``optimizer: [adam, rmsprop]`` or ``minimax: [false, true]``.

A parameter is one of three things: ``Pinned`` (a constant every trial gets), ``Choice`` (a
categorical) or ``Range`` (a numeric interval, optionally log-scaled). ``FULL_SPACE`` is the
space a search covers when a preset says nothing about a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

from trainables.core.config import KEYS, applies
from trainables.core.losses import LOSSES
from trainables.core.models import ARCHITECTURES
from trainables.data.datasets import DATASETS

Scalar = Union[bool, int, float, str, None]


@dataclass(frozen=True)
class Pinned:
    value: Scalar

    def suggest(self, trial: Any, name: str) -> Scalar:
        return self.value


@dataclass(frozen=True)
class Choice:
    values: tuple[Scalar, ...]

    def suggest(self, trial: Any, name: str) -> Scalar:
        return trial.suggest_categorical(name, list(self.values))


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any, name: str) -> int | float:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


Param = Union[Pinned, Choice, Range]

# The full search space: where a range comes from is said beside it. Lucic et al. 2018 ("Are
# GANs Created Equal?", Table 2, the "wide" ranges) is the reference for every loss's shared
# knobs; it searched them for all the losses here with no per-loss narrowing, which is what a
# search over the loss needs.
FULL_SPACE: dict[str, Param] = {
    "loss": Choice(tuple(LOSSES)),
    "conditional": Choice((False, True)),
    "arch": Choice(tuple(ARCHITECTURES)),
    # Lucic et al.: n_disc in {1, ..., 5}.
    "d_steps": Range(1, 5, integer=True),
    # Lucic et al. (and every paper above) take one generator step per training step and express
    # the D:G ratio through n_disc alone; a preset may still search g_steps.
    "g_steps": Pinned(1),
    # Lucic et al.: clipping 10^[-3, 0], log-uniform (Arjovsky et al.'s 0.01 inside).
    "clip": Range(1e-3, 1.0, log=True),
    # Lucic et al.: lambda 10^[-1, 2], log-uniform (Gulrajani et al.'s 10 for images, 0.1 for toys).
    "gp_weight": Range(0.1, 100.0, log=True),
    # Lucic et al.: learning rate 10^[-5, -2], log-uniform, one rate for both nets; here each net
    # draws its own from that range (two-timescale updates, Heusel et al. 2017).
    "lr_g": Range(1e-5, 1e-2, log=True),
    "lr_d": Range(1e-5, 1e-2, log=True),
    # Lucic et al.: beta1 in [0, 1]; stopped at 0.99 because Adam needs beta1 < 1.
    "beta1": Range(0.0, 0.99),
    # Lucic et al. keep Adam's beta2 near 1; 0.9 (Gulrajani et al.) to 0.999 (Kingma & Ba).
    "beta2": Range(0.9, 0.999),
    # Lucic et al.: batch size 64 throughout; powers of two around it.
    "batch_size": Choice((32, 64, 128, 256)),
    # Lucic et al.: latent 64 (128 for CIFAR); DCGAN's customary 100 beside it.
    "latent_dim": Choice((16, 32, 64, 100, 128)),
    # Salimans et al. 2016: one-sided smoothing, real targets 0.9 (smoothing 0.1); up to 0.3.
    "label_smoothing": Range(0.0, 0.3),
    # Miyato et al. 2018; Kurach et al. 2019 found it helps every loss they tried.
    "spectral_norm": Choice((False, True)),
}

# Sampled first, because whether the others apply depends on them.
_DECIDING_KEYS = ("loss", "optimizer")


def full_space(dataset: str) -> dict[str, Param]:
    """``FULL_SPACE`` for one dataset: only the architectures that take its kind of samples."""
    space = dict(FULL_SPACE)
    if not DATASETS[dataset].is_image:
        usable = tuple(name for name, spec in ARCHITECTURES.items() if not spec.images_only)
        space["arch"] = Pinned(usable[0]) if len(usable) == 1 else Choice(usable)
    return space


class DefineByRun:
    """The define-by-run function OptunaSearch calls once per trial.

    Sampled values are recorded by Optuna itself; the return value holds the pinned values that
    apply to the trial, which Tune merges into the trial's config. A class (not a closure) so that
    Tune can pickle the searcher into its experiment checkpoint for ``--resume``.
    """

    def __init__(self, params: Mapping[str, Param]):
        unknown = set(params) - set(KEYS)
        if unknown:
            raise ValueError(f"not trainer keys: {sorted(unknown)}")
        ordered = [k for k in _DECIDING_KEYS if k in params] + [k for k in KEYS if k in params]
        self.params = {key: params[key] for key in dict.fromkeys(ordered)}

    def choose(self, trial: Any) -> dict[str, Scalar]:
        """Every value that applies to this trial, sampled or pinned."""
        chosen: dict[str, Scalar] = {}
        for key, param in self.params.items():
            if applies(key, chosen):
                chosen[key] = param.suggest(trial, key)
        return chosen

    def __call__(self, trial: Any) -> dict[str, Scalar]:
        return {k: v for k, v in self.choose(trial).items() if isinstance(self.params[k], Pinned)}
