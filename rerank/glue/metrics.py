"""GLUE metrics: accuracy, F1, Matthews correlation, Pearson and Spearman correlation.

Plain numpy, checked against scipy/scikit-learn in ``tests/test_glue_metrics.py``. The
report is a dict of metric name -> value, the same shape as a ranking
``Evaluation.aggregate``, so GLUE results print and serialise with the same code.

=========  =============================================================================
name       definition
=========  =============================================================================
accuracy   fraction of examples whose predicted class (argmax of the logits) is the label
f1         F1 of the positive class (index 1: MRPC "equivalent", QQP "duplicate")
mcc        Matthews correlation coefficient (multi-class form, Gorodkin 2004); 0 when a
           side of the confusion matrix is constant, as in scikit-learn
pearson    Pearson correlation of predicted and gold scores
spearman   Pearson correlation of their ranks (ties get the average rank)
=========  =============================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rerank.errors import RerankError
from rerank.glue.tasks import GlueTask, get_task

__all__ = [
    "METRICS",
    "accuracy",
    "evaluate_glue",
    "f1",
    "matthews",
    "pearson",
    "predictions",
    "spearman",
]


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of equal entries."""
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


def f1(labels: np.ndarray, predicted: np.ndarray, *, positive: int = 1) -> float:
    """F1 of the ``positive`` class: 2 TP / (2 TP + FP + FN); 0 when there is no TP."""
    y, p = np.asarray(labels) == positive, np.asarray(predicted) == positive
    tp = int(np.sum(y & p))
    denominator = 2 * tp + int(np.sum(~y & p)) + int(np.sum(y & ~p))
    return 2 * tp / denominator if tp else 0.0


def matthews(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Matthews correlation coefficient over any number of classes.

    ``(c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2))`` with ``c``
    correct predictions, ``s`` examples, ``p_k``/``t_k`` predicted/true counts of class k.
    """
    y, p = np.asarray(labels).astype(np.int64), np.asarray(predicted).astype(np.int64)
    k = int(max(y.max(initial=0), p.max(initial=0))) + 1
    t_k = np.bincount(y, minlength=k).astype(np.float64)
    p_k = np.bincount(p, minlength=k).astype(np.float64)
    s, c = float(len(y)), float(np.sum(y == p))
    denominator = np.sqrt((s * s - p_k @ p_k) * (s * s - t_k @ t_k))
    return float((c * s - p_k @ t_k) / denominator) if denominator > 0 else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / denominator) if denominator > 0 else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # boundaries of runs of equal values; every member of a run gets the run's mean rank
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # 1-based ranks start+1 .. end, averaged
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties), as ``scipy.stats.spearmanr``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return pearson(_average_ranks(x), _average_ranks(y))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": matthews,
    "pearson": pearson,
    "spearman": spearman,
}


def predictions(task: GlueTask, outputs: np.ndarray) -> np.ndarray:
    """Head outputs -> predictions: argmax class for classification, the value for regression.

    ``outputs`` is ``[n, C]`` logits (or probabilities) or ``[n]`` regression values.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if task.is_regression:
        if outputs.ndim == 2 and outputs.shape[1] == 1:
            outputs = outputs[:, 0]
        if outputs.ndim != 1:
            raise RerankError(f"{task.name}: expected one value per example, got {outputs.shape}")
        return outputs
    if outputs.ndim != 2 or outputs.shape[1] != task.num_outputs:
        raise RerankError(
            f"{task.name}: expected {task.num_outputs} logits per example, got {outputs.shape}"
        )
    return outputs.argmax(axis=1)


def evaluate_glue(
    task: str | GlueTask,
    labels: np.ndarray,
    outputs: np.ndarray,
    *,
    metrics: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """The task's metrics of head ``outputs`` against gold ``labels``.

    Parameters
    ----------
    task
        Task name or :class:`GlueTask`.
    labels
        ``[n]`` class indices, or gold scores for STS-B.
    outputs
        ``[n, C]`` logits, or ``[n]`` predicted scores for STS-B.
    metrics
        Metric names (default: the task's); see :data:`METRICS`.

    Returns
    -------
    dict
        metric name -> value, plus ``examples`` (the count), primary metric first.

    Examples
    --------
    >>> evaluate_glue("mrpc", np.array([1, 0, 1, 1]), np.array([[0, 1], [1, 0], [1, 0], [0, 2]]))
    {'accuracy': 0.75, 'f1': 0.8, 'examples': 4.0}
    """
    task = get_task(task) if isinstance(task, str) else task
    labels = np.asarray(labels)
    predicted = predictions(task, outputs)
    if len(labels) != len(predicted):
        raise RerankError(f"{task.name}: {len(labels)} labels but {len(predicted)} predictions")
    if len(labels) == 0:
        raise RerankError(f"{task.name}: nothing to evaluate")
    names = metrics or task.metrics
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise RerankError(f"unknown GLUE metric {unknown[0]!r}; expected one of {list(METRICS)}")
    report = {name: METRICS[name](labels, predicted) for name in names}
    report["examples"] = float(len(labels))
    return report
