"""Every table rerank reads or writes, in one home; :mod:`rerank.data` is its public face.

- ``columns``: the column vocabulary (the pairs schema, ``label``, ``score``,
  ``teacher:<name>``), defined once.
- ``formats``: which format a path names (the one extension rule).
- ``files`` and ``checks``: raw reading (TSV as strings, gzip, byte-order marks) and
  vectorised validation with file:row:column errors.
- ``pairs``: query-grouped pairs (:func:`~rerank.tables.pairs.read_pairs`, with teacher
  target columns), judgments (``read_labels``).
- ``trec``: score tables, TREC runs and qrels (the one qrels reader).
- ``texts``: queries, documents and judged pairs as collections ship them.
- ``training_jsonl``: sentence-transformers / FlagEmbedding training JSONL.
- ``attach``: scores joined onto judgments; ``write``: :func:`write_table`.
"""
