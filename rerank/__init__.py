"""rerank: search re-ranking with knowledge rekindle.

Cross-encoder re-rankers trained on query-grouped labels, distilled into a new
student by expert-guided pre-training (knowledge rekindle), and evaluated with
PNR and the usual IR measures.

The Python API (names are imported on first use, so ``import rerank`` stays cheap):

- :class:`Reranker`: load a saved model and score pairs / rank documents
  (``Reranker.from_pretrained(path).score(pairs)``, ``.rank(query, documents)``).
- :func:`read_pairs`: read and check a query-grouped table (file or polars/pandas frame).
- :func:`score_file`: score a pairs file into a score table or TREC run (``rerank score``).
- :func:`train`, :func:`cycle`: what ``rerank train`` and ``rerank cycle`` run.
- :func:`evaluate`, :func:`compare`: ``rerank evaluate`` and ``rerank compare`` on files or
  frames (TREC qrels and runs, or labelled tables), returning mappings of measure values.

User mistakes raise :class:`RerankError` (a ``ValueError``) with a one-line message.

Examples
--------
>>> import rerank
>>> frame = rerank.read_pairs(__import__("polars").DataFrame({
...     "query_id": [1], "doc_id": [7], "query": ["wing flutter"],
...     "title": ["Flutter"], "summary": ["On wings."]}))
>>> frame.row(0)
('1', '7', 'wing flutter', 'Flutter', 'On wings.')
"""

from __future__ import annotations

import importlib
from typing import Any

from rerank.errors import RerankError

__version__ = "0.1.0"

# public name -> "module:attribute", imported on first access (torch is not imported by
# `import rerank`). Add a line per public name, and the name to __all__.
_LAZY: dict[str, str] = {
    "Reranker": "rerank.reranker:Reranker",
    "read_pairs": "rerank.data:read_pairs",
    "score_file": "rerank.score:score_file",
    "train": "rerank.train",  # the module; calling it runs rerank.api.train
    "cycle": "rerank.api:cycle",
    "evaluate": "rerank.evaluation:evaluate",
    "compare": "rerank.comparison:compare",
}

__all__ = ["RerankError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'rerank' has no attribute '{name}'")
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    if attribute:
        value = getattr(value, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
