"""The papers' recipe (the data layer's tests are in test_data.py)."""

import keras
import numpy as np
import pytest

from keras_pyramid.training import recipe


def test_schedule_values_at_the_boundaries():
    plan = recipe.paper_recipe("cifar100", epochs=300)
    assert plan.learning_rate == 0.5 and plan.milestone_epochs() == [150, 225]
    schedule = recipe.learning_rate_schedule(plan, steps_per_epoch=10)

    def value(step):
        return float(keras.ops.convert_to_numpy(schedule(step)))

    assert value(0) == pytest.approx(0.5)
    assert value(1499) == pytest.approx(0.5)  # last step of epoch 149
    assert value(1500) == pytest.approx(0.05)  # first step of epoch 150
    assert value(2249) == pytest.approx(0.05)
    assert value(2250) == pytest.approx(0.005)
    # The schedule scales with the number of epochs.
    assert recipe.paper_recipe("cifar10", epochs=40).milestone_epochs() == [20, 30]
    assert recipe.paper_recipe("cifar10").learning_rate == 0.1


def test_optimizer_is_nesterov_sgd_with_momentum():
    optimizer = recipe.make_optimizer(recipe.paper_recipe("cifar10"), 390)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.nesterov and optimizer.momentum == 0.9
    assert not optimizer.weight_decay  # the decay is the model's coupled L2


def test_nesterov_update_matches_torch_formulation():
    # One parameter, constant gradient g, lr 0.1, momentum 0.9: Torch's
    # b = 0.9 b + g; w -= 0.1 (g + 0.9 b).
    w = keras.Variable(np.array([1.0], "float32"))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    expected, buffer, g = 1.0, 0.0, 0.5
    for _ in range(3):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor([g]), w)])
        buffer = 0.9 * buffer + g
        expected -= 0.1 * (g + 0.9 * buffer)
    assert float(keras.ops.convert_to_numpy(w)[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [(dict(epochs=0), "epochs=0"), (dict(batch_size=-1), "batch_size=-1"),
     (dict(learning_rate=0.0), "learning_rate=0.0")],
)
def test_bad_recipe_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        recipe.paper_recipe("cifar10", **overrides)

