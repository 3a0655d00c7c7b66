"""Shared fixtures: a tiny randomly initialised BERT built from a config and a word list.

Never loaded from a hub: the vocabulary is ``tests/data/vocab_words.txt`` (the 400 most
frequent words of the Cranfield collection) plus BERT's special tokens; the model is
``BertModel(BertConfig(hidden_size=32, 2 layers, 4 heads))`` saved as an ordinary HF
directory, so every test exercises the same loading path as a real checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).parent
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_bert(path: Path, *, seed: int = 0, num_layers: int = 2) -> Path:
    """Write a tiny random BERT + WordPiece tokenizer to ``path`` and return it."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = (TESTS / "data" / "vocab_words.txt").read_text().split()
    vocab = {w: i for i, w in enumerate(SPECIAL + words + ["."])}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain tiny BERT encoder directory (no ranking head, no MLM head)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
