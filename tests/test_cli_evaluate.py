"""``rerank evaluate``: output, counts, per-query files, and user errors (exit 2, one line,
no partial output)."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rerank.cli import main
from rerank.evaluation import evaluate_files

REPO = Path(__file__).resolve().parents[1]

# q1: labels 2, 1, 0 scored 3, 1, 2 -> pairs (a,b) conc, (a,c) conc, (b,c) disc
# q2: labels 1, 0 scored 5, 5 -> one tie
LABELED = "query_id\tdoc_id\tlabel\nq1\ta\t2\nq1\tb\t1\nq1\tc\t0\nq2\ta\t1\nq2\td\t0\n"
RUN = "q1 Q0 a 1 3 m\nq1 Q0 c 2 2 m\nq1 Q0 b 3 1 m\nq2 Q0 a 1 5 m\nq2 Q0 d 2 5 m\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_json(capsys, *args: str) -> dict:
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_measures_pnr_counts_and_row_counts(tmp_path, capsys):
    data, run = write(tmp_path, "eval.tsv", LABELED), write(tmp_path, "m.run", RUN)
    out = run_json(capsys, "--data", data, "--scores", run, "--metrics", "pnr,pnr_macro,mrr")
    assert out == {
        "pnr": 2.0,
        "pnr_macro": 2.0,
        "mrr": 0.75,  # q2's tie at 5 is broken by doc id, descending (trec_eval): d, a
        "concordant": 2,
        "discordant": 1,
        "ties": 1,
        "queries": 2,
        "queries_without_discordant": 1,
        "judged_rows": 5,
        "scored_rows": 5,
        "evaluated_rows": 5,
        "unscored_rows": 0,
        "unmatched_rows": 0,
    }


def test_table_output(tmp_path, capsys):
    data, run = write(tmp_path, "eval.tsv", LABELED), write(tmp_path, "m.run", RUN)
    assert main(["evaluate", "--data", data, "--scores", run, "--metrics", "pnr"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "measure                      value",
        "pnr                         2.0000",
        "concordant                  2",
        "discordant                  1",
        "ties                        1",
        "queries                     2",
        "queries_without_discordant  1",
        "judged_rows                 5",
        "scored_rows                 5",
        "evaluated_rows              5",
        "unscored_rows               0",
        "unmatched_rows              0",
    ]
    assert captured.err == ""


def test_per_query_file(tmp_path, capsys):
    data, run = write(tmp_path, "eval.tsv", LABELED), write(tmp_path, "m.run", RUN)
    out = tmp_path / "per_query.tsv"
    args = [
        "evaluate",
        "--data",
        data,
        "--scores",
        run,
        "--metrics",
        "pnr",
        "--per-query",
        str(out),
    ]
    assert main(args) == 0
    assert out.read_text() == (
        "query_id\tpnr\tconcordant\tdiscordant\tties\nq1\t2.0\t2\t1\t0\nq2\tNaN\t0\t0\t1\n"
    )


def test_qrels_judgments_and_unscored_rows(tmp_path, capsys):
    qrels = write(tmp_path, "test.qrels", "q1 0 a 2\nq1 0 b 1\nq1 0 c 0\nq1 0 z 1\n")
    run = write(tmp_path, "m.run", "q1 Q0 a 1 3 m\nq1 Q0 b 2 1 m\nq1 Q0 c 3 2 m\n")
    out = run_json(capsys, "--data", qrels, "--scores", run, "--metrics", "pnr")
    assert (out["concordant"], out["discordant"]) == (2, 1)
    assert (out["judged_rows"], out["evaluated_rows"], out["unscored_rows"]) == (4, 3, 1)
    main(["evaluate", "--data", qrels, "--scores", run, "--metrics", "pnr"])
    assert capsys.readouterr().err == (
        "rerank evaluate: note: 1 judged row(s) have no score and were left out\n"
    )


def test_unmatched_error_then_drop(tmp_path, capsys):
    data = write(tmp_path, "eval.tsv", LABELED)
    run = write(tmp_path, "m.run", RUN + "q3 Q0 x 1 1 m\nq1 Q0 y 4 0 m\n")
    per_query = tmp_path / "pq.tsv"
    args = ["evaluate", "--data", data, "--scores", run, "--per-query", str(per_query)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"rerank evaluate: error: {run}:6: 2 scored row(s) have no judged (query_id, doc_id) "
        f"in {data}; the first is ('q3', 'x'); for TREC-style judgments (a judged pool; "
        "unjudged retrieved documents count as non-relevant) use --qrels/--run instead of "
        "--data/--scores\n"
    )
    assert not per_query.exists()
    out = run_json(capsys, *args[1:], "--unmatched", "drop", "--metrics", "pnr")
    assert (out["scored_rows"], out["unmatched_rows"], out["evaluated_rows"]) == (7, 2, 5)
    assert out["concordant"] == 2
    assert per_query.exists()


BAD_INPUTS = [
    (
        "label.tsv",
        LABELED.replace("q1\tb\t1", "q1\tb\tx"),
        None,
        "label.tsv:3: column 'label': expected an integer grade in 0..4, got 'x'",
    ),
    (
        "range.tsv",
        LABELED.replace("q1\tb\t1", "q1\tb\t5"),
        None,
        "range.tsv:3: column 'label': expected an integer grade in 0..4, got '5'",
    ),
    (
        "dup.tsv",
        LABELED + "q1\ta\t0\n",
        None,
        "dup.tsv:7: duplicate (query_id, doc_id) ('q1', 'a'), first on line 2",
    ),
    (
        "nolabel.tsv",
        "query_id\tdoc_id\nq1\ta\n",
        None,
        "nolabel.tsv: missing column 'label'; found columns: 'query_id', 'doc_id'",
    ),
    ("empty.tsv", "", None, "empty.tsv: empty file: expected a header and data rows"),
    (
        "eval.xlsx",
        LABELED,
        None,
        "eval.xlsx: unknown file extension; supported: .tsv, .jsonl, "
        ".parquet, .csv, .tsv.gz, .jsonl.gz, .csv.gz, .run, .trec, .qrels, .qrel",
    ),
    (
        None,
        None,
        ("nan.run", RUN.replace("a 1 3 m", "a 1 nan m")),
        "nan.run:1: column 'score': expected a finite number, got 'nan'",
    ),
    (
        None,
        None,
        ("word.run", RUN.replace("c 2 2 m", "c 2 two m")),
        "word.run:2: column 'score': expected a number, got 'two'",
    ),
    (
        None,
        None,
        ("short.run", RUN.replace("q2 Q0 a 1 5 m", "q2 Q0 a 5 m")),
        "short.run:4: "
        "malformed TREC run line: expected 6 fields (qid Q0 docid rank score tag), got 5",
    ),
    (
        None,
        None,
        ("empty.run", ""),
        "empty.run: empty file: expected TREC run lines (qid Q0 docid rank score tag)",
    ),
]


@pytest.mark.parametrize(("data_name", "data_text", "run_file", "message"), BAD_INPUTS)
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(
    tmp_path, capsys, data_name, data_text, run_file, message
):
    data = write(tmp_path, data_name or "eval.tsv", LABELED if data_text is None else data_text)
    run = write(tmp_path, *(run_file or ("m.run", RUN)))
    per_query = tmp_path / "pq.parquet"
    args = ["evaluate", "--data", data, "--scores", run, "--per-query", str(per_query)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"rerank evaluate: error: {tmp_path}/{message}\n"
    assert captured.out == ""
    assert not per_query.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--label-range", "4..0"],
            "--label-range: expected LOW..HIGH such as 0..4, or any, got '4..0'",
        ),
        (
            ["--metrics", "pnr,,map"],
            "--metrics: expected comma-separated measure names, got 'pnr,,map'",
        ),
        (
            ["--per-query", "PQ/out.run"],
            "PQ/out.run: expected a .tsv, .jsonl or .parquet per-query file",
        ),
    ],
)
def test_bad_flags(tmp_path, capsys, flags, message):
    data, run = write(tmp_path, "eval.tsv", LABELED), write(tmp_path, "m.run", RUN)
    flags = [f.replace("PQ", str(tmp_path)) for f in flags]
    assert main(["evaluate", "--data", data, "--scores", run, *flags]) == 2
    assert (
        capsys.readouterr().err
        == f"rerank evaluate: error: {message.replace('PQ', str(tmp_path))}\n"
    )


def test_label_range_any_and_ir_measure_with_commas(tmp_path, capsys):
    data = write(tmp_path, "eval.tsv", LABELED.replace("q1\tc\t0", "q1\tc\t-1"))
    run = write(tmp_path, "m.run", RUN)
    out = run_json(
        capsys, "--data", data, "--scores", run, "--label-range", "any",
        "--metrics", "pnr,AP(rel=1,judged_only=True)",
    )  # fmt: skip
    assert (out["concordant"], out["discordant"], out["ties"]) == (2, 1, 1)
    assert "AP(rel=1,judged_only=True)" in out


def brute_force_pnr(labels: dict, scores: dict) -> tuple[int, int, int]:
    """Pure Python: every pair of judged docs of one query with different labels."""
    conc = disc = ties = 0
    for (qa, da), (qb, db) in itertools.combinations(labels, 2):
        if qa != qb or labels[qa, da] == labels[qb, db]:
            continue
        hi, lo = ((qa, da), (qb, db)) if labels[qa, da] > labels[qb, db] else ((qb, db), (qa, da))
        if scores[hi] > scores[lo]:
            conc += 1
        elif scores[hi] < scores[lo]:
            disc += 1
        else:
            ties += 1
    return conc, disc, ties


def test_pnr_equals_brute_force_count(tmp_path, capsys):
    rng = random.Random(7)
    labels, scores = {}, {}
    for q in range(12):
        for d in range(rng.randint(1, 30)):
            labels[f"q{q}", f"d{d}"] = rng.randint(0, 4)
            scores[f"q{q}", f"d{d}"] = rng.choice([0.5, 1.0, 1.5]) if d % 3 else rng.random()
    keys = list(labels)
    rng.shuffle(keys)  # scores in another order than the judgments: exercises the join
    data = write(
        tmp_path, "eval.tsv", "query_id\tdoc_id\tlabel\n"
        + "".join(f"{q}\t{d}\t{labels[q, d]}\n" for q, d in labels),
    )  # fmt: skip
    run = write(tmp_path, "m.trec", "".join(f"{q} Q0 {d} 0 {scores[q, d]!r} m\n" for q, d in keys))
    out = run_json(capsys, "--data", data, "--scores", run, "--metrics", "pnr")
    conc, disc, ties = brute_force_pnr(labels, scores)
    assert (out["concordant"], out["discordant"], out["ties"]) == (conc, disc, ties)
    assert out["pnr"] == conc / disc


def test_library_function_matches_cli(tmp_path, capsys):
    data, run = write(tmp_path, "eval.tsv", LABELED), write(tmp_path, "m.run", RUN)
    report = evaluate_files(data, run, measures=["pnr", "ndcg@10"], per_query=True)
    assert report.as_dict() == run_json(
        capsys, "--data", data, "--scores", run, "--metrics", "pnr,ndcg@10"
    )
    assert report.per_query["query_id"].to_list() == ["q1", "q2"]


def test_parquet_judgments_with_integer_ids(tmp_path, capsys):
    path = tmp_path / "eval.parquet"
    pl.DataFrame({"query_id": [1, 1, 2], "doc_id": [10, 11, 10], "label": [1, 0, 2]}).write_parquet(
        path
    )
    run = write(tmp_path, "m.run", "1 Q0 10 1 0.5 m\n1 Q0 11 2 0.7 m\n2 Q0 10 1 1 m\n")
    out = run_json(capsys, "--data", str(path), "--scores", run, "--metrics", "pnr")
    assert (out["concordant"], out["discordant"], out["evaluated_rows"]) == (0, 1, 3)


def test_python_m_rerank_exit_code_and_no_traceback(tmp_path):
    data = write(tmp_path, "eval.tsv", LABELED.replace("q1\tb\t1", "q1\tb\tx"))
    run = write(tmp_path, "m.run", RUN)
    result = subprocess.run(
        [sys.executable, "-m", "rerank", "evaluate", "--data", data, "--scores", run],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"rerank evaluate: error: {data}:3: column 'label': "
        "expected an integer grade in 0..4, got 'x'\n"
    )
    assert result.stdout == ""
