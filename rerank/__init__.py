"""rerank: search re-ranking with knowledge rekindle.

Cross-encoder re-rankers trained on query-grouped labels, distilled into a new
student by expert-guided pre-training (knowledge rekindle), and evaluated with
PNR and the usual IR measures.
"""

from __future__ import annotations

from rerank.errors import RerankError

__version__ = "0.1.0"

__all__ = ["RerankError", "__version__"]
