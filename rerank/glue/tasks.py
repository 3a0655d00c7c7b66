"""The GLUE task registry: what each task reads, predicts, is trained with and is scored by.

One :class:`GlueTask` per task. Label orders follow the Hugging Face ``glue`` datasets
(``entailment=0`` for MNLI/QNLI/RTE, ``1`` is the positive class of the binary tasks),
so a teacher fine-tuned elsewhere on the HF export maps its logits to the same classes.

====  ======  ===========================  ==============  =============  =================
task  input   head                         fine-tune loss  KD loss        metrics
====  ======  ===========================  ==============  =============  =================
cola  single  classification, 2 logits     cross_entropy   kl_div         mcc, accuracy
sst2  single  classification, 2 logits     cross_entropy   kl_div         accuracy
mrpc  pair    classification, 2 logits     cross_entropy   kl_div         accuracy, f1
qqp   pair    classification, 2 logits     cross_entropy   kl_div         accuracy, f1
stsb  pair    regression, 0 + 5 * sigmoid  pointwise_mse   pointwise_mse  spearman, pearson
mnli  pair    classification, 3 logits     cross_entropy   kl_div         accuracy
qnli  pair    classification, 2 logits     cross_entropy   kl_div         accuracy
rte   pair    classification, 2 logits     cross_entropy   kl_div         accuracy
====  ======  ===========================  ==============  =============  =================

Loss names are keys of :data:`rerank.losses.LOSSES`: ``kl_div`` is the temperature-scaled
KL divergence to the teacher's class distribution; ``pointwise_mse`` on one-example
groups is the plain mean squared error of the regression output.

The first metric is the task's *primary* metric (checkpoint selection, summary tables).
This module imports neither torch nor transformers (the CLI builds its parser from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rerank.errors import RerankError

if TYPE_CHECKING:
    from rerank.model import HeadSpec

__all__ = ["TASKS", "GlueTask", "get_task"]

InputKind = Literal["single", "pair"]


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Attributes
    ----------
    name
        Registry key (``"stsb"``); also the default head name of the task.
    input
        ``"single"`` (one sentence) or ``"pair"`` (sentence1 [SEP] sentence2).
    labels
        Class names in logit order; empty for regression.
    low, high
        Label range of a regression task (the head is ``low + (high - low) * sigmoid``).
    metrics
        Metric names (see :mod:`rerank.glue.metrics`); the first is the primary one.
    finetune_loss, kd_loss
        Loss names for fine-tuning on gold labels and for distillation from a teacher.
    sentence1, sentence2, label, example_id
        Accepted header names of each column, in order of preference.
    headerless
        Field count -> (sentence1, sentence2, label) field indices, for files without a
        header (canonical CoLA has 4 fields, the lower-cased copy 2).
    dirs
        Directory names the task's files live in (``STS-B``, ``CoLA_lowercased`` ...).
    """

    name: str
    input: InputKind
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...] = ()
    label: tuple[str, ...] = ("label",)
    example_id: tuple[str, ...] = ("idx", "index")
    headerless: dict[int, tuple[int, int | None, int]] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 1.0

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_outputs(self) -> int:
        """Logits of the head (1 for regression)."""
        return len(self.labels) or 1

    @property
    def finetune_loss(self) -> str:
        return "pointwise_mse" if self.is_regression else "cross_entropy"

    @property
    def kd_loss(self) -> str:
        return "pointwise_mse" if self.is_regression else "kl_div"

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def head_spec(self) -> HeadSpec:
        """The model head this task needs (imports torch via :mod:`rerank.model`)."""
        from rerank.model import HeadSpec

        if self.is_regression:
            return HeadSpec("regression", 1, low=self.low, high=self.high)
        return HeadSpec("classification", len(self.labels))

    def parse_label(self, text: str) -> int | float:
        """A label cell -> class index (a class name or its index) or a regression value.

        Raises ``ValueError`` with what was expected; readers turn it into a located error.
        """
        value = text.strip()
        if self.is_regression:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not self.low <= number <= self.high:  # also rejects nan
                raise ValueError(
                    f"expected a number in {self.low:g}..{self.high:g}, got {text!r}"
                ) from None
            return number
        if value in self.labels:
            return self.labels.index(value)
        if value.isdigit() and int(value) < len(self.labels):
            return int(value)
        names = ", ".join(self.labels)
        raise ValueError(
            f"expected a class index 0..{len(self.labels) - 1} or one of {names}; got {text!r}"
        )


_PAIR_IDS = ("idx", "index", "id", "pairID")

TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            "cola",
            "single",
            labels=("unacceptable", "acceptable"),
            metrics=("mcc", "accuracy"),
            sentence1=("sentence", "x"),
            label=("label", "y"),
            # canonical GLUE: source, label, original mark, sentence; lower-cased copy:
            # sentence, label
            headerless={4: (3, None, 1), 2: (0, None, 1)},
            dirs=("CoLA", "CoLA_lowercased", "cola"),
        ),
        GlueTask(
            "sst2",
            "single",
            labels=("negative", "positive"),
            metrics=("accuracy",),
            sentence1=("sentence",),
            dirs=("SST-2", "sst2"),
        ),
        GlueTask(
            "mrpc",
            "pair",
            labels=("not_equivalent", "equivalent"),
            metrics=("accuracy", "f1"),
            sentence1=("#1 String", "sentence1"),
            sentence2=("#2 String", "sentence2"),
            label=("Quality", "label"),
            dirs=("MRPC", "mrpc"),
        ),
        GlueTask(
            "qqp",
            "pair",
            labels=("not_duplicate", "duplicate"),
            metrics=("accuracy", "f1"),
            sentence1=("question1",),
            sentence2=("question2",),
            label=("is_duplicate", "label"),
            example_id=("id", "idx"),
            dirs=("QQP", "qqp"),
        ),
        GlueTask(
            "stsb",
            "pair",
            labels=(),
            metrics=("spearman", "pearson"),
            sentence1=("sentence1",),
            sentence2=("sentence2",),
            label=("score", "label"),
            dirs=("STS-B", "stsb"),
            low=0.0,
            high=5.0,
        ),
        GlueTask(
            "mnli",
            "pair",
            labels=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",),
            sentence1=("sentence1", "premise"),
            sentence2=("sentence2", "hypothesis"),
            label=("gold_label", "label"),
            example_id=_PAIR_IDS,
            dirs=("MNLI", "mnli"),
        ),
        GlueTask(
            "qnli",
            "pair",
            labels=("entailment", "not_entailment"),
            metrics=("accuracy",),
            sentence1=("question",),
            sentence2=("sentence",),
            dirs=("QNLI", "qnli"),
        ),
        GlueTask(
            "rte",
            "pair",
            labels=("entailment", "not_entailment"),
            metrics=("accuracy",),
            sentence1=("sentence1",),
            sentence2=("sentence2",),
            dirs=("RTE", "rte"),
        ),
    )
}


def get_task(name: str) -> GlueTask:
    """Look a task up by name, ignoring case, ``-`` and ``_`` (``STS-B`` -> ``stsb``).

    Examples
    --------
    >>> get_task("STS-B").name, get_task("sst_2").input
    ('stsb', 'single')
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise RerankError(f"unknown GLUE task '{name}'; expected one of {', '.join(TASKS)}")
    return TASKS[key]
