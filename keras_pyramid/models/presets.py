"""Every named PyramidNet configuration, as data: the one table of the zoo.

An `Architecture` is what `PyramidNet` needs beyond its defaults, with what
the papers say of it: the exact trainable parameter counts of docs/architecture.md sections
1 and 1b, the published errors, and the trained weights that exist for it
(`TrainedWeights`, one per dataset; docs/architecture.md section 6). The registry
(`applications.build`, `list_models`) and the named builders are generated
from `ARCHITECTURES`; every architecture is registered plain and with each
regularizer, and the regularized ones take the plain weights (regularizers
have no weights).
"""

import dataclasses

from keras_pyramid.utils.checks import check_choice

# Dataset tags of `weights=`: the class count and the fixed input size.
DATASET_TAGS = {"cifar10": (10, 32), "cifar100": (100, 32), "svhn": (10, 32),
                "imagenet": (1000, 224)}

# Per-channel statistics on the 0-255 scale, so that the models take raw
# pixels: CIFAR's as the official code uses them (for CIFAR-100 too), and
# ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) times 255 (also
# imgclsmob's, below).
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a variant fixes besides its stem (and its default class count).

    `downsampling` is the factor between the input and the last stage's
    resolution: every strided layer maps n pixels to `ceil(n / 2)`, so any
    size works, from `minimum_input_size` up.
    """

    stem_width: int
    num_stages: int
    classes: int
    design_size: int
    downsampling: int
    mean: tuple
    std: tuple


VARIANTS = {
    # No stem downsampling, then stages 2 and 3 halve: 32 -> 32, 16, 8.
    "cifar": Variant(16, 3, 10, 32, 4, CIFAR_MEAN, CIFAR_STD),
    # The stem quarters (conv /2, max-pool /2), stages 2-4 halve: 224 -> 56, 28, 14, 7.
    "imagenet": Variant(64, 4, 1000, 224, 32, IMAGENET_MEAN, IMAGENET_STD),
}


def minimum_input_size(variant):
    """The smallest height and width `variant` ("cifar" or "imagenet") accepts:
    its downsampling factor, 4 (CIFAR) or 32 (ImageNet).

    keras.applications' rule (ResNet50: `min_size=32`, its total stride): the
    smallest input the network reduces to a 1x1 last stage through full 2x2
    windows, `size / downsampling >= 1`. Smaller inputs would compute, but
    their last stages would work on a map already down to one pixel.
    """
    return VARIANTS[check_choice("variant", variant, tuple(VARIANTS))].downsampling


# ResNet's bottleneck unit counts per stage (docs/architecture.md 1b), by depth.
IMAGENET_STAGE_UNITS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
WIDENINGS = ("additive", "multiplicative")


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
class TrainedWeights:
    """One published set of trained weights and what it needs to mean the same here.

    `mean` and `std` are the per-channel statistics (0-255 scale) the
    weights were trained with: a model built with them normalizes raw
    pixels as the source's training did. `sha1` is the SHA-1 of the `.pth`
    file inside the published zip (the source's own checksum), `error` the
    source's CLAIMED test error in % (`metric` says which), never measured
    here. `evaluation` says how the test images were fed. `converted_sha256`
    pins the digest of the `.pth`'s tensors converted to this project's
    layer names (`weights.convert.tensors_digest`): the cache serves its
    converted file without torch only when it has it; None where not yet
    measured (each load then converts the SHA-1-checked `.pth` again).
    """

    dataset: str
    source: str
    source_name: str
    file_name: str  # the `.pth` (inside the published zip); its cache name here
    url: str
    sha1: str
    classes: int
    input_size: int
    mean: tuple
    std: tuple
    error: float
    metric: str
    licence: str
    parameters: int
    evaluation: str = "the full image"
    converted_sha256: str = None


# imgclsmob's transforms (its `cifar10_cls_dataset.py`, inherited by the
# CIFAR-100 and SVHN ones; `imagenet1k_cls_dataset.py`), on the 0-255 scale.
IMGCLSMOB_CIFAR_MEAN = tuple(255 * m for m in (0.4914, 0.4822, 0.4465))
IMGCLSMOB_CIFAR_STD = tuple(255 * s for s in (0.2023, 0.1994, 0.2010))
IMGCLSMOB_IMAGENET_MEAN = IMAGENET_MEAN
IMGCLSMOB_IMAGENET_STD = IMAGENET_STD
IMGCLSMOB_RELEASES = "https://github.com/osmr/imgclsmob/releases/download"
# `.pth` file name -> `TrainedWeights.converted_sha256`, measured on a machine
# that fetched the file: `tensors_digest(read_tensors(path))` of the cache's
# `.npz`, also written in its `.npz.json` record. None measured yet: these
# machines have no network.
CONVERTED_SHA256 = {}


def _imgclsmob(source_name, dataset, parameters, error, sha1, release):
    """An osmr/imgclsmob (pytorchcv) release asset: `NAME-ERROR-SHA1[:8].pth.zip`
    with ERROR the test error x 100 on four digits (its model store)."""
    classes, size = DATASET_TAGS[dataset]
    imagenet = dataset == "imagenet"
    file_name = f"{source_name}-{round(error * 100):04d}-{sha1[:8]}.pth"
    return TrainedWeights(
        dataset=dataset,
        source="pytorchcv",
        source_name=source_name,
        file_name=file_name,
        url=f"{IMGCLSMOB_RELEASES}/{release}/{file_name}.zip",
        sha1=sha1,
        classes=classes,
        input_size=size,
        mean=IMGCLSMOB_IMAGENET_MEAN if imagenet else IMGCLSMOB_CIFAR_MEAN,
        std=IMGCLSMOB_IMAGENET_STD if imagenet else IMGCLSMOB_CIFAR_STD,
        error=error,
        # The store records top-5 for its ImageNet models.
        metric="top-5 error %, single 224 crop" if imagenet else "top-1 error %",
        licence="MIT (osmr/imgclsmob)",
        parameters=parameters,
        evaluation=("resized to 256 (224 / 0.875), centre crop 224" if imagenet
                    else "the full image"),
        converted_sha256=CONVERTED_SHA256.get(file_name),
    )


def _cifar_weights(source_name, c10, c100, svhn):
    """The three imgclsmob sets of one CIFAR configuration; each argument is
    (parameters, error %, sha1, release)."""
    return tuple(_imgclsmob(f"{source_name}_{dataset}", dataset, *entry)
                 for dataset, entry in (("cifar10", c10), ("cifar100", c100),
                                        ("svhn", svhn)))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One configuration.

    `parameters` maps a class count to the exact trainable parameter count
    (docs/architecture.md; empty where it has none). `paper_errors` maps a regularization
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
    weights: tuple = ()  # TrainedWeights, one per dataset

    def weights_for(self, dataset):
        """The `TrainedWeights` of `dataset`, or a ValueError listing those that exist."""
        for entry in self.weights:
            if entry.dataset == dataset:
                return entry
        tags = tuple(entry.dataset for entry in self.weights)
        raise ValueError(
            f"No trained weights {dataset!r} for {self.name()}; it has "
            f"{tags if tags else 'none'}. Received: weights={dataset!r}"
        )

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
    # CIFAR, additive (docs/architecture.md 1). PyramidNet-8 (one unit per stage) and -20 are
    # not in the papers' tables: they run every code path in seconds, for
    # smoke tests and quick experiments (as timm registers its test_* models).
    _cifar(8, 24, False),
    _cifar(11, 24, True),  # the bottleneck twin of pyramidnet8_a24
    _cifar(20, 48, False),
    _cifar(110, 48, False, 1_772_706, 1_778_556, {None: (4.62, 23.31)},
           builder_default=("plain",),
           weights=_cifar_weights(
               "pyramidnet110_a48",
               (1_772_706, 3.72, "eb185645cda89e0c3c47b11c4b2d14ff18fa0ae1", "v0.0.184"),
               (1_778_556, 20.95, "95da1a209916b3cf4af7e8dc44374345a88c60f4", "v0.0.186"),
               (1_772_706, 2.47, "d48bafbebaabe9a68e5924571752b3d7cd95d311", "v0.0.281"))),
    _cifar(110, 84, False, 3_904_446, 3_913_536, {None: (4.27, 20.21)},
           weights=_cifar_weights(
               "pyramidnet110_a84",
               (3_904_446, 2.98, "7b835a3cf19794478d478aced63ca9e855c3ffeb", "v0.0.185"),
               (3_913_536, 18.87, "ff711084381f217f84646c676e4dcc90269dc516", "v0.0.199"),
               (3_904_446, 2.43, "971576c61cf30e02f13da616afc9848b2a609e0e", "v0.0.392"))),
    # The network behind the SepDrop and ShakeDrop papers' CIFAR-100 figures:
    # the regularized 110-layer builders default to it.
    _cifar(110, 270, False, 28_485_477, 28_511_307,
           {None: (3.73, 18.25), "sepdrop": (None, 16.18), "shakedrop": (None, 15.78)},
           builder_default=("regularized",),
           weights=_cifar_weights(
               "pyramidnet110_a270",
               (28_485_477, 2.51, "31bdd9d51ec01388cbb2adfb9f822c942de3c4ff", "v0.0.194"),
               (28_511_307, 17.10, "7417dd99069d6c8775454475968ae226b9d5ac83", "v0.0.319"),
               (28_485_477, 2.38, "3047a9bb7c92a09adf31590e3fe6c9bcd36c7a67", "v0.0.393"))),
    _cifar(164, 48, True, 1_715_442, 1_738_572),
    _cifar(164, 84, True, 3_757_494, 3_793_584),
    _cifar(164, 270, True, 27_216_021, 27_319_071, {None: (3.48, 17.01)},
           builder_default=BOTH,
           weights=_cifar_weights(
               "pyramidnet164_a270_bn",
               (27_216_021, 2.42, "daa2a402c1081323b8f2239f2201246953774e84", "v0.0.264"),
               (27_319_071, 16.70, "54d99c834bee0ed7402ba46e749e48182ad1599a", "v0.0.312"),
               (27_216_021, 2.33, "42d4c03374f32645924fc091d599ef7b913e2d32", "v0.0.396"))),
    _cifar(200, 240, True, 26_752_702, 26_844_952, {None: (3.44, 16.51)},
           builder_default=BOTH,
           weights=_cifar_weights(
               "pyramidnet200_a240_bn",
               (26_752_702, 2.44, "44433afdd2bc32c55dfb1e8347bc44d1c2bf82c7", "v0.0.268"),
               (26_844_952, 16.09, "087c02d6882e274054f44482060f193b9fc208bb", "v0.0.317"),
               (26_752_702, 2.32, "f9660c25f1bcff9d361aeca8fb3efaccdc0546e7", "v0.0.397"))),
    _cifar(236, 220, True, 26_969_046, 27_054_096, {None: (3.40, 16.37)},
           builder_default=BOTH,
           weights=_cifar_weights(
               "pyramidnet236_a220_bn",
               (26_969_046, 2.47, "daa91d74979c451ecdd8b59e4350382966f25831", "v0.0.285"),
               (27_054_096, 16.34, "a45816ebe1d6a67468b78b7a93334a41aca1c64b", "v0.0.312"),
               (26_969_046, 2.35, "f74fe248b6189699174c90bc21e7949d3cca8130", "v0.0.398"))),
    _cifar(272, 200, True, 26_210_842, 26_288_692, {None: (3.31, 16.35)},
           builder_default=BOTH,
           weights=_cifar_weights(
               "pyramidnet272_a200_bn",
               (26_210_842, 2.39, "586b1ecdc8b34b69dcae4ba57f71c24583cca9b1", "v0.0.284"),
               (26_288_692, 16.19, "98bc2f48da0f2c68bc5376c17b0aefc734a64881", "v0.0.312"),
               (26_210_842, 2.40, "96f6e740dcdc917d776f6df855e3437c93d0da4f", "v0.0.404"))),
    # CIFAR, multiplicative (docs/architecture.md 1c, the official Lua code): no published counts.
    _cifar(110, 4.75, False, widening="multiplicative", errors={None: (4.62, 23.16)},
           builder_default=BOTH),
    _cifar(110, 8, False, widening="multiplicative", errors={None: (4.50, 20.94)}),
    _cifar(110, 27, False, widening="multiplicative", errors={None: (4.06, 18.79)}),
    # ImageNet (docs/architecture.md 1b), bottleneck units, 1000 classes.
    _imagenet(101, 250, 24_956_608, 23.24, 6.59, builder_default=BOTH),
    _imagenet(101, 360, 42_455_070, 21.98, 6.20,
              weights=(_imgclsmob("pyramidnet101_a360", "imagenet", 42_455_070, 5.43,
                                  "7f1747f84b83b504ece3eb2bc3924d36343358ad", "v0.0.507"),)),
    _imagenet(152, 200, 27_341_608, 22.44, 6.14, builder_default=BOTH),
    _imagenet(200, 300, 62_368_168, 20.47, 5.29, builder_default=BOTH),
    _imagenet(200, 450, 116_775_213, 20.11, 5.43, head_dropout=0.5),
)
