"""TREC mode (``rerank evaluate --qrels/--run``, ``rerank.evaluation.evaluate``): trec_eval's
semantics, checked against ir-measures (pytrec_eval) on inline TREC strings and shipped data;
measure names in three spellings; files recognised by content; stdin."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import ir_measures
import polars as pl
import pytest

from rerank.cli import main
from rerank.errors import RerankError
from rerank.evaluation import evaluate, evaluate_trec_files

REPO = Path(__file__).resolve().parents[1]

# Query 1: z is judged relevant but not retrieved; x is retrieved but unjudged.
# Query 2: e and d tie at 5.0: trec_eval ranks doc ids in descending order, e first.
# Query 3 is judged but not in the run; query 4 has no relevant document; query 5 is
# retrieved but not judged (ignored).
QRELS = "1 0 a 2\n1 0 b 0\n1 0 c 1\n1 0 z 3\n2 0 d 1\n2 0 e 0\n3 0 f 1\n4 0 g 0\n"
RUN = (
    "1 Q0 a 1 3.0 m\n1 Q0 x 2 2.5 m\n1 Q0 c 3 2.0 m\n1 Q0 b 4 1.0 m\n"
    "2 Q0 e 1 5.0 m\n2 Q0 d 2 5.0 m\n4 Q0 g 1 1.0 m\n5 Q0 h 1 1.0 m\n"
)
# Spelling as given -> (ir-measures expression, key in the report)
NAMES = {
    "nDCG@10": ("nDCG@10", "ndcg@10"),
    "ndcg_cut_3": ("nDCG@3", "ndcg@3"),
    "ndcg": ("nDCG", "ndcg"),
    "AP": ("AP", "map"),
    "map_cut_2": ("AP@2", "map@2"),
    "recip_rank": ("RR", "mrr"),
    "P_2": ("P@2", "p@2"),
    "P@10": ("P@10", "p@10"),
    "recall_3": ("R@3", "r@3"),
    "R@100": ("R@100", "r@100"),
    "ERR@10": ("ERR@10", "err@10"),
    "AP(rel=2)": ("AP(rel=2)", "AP(rel=2)"),
    "Rprec": ("Rprec", "Rprec"),  # not in the numba kernels: ir-measures computes it
}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def reference(
    qrels: str, run: str, expressions: list[str], *, complete: bool = False
) -> dict[str, float]:
    """ir-measures on the same TREC text.

    ir-measures counts judged queries missing from the run as zero (trec_eval ``-c``);
    without ``complete`` its per-query values are averaged over the queries in the run,
    as plain trec_eval does.
    """
    q = [ir_measures.Qrel(f[0], f[2], int(f[3])) for f in map(str.split, qrels.splitlines())]
    r = [ir_measures.ScoredDoc(f[0], f[2], float(f[4])) for f in map(str.split, run.splitlines())]
    in_run = {doc.query_id for doc in r}
    result = {}
    for expression in expressions:
        values = [
            m.value
            for m in ir_measures.iter_calc([ir_measures.parse_measure(expression)], q, r)
            if complete or m.query_id in in_run
        ]
        result[expression] = sum(values) / len(values)
    return result


def test_hand_checked_map_and_complete():
    # q1: relevant a, c, z; ranked a x c b -> AP (1 + 2/3) / 3; q2: d second -> 0.5; q4: 0
    report = evaluate(qrels=io_frame(QRELS, "qrels"), run=io_frame(RUN, "run"), metrics=["map"])
    expected = ((1 + 2 / 3) / 3 + 0.5 + 0.0) / 3
    assert report["map"] == pytest.approx(expected, abs=1e-12)
    assert report.counts == {
        "evaluated_queries": 3,
        "missing_queries": 1,
        "unjudged_queries": 1,
        "judged_rows": 8,
        "retrieved_rows": 7,
        "unjudged_retrieved_rows": 1,
    }
    complete = evaluate(
        qrels=io_frame(QRELS, "qrels"), run=io_frame(RUN, "run"), metrics="AP", complete=True
    )
    assert complete["map"] == pytest.approx(expected * 3 / 4, abs=1e-12)
    assert complete.counts["evaluated_queries"] == 4


def test_all_spellings_equal_ir_measures(tmp_path, capsys):
    qrels, run = write(tmp_path, "qrels.txt", QRELS), write(tmp_path, "run.txt", RUN)
    assert (
        main(["evaluate", "--qrels", qrels, "--run", run, "--json", "--measures", ",".join(NAMES)])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    expected = reference(QRELS, RUN, [e for e, _ in NAMES.values()])
    for expression, key in NAMES.values():
        assert out[key] == pytest.approx(expected[expression], abs=1e-4), key
    assert out["evaluated_queries"] == 3


def test_complete_equals_ir_measures_with_zeros(tmp_path):
    qrels, run = write(tmp_path, "q.qrels", QRELS), write(tmp_path, "r.run", RUN)
    names = ["ndcg@10", "P@2", "AP", "Rprec"]
    report = evaluate_trec_files(qrels, run, measures=names, complete=True)
    expected = reference(QRELS, RUN, ["nDCG@10", "P@2", "AP", "Rprec"], complete=True)
    for name, expression in zip(names, expected, strict=True):
        assert report[name] == pytest.approx(expected[expression], abs=1e-12), name
    # plain mode: the 3 queries of the run; -c adds query 3 as zero
    plain = evaluate_trec_files(qrels, run, measures=names)
    assert plain["ndcg@10"] == pytest.approx(report["ndcg@10"] * 4 / 3, abs=1e-12)


def test_rr_at_k_breaks_ties_as_trec_eval():
    # ir-measures computes RR@k with its msmarco provider, which ranks equal scores by doc id
    # ascending; we keep trec_eval's descending order for every measure: in query 2, e (not
    # relevant) ranks before d, so RR@10 is 1/2 there, as RR (pytrec_eval) says.
    report = evaluate(
        qrels=io_frame(QRELS, "qrels"),
        run=io_frame(RUN, "run"),
        metrics=["RR@10", "RR"],
        per_query=True,
    )
    assert report.per_query["mrr@10"].to_list() == [1.0, 0.5, 0.0]
    assert report.per_query["mrr"].to_list() == [1.0, 0.5, 0.0]


def test_shipped_cranfield_relevant_only_qrels(tmp_path, capsys):
    """The issue's case: relevant-only qrels; table mode with --unmatched drop says MAP 1.0."""
    labels = pl.read_parquet(REPO / "data/cranfield/test.parquet").filter(pl.col("label") > 0)
    qrels_text = "".join(
        f"{q} 0 {d} {label}\n"
        for q, d, label in labels.select("query_id", "doc_id", "label").iter_rows()
    )
    qrels = write(tmp_path, "cranfield-rel", qrels_text)  # no extension: read by content
    run = str(REPO / "data/cranfield/bm25_test.run")
    names = ["nDCG@10", "AP", "RR", "RR@10", "P@10", "R@100", "ERR@20"]
    assert (
        main(["evaluate", "--qrels", qrels, "--run", run, "--json", "--metrics", ",".join(names)])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    expected = reference(qrels_text, Path(run).read_text(), names)
    keys = ["ndcg@10", "map", "mrr", "mrr@10", "p@10", "r@100", "err@20"]
    for name, key in zip(names, keys, strict=True):
        assert out[key] == pytest.approx(expected[name], abs=1e-4), key
    assert out["map"] == pytest.approx(0.3867, abs=1e-4)
    # The table mode drops the unjudged retrieved rows: what the issue measured as 1.0.
    assert (
        main(
            [
                "evaluate",
                "--data",
                qrels,
                "--scores",
                run,
                "--unmatched",
                "drop",
                "--metrics",
                "map",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["map"] == pytest.approx(1.0)


def test_shipped_cranfield_full_qrels_from_parquet():
    report = evaluate(
        qrels=str(REPO / "data/cranfield/test.parquet"),
        run=str(REPO / "data/cranfield/bm25_test.run"),
        metrics=["ndcg@10", "map", "mrr"],
    )
    labels = pl.read_parquet(REPO / "data/cranfield/test.parquet")
    qrels_text = "".join(
        f"{q} 0 {d} {g}\n" for q, d, g in labels.select("query_id", "doc_id", "label").iter_rows()
    )
    run_text = (REPO / "data/cranfield/bm25_test.run").read_text()
    expected = reference(qrels_text, run_text, ["nDCG@10", "AP", "RR"])
    assert dict(report) == pytest.approx(
        {"ndcg@10": expected["nDCG@10"], "map": expected["AP"], "mrr": expected["RR"]}, abs=1e-4
    )


def test_pnr_over_judged_pairs_or_unjudged_as_zero(tmp_path):
    qrels, run = write(tmp_path, "q.qrels", QRELS), write(tmp_path, "r.run", RUN)
    # judged pairs: q1 a(2)>c(1)>b(0) all concordant (3); q2 d(1) vs e(0) tied scores
    judged = evaluate_trec_files(qrels, run, measures=["pnr"])
    assert (judged["concordant"], judged["discordant"], judged["ties"]) == (3, 0, 1)
    # x (unjudged, grade 0, score 2.5) adds: a>x concordant, c>x discordant
    zero = evaluate_trec_files(qrels, run, measures=["pnr"], pnr_unjudged="zero")
    assert (zero["concordant"], zero["discordant"], zero["ties"]) == (4, 1, 1)


def test_per_query_rows(tmp_path, capsys):
    qrels, run = write(tmp_path, "q.qrels", QRELS), write(tmp_path, "r.run", RUN)
    out = tmp_path / "pq.tsv"
    assert (
        main(
            [
                "evaluate",
                "--qrels",
                qrels,
                "--run",
                run,
                "--metrics",
                "AP,pnr",
                "--per-query",
                str(out),
                "-c",
            ]
        )
        == 0
    )
    table = pl.read_csv(out, separator="\t", schema_overrides={"query_id": pl.String})
    assert table["query_id"].to_list() == ["1", "2", "4", "3"]
    assert table["map"].to_list() == pytest.approx([(1 + 2 / 3) / 3, 0.5, 0.0, 0.0])
    assert "3 judged queries" not in capsys.readouterr().err


def test_notes_on_ignored_and_missing_queries(tmp_path, capsys):
    qrels, run = write(tmp_path, "q.qrels", QRELS), write(tmp_path, "r.run", RUN)
    assert main(["evaluate", "--qrels", qrels, "--run", run, "--metrics", "map"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "rerank evaluate: note: 1 run queries have no judgment and were ignored",
        "rerank evaluate: note: 1 judged queries are not in the run and were left out "
        "(-c counts them as zero)",
    ]


@pytest.mark.parametrize("run_name", ["run", "run.txt", "run.gz", "bm25.trec.gz"])
def test_files_recognised_by_content(tmp_path, run_name):
    qrels = write(tmp_path, "qrels.txt", QRELS)
    path = tmp_path / run_name
    path.write_bytes(gzip.compress(RUN.encode()) if run_name.endswith(".gz") else RUN.encode())
    report = evaluate_trec_files(qrels, path, measures=["map"])
    assert report["map"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5) / 3)


def test_run_and_qrels_without_a_common_query(tmp_path, capsys):
    qrels = write(tmp_path, "q.qrels", QRELS)
    run = write(tmp_path, "other.run", "q9 Q0 a 1 1.0 m\n")
    assert main(["evaluate", "--qrels", qrels, "--run", run]) == 2
    assert capsys.readouterr().err == (
        "rerank evaluate: error: no query of the run is judged in the qrels (run queries "
        "'q9' ...; judged queries '1', '2', '3' ...): are they the same collection and id "
        "scheme?\n"
    )


def test_stdin_for_both_is_refused(capsys):
    assert main(["evaluate", "--qrels", "-", "--run", "-"]) == 2
    assert capsys.readouterr().err == (
        "rerank evaluate: error: only one of the qrels and the run can be read from stdin\n"
    )


def test_stdin_run_in_process(tmp_path, monkeypatch, capsys):
    qrels = write(tmp_path, "qrels.txt", QRELS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(RUN.encode())))
    assert main(["evaluate", "--qrels", qrels, "--run", "-", "--metrics", "map", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["map"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5) / 3)
    # an error in stdin is named <stdin>, not the temporary file
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1 Q0 a 1 oops m\n")))
    assert main(["evaluate", "--qrels", qrels, "--run", "-"]) == 2
    assert capsys.readouterr().err.startswith("rerank evaluate: error: <stdin>:1: column 'score'")


def test_unrecognisable_content_is_one_line_error(tmp_path, capsys):
    qrels = write(tmp_path, "qrels.txt", "just some words\n")
    run = write(tmp_path, "run.txt", RUN)
    assert main(["evaluate", "--qrels", qrels, "--run", run]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot tell the format of this qrels file from its content" in err
    # a run given as qrels is named as such
    assert main(["evaluate", "--qrels", run, "--run", run]) == 2
    assert "looks like a TREC run (6 fields a line), expected TREC qrels" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qrels", "q.qrels"], "TREC mode needs both --qrels and --run"),
        (["--qrels", "q.qrels", "--run", "r.run", "--data", "x.tsv"], "not both"),
        ([], "give --qrels QRELS --run RUN"),
        (["--qrels", "q.qrels", "--run", "r.run", "--metrics", "ndcg_cut"], "unknown measure"),
    ],
)
def test_mode_errors(tmp_path, capsys, monkeypatch, args, message):
    write(tmp_path, "q.qrels", QRELS)
    write(tmp_path, "r.run", RUN)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", *args]) == 2
    assert message in capsys.readouterr().err


def test_api_frames_polars_and_pandas():
    qrels, run = io_frame(QRELS, "qrels"), io_frame(RUN, "run")
    from_polars = evaluate(qrels=qrels, run=run, metrics=["ndcg_cut_10", "recip_rank"])
    assert list(from_polars) == ["ndcg@10", "mrr"]
    pd = pytest.importorskip("pandas")
    from_pandas = evaluate(qrels=qrels.to_pandas(), run=run.to_pandas(), measures="nDCG@10,RR")
    assert dict(from_pandas) == pytest.approx(dict(from_polars))
    assert isinstance(pd.DataFrame(), pd.DataFrame)
    with pytest.raises(RerankError, match="give metrics or measures, not both"):
        evaluate(qrels=qrels, run=run, metrics=["map"], measures=["map"])
    with pytest.raises(RerankError, match=r"scores: row 2: \('1', 'a'\) appears more than once"):
        evaluate(qrels=qrels, run=pl.concat([run.head(1), run.head(1)]))


def test_api_table_mode_one_frame():
    frame = pl.DataFrame(
        {
            "query_id": ["q1"] * 3,
            "doc_id": ["a", "b", "c"],
            "label": [2, 0, 1],
            "score": [0.9, 0.5, 0.1],
        }
    )
    report = evaluate(frame, metrics=["pnr", "P@1", "AP"], per_query=True)
    assert dict(report) | {} == pytest.approx(
        {
            "pnr": 2.0,
            "p@1": 1.0,
            "map": (1 + 2 / 3) / 2,
            "concordant": 2,
            "discordant": 1,
            "ties": 0,
            "queries": 1,
            "queries_without_discordant": 0,
        }
    )
    assert report.per_query["query_id"].to_list() == ["q1"]


def io_frame(text: str, kind: str) -> pl.DataFrame:
    rows = [line.split() for line in text.splitlines()]
    if kind == "qrels":
        return pl.DataFrame(
            {
                "query_id": [r[0] for r in rows],
                "doc_id": [r[2] for r in rows],
                "label": [int(r[3]) for r in rows],
            }
        )
    return pl.DataFrame(
        {
            "query_id": [r[0] for r in rows],
            "doc_id": [r[2] for r in rows],
            "score": [float(r[4]) for r in rows],
        }
    )


def test_package_exports_evaluate_and_compare():
    import rerank

    qrels, run = io_frame(QRELS, "qrels"), io_frame(RUN, "run")
    assert rerank.evaluate(qrels=qrels, run=run, metrics=["map"])["map"] == pytest.approx(
        ((1 + 2 / 3) / 3 + 0.5) / 3
    )
    result = rerank.compare([run, run], qrels=qrels, metrics=["map"], n_resamples=10)
    assert result["run2"]["map"]["delta"] == 0.0


def test_relevance_level_like_trec_eval_l(tmp_path, capsys):
    qrels, run = write(tmp_path, "q.qrels", QRELS), write(tmp_path, "r.run", RUN)
    args = ["evaluate", "--qrels", qrels, "--run", run, "--json", "--metrics"]
    assert main([*args, "map,P_2,ndcg@10,pnr", "-l", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = reference(QRELS, RUN, ["AP(rel=2)", "P(rel=2)@2", "nDCG@10"])
    assert out["map"] == pytest.approx(expected["AP(rel=2)"], abs=1e-12)
    assert out["p@2"] == pytest.approx(expected["P(rel=2)@2"], abs=1e-12)
    assert out["ndcg@10"] == pytest.approx(expected["nDCG@10"], abs=1e-12)  # graded: unchanged
    level_one = evaluate_trec_files(qrels, run, measures=["map"])
    assert out["map"] != pytest.approx(level_one["map"])
    result = compare_runs(qrels, run)
    assert result["copy"]["map"]["mean"] == pytest.approx(expected["AP(rel=2)"], abs=1e-12)


def compare_runs(qrels: str, run: str):
    from rerank.comparison import compare

    copy = Path(run).with_name("copy.run")
    copy.write_text(Path(run).read_text())
    return compare(
        {"base": run, "copy": str(copy)},
        qrels=qrels,
        metrics=["map"],
        relevance_level=2,
        n_resamples=10,
    )
