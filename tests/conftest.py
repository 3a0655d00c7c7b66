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


# Scores of the same weights can differ in the last bits between a model and its reloaded
# copy, between processes, and between machines (Intel and AMD pick different oneDNN
# kernels). Weights are compared bitwise; scores and trained weights with these tolerances.
SCORE_TOL = {"rtol": 1e-5, "atol": 1e-6}
# Training amplifies last-bit differences a little (Adam divides by the gradient's size);
# a resume that lost the optimizer state, the data position or the RNG moves weights by
# about the learning rate (1e-3 in the tiny configs), three orders above this.
TRAINED_TOL = {"rtol": 1e-4, "atol": 1e-5}


def assert_scores_close(a, b, **tol) -> None:
    """Scores of the same model computed twice: equal within :data:`SCORE_TOL`."""
    import torch

    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), **{**SCORE_TOL, **tol})


def assert_same_training(a: dict, b: dict, *, exact: bool = False) -> None:
    """Two state dicts that the same training produced: bitwise with ``exact``, else close.

    ``exact`` is the one-machine claim (bit-exact resume), checked by the tests marked
    ``determinism``; the default run allows last-bit drift so that it passes on any machine.
    """
    import torch

    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], **TRAINED_TOL, msg=lambda m, k=k: f"{k}: {m}")


def approx_nested(expected, **tol):
    """``pytest.approx`` for nested dicts/lists of floats (report.json results)."""
    if isinstance(expected, dict):
        return {k: approx_nested(v, **tol) for k, v in expected.items()}
    if isinstance(expected, list | tuple):
        return type(expected)(approx_nested(v, **tol) for v in expected)
    if isinstance(expected, float):
        return pytest.approx(expected, **({"rel": 1e-4, "abs": 1e-6} | tol))
    return expected
