"""The one training loop: teacher fine-tuning, rekindle, re-fine-tuning and GLUE.

Distillation is a loss plus a label source, not a new loop: every stage is a
:class:`rerank.config.Config` whose objective is a weighted sum of terms from
:data:`rerank.losses.LOSSES`, each judging one head's output against one target column
(``label`` or a teacher-score column such as ``teacher:t1``). Teacher fine-tuning is
``hinge(score, label)``; expert-guided pre-training (rekindle) is
``pointwise_mse(score, teacher:t1) + pairwise_mse(score, teacher:t1) + mlm``.

What the loop does (rank 0 alone logs, evaluates and writes), module by module:

- ``loop``: :func:`train`: restore, then step / evaluate / save until done, then
  ``final/``. A run that fails with a user error before its first checkpoint removes
  the outputs it wrote (``outputs``: :data:`RUN_OUTPUTS`, :func:`prepare_output_dir`).
- ``setup``: builds the run in a fixed order from ``frames`` (the tables, teacher
  columns validated as they are read), ``model``, ``masking`` (BERT MLM as a batch
  transform), ``batches`` (whole query groups, length-bucketed, from
  :mod:`rerank.batching`), ``optimizer`` (AdamW without decay on biases and LayerNorm
  weights) and ``evaluation``.
- ``step``: linear warm-up then polynomial decay (:func:`lr_at`); gradient accumulation;
  norm clipping; bf16 autocast where the hardware computes bf16 natively. A loss or
  gradient norm that is not finite stops the run with an error naming the step, before
  anything is saved from the diverged weights.
- ``evaluation``: every ``eval_every`` steps and at the end, PNR and nDCG@10 of the
  primary head; the best model by ``metric_for_best`` goes to ``best/``.
- ``reporting``: ``log.jsonl``, a tqdm bar (loss, pairs/s, ETA) or progress lines, and
  trackers (``train.report_to``).
- ``resume`` and ``checkpoint``: ``checkpoint/`` every ``save_every`` steps, written
  atomically; ``resume`` continues exactly.
- ``processes``: runs unchanged under ``torchrun`` (DDP; gloo on CPU): each rank trains
  on a disjoint shard of the groups of every epoch.

Nothing here imports from :mod:`rerank.rekindle`, :mod:`rerank.glue`,
:mod:`rerank.vocab` or :mod:`rerank.cli`: they are configurations of this loop.
"""

from __future__ import annotations

from rerank.training.loop import TrainResult, train
from rerank.training.outputs import RUN_OUTPUTS, prepare_output_dir
from rerank.training.step import lr_at

__all__ = ["RUN_OUTPUTS", "TrainResult", "lr_at", "prepare_output_dir", "train"]
