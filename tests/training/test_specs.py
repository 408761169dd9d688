"""The run's grammars parsed once: the model spec, the schedule spec, and
`check` returning them (argument names in every refusal).

Parsing reads no tensor (a .keras file's input size is its config's): the
tests run once, under tensorflow.
"""

import os

import pytest
from helpers.backends import ONCE
from helpers.paths import REPO

from keras_pyramid.training import config as run_config
from keras_pyramid.training import specs
from keras_pyramid.training.run_dir import ConfigError
from keras_pyramid.weights import files

pytestmark = ONCE
TINY_FILE = os.path.join(REPO, "tests", "fixtures", "v0_1_0", "tiny_sepdrop.keras")


def test_each_model_kind_parses_to_its_facts():
    ours = specs.parse_model("pyramidnet110_a48_sepdrop")
    assert (ours.kind, ours.regularization, ours.variant, ours.name) == (
        "registered", "sepdrop", "cifar", "pyramidnet110_a48_sepdrop")
    assert ours.registered_name == "pyramidnet110_a48_sepdrop" and not ours.own_preprocessing
    keras_model = specs.parse_model("keras:MobileNetV3Small@imagenet")
    assert (keras_model.kind, keras_model.keras_tag, keras_model.name) == (
        "keras", "imagenet", "keras-MobileNetV3Small-imagenet")
    assert keras_model.own_preprocessing and not keras_model.ours
    searched = specs.parse_model(None, {"depth": 20, "alpha": 48, "regularization": "drop"})
    assert (searched.name, searched.registered_name, searched.variant) == (
        "pyramidnet20_a48_drop", None, "cifar")


def test_a_keras_file_is_read_once_for_its_input_size(monkeypatch):
    reads = []
    original = files.load_keras_file
    monkeypatch.setattr(files, "load_keras_file",
                        lambda *a, **k: reads.append(a) or original(*a, **k))
    from keras_pyramid.training import foreign
    monkeypatch.setattr(foreign, "load_keras_file", files.load_keras_file)
    parsed = specs.parse_model(TINY_FILE)
    assert (parsed.kind, parsed.file_input_size, parsed.name) == ("file", (16, 16),
                                                                  "tiny_sepdrop")
    assert len(reads) == 1


@pytest.mark.parametrize("model", ["pyramidnet110_a48_sepdorp", "keras:MobileNetV9",
                                   "missing.keras", "", None])
def test_a_model_that_does_not_parse_is_named(model):
    with pytest.raises(ValueError, match="model"):
        specs.parse_model(model)


def test_schedules_parse_to_their_spec_and_print_back():
    assert specs.parse_schedule("constant").constant
    ramp = specs.parse_schedule("ramp:0.25")
    assert (ramp.kind, ramp.fraction, str(ramp), ramp.constant) == ("ramp", 0.25, "ramp:0.25",
                                                                    False)


def test_check_returns_the_specs_and_names_the_field_that_fails():
    parsed = run_config.check(run_config.RunConfig(model="pyramidnet20_a48_sepdrop",
                                                   dataset="folder:photos",
                                                   drop_rate_schedule="ramp:0.5"))
    assert (parsed.model.regularization, parsed.dataset.kind, parsed.schedule.fraction) == (
        "sepdrop", "folder", 0.5)
    refusals = {"new_drop_rate": {"model": "pyramidnet20_a48_drop", "new_drop_rate": 0.2},
                "drop_rate": {"drop_rate": 1.5},
                "drop_rate_schedule": {"drop_rate_schedule": "ramp:2"},
                "dataset": {"dataset": "npz:"},
                "model": {"model": "keras:NoSuchNet"}}
    for argument, values in refusals.items():
        with pytest.raises(ConfigError) as refused:
            run_config.check(run_config.RunConfig(**values))
        assert refused.value.argument == argument, (values, str(refused.value))
