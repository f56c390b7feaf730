"""Zoo presets: which tasks, architectures, members and hyper-parameters a build trains.

A *family* groups tasks that share an input space. Per architecture, a *base* model is trained on
the family's base task; *fine-tuned* members start from it (head re-initialised when the task
differs), *independent* members start from their own seeded init. Every run keeps its last
``keep`` epochs as checkpoints (the late-epoch checkpoints of the Tiny Model Zoo).
Architecture templates use ``{k}`` for the task's class count.
"""

from __future__ import annotations

from dataclasses import dataclass

from igpg_zoo.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """One hyper-parameter setting of a member run."""

    seed: int
    lr: float = 1e-2
    batch_size: int = 64


@dataclass(frozen=True)
class Family:
    base_task: str
    archs: tuple[str, ...]  # templates, "{k}" = number of classes
    tasks: tuple[str, ...]
    base_epochs: int = 12
    finetune_epochs: int = 6
    scratch_epochs: int = 12
    finetuned: tuple[Variant, ...] = ()
    independent: tuple[Variant, ...] = (Variant(0),)
    keep: int = 3  # checkpoints per run: the last `keep` epochs
    base: Variant = Variant(0)  # the base run's hyper-parameters


@dataclass(frozen=True)
class Preset:
    name: str
    families: tuple[Family, ...]
    holdout: tuple[str, ...] = ()  # tasks a generator benchmark should hold out (tagged "holdout")
    about: str = ""

    @property
    def tasks(self) -> list[str]:
        """Every task once, in family order (families may share tasks: one per learning-rate group)."""
        return list(dict.fromkeys(t for f in self.families for t in f.tasks))


DIGITS_ARCHS = ("cnn-i1x8x8-c8k3-c16k3-o{k}", "cnn-i1x8x8-c16k3-c32k3-o{k}-gelu", "mlp-i64-h32-o{k}")
MNIST1D_ARCHS = ("cnn-i1x40-c8k5-c16k5-o{k}", "mlp-i40-h64-o{k}")
FASHION_ARCHS = ("cnn-i1x14x14-c8k3-c16k3-o{k}", "mlp-i196-h32-o{k}")
FT2 = (Variant(0, 1e-2), Variant(1, 5e-3))

TINY = Preset("tiny", (
    Family("digits[classes=0-4][n=200]", ("mlp-i64-h16-o{k}",),
           ("digits[classes=0-4][n=200]", "digits[classes=3,5,8][n=120]"),
           base_epochs=3, finetune_epochs=2, scratch_epochs=3, finetuned=(Variant(0, 1e-2, 16),),
           independent=(Variant(100, 1e-2, 16),), keep=2),
), about="seconds; for tests")

DEMO = Preset("demo", (
    Family("digits", DIGITS_ARCHS, (
        "digits", "digits[classes=0-4]", "digits[classes=5-9]", "digits[classes=3,5,8]",
        "digits[classes=2,5,8]", "digits[classes=0,1,7]", "digits[rot=90]", "digits[invert]",
        "digits[perm=1]", "digits[noise=0.3]", "digits[classes=0-4][rot=180]"),
        finetuned=FT2, independent=(Variant(100, 1e-2),)),
    Family("mnist1d", MNIST1D_ARCHS, ("mnist1d", "mnist1d[classes=0-4]"), base_epochs=8,
           finetune_epochs=4, scratch_epochs=8, finetuned=(Variant(0),), independent=(Variant(100),)),
    Family("iris", ("mlp-i4-h16-o{k}",), ("iris",), scratch_epochs=30, independent=(Variant(100), Variant(101))),
    Family("wine", ("mlp-i13-h16-o{k}",), ("wine",), scratch_epochs=30, independent=(Variant(100), Variant(101))),
    Family("breast_cancer", ("mlp-i30-h16-o{k}",), ("breast_cancer",), scratch_epochs=20,
           independent=(Variant(100), Variant(101))),
), about="the README's main job: a few minutes on 2 cores")

FULL = Preset("full", (
    Family("digits", DIGITS_ARCHS + ("cnn-i1x8x8-c8k3-c16k3-h32-o{k}-tanh",), (
        "digits", "digits[classes=0-4]", "digits[classes=5-9]", "digits[classes=3,5,8]",
        "digits[classes=2,5,8]", "digits[classes=0,1,7]", "digits[classes=4,6,9]", "digits[classes=1,2,3,4]",
        "digits[classes=0,8]", "digits[rot=90]", "digits[rot=180]", "digits[rot=270]", "digits[invert]",
        "digits[flip]", "digits[perm=1]", "digits[perm=2]", "digits[noise=0.3]",
        "digits[classes=0-4][rot=180]", "digits[classes=5-9][invert]", "digits[classes=2,5,8][rot=90]"),
        finetuned=FT2, independent=(Variant(100, 5e-3),)),
    Family("mnist1d", MNIST1D_ARCHS, ("mnist1d", "mnist1d[classes=0-4]", "mnist1d[classes=5-9]",
                                      "mnist1d[flip]", "mnist1d[classes=3,5,8]"),
           base_epochs=8, finetune_epochs=4, scratch_epochs=8, finetuned=FT2, independent=(Variant(100),)),
    Family("fashion_mnist[n=3000][size=14]", FASHION_ARCHS, (
        "fashion_mnist[n=3000][size=14]", "fashion_mnist[classes=0-4][n=2000][size=14]",
        "fashion_mnist[classes=5-9][n=2000][size=14]", "fashion_mnist[classes=0,2,4,6][n=2000][size=14]"),
        base_epochs=6, finetune_epochs=3, scratch_epochs=6, finetuned=(Variant(0),), independent=(Variant(100),)),
    Family("iris", ("mlp-i4-h16-o{k}",), ("iris",), scratch_epochs=30,
           independent=tuple(Variant(100 + i) for i in range(4))),
    Family("wine", ("mlp-i13-h16-o{k}",), ("wine",), scratch_epochs=30,
           independent=tuple(Variant(100 + i) for i in range(4))),
    Family("breast_cancer", ("mlp-i30-h16-o{k}",), ("breast_cancer",), scratch_epochs=20,
           independent=tuple(Variant(100 + i) for i in range(4))),
), holdout=("digits[classes=2,5,8][rot=90]", "digits[classes=4,6,9]", "mnist1d[classes=3,5,8]",
            "fashion_mnist[classes=0,2,4,6][n=2000][size=14]"),
   about="for the generator benchmark; some tasks are tagged 'holdout'")

#: 3x32x32 colour tasks for timm models at their usual 3-channel input, and a BatchNorm smallnet.
#: Options that shrink a dataset come before the ones that transform every image (cheaper).
TIMM_CONV_ARCHS = ("timm/test_resnet?num_classes={k}&img_size=32", "timm/test_efficientnet?num_classes={k}&img_size=32",
                   "cnn-i3x32x32-c16k3-c32k3-c64k3-h512-h128-o{k}-bn")
TIMM_VIT_ARCHS = ("timm/test_vit?num_classes={k}&img_size=32",)  # a ViT wants a smaller learning rate
TIMM_TASKS = (
    "digits[colour=1][size=32]", "digits[classes=0-4][colour=1][size=32]", "digits[classes=5-9][colour=2][size=32]",
    "digits[rgb][size=32]", "shapes[n=1200][ntest=600]", "shapes[classes=0,1,2][n=900][ntest=300]",
    "fashion_mnist[n=1200][ntest=600][colour=1][size=32]",
    "fashion_mnist[classes=0-4][n=1200][ntest=500][colour=3][size=32]",
    "digits[classes=3,5,8][colour=3][size=32]")
TIMM_HOLDOUT = ("digits[classes=3,5,8][colour=3][size=32]",
                "fashion_mnist[classes=0-4][n=1200][ntest=500][colour=3][size=32]")
TIMM = Preset("timm", (
    Family("digits[colour=1][size=32]", TIMM_CONV_ARCHS, TIMM_TASKS, base_epochs=6, finetune_epochs=3,
           scratch_epochs=6, finetuned=(Variant(0, 1e-3),), independent=(Variant(100, 3e-3),), keep=2),
    Family("digits[colour=1][size=32]", TIMM_VIT_ARCHS, TIMM_TASKS, base_epochs=6, finetune_epochs=3,
           scratch_epochs=6, finetuned=(Variant(0, 2.5e-4),), independent=(Variant(100, 5e-4),), keep=2,
           base=Variant(0, 5e-4)),  # at the default 1e-2 the ViT does not learn
), holdout=TIMM_HOLDOUT,
   about="timm test_resnet / test_efficientnet / test_vit and a BatchNorm CNN (100k-375k parameters) on 3x32x32 "
         "colour tasks; needs the igpg-zoo-timm plugin and dataset-fashion-mnist")

PRESETS = {p.name: p for p in (TINY, DEMO, FULL, TIMM)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown zoo preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
