"""rerank.tables behind rerank.data: teacher target columns, the one qrels reader."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from rerank.data import (
    check_targets,
    read_judged,
    read_labels,
    read_pairs,
    read_training_jsonl,
    teacher_column,
    write_table,
)
from rerank.errors import RerankError

HEADER = "query_id\tdoc_id\tquery\ttitle\tsummary\tteacher:t1\n"


def test_teacher_columns_are_named_in_one_place():
    assert teacher_column("t1") == "teacher:t1"
    from rerank.rekindle.store import teacher_column as store_column

    assert store_column is teacher_column


def test_read_pairs_reads_requested_targets_as_finite_floats(tmp_path):
    path = tmp_path / "rekindle.tsv"
    path.write_text(HEADER + "q1\td1\twing\t\tlift\t0.5\nq1\td2\twing\t\tjet\t-2\n")
    frame = read_pairs(path, targets=["teacher:t1"])
    assert frame.columns[-1] == "teacher:t1" and frame.schema["teacher:t1"] == pl.Float64
    assert frame["teacher:t1"].to_list() == [0.5, -2.0]
    assert "teacher:t1" not in read_pairs(path).columns  # only when asked for


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inf", "rekindle.tsv:3: column 'teacher:t1': expected a finite number, got 'inf'"),
        ("", "rekindle.tsv:3: column 'teacher:t1': expected a number, got ''"),
        ("high", "rekindle.tsv:3: column 'teacher:t1': expected a number, got 'high'"),
    ],
)
def test_a_bad_target_value_is_one_line_naming_file_row_and_column(tmp_path, value, expected):
    path = tmp_path / "rekindle.tsv"
    path.write_text(HEADER + f"q1\td1\twing\t\tlift\t0.5\nq1\td2\twing\t\tjet\t{value}\n")
    with pytest.raises(RerankError) as err:
        read_pairs(path, targets=["teacher:t1"])
    assert str(err.value).endswith(expected) and "\n" not in str(err.value)


def test_a_missing_target_column_is_named(tmp_path):
    path = tmp_path / "rekindle.tsv"
    path.write_text(HEADER + "q1\td1\twing\t\tlift\t0.5\n")
    with pytest.raises(RerankError, match=r"rekindle.tsv: missing column 'teacher:t2'"):
        read_pairs(path, targets=["teacher:t2"])


def test_frames_given_in_memory_get_the_same_target_checks():
    ok = pl.DataFrame({"teacher:t1": [0.5, 1.0], "teacher:rte": [[0.1, 0.9], [2.0, -1.0]]})
    check_targets(ok, ["teacher:t1", "teacher:rte"], "training frame")
    bad = ok.with_columns(pl.Series("teacher:rte", [[0.1, 0.9], [float("inf"), 0.0]]))
    with pytest.raises(
        RerankError, match=r"^training frame: row 2: column 'teacher:rte': expected finite"
    ):
        check_targets(bad, ["teacher:t1", "teacher:rte"], "training frame")
    with pytest.raises(RerankError, match=r"training frame: missing column 'teacher:t2'"):
        check_targets(ok, ["teacher:t2"], "training frame")


def test_a_non_finite_score_in_a_training_jsonl_is_refused_at_its_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = {"query": "wing", "pos": ["lift"], "neg": ["jet"], "pos_scores": [1.0]}
    good["neg_scores"] = [0.0]
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "neg_scores": [float("nan")]}))
    with pytest.raises(
        RerankError,
        match=re.escape("train.jsonl:2: column 'neg_scores': expected 1 finite number(s)"),
    ):
        read_training_jsonl(path)


def test_judged_pairs_read_qrels_by_the_qrels_reader(tmp_path):
    qrels = tmp_path / "judged.qrel"  # the singular spelling is qrels too
    qrels.write_text("q1 0 d1 2\nq1\t0\td2\t-2\n")
    assert read_judged(qrels).rows() == [("q1", "d1"), ("q1", "d2")]
    assert read_labels(qrels, label_range=None)["label"].to_list() == [2, -2]
    bad = tmp_path / "judged.tsv"  # headerless: a qrels file, with its errors
    bad.write_text("q1 0 d1 2\nq1 0 d2 1 extra\n")
    with pytest.raises(RerankError, match=r"judged.tsv:2: malformed TREC qrels line"):
        read_judged(bad)
    table = tmp_path / "judged.parquet"
    write_table(pl.DataFrame({"query_id": [1, 1], "doc_id": ["a", "a"]}), table)
    with pytest.raises(RerankError, match=r"duplicate \(query_id, doc_id\)"):
        read_judged(table)


def test_sniff_tells_formats_by_their_first_bytes():
    from rerank.tables.formats import sniff

    assert sniff(b"PAR1....") == "parquet"
    assert sniff(b'\n{"query_id": "1"}\n') == "jsonl"
    assert sniff(b"query_id\tdoc_id\tlabel\n") == "tsv"
    assert sniff(b"301 0 FBIS3-10082 1\n") == "qrels"
    assert sniff(b"301 Q0 FBIS3-10082 1 12.5 bm25\n") == "run"
    # four fields of which one is a column name: a header, not qrels
    assert sniff(b"qid iter docid rel\n") is None
    assert sniff(b"   \n") is None


def test_first_repeat_finds_the_first_row_repeating_an_earlier_key():
    from rerank.tables.checks import first_repeat

    frame = pl.DataFrame({"q": ["1", "1", "2", "1"], "d": ["a", "b", "a", "a"]})
    assert first_repeat(frame, ["q", "d"]) == 3
    assert first_repeat(frame, ["q"]) == 1
    assert first_repeat(frame.head(3), ["q", "d"]) is None
