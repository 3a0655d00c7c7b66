from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from rerank.errors import RerankError
from rerank.glue.metrics import (
    accuracy,
    evaluate_glue,
    f1,
    matthews,
    pearson,
    predictions,
    spearman,
)
from rerank.glue.tasks import get_task


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    predicted = np.array([1, 1, 0, 0, 0, 1, 1, 0])
    # TP=3 (0,1,6)  FN=1 (2)  FP=1 (5)  TN=3 (3,4,7)
    assert accuracy(labels, predicted) == 6 / 8
    assert f1(labels, predicted) == 2 * 3 / (2 * 3 + 1 + 1)
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (9 - 1) / 16 = 0.5
    assert matthews(labels, predicted) == pytest.approx(0.5)


def test_metrics_agree_with_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    predicted = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 3, 200))
    assert matthews(labels, predicted) == pytest.approx(matthews_corrcoef(labels, predicted))
    binary, guess = labels % 2, predicted % 2
    assert f1(binary, guess) == pytest.approx(f1_score(binary, guess))
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    ties = np.round(x * 2) / 2  # many tied values
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert spearman(ties, y) == pytest.approx(stats.spearmanr(ties, y).statistic)
    assert spearman(ties, np.round(y)) == pytest.approx(
        stats.spearmanr(ties, np.round(y)).statistic
    )


def test_degenerate_cases():
    assert matthews(np.array([1, 1, 1]), np.array([1, 1, 1])) == 0.0  # sklearn's convention
    assert f1(np.array([0, 0]), np.array([0, 0])) == 0.0
    assert math.isnan(pearson(np.array([1.0, 1.0]), np.array([0.0, 1.0])))
    # ranks with ties: [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]
    assert spearman(np.array([0, 5, 5, 9]), np.array([1, 2, 3, 4])) == pytest.approx(
        pearson(np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4]))
    )


def test_evaluate_glue_reports_task_metrics_primary_first():
    stsb = evaluate_glue("stsb", np.array([0.0, 2.5, 5.0, 4.0]), np.array([0.5, 2.0, 4.0, 4.5]))
    assert list(stsb) == ["spearman", "pearson", "examples"]
    assert stsb["spearman"] == pytest.approx(0.8)  # ranks [1,2,4,3] vs [1,2,3,4]
    assert stsb["examples"] == 4.0
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [0.0, 1.0], [3.0, 0.0]])
    cola = evaluate_glue("cola", np.array([0, 1, 0, 0]), logits)
    # predictions [0, 1, 1, 0]: TP=1 FN=0 FP=1 TN=2 -> (2 - 0) / sqrt(2 * 1 * 3 * 2)
    assert cola["mcc"] == pytest.approx(2 / math.sqrt(12))
    assert cola["accuracy"] == 0.75
    mnli = evaluate_glue("mnli", np.array([2, 0]), np.array([[0, 1, 2], [0, 5, 1]]))
    assert mnli == {"accuracy": 0.5, "examples": 2.0}


def test_predictions_and_shape_errors():
    assert predictions(get_task("rte"), np.array([[1, 2], [3, 0]])).tolist() == [1, 0]
    assert predictions(get_task("stsb"), np.array([[1.5], [3.0]])).tolist() == [1.5, 3.0]
    with pytest.raises(RerankError, match="rte: expected 2 logits per example"):
        evaluate_glue("rte", np.array([0, 1]), np.array([0.3, 0.2]))
    with pytest.raises(RerankError, match="stsb: 3 labels but 2 predictions"):
        evaluate_glue("stsb", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0]))
    with pytest.raises(RerankError, match="unknown GLUE metric 'bleu'"):
        evaluate_glue("stsb", np.array([1.0, 2.0]), np.array([1.0, 2.0]), metrics=("bleu",))
