"""Data as other tools ship it: training JSONL, TREC qrels/runs + queries + corpus, CSV, gz."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rerank
from rerank.cli import main
from rerank.data import read_labels, read_pairs, read_scores
from rerank.errors import RerankError
from rerank.pairs import TEACHER_SCORES, read_documents, read_queries, read_training_jsonl

ST_LINES = [
    {
        "query": "heat flow",
        "pos": ["heat transfer in a laminar flow"],
        "neg": ["lift of a wing", "shock waves"],
        "pos_scores": [0.9],
        "neg_scores": [0.2, 0.1],
        "prompt": "ignored",
    },
    {
        "query": "wing pressure",
        "positive": "pressure on a wing",
        "negatives": ["heat flow"],
        "pos_scores": [0.8],
        "neg_scores": [0.3],
    },
]


def write_jsonl(path: Path, lines: list[dict]) -> Path:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_training_jsonl_becomes_labeled_lists_with_teacher_scores(tmp_path):
    frame = read_training_jsonl(write_jsonl(tmp_path / "train.jsonl", ST_LINES))
    assert frame.columns == [
        "query_id",
        "doc_id",
        "query",
        "title",
        "summary",
        "label",
        TEACHER_SCORES,
    ]
    assert frame.rows()[:2] == [
        ("1", "1-p1", "heat flow", "", "heat transfer in a laminar flow", 1, 0.9),
        ("1", "1-n1", "heat flow", "", "lift of a wing", 0, 0.2),
    ]
    assert frame.filter(pl.col("query_id") == "2")["label"].to_list() == [1, 0]
    # read_pairs (what `rerank train` reads) recognises it, gzipped too
    gz = read_pairs(write_jsonl(tmp_path / "train.jsonl.gz", ST_LINES), labels="required")
    assert gz.equals(frame)
    no_scores = [{k: v for k, v in x.items() if "scores" not in k} for x in ST_LINES]
    plain = read_pairs(write_jsonl(tmp_path / "plain.jsonl", no_scores))
    assert TEACHER_SCORES not in plain.columns and plain.height == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"query": "q", "pos": ["a"], "pos_scores": [1, 2]}, "2: column 'pos_scores': expected 1"),
        ({"query": "", "pos": ["a"]}, "2: expected a non-empty query text"),
        ({"query": "q", "pos": [1]}, "2: column 'pos': expected a text or a list of texts"),
        ({"query": "q"}, "2: no documents"),
    ],
)
def test_training_jsonl_errors_name_the_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "pos": "a"}, line])
    with pytest.raises(RerankError, match=message) as err:
        read_training_jsonl(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_training_on_a_training_jsonl_with_teacher_scores(tmp_path, tiny_model_dir):
    lines = [dict(x, query=f"{x['query']} {i}") for i in range(3) for x in ST_LINES]
    write_jsonl(tmp_path / "train.jsonl", lines)
    result = rerank.train(
        {
            "model": {"path": str(tiny_model_dir), "max_length": 32},
            "data": {"train": str(tmp_path / "train.jsonl"), "list_size": 3},
            "objective": [
                {"loss": "hinge"},
                {"loss": "pairwise_mse", "target": TEACHER_SCORES},
            ],
            "train": {"output_dir": str(tmp_path / "out"), "steps": 1, "bf16": False},
        },
        ["train.progress=false", "train.num_threads=1"],
    )
    assert result.finished and (result.final_dir / "config.json").is_file()


@pytest.fixture
def trec(tmp_path):
    """Queries (headerless TSV), a corpus with only a text column (JSONL), qrels, a run."""
    (tmp_path / "queries.tsv").write_text("1\theat flow in a boundary layer\n2\twing lift\n")
    docs = [
        {"doc_id": "a", "text": "heat transfer in a laminar boundary layer"},
        {"doc_id": "b", "text": "the lift of a wing at high speed"},
        {"doc_id": "c", "text": "shock waves and heat"},
        {"doc_id": "d", "text": "wing flutter"},
    ]
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    (tmp_path / "test.qrels").write_text("1 0 a 2\n1 0 c 0\n2 0 b 1\n2 0 d 0\n")
    (tmp_path / "bm25.run").write_text(
        "1 Q0 c 1 9.0 bm25\n1 Q0 a 2 8.0 bm25\n1 Q0 b 3 1.0 bm25\n"
        "2 Q0 d 1 5.0 bm25\n2 Q0 b 2 4.0 bm25\n"
    )
    return tmp_path


def test_qrels_queries_corpus_become_labeled_lists(trec, capsys):
    out = trec / "judged.tsv"
    argv = ["pairs", "--mode", "judged", "--qrels", str(trec / "test.qrels")]
    argv += ["--queries", str(trec / "queries.tsv"), "--corpus", str(trec / "corpus.jsonl")]
    assert main([*argv, "--out", str(out)]) == 0
    frame = read_pairs(out, labels="required")
    assert frame.rows()[0] == (
        "1",
        "a",
        "heat flow in a boundary layer",
        "",  # a corpus without titles
        "heat transfer in a laminar boundary layer",
        2,
    )
    assert frame["label"].to_list() == [2, 0, 1, 0]
    assert "wrote 4 labeled pairs of 2 queries" in capsys.readouterr().err

    (trec / "more.qrels").write_text("1 0 a 2\n3 0 zz 1\n")
    bad = [*argv[:4], str(trec / "more.qrels"), *argv[5:]]
    assert main([*bad, "--out", str(trec / "bad.tsv")]) == 2
    err = capsys.readouterr().err
    assert (
        "more.qrels: 1 query_id(s) of the judgments are not in the queries; the first is '3'" in err
    )
    assert not (trec / "bad.tsv").exists()


def test_csv_and_gz_readers(tmp_path):
    (tmp_path / "pairs.csv").write_text(
        'query_id,doc_id,query,title,summary,label\n7,11,"flow, heat",T,"a ""quoted"", text",1\n'
    )
    assert read_pairs(tmp_path / "pairs.csv").row(0) == (
        "7",
        "11",
        "flow, heat",
        "T",
        'a "quoted", text',
        1,
    )
    data = (tmp_path / "pairs.csv").read_bytes()
    (tmp_path / "pairs.csv.gz").write_bytes(gzip.compress(data))
    assert read_pairs(tmp_path / "pairs.csv.gz").equals(read_pairs(tmp_path / "pairs.csv"))
    (tmp_path / "corpus.csv").write_text('doc_id,text\nd1,"one, two"\n')
    assert read_documents(tmp_path / "corpus.csv").rows() == [("d1", "", "one, two")]
    (tmp_path / "q.tsv.gz").write_bytes(gzip.compress(b"query_id\tquery\nq1\twing\n"))
    assert read_queries(tmp_path / "q.tsv.gz").rows() == [("q1", "wing")]
    rerank_frame = pl.DataFrame({"query_id": ["q"], "doc_id": ["d"], "score": [1.5]})
    from rerank.data import write_table

    write_table(rerank_frame, tmp_path / "s.csv")
    assert read_scores(tmp_path / "s.csv").equals(rerank_frame)
    (tmp_path / "r.run.gz").write_bytes(gzip.compress(b"q Q0 d 1 1.5 bm25\n"))
    assert read_scores(tmp_path / "r.run.gz").equals(rerank_frame)
    (tmp_path / "j.qrels.gz").write_bytes(gzip.compress(b"q 0 d 2\n"))
    assert read_labels(tmp_path / "j.qrels.gz").rows() == [("q", "d", 2)]


def test_pairs_writes_a_bm25_run(trec):
    out = trec / "bm25_out.run"
    argv = ["pairs", "--queries", str(trec / "queries.tsv"), "--corpus"]
    assert main([*argv, str(trec / "corpus.jsonl"), "--k", "2", "--out", str(out)]) == 0
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [x[0] for x in lines] == ["1", "1", "2", "2"]
    assert lines[0][2] == "a" and lines[0][3] == "1" and lines[0][5] == "bm25"
    run = read_scores(out)
    assert (run["score"].to_numpy() > 0).all()


@pytest.fixture(scope="module")
def ranking_dir(tiny_model_dir, tmp_path_factory):
    import torch

    from rerank.model import RerankModel

    torch.manual_seed(0)
    model = RerankModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.encoder.classifier.weight.mul_(100.0)
    model.input_lengths = {"max_length": 64, "max_query_length": 16}
    path = tmp_path_factory.mktemp("readers") / "ranker"
    model.save_pretrained(path)
    return path


def test_score_reranks_a_trec_run_end_to_end(trec, ranking_dir, capsys):
    out = trec / "reranked.run"
    argv = ["score", "--model", str(ranking_dir), "--run", str(trec / "bm25.run")]
    argv += ["--queries", str(trec / "queries.tsv"), "--corpus", str(trec / "corpus.jsonl")]
    assert main([*argv, "--depth", "2", "--precision", "fp32", "--out", str(out)]) == 0
    got = read_scores(out)
    # the run's top 2 of each query, re-scored by the model
    assert sorted(zip(got["query_id"], got["doc_id"], strict=True)) == [
        ("1", "a"),
        ("1", "c"),
        ("2", "b"),
        ("2", "d"),
    ]
    ranker = rerank.Reranker.from_pretrained(ranking_dir, precision="fp32", device="cpu")
    docs = dict(
        zip(*read_documents(trec / "corpus.jsonl").select("doc_id", "summary"), strict=True)
    )
    queries = dict(read_queries(trec / "queries.tsv").rows())
    expected = ranker.score(
        [(queries[q], docs[d]) for q, d in zip(got["query_id"], got["doc_id"], strict=True)]
    )
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    for _, group in got.group_by("query_id"):  # ranked by the new score
        assert group["score"].to_list() == sorted(group["score"].to_list(), reverse=True)
    lines = out.read_text().splitlines()
    assert [line.split()[3] for line in lines] == ["1", "2", "1", "2"]

    capsys.readouterr()
    assert main([*argv, "--data", str(trec / "x.tsv"), "--out", str(trec / "y.run")]) == 2
    assert "either --data or --run" in capsys.readouterr().err
    (trec / "short.jsonl").write_text('{"doc_id": "a", "text": "heat"}\n')
    bad = [*argv[:-1], str(trec / "short.jsonl")]
    assert main([*bad, "--out", str(trec / "bad.run")]) == 2
    err = capsys.readouterr().err
    assert "bm25.run: 3 doc_id(s) of the run are not in the corpus; the first is 'c'" in err
    assert not (trec / "bad.run").exists()


def test_score_streams_csv_and_csv_gz(tmp_path, ranking_dir):
    from rerank.score import score_file

    (tmp_path / "pairs.csv").write_text(
        'query_id,doc_id,query,title,summary\n1,2,"flow, heat",,"a, b"\n1,3,"flow, heat",x,y\n'
    )
    (tmp_path / "pairs.csv.gz").write_bytes(gzip.compress((tmp_path / "pairs.csv").read_bytes()))
    read_pairs(tmp_path / "pairs.csv").write_parquet(tmp_path / "pairs.parquet")
    for name in ("pairs.csv", "pairs.csv.gz", "pairs.parquet"):
        score_file(ranking_dir, tmp_path / name, tmp_path / f"{name}.tsv", precision="fp32")
    expected = read_scores(tmp_path / "pairs.parquet.tsv")
    assert expected["doc_id"].to_list() == ["2", "3"]
    for name in ("pairs.csv", "pairs.csv.gz"):
        got = read_scores(tmp_path / f"{name}.tsv")
        np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-6)
