"""The data layer: sources (tfds by name, image folders) -> splits -> `tf.data` streams.

    from keras_pyramid import data

    source = data.open_source("folder:photos")      # or cifar10, svhn, tfds:NAME[:VERSION]
    splits = data.split_source(source, validation=0.1, seed=0)
    prep = data.Preprocessing((224, 224), "imagenet")
    stream = data.training_stream(source, splits.train, prep, batch_size=64, seed=0)

`spec.py` parses the dataset grammar, `sources.py` finds the examples and
their classes, `augment.py` turns an
image into what the model takes (per regime), `pipeline.py` splits, adds
label noise, and streams (exactly resumable). Only this package and the
export import TensorFlow: models are built and run without it.
"""

from keras_pyramid.data.augment import PAD, REGIMES, Preprocessing, cifar_augment, default_regime
from keras_pyramid.data.pipeline import (
                                        Splits,
                                        Subset,
                                        channel_statistics,
                                        evaluation_stream,
                                        reading,
                                        split_source,
                                        stratified_holdout,
                                        stratified_subset,
                                        training_stream,
                                        whole,
                                        with_label_noise,
)
from keras_pyramid.data.sources import (
                                        BadImageError,
                                        DataNotFoundError,
                                        Part,
                                        Source,
                                        dataset_builder,
                                        open_source,
)
from keras_pyramid.data.spec import DATASETS, TFDS_NAMES, DatasetSpec, parse_dataset

__all__ = [
    "DATASETS", "PAD", "REGIMES", "TFDS_NAMES", "BadImageError", "DataNotFoundError",
    "DatasetSpec", "Part", "Preprocessing", "Source", "Splits", "Subset", "cifar_augment",
    "channel_statistics", "dataset_builder", "default_regime", "evaluation_stream",
    "open_source", "parse_dataset", "reading", "split_source", "stratified_holdout",
    "stratified_subset",
    "training_stream", "whole", "with_label_noise",
]
