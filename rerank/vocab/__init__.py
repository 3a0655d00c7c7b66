"""Vocabularies for languages the pretrained model does not cover (``rerank vocab``).

- :func:`train_vocabulary` / :func:`train_pieces`: a SentencePiece vocabulary trained on
  rekindle text, with the target model's special tokens and a coverage report;
- :func:`extend_model`: add the pieces a pretrained BERT lacks, new rows initialised from
  the old sub-pieces;
- :func:`scratch_model`: a randomly initialised BERT over the new vocabulary.
"""

from __future__ import annotations

from rerank.vocab.coverage import Coverage, measure_coverage
from rerank.vocab.extend import ExtensionReport, extend_model
from rerank.vocab.pieces import PieceSet, load_pieces, read_corpus, train_pieces
from rerank.vocab.scratch import ScratchSpec, scratch_model
from rerank.vocab.training import coverage_table, train_vocabulary

__all__ = [
    "Coverage",
    "ExtensionReport",
    "PieceSet",
    "ScratchSpec",
    "coverage_table",
    "extend_model",
    "load_pieces",
    "measure_coverage",
    "read_corpus",
    "scratch_model",
    "train_pieces",
    "train_vocabulary",
]
