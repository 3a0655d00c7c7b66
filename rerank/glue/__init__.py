"""GLUE adapters: task readers, heads, losses and metrics for the secondary NLU tasks.

The same model, loop and rekindle machinery as ranking, with task heads instead of the
ranking head (see :mod:`rerank.glue.tasks` for the registry).
"""

from __future__ import annotations

from rerank.glue.tasks import TASKS, GlueTask, get_task

__all__ = ["TASKS", "GlueTask", "get_task"]
