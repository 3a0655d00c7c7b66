from __future__ import annotations

import logging

import pytest
from transformers import AutoTokenizer

from rerank.encoding import PairEncoder


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_layout_is_cls_query_sep_title_sep_summary_sep(tok):
    enc = PairEncoder(tok, max_length=64)
    e = enc.encode(["flow of heat"], [["boundary layer", "the pressure on a plate"]])
    cls, sep = tok.cls_token_id, tok.sep_token_id
    q, t, s = (
        ids(tok, "flow of heat"),
        ids(tok, "boundary layer"),
        ids(tok, "the pressure on a plate"),
    )
    assert e.input_ids[0] == [cls, *q, sep, *t, sep, *s, sep]
    n_first = 1 + len(q) + 1
    assert e.token_type_ids[0] == [0] * n_first + [1] * (len(t) + len(s) + 2)


def test_same_ids_as_plain_tokenizer_on_joined_document(tok):
    # the CrossEncoder interoperability contract: (query, "title [SEP] summary")
    enc = PairEncoder(tok, max_length=64)
    parts = ["boundary layer", "the pressure on a plate"]
    plain = tok("flow of heat", enc.join_parts(parts))
    e = enc.encode(["flow of heat"], [parts])
    assert e.input_ids[0] == plain["input_ids"]
    assert e.token_type_ids[0] == plain["token_type_ids"]


def test_truncation_trims_summary_first_then_title_never_query(tok):
    q = "flow of heat"
    title = "boundary layer theory of the flat plate"
    summary = " ".join(["pressure"] * 50)
    nq, nt = len(ids(tok, q)), len(ids(tok, title))
    enc = PairEncoder(tok, max_length=20)
    e = enc.encode([q], [[title, summary]])
    got = e.input_ids[0]
    assert len(got) == 20
    # query and title complete, summary gets the remaining 20 - 4 specials - nq - nt tokens
    assert got[1 : 1 + nq] == ids(tok, q)
    assert got[2 + nq : 2 + nq + nt] == ids(tok, title)
    assert got.count(ids(tok, "pressure")[0]) == 20 - 4 - nq - nt
    # the title alone overflows: summary dropped with its separator, title cut to the budget (3)
    enc = PairEncoder(tok, max_length=2 + nq + 1 + 3)
    got = enc.encode([q], [[title, summary]]).input_ids[0]
    assert got == [
        tok.cls_token_id,
        *ids(tok, q),
        tok.sep_token_id,
        *ids(tok, title)[:3],
        tok.sep_token_id,
    ]


def test_query_cap_and_empty_parts(tok):
    enc = PairEncoder(tok, max_length=64, max_first_length=2)
    e = enc.encode(["flow of heat transfer"], [["", "the plate"]])
    cls, sep = tok.cls_token_id, tok.sep_token_id
    assert e.input_ids[0] == [cls, *ids(tok, "flow of"), sep, *ids(tok, "the plate"), sep]


def test_single_sentence_and_collate_padding(tok):
    enc = PairEncoder(tok, max_length=64)
    e = enc.encode(["the flow", "heat"])
    assert e.input_ids[1] == [tok.cls_token_id, *ids(tok, "heat"), tok.sep_token_id]
    batch = enc.collate(e, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum(1).tolist() == [len(x) for x in e.input_ids]
    assert (batch["input_ids"][1, 3:] == tok.pad_token_id).all()


def test_rejects_tiny_max_length(tok):
    with pytest.raises(ValueError, match="max_length"):
        PairEncoder(tok, max_length=4)


def test_long_texts_do_not_trigger_the_tokenizer_length_warning(tiny_model_dir):
    # a trained model saves model_max_length = its training length; texts longer than that
    # are cut by the truncation policy, so transformers' "longer than the specified maximum
    # sequence length ... indexing errors" warning would be a false alarm on every run
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    hf = logging.getLogger("transformers")
    hf.addHandler(handler)
    try:
        tok = AutoTokenizer.from_pretrained(str(tiny_model_dir), model_max_length=16)
        long = " ".join(["pressure"] * 40)
        e = PairEncoder(tok, max_length=16).encode([long], [["wing", long]])
        assert len(e.input_ids[0]) == 16
        assert not [m for m in seen if "sequence length" in m]
        tok(long)  # the plain tokenizer call does warn, so the check above can fail
        assert [m for m in seen if "sequence length" in m]
    finally:
        hf.removeHandler(handler)
