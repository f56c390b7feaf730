"""Training recipes: every setting that shapes a generator, with its defaults defined once.

The defaults live in the config dataclasses (``TokenizerConfig``, ``PriorConfig``, ``PriorTrainConfig``
below); a named recipe is a set of changes to them, and ``RECIPES`` is the only table of them:

    default  the dataclasses as they are: 50 epochs, recombination 2, dropout 0.1
    fast     the demo: fewer tokenizer and prior steps, so the demo zoo trains in minutes on 2 CPU cores
    best     80 epochs, checked recombination (tol 0.02) and member standings: the best measured recipe,
             not the default because it costs about twice the training time

A YAML file (``igpg-zoo train --config FILE``) holds the same sections (``recipe: NAME`` picks the
base, default ``default``); unknown keys are refused. The resolved recipe, name and every value, is
stored in each artifact's config. Generation settings (top-p 0.9, copies dropped) are the defaults of
``SamplingSettings`` and ``GenerateRequest``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from igpg_zoo.errors import ConfigError, GeneratorError
from igpg_zoo.igpg.prior import PriorConfig
from igpg_zoo.igpg.vqvae import TokenizerConfig


@dataclass
class PriorTrainConfig:
    epochs: float | None = 50.0  # passes over the zoo's sequences: the same memorisation budget for any zoo size
    steps: int | None = None  # when set, overrides epochs
    batch_size: int = 16  # sequences per step (per process)
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    recombine: float = 2.0  # finest codes per sequence swapped for a sibling's, on average: fewer exact copies
    recombine_tol: float | None = None  # curation: only swaps within this accuracy drop on a train sample
    recombine_checks: int = 64  # curation: swaps checked per record at most (a seeded subset)
    quality: bool = False  # curation: condition on each member's standing in its group
    seed: int = 0
    memory_gb: float | None = None  # memory the step may use (igpg/memory.py); None: what the device has free
    ckpt_every: int = 100
    log_every: int = 25

    def __post_init__(self):
        bad = [f"{name} {value} ({rule})" for name, value, ok, rule in (
            ("epochs", self.epochs, self.epochs is None or (math.isfinite(self.epochs) and self.epochs > 0), "> 0"),
            ("steps", self.steps, self.steps is None or self.steps >= 1, ">= 1"),
            ("batch_size", self.batch_size, self.batch_size >= 1, ">= 1"),
            ("recombine", self.recombine, math.isfinite(self.recombine) and self.recombine >= 0, ">= 0"),
            ("recombine_tol", self.recombine_tol, self.recombine_tol is None or (
                math.isfinite(self.recombine_tol) and 0 <= self.recombine_tol <= 1), "in [0, 1]"),
            ("recombine_checks", self.recombine_checks, self.recombine_checks >= 1, ">= 1"),
            ("memory_gb", self.memory_gb, self.memory_gb is None or self.memory_gb > 0, "> 0")) if not ok]
        if self.epochs is None and self.steps is None:
            bad.append("epochs or steps (one must be set)")
        if self.recombine_tol is not None and not self.recombine:
            bad.append("recombine_tol (checks recombined swaps: set recombine > 0)")
        if bad:
            raise ConfigError(f"bad training setting: {', '.join(bad)}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = (step - self.warmup) / max(1, (self.steps or 1) - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


#: PriorConfig fields a recipe sets; the rest (vocabulary, condition sizes) come from the tokenizer and
#: the zoo. ``block_size`` None: the zoo's longest sequence, at most ``PriorConfig.block_size`` (longer models are
#: cut into windows); ``max_windows`` None: the most windows a training model needs.
PRIOR_KEYS = ("n_layer", "n_head", "n_embd", "dropout", "block_size", "window_context", "cond_dropout",
              "max_windows")
RECIPES: dict[str, dict] = {
    "default": {},
    "fast": {"tokenizer": {"hidden": (256, 256), "steps": 400, "refine_steps": 2000}, "train": {"epochs": 30}},
    "best": {"train": {"epochs": 80, "recombine_tol": 0.02, "quality": True}},
}


@dataclass(frozen=True)
class Recipe:
    name: str = "default"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    prior: dict = field(default_factory=lambda: {"block_size": None})  # PRIOR_KEYS -> value
    train: PriorTrainConfig = field(default_factory=PriorTrainConfig)

    def __post_init__(self):
        unknown = sorted(set(self.prior) - set(PRIOR_KEYS))
        if unknown:
            raise ConfigError(f"unknown prior key(s) {', '.join(unknown)}; known: {', '.join(PRIOR_KEYS)}")
        shape = {k: v for k, v in self.prior.items() if v is not None}
        PriorConfig(**shape)  # refuses a bad shape now, not after the tokenizer has trained

    def prior_config(self, **derived) -> PriorConfig:
        """The PriorConfig of this recipe with the fields the zoo decides (``derived``)."""
        shape = {k: v for k, v in self.prior.items() if v is not None}
        return PriorConfig(**{**shape, **derived})

    def with_overrides(self, epochs: float | None = None, seed: int | None = None) -> Recipe:
        """This recipe with the command line's --epochs and --seed."""
        train = self.train
        if epochs is not None:
            train = replace(train, epochs=epochs, steps=None)
        if seed is not None:
            train = replace(train, seed=seed)
        return replace(self, train=train)

    def to_dict(self) -> dict:
        """The resolved recipe as stored in artifacts: its name and every value."""
        prior = ({k: getattr(PriorConfig(), k) for k in PRIOR_KEYS} | {"block_size": None, "window_context": None,
                                                                  "max_windows": None}
                 | dict(self.prior))  # None: decided by the zoo (the prior artifact stores what it was)
        return {"name": self.name, "tokenizer": self.tokenizer.to_dict(), "prior": prior, "train": asdict(self.train)}


_CLASSES = {"tokenizer": TokenizerConfig, "train": PriorTrainConfig}


def _section(cls, values, where: str) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"'{where}' must be a mapping of keys to values")
    known = {f.name for f in fields(cls)} if cls is not None else set(PRIOR_KEYS)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in '{where}'; known: {', '.join(sorted(known))}")
    return values


def build_recipe(changes: dict, name: str) -> Recipe:
    """The default dataclasses with ``changes`` ({tokenizer: {...}, prior: {...}, train: {...}}) applied."""
    tok = _section(TokenizerConfig, changes.get("tokenizer", {}), "tokenizer")
    prior = _section(None, changes.get("prior", {}), "prior")
    train = _section(PriorTrainConfig, changes.get("train", {}), "train")
    try:
        return Recipe(name, TokenizerConfig(**tok), {"block_size": None, **prior}, PriorTrainConfig(**train))
    except (TypeError, ValueError, GeneratorError) as exc:  # a value of the wrong type, or out of range
        raise ConfigError(f"recipe '{name}': {exc}") from None


def get_recipe(name: str = "default") -> Recipe:
    """The named recipe (``RECIPES``)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; use one of {', '.join(RECIPES)} or --config FILE.yaml")
    return build_recipe(RECIPES[name], name)


def load_recipe(path: Path, base: str | None = None) -> Recipe:
    """A recipe from a YAML file: ``recipe: NAME`` (or ``base``, else default) with its sections applied."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {str(exc).splitlines()[0]}; fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping with sections tokenizer, prior, train")
    unknown = sorted(set(data) - {"recipe", "tokenizer", "prior", "train"})
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))} in {path}; known: recipe, tokenizer, "
                          "prior, train")
    name = str(data.get("recipe") or base or "default")
    get_recipe(name)  # a known name
    merged = {s: {**RECIPES[name].get(s, {}), **_section(None if s == "prior" else _CLASSES[s], data.get(s) or {}, s)}
              for s in ("tokenizer", "prior", "train")}
    return build_recipe(merged, f"{name}+{Path(path).name}")
