"""Knowledge rekindle: a re-ranker's knowledge distilled into a new student, then fine-tuned.

The pieces, in the order the cycle uses them:

- :mod:`rerank.rekindle.store`: the teacher-score store (rekindle pairs + one
  ``teacher:<name>`` column per teacher, provenance in the Parquet metadata; scored once).
- :mod:`rerank.rekindle.pretrain`: expert-guided pre-training (UEGP; MoEGP with several
  teachers and heads) as a configuration of :func:`rerank.train.train`, its ablations and
  snapshots.
- :mod:`rerank.rekindle.cycle` (with :mod:`~rerank.rekindle.cycle_config` and
  :mod:`~rerank.rekindle.stages`): ``rerank cycle``, teacher -> pairs -> scores ->
  pre-training -> fine-tune -> evaluation, resumable stage by stage.
- :mod:`rerank.rekindle.report`: report.json, report.md and the plots.

Submodules are imported on use (the package import stays cheap: no torch).
"""

from __future__ import annotations
