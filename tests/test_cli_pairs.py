from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from rerank.cli import pairs as pairs_cli
from rerank.errors import RerankError
from rerank.pairs import build_pairs, read_documents, read_judged, read_queries

DOCS = [
    {"doc_id": "1", "title": "wing flutter", "abstract": "flutter of a swept wing"},
    {"doc_id": "2", "title": "jet noise", "abstract": "noise of a jet engine"},
    {"doc_id": "3", "title": "boundary layer", "abstract": "laminar boundary layer on a wing"},
    {"doc_id": "4", "title": "", "abstract": ""},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return path


def _run(*argv: str) -> int:
    # the same wiring as rerank.cli.main, without importing the other subcommands
    parser = argparse.ArgumentParser(prog="rerank")
    sub = parser.add_subparsers(dest="command", required=True)
    pairs_cli.add_parser(sub)
    args = parser.parse_args(["pairs", *argv])
    return args.run(args)


def _main(*argv: str) -> int:
    from rerank.cli import main

    return main(["pairs", *argv])


def test_pairs_from_tsv_queries_and_jsonl_corpus(tmp_path: Path, corpus: Path):
    queries = tmp_path / "q.tsv"
    queries.write_text("query_id\tquery\nqa\twing flutter\nqb\tjet engines\nqc\tthe of\n")
    out = tmp_path / "pairs.parquet"
    assert (
        _run("--queries", str(queries), "--corpus", str(corpus), "--k", "2", "--out", str(out)) == 0
    )
    got = pl.read_parquet(out)
    assert got.columns == ["query_id", "doc_id", "query", "title", "summary"]
    assert got.select("query_id", "doc_id").rows() == [("qa", "1"), ("qa", "3"), ("qb", "2")]
    assert got.row(2) == ("qb", "2", "jet engines", "jet noise", "noise of a jet engine")


def test_headerless_msmarco_style_queries_keep_their_text(tmp_path: Path, corpus: Path):
    queries = tmp_path / "topics.tsv"
    queries.write_text("1048585\tjet noise\n2\t wing flutter\n")
    frame = read_queries(queries)
    assert frame.rows() == [("1048585", "jet noise"), ("2", " wing flutter")]
    out = tmp_path / "pairs.jsonl"
    _run("--queries", str(queries), "--corpus", str(corpus), "--k", "1", "--out", str(out))
    assert pl.read_ndjson(out).select("query_id", "doc_id").rows() == [("1048585", "2"), ("2", "1")]


def test_text_column_and_parquet_queries(tmp_path: Path):
    path = tmp_path / "q.parquet"
    pl.DataFrame({"query_id": [7, 8], "text": ["a", None]}).write_parquet(path)
    assert read_queries(path).rows() == [("7", "a"), ("8", "")]


def test_documents_aliases_and_missing_title(tmp_path: Path):
    path = tmp_path / "docs.tsv.gz"
    path.write_bytes(gzip.compress(b'doc_id\ttext\nMED-1\tstatin "breast" cancer\n'))
    assert read_documents(path).rows() == [("MED-1", "", 'statin "breast" cancer')]


def test_headerless_two_field_documents(tmp_path: Path):
    path = tmp_path / "collection.tsv"
    path.write_text("MED-10\tstatin breast cancer\nMED-11\tsoy intake\n")
    assert read_documents(path).rows() == [
        ("MED-10", "", "statin breast cancer"),
        ("MED-11", "", "soy intake"),
    ]


def test_exclude_judged_pairs_from_trec_qrels(tmp_path: Path, corpus: Path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query_id": "qa", "query": "wing"}\n')
    qrels = tmp_path / "judged.qrels"
    qrels.write_text("qa 0 1 2\nqa\t0\t99\t1\n")
    assert read_judged(qrels).rows() == [("qa", "1"), ("qa", "99")]
    out = tmp_path / "pairs.tsv"
    argv = ["--queries", str(queries), "--corpus", str(corpus), "--k", "5", "--out", str(out)]
    _run(*argv, "--exclude-judged", str(qrels))
    got = pl.read_csv(out, separator="\t", infer_schema=False)
    assert got["doc_id"].to_list() == ["3"]


def test_exclude_judged_from_a_table_with_header(tmp_path: Path):
    path = tmp_path / "qrels_graded.tsv"
    path.write_text("query_id\tdoc_id\tgrade\traw_code\n1\t184\t3\t2\n")
    assert read_judged(path).rows() == [("1", "184")]


def test_build_pairs_keeps_query_order_and_rank_order():
    docs = pl.DataFrame(
        {"doc_id": ["a", "b", "c"], "title": ["wing", "wing wing", "jet"], "summary": ["", "", ""]}
    )
    queries = pl.DataFrame({"query_id": ["z", "y"], "query": ["jet", "wing"]})
    got = build_pairs(queries, docs, k=5)
    assert got.select("query_id", "doc_id").rows() == [("z", "c"), ("y", "b"), ("y", "a")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("query_id\tquestion\nq1\twing\n", r"q\.tsv: missing column 'query' or 'text'"),
        (
            "query_id\tquery\nq1\twing\nq1\tjet\n",
            r"q\.tsv:3: column 'query_id': 'q1' occurs more than once",
        ),
        (
            "query_id\tquery\nq1\twing\n\tjet\n",
            r"q\.tsv:3: column 'query_id': expected a non-empty id",
        ),
        ("", r"q\.tsv:1: the file is empty"),
    ],
)
def test_bad_queries_give_one_line_errors(tmp_path: Path, corpus: Path, capsys, content, message):
    queries = tmp_path / "q.tsv"
    queries.write_text(content)
    out = tmp_path / "pairs.parquet"
    with pytest.raises(RerankError, match=message) as err:
        _run("--queries", str(queries), "--corpus", str(corpus), "--out", str(out))
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_bad_corpus_and_bad_output_give_errors_and_no_file(tmp_path: Path):
    queries = tmp_path / "q.tsv"
    queries.write_text("query_id\tquery\nq1\twing\n")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"doc_id": "1", "title": "wing", "body": "x"}\n')
    with pytest.raises(RerankError, match=r"docs\.jsonl: missing column 'summary' or 'abstract'"):
        _run("--queries", str(queries), "--corpus", str(docs), "--out", str(tmp_path / "o.tsv"))
    docs.write_text('{"doc_id": "1", "title": "wing", "summary": "x"}\n{"doc_id": "1"}\n')
    with pytest.raises(
        RerankError, match=r"docs\.jsonl:2: column 'doc_id': '1' occurs more than once"
    ):
        _run("--queries", str(queries), "--corpus", str(docs), "--out", str(tmp_path / "o.tsv"))
    docs.write_text('{"doc_id": "1", "title": "wing", "summary": "x"}\n')
    with pytest.raises(RerankError, match=r"o\.xlsx: unknown file extension"):
        _run("--queries", str(queries), "--corpus", str(docs), "--out", str(tmp_path / "o.xlsx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "q.tsv"]
    with pytest.raises(RerankError, match=r"missing\.tsv: no such file"):
        _run("--queries", str(tmp_path / "missing.tsv"), "--corpus", str(docs), "--out", "o.tsv")


def test_main_prints_one_line_and_exits_2(tmp_path: Path, corpus: Path, capsys):
    pytest.importorskip("rerank.cli.evaluate")  # main() builds every registered subcommand
    code = _main("--queries", str(tmp_path / "nope.tsv"), "--corpus", str(corpus), "--out", "x.tsv")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank pairs: error: ") and err.count("\n") == 1
