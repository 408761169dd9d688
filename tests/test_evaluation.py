"""The evaluation core (`keras_pyramid.evaluation`): the figures from labels and predictions."""

import numpy as np

from keras_pyramid import evaluation


def test_the_confusion_matrix_counts_true_rows_and_predicted_columns():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    matrix = evaluation.confusion_matrix(labels, predictions, 4)
    looped = np.zeros((4, 4), int)
    for true, predicted in zip(labels, predictions):
        looped[true, predicted] += 1
    np.testing.assert_array_equal(matrix, looped)


def test_the_summary_gives_error_and_per_class_accuracy():
    report = evaluation.summary(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    assert report["examples"] == 4 and report["error"] == 0.25
    assert report["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": None}
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
