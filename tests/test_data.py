"""rerank.data: readers, validation messages, writers and round trips, attach_scores.

Inputs are small inline TSV/JSONL/TREC strings written to ``tmp_path``; every error
test checks the whole one-line message (file, line or row, column, expectation,
offending value).
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import polars as pl
import pytest

from rerank import data
from rerank.errors import RerankError
from rerank.tables import checks

HEADER = "query_id\tdoc_id\tquery\ttitle\tsummary\tlabel\n"
GOOD_TSV = (
    HEADER
    + 'q1\td1\twhat is "lift"\tWings\tOn lift.\t2\n'
    + 'q1\td2\twhat is "lift"\tDrag\t\t0\n'
    + "q2\td1\tflutter\tWings\tOn lift.\t4\n"
)
GOOD_ROWS = [
    ("q1", "d1", 'what is "lift"', "Wings", "On lift.", 2),
    ("q1", "d2", 'what is "lift"', "Drag", "", 0),
    ("q2", "d1", "flutter", "Wings", "On lift.", 4),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(RerankError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --- reading query-grouped tables ---------------------------------------------------------


def test_read_pairs_tsv_keeps_quotes_and_fills_empty_text(tmp_path):
    frame = data.read_pairs(write(tmp_path, "eval.tsv", GOOD_TSV))
    assert frame.columns == list(data.PAIR_COLUMNS)
    assert frame.schema["label"] == pl.Int64
    assert frame.rows() == GOOD_ROWS


def test_read_pairs_text_false_reads_ids_and_label_only(tmp_path):
    frame = data.read_pairs(write(tmp_path, "eval.tsv", GOOD_TSV), text=False)
    assert frame.rows() == [("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d1", 4)]


def test_trailing_empty_lines_are_ignored(tmp_path):
    frame = data.read_pairs(write(tmp_path, "eval.tsv", GOOD_TSV + "\n\n"))
    assert frame.height == 3


def test_unlabeled_pairs(tmp_path):
    text = "query_id\tdoc_id\tquery\ttitle\tsummary\nq1\td1\tlift\tWings\tOn lift.\n"
    path = write(tmp_path, "rekindle.tsv", text)
    assert data.read_pairs(path).columns == ["query_id", "doc_id", "query", "title", "summary"]
    assert data.read_pairs(path, labels="forbidden").height == 1
    assert error_of(data.read_pairs, path, labels="required") == (
        f"{path}: missing column 'label'; found columns: "
        "'query_id', 'doc_id', 'query', 'title', 'summary'"
    )


def test_labels_forbidden_rejects_a_label_column(tmp_path):
    path = write(tmp_path, "eval.tsv", GOOD_TSV)
    assert error_of(data.read_pairs, path, labels="forbidden") == (
        f"{path}: unexpected column 'label': this input must be unlabeled"
    )


def test_label_range_is_configurable(tmp_path):
    path = write(tmp_path, "eval.tsv", GOOD_TSV)
    assert error_of(data.read_pairs, path, label_range=(0, 3)) == (
        f"{path}:4: column 'label': expected an integer grade in 0..3, got '4'"
    )
    text = HEADER + "q1\td1\tlift\tt\ts\t-2\n"
    assert data.read_pairs(write(tmp_path, "any.tsv", text), label_range=None)["label"][0] == -2


def test_jsonl_and_parquet_cast_integer_ids_to_strings(tmp_path):
    jsonl = write(
        tmp_path,
        "eval.jsonl",
        '{"query_id": 7, "doc_id": 12, "query": "lift", "title": null, "summary": "s", '
        '"label": 2.0}\n\n{"query_id": 7, "doc_id": 13, "query": "lift", "title": "t", '
        '"summary": "s", "label": 1}\n',
    )
    assert data.read_pairs(jsonl).rows() == [
        ("7", "12", "lift", "", "s", 2),
        ("7", "13", "lift", "t", "s", 1),
    ]
    parquet = tmp_path / "eval.parquet"
    pl.DataFrame({"query_id": [7], "doc_id": [12], "label": [3]}).write_parquet(parquet)
    assert data.read_pairs(parquet, text=False).rows() == [("7", "12", 3)]


# --- one test per bad input: file, row, column, expectation, value ------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "label.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\tlift\tt\ts\tx\n",
            "label.tsv:3: column 'label': expected an integer grade in 0..4, got 'x'",
        ),
        (
            "range.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\tlift\tt\ts\t5\nq1\td3\tlift\tt\ts\t9\n",
            "range.tsv:3: column 'label': expected an integer grade in 0..4, got '5'",
        ),
        (
            "blank.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq2\td1\t  \tt\ts\t1\n",
            "blank.tsv:3: column 'query': expected a non-empty query text, got '  '",
        ),
        (
            "noid.tsv",
            HEADER + "q1\t\tlift\tt\ts\t1\n",
            "noid.tsv:2: column 'doc_id': expected a non-empty id without leading whitespace, "
            "got ''",
        ),
        (
            "space.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\n q1\td2\tlift\tt\ts\t1\n",
            "space.tsv:3: column 'query_id': expected a non-empty id without leading "
            "whitespace, got ' q1'",
        ),
        (
            "dup.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\tlift\tt\ts\t0\nq1\td1\tlift\tt\ts\t2\n",
            "dup.tsv:4: duplicate (query_id, doc_id) ('q1', 'd1'), first on line 2",
        ),
        (
            "missing.tsv",
            "query_id\tdoc_id\tquery\tlabel\nq1\td1\tlift\t1\n",
            "missing.tsv: missing columns 'title', 'summary'; "
            "found columns: 'query_id', 'doc_id', 'query', 'label'",
        ),
        (
            "short.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\tlift\tt\ts\n",
            "short.tsv:3: expected 6 tab-separated fields as in the header, got 5",
        ),
        (
            "long.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\tlift\tt\ts\t1\textra\n",
            "long.tsv:3: expected 6 tab-separated fields as in the header, got 7",
        ),
        (
            "gap.tsv",
            HEADER + "q1\td1\tlift\tt\ts\t1\n\nq1\td2\tlift\tt\ts\t1\n",
            "gap.tsv:3: expected 6 tab-separated fields as in the header, got an empty line",
        ),
        ("empty.tsv", "", "empty.tsv: empty file: expected a header and data rows"),
        ("header.tsv", HEADER, "header.tsv: empty file: no data rows"),
        (
            "pairs.xlsx",
            "query_id,doc_id\n",
            "pairs.xlsx: unknown file extension; supported: .tsv, .jsonl, .parquet, .csv, "
            ".tsv.gz, .jsonl.gz, .csv.gz, .run, .trec, .qrels, .qrel",
        ),
        (
            "frac.jsonl",
            '{"query_id": "q1", "doc_id": "d1", "query": "lift", "title": "t", '
            '"summary": "s", "label": 1}\n\n{"query_id": "q1", "doc_id": "d2", '
            '"query": "lift", "title": "t", "summary": "s", "label": 2.5}\n',
            "frac.jsonl:3: column 'label': expected an integer grade in 0..4, got 2.5",
        ),
        (
            "broken.jsonl",
            '{"query_id": "q1", "doc_id": "d1", "query": "lift", "title": "t", '
            '"summary": "s", "label": 1}\n{"query_id": "q1", "doc_id":\n',
            "broken.jsonl:2: expected a JSON object: Expecting value",
        ),
    ],
)
def test_bad_pairs_name_file_row_column_and_value(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    assert error_of(data.read_pairs, path) == f"{tmp_path}/{expected}"


def test_parquet_errors_say_row_n(tmp_path):
    path = tmp_path / "eval.parquet"
    pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["d1", "d2"], "label": [3, 7]}).write_parquet(
        path
    )
    assert error_of(data.read_pairs, path, text=False) == (
        f"{path}: row 2: column 'label': expected an integer grade in 0..4, got 7"
    )


def test_first_offending_row_wins_across_columns(tmp_path):
    text = HEADER + "q1\td1\tlift\tt\ts\t1\nq1\td2\t\tt\ts\t1\nq1\td3\tlift\tt\ts\t8\n"
    path = write(tmp_path, "eval.tsv", text)
    assert error_of(data.read_pairs, path) == (
        f"{path}:3: column 'query': expected a non-empty query text, got ''"
    )


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    assert error_of(data.read_pairs, path) == f"{path}: no such file"


# --- scores and TREC files --------------------------------------------------------------------


def test_read_scores_table_keeps_float64(tmp_path):
    path = tmp_path / "scores.parquet"
    values = [0.1 + 0.2, 1e-300, -2.5]
    pl.DataFrame(
        {"query_id": ["q1"] * 3, "doc_id": ["a", "b", "c"], "score": values}
    ).write_parquet(path)
    frame = data.read_scores(path)
    assert frame.schema["score"] == pl.Float64
    assert frame["score"].to_list() == values


def test_read_trec_run_any_whitespace_and_blank_lines(tmp_path):
    path = write(tmp_path, "bm25.run", "q1\tQ0  d7 1 12.5 bm25\n\n  q1 Q0 d2 2 9 bm25  \r\n")
    assert data.read_scores(path).rows() == [("q1", "d7", 12.5), ("q1", "d2", 9.0)]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "short.run",
            "q1 Q0 d1 1 2.5 t\n\nq1 Q0 d2 2 t\n",
            "short.run:3: malformed TREC run line: expected 6 fields "
            "(qid Q0 docid rank score tag), got 5",
        ),
        (
            "word.run",
            "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 high t\n",
            "word.run:2: column 'score': expected a number, got 'high'",
        ),
        (
            "nan.run",
            "q1 Q0 d1 1 2.5 t\n\nq1 Q0 d2 2 nan t\n",
            "nan.run:3: column 'score': expected a finite number, got 'nan'",
        ),
        (
            "inf.trec",
            "q1 Q0 d1 1 inf t\n",
            "inf.trec:1: column 'score': expected a finite number, got 'inf'",
        ),
        (
            "dup.run",
            "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.5 t\nq1 Q0 d1 3 1 t\n",
            "dup.run:3: duplicate (query_id, doc_id) ('q1', 'd1'), first on line 1",
        ),
        (
            "empty.run",
            "\n\n",
            "empty.run: empty file: expected TREC run lines (qid Q0 docid rank score tag)",
        ),
        (
            "scores.tsv",
            "query_id\tdoc_id\tscore\nq1\td1\t0.5\nq1\td2\t-inf\n",
            "scores.tsv:3: column 'score': expected a finite number, got '-inf'",
        ),
        (
            "noscore.tsv",
            "query_id\tdoc_id\tlabel\nq1\td1\t1\n",
            "noscore.tsv: missing column 'score'; found columns: 'query_id', 'doc_id', 'label'",
        ),
    ],
)
def test_bad_scores(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    assert error_of(data.read_scores, path) == f"{tmp_path}/{expected}"


def test_read_qrels_and_its_errors(tmp_path):
    path = write(tmp_path, "test.qrels", "q1 0 d1 2\nq1\t0\td2\t0\n")
    assert data.read_qrels(path).rows() == [("q1", "d1", 2), ("q1", "d2", 0)]
    bad = write(tmp_path, "bad.qrels", "q1 0 d1 2\nq1 0 d2 1 x\n")
    assert error_of(data.read_qrels, bad) == (
        f"{bad}:2: malformed TREC qrels line: expected 4 fields (qid iteration docid rel), got 5"
    )
    grade = write(tmp_path, "grade.qrels", "q1 0 d1 2\nq1 0 d2 high\n")
    assert error_of(data.read_qrels, grade) == (
        f"{grade}:2: column 'label': expected an integer grade in 0..4, got 'high'"
    )
    assert data.read_qrels(
        write(tmp_path, "neg.qrels", "q1 0 d1 -2\n"), label_range=None
    ).rows() == [("q1", "d1", -2)]


# --- writers: exact text, round trips, atomic failure ---------------------------------------


def test_write_trec_run_ranks_by_descending_score_within_query(tmp_path):
    frame = pl.DataFrame(
        {
            "query_id": ["q2", "q1", "q2", "q2"],
            "doc_id": ["a", "b", "c", "d"],
            "score": [0.25, 1.0, 0.5, 0.5],
        }
    )
    path = tmp_path / "model.run"
    data.write_table(frame, path, tag="m")
    assert path.read_text() == (
        "q2 Q0 c 1 0.5 m\nq2 Q0 d 2 0.5 m\nq2 Q0 a 3 0.25 m\nq1 Q0 b 1 1.0 m\n"
    )


def test_trec_run_round_trip_is_exact(tmp_path):
    scores = [0.1 + 0.2, 1 / 3, -1e-300, 123456789.123456789, 2.5e20]
    frame = pl.DataFrame({"query_id": ["q1"] * 5, "doc_id": list("abcde"), "score": scores})
    path = tmp_path / "model.trec"
    data.write_trec_run(frame, path)
    back = data.read_scores(path)
    assert back.sort("doc_id").equals(frame)
    assert back["score"].to_list() == sorted(scores, reverse=True)


def test_trec_qrels_round_trip(tmp_path):
    frame = pl.DataFrame(
        {"query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "a"], "label": [2, 0, 1]}
    )
    path = tmp_path / "test.qrels"
    data.write_table(frame, path)
    assert path.read_text() == "q1 0 a 2\nq1 0 b 0\nq2 0 a 1\n"
    assert data.read_qrels(path).equals(frame)


@pytest.mark.parametrize("name", ["t.tsv", "t.jsonl", "t.parquet", "t.tsv.gz", "t.jsonl.gz"])
def test_table_round_trips(tmp_path, name):
    frame = data.read_pairs(write(tmp_path, "eval.tsv", GOOD_TSV))
    data.write_table(frame, tmp_path / name)
    assert data.read_pairs(tmp_path / name).equals(frame)
    if name.endswith(".gz"):
        assert gzip.decompress((tmp_path / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "frame", "expected"),
    [
        (
            "tab.tsv",
            pl.DataFrame({"query_id": ["q1", "q1"], "query": ["ok", "a\tb"]}),
            "tab.tsv: column 'query': row 2 holds a tab or line break, which TSV cannot "
            "represent; write .parquet or .jsonl instead",
        ),
        (
            "space.run",
            pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["a", "b c"], "score": [1.0, 2.0]}),
            "space.run: column 'doc_id': row 2: cannot write TREC: expected an id without "
            "whitespace, got 'b c'",
        ),
        (
            "nan.run",
            pl.DataFrame({"query_id": ["q1"], "doc_id": ["a"], "score": [math.nan]}),
            "nan.run: cannot write a TREC run: a score is missing, NaN or infinite",
        ),
        (
            "nolabel.qrels",
            pl.DataFrame({"query_id": ["q1"], "doc_id": ["a"]}),
            "nolabel.qrels: TREC qrels need column 'label'; found columns: ['query_id', 'doc_id']",
        ),
        (
            "out.xlsx",
            pl.DataFrame({"query_id": ["q1"]}),
            "out.xlsx: unknown file extension; supported: .tsv, .jsonl, .parquet, .csv, "
            ".tsv.gz, .jsonl.gz, .csv.gz, .run, .trec, .qrels, .qrel",
        ),
    ],
)
def test_failed_writes_leave_nothing(tmp_path, name, frame, expected):
    path = tmp_path / name
    assert error_of(data.write_table, frame, path) == f"{tmp_path}/{expected}"
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("old\n")
    bad = pl.DataFrame({"query_id": ["a\nb"]})
    error_of(data.write_table, bad, path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.tsv"]


# --- attach_scores ---------------------------------------------------------------------------

LABELED = pl.DataFrame(
    {"query_id": ["q1", "q1", "q1", "q2"], "doc_id": ["a", "b", "c", "a"], "label": [2, 0, 1, 1]}
)


def test_attach_same_order_needs_no_join():
    scores = LABELED.select("query_id", "doc_id", pl.Series("score", [0.5, 0.1, 0.3, 0.9]))
    out = data.attach_scores(LABELED, scores)
    assert out.frame.rows() == [
        ("q1", "a", 2, 0.5),
        ("q1", "b", 0, 0.1),
        ("q1", "c", 1, 0.3),
        ("q2", "a", 1, 0.9),
    ]
    assert out.counts() == {
        "judged_rows": 4,
        "scored_rows": 4,
        "evaluated_rows": 4,
        "unscored_rows": 0,
        "unmatched_rows": 0,
    }


def test_attach_reordered_and_unscored():
    scores = pl.DataFrame(
        {"query_id": ["q2", "q1", "q1"], "doc_id": ["a", "c", "a"], "score": [0.9, 0.3, 0.5]}
    )
    out = data.attach_scores(LABELED, scores)
    assert out.frame.rows() == [("q1", "a", 2, 0.5), ("q1", "c", 1, 0.3), ("q2", "a", 1, 0.9)]
    assert (out.unscored, out.unmatched) == (1, 0)


def test_attach_unmatched_error_names_first_row_then_drop(tmp_path):
    labeled = write(tmp_path, "eval.tsv", GOOD_TSV)
    run = write(
        tmp_path,
        "model.run",
        "q1 Q0 d1 1 3 m\nq1 Q0 d9 2 2 m\n\nq2 Q0 d1 1 1 m\nq3 Q0 d1 1 1 m\n",
    )
    judged, scores = data.read_labels(labeled), data.read_scores(run)
    message = error_of(data.attach_scores, judged, scores, labeled_path=labeled, scores_path=run)
    assert message == (
        f"{run}:2: 2 scored row(s) have no judged (query_id, doc_id) in {labeled}; "
        "the first is ('q1', 'd9'); set unmatched to 'drop' to ignore them"
    )
    out = data.attach_scores(judged, scores, unmatched="drop")
    assert out.frame.rows() == [("q1", "d1", 2, 3.0), ("q2", "d1", 4, 1.0)]
    assert (out.judged, out.scored, out.unscored, out.unmatched) == (3, 4, 1, 2)


def test_attach_in_memory_frames_name_rows():
    scores = pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["a", "a"], "score": [1.0, 2.0]})
    assert error_of(data.attach_scores, LABELED, scores) == (
        "scores: row 2: duplicate (query_id, doc_id) ('q1', 'a'), first on row 1"
    )


def test_attach_survives_hash_collisions(monkeypatch):
    """Make the first pair hash collide on every row: the duplicate check must fall back
    to comparing ids, and the merge must still match rows through the second hash."""
    real = checks.pair_hash

    def colliding(frame, ids, *, seed=0):
        if seed == 0:
            return pl.Series([0] * frame.height, dtype=pl.UInt64)
        return real(frame, ids, seed=seed)

    monkeypatch.setattr(checks, "pair_hash", colliding)
    scores = pl.DataFrame(
        {"query_id": ["q2", "q1", "q1"], "doc_id": ["a", "c", "a"], "score": [0.9, 0.3, 0.5]}
    )
    out = data.attach_scores(LABELED, scores)
    assert out.frame.rows() == [("q1", "a", 2, 0.5), ("q1", "c", 1, 0.3), ("q2", "a", 1, 0.9)]
    assert (out.unscored, out.unmatched) == (1, 0)
    dup = pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["a", "a"], "score": [1.0, 2.0]})
    assert error_of(data.attach_scores, LABELED, dup) == (
        "scores: row 2: duplicate (query_id, doc_id) ('q1', 'a'), first on row 1"
    )


def test_attach_matches_a_polars_join_on_shuffled_partial_overlap():
    import random

    rng = random.Random(3)
    pairs = [(f"q{q}", f"d{d}") for q in range(40) for d in range(rng.randint(1, 60))]
    judged = rng.sample(pairs, k=len(pairs) * 3 // 4)
    scored = rng.sample(pairs, k=len(pairs) * 3 // 4)
    labeled = pl.DataFrame(judged, schema=["query_id", "doc_id"], orient="row").with_columns(
        label=pl.Series([rng.randint(0, 4) for _ in judged])
    )
    scores = pl.DataFrame(scored, schema=["query_id", "doc_id"], orient="row").with_columns(
        score=pl.Series([rng.random() for _ in scored])
    )
    expected = labeled.join(scores, on=["query_id", "doc_id"], how="inner", maintain_order="left")
    out = data.attach_scores(labeled, scores, unmatched="drop")
    assert out.frame.equals(expected)
    assert out.unscored == labeled.height - expected.height
    assert out.unmatched == scores.height - expected.height


def test_attach_with_many_colliding_first_hashes(monkeypatch):
    """Every row shares one first hash: the merge must try every pair in the run."""
    real = checks.pair_hash
    monkeypatch.setattr(
        checks,
        "pair_hash",
        lambda frame, ids, *, seed=0: (
            pl.Series([7] * frame.height, dtype=pl.UInt64)
            if seed == 0
            else real(frame, ids, seed=seed)
        ),
    )
    labeled = pl.DataFrame({"query_id": ["q"] * 60, "doc_id": [f"d{i}" for i in range(60)]})
    labeled = labeled.with_columns(label=pl.lit(1))
    scores = (
        labeled.select("query_id", "doc_id").reverse().with_columns(score=pl.int_range(60) * 0.5)
    )
    out = data.attach_scores(labeled, scores)
    assert out.frame["score"].to_list() == [0.5 * (59 - i) for i in range(60)]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "eval.tsv"
    path.write_bytes(b"query_id\tdoc_id\tlabel\nq1\td1\t1\nq1\td\xff\t1\n")
    assert error_of(data.read_pairs, path, text=False) == (
        f"{path}:3: expected UTF-8 text, got byte 0xff at byte 5"
    )
    run = tmp_path / "m.run"
    run.write_bytes(b"q1 Q0 d1 1 1 t\nq1 Q0 d\xff 2 1 t\n")
    assert (
        error_of(data.read_scores, run) == f"{run}:2: expected UTF-8 text, got byte 0xff at byte 8"
    )
