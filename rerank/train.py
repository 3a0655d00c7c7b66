"""The training loop's public face: :func:`train` and what it returns.

The loop itself lives in :mod:`rerank.training` (restore, step, evaluate, save, and
the set-up behind them); this module keeps the import path ``rerank.train.train``.
"""

from __future__ import annotations

import sys

from rerank.training import RUN_OUTPUTS, TrainResult, lr_at, prepare_output_dir, train

__all__ = ["RUN_OUTPUTS", "TrainResult", "lr_at", "prepare_output_dir", "train"]

# The public API's `rerank.train(config, overrides)` (rerank.api.train): once imported,
# the package attribute `rerank.train` is this module, so the module itself is callable.
import rerank.api as _api

sys.modules[__name__].__class__ = _api.CallableTrainModule
