"""``python -m rerank`` is the ``rerank`` console script."""

from __future__ import annotations

from rerank.cli import main

raise SystemExit(main())
