"""rerank.model_dir: the one position limit and the one default length of a model."""

from __future__ import annotations

import json
import types

from rerank.model_dir import (
    DEFAULT_MAX_LENGTH,
    default_max_length,
    position_limit,
    saved_input_lengths,
)


def config(**fields):
    return types.SimpleNamespace(**fields)


def test_position_limit_bert_roberta_and_unknown():
    assert position_limit(config(max_position_embeddings=512, model_type="bert")) == 512
    # RoBERTa's positions start after the pad index
    roberta = config(max_position_embeddings=514, model_type="roberta", pad_token_id=1)
    assert position_limit(roberta) == 512
    assert position_limit(config(model_type="bert")) is None
    assert position_limit(config(max_position_embeddings=-1)) is None


def test_default_max_length_is_256_within_the_positions():
    assert default_max_length(config(max_position_embeddings=512)) == DEFAULT_MAX_LENGTH
    assert default_max_length(config(max_position_embeddings=128)) == 128
    small_roberta = config(max_position_embeddings=130, model_type="roberta", pad_token_id=1)
    assert default_max_length(small_roberta) == 128
    assert default_max_length(config()) == DEFAULT_MAX_LENGTH


def test_saved_input_lengths_of_a_model_not_trained_here(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    assert saved_input_lengths(tmp_path) == {"max_length": 64, "max_query_length": 64}
    trained = {"max_position_embeddings": 64, "rerank": {"max_length": 48}}
    (tmp_path / "config.json").write_text(json.dumps(trained))
    assert saved_input_lengths(tmp_path) == {"max_length": 48, "max_query_length": 64}


def test_model_re_exports_what_moved():
    from rerank import heads, model, model_dir

    assert model.HeadSpec is heads.HeadSpec
    assert model.check_weights is model_dir.check_weights
    assert model.saved_input_lengths is model_dir.saved_input_lengths
