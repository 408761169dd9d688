"""Every named PyramidNet configuration, as data: the one table of the zoo.

An `Architecture` is what `PyramidNet` needs beyond its defaults, with what
the papers say of it: the exact trainable parameter counts of SPEC sections
1 and 1b, and the published errors. The registry (`applications.build`,
`list_models`) and the named builders are generated from `ARCHITECTURES`;
every architecture is registered plain and with each regularizer.
"""

import dataclasses

REGULARIZED = ("drop", "sepdrop", "shakedrop")


def default_name(depth, alpha, regularization=None, variant="cifar", widening="additive"):
    """E.g. "pyramidnet110_a48_sepdrop", "pyramidnet200_a300_imagenet",
    "pyramidnet110_a4.75_multiplicative"."""
    parts = [f"pyramidnet{depth}_a{alpha:g}"]
    if variant != "cifar":
        parts.append(variant)
    if widening != "additive":
        parts.append(widening)
    if regularization:
        parts.append(regularization)
    return "_".join(parts)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One configuration.

    `parameters` maps a class count to the exact trainable parameter count
    (SPEC; empty where SPEC has none). `paper_errors` maps a regularization
    (None for plain) to the published errors in %: CIFAR-10 / CIFAR-100 for
    "cifar", top-1 / top-5 single-crop 224 for "imagenet" (None where not
    published). `builder_default` marks the alpha a named builder
    (`PyramidNet101ImageNet()`) defaults to, per regularization kind.
    """

    depth: int
    alpha: float
    bottleneck: bool
    variant: str = "cifar"
    widening: str = "additive"
    head_dropout: float = 0.0
    parameters: dict = dataclasses.field(default_factory=dict)
    paper_errors: dict = dataclasses.field(default_factory=dict)
    builder_default: tuple = ()  # ("plain",), ("regularized",) or both

    def arguments(self):
        """The `PyramidNet` arguments of this configuration."""
        return {
            "depth": self.depth,
            "alpha": self.alpha,
            "bottleneck": self.bottleneck,
            "variant": self.variant,
            "widening": self.widening,
            "head_dropout": self.head_dropout,
        }

    def name(self, regularization=None):
        return default_name(self.depth, self.alpha, regularization, self.variant,
                            self.widening)


def _cifar(depth, alpha, bottleneck, c10=None, c100=None, errors=None, **kwargs):
    parameters = {10: c10, 100: c100} if c10 else {}
    return Architecture(depth, alpha, bottleneck, parameters=parameters,
                        paper_errors=errors or {}, **kwargs)


def _imagenet(depth, alpha, count, top1, top5, **kwargs):
    return Architecture(depth, alpha, True, "imagenet", parameters={1000: count},
                        paper_errors={None: (top1, top5)}, **kwargs)


BOTH = ("plain", "regularized")

ARCHITECTURES = (
    # CIFAR, additive (SPEC 1). PyramidNet-8 (one unit per stage) and -20 are
    # not in the papers' tables: they run every code path in seconds, for
    # smoke tests and quick experiments (as timm registers its test_* models).
    _cifar(8, 24, False),
    _cifar(20, 48, False),
    _cifar(110, 48, False, 1_772_706, 1_778_556, {None: (4.62, 23.31)},
           builder_default=("plain",)),
    _cifar(110, 84, False, 3_904_446, 3_913_536, {None: (4.27, 20.21)}),
    # The network behind the SepDrop and ShakeDrop papers' CIFAR-100 figures:
    # the regularized 110-layer builders default to it.
    _cifar(110, 270, False, 28_485_477, 28_511_307,
           {None: (3.73, 18.25), "sepdrop": (None, 16.18), "shakedrop": (None, 15.78)},
           builder_default=("regularized",)),
    _cifar(164, 48, True, 1_715_442, 1_738_572),
    _cifar(164, 84, True, 3_757_494, 3_793_584),
    _cifar(164, 270, True, 27_216_021, 27_319_071, {None: (3.48, 17.01)},
           builder_default=BOTH),
    _cifar(200, 240, True, 26_752_702, 26_844_952, {None: (3.44, 16.51)},
           builder_default=BOTH),
    _cifar(236, 220, True, 26_969_046, 27_054_096, {None: (3.40, 16.37)},
           builder_default=BOTH),
    _cifar(272, 200, True, 26_210_842, 26_288_692, {None: (3.31, 16.35)},
           builder_default=BOTH),
    # CIFAR, multiplicative (SPEC 1c, the official Lua code): no published counts.
    _cifar(110, 4.75, False, widening="multiplicative", errors={None: (4.62, 23.16)},
           builder_default=BOTH),
    _cifar(110, 8, False, widening="multiplicative", errors={None: (4.50, 20.94)}),
    _cifar(110, 27, False, widening="multiplicative", errors={None: (4.06, 18.79)}),
    # ImageNet (SPEC 1b), bottleneck units, 1000 classes.
    _imagenet(101, 250, 24_956_608, 23.24, 6.59, builder_default=BOTH),
    _imagenet(101, 360, 42_455_070, 21.98, 6.20),
    _imagenet(152, 200, 27_341_608, 22.44, 6.14, builder_default=BOTH),
    _imagenet(200, 300, 62_368_168, 20.47, 5.29, builder_default=BOTH),
    _imagenet(200, 450, 116_775_213, 20.11, 5.43, head_dropout=0.5),
)
