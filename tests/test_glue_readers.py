from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from rerank.errors import RerankError
from rerank.glue.readers import holdout_split, read_glue, read_splits
from rerank.glue.tasks import TASKS, get_task

SHIPPED = Path("/work/shared/data/glue")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- every task in its canonical GLUE layout, checked by hand -------------------------------

CANONICAL = {
    "stsb": (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man dances.\tA man is dancing.\t5.000\n"
        '7\tmain-news\theadlines\t2013\t0042\tnone\tnone\tHe said "no.\tShe left.\t0.400\n',
        [("0", "A man dances.", "A man is dancing.", 5.0), ("7", 'He said "no.', "She left.", 0.4)],
    ),
    "cola": (
        "gj04\t1\t\tThe sailors rode the breeze.\nclc95\t0\t*\tThe more we study verbs.\n",
        [("0", "The sailors rode the breeze.", None, 1), ("1", "The more we study verbs.", None, 0)],
    ),
    "sst2": (
        "sentence\tlabel\nit 's a charming journey . \t1\nbleak \t0\n",
        [("0", "it 's a charming journey . ", None, 1), ("1", "bleak ", None, 0)],
    ),
    "mrpc": (
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t702876\t702977\tAmrozi accused his brother.\tHe accused his brother.\n"
        "0\t2108705\t2108831\tYucaipa owned it.\tYucaipa bought it.\n",
        [("0", "Amrozi accused his brother.", "He accused his brother.", 1),
         ("1", "Yucaipa owned it.", "Yucaipa bought it.", 0)],
    ),
    "qqp": (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "201359\t303345\t303346\tWhy are Mexicans short?\tWhy are Mexicans tall?\t0\n"
        "263843\t69383\t380476\tHow to lose weight?\tHow can I lose weight?\t1\n",
        [("201359", "Why are Mexicans short?", "Why are Mexicans tall?", 0),
         ("263843", "How to lose weight?", "How can I lose weight?", 1)],
    ),
    "mnli": (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
        "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
        "0\t31193\t31193n\tgovernment\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tConceptually cream.\t"
        "Product and geography.\tneutral\tneutral\n"
        "1\t101457\t101457e\ttelephone\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tyou know.\tYou lose.\t"
        "entailment\tcontradiction\n",
        [("0", "Conceptually cream.", "Product and geography.", 1),
         ("1", "you know.", "You lose.", 2)],
    ),
    "qnli": (
        "index\tquestion\tsentence\tlabel\n"
        "0\tWhat came into force?\tThe constitution came into force.\tentailment\n"
        "1\tWhat is the first city?\tThe Ill is a river.\tnot_entailment\n",
        [("0", "What came into force?", "The constitution came into force.", 0),
         ("1", "What is the first city?", "The Ill is a river.", 1)],
    ),
    "rte": (
        "index\tsentence1\tsentence2\tlabel\n"
        "0\tDana Reeve died.\tChristopher Reeve had an accident.\tnot_entailment\n"
        "1\tYet, we now are discovering.\tBacteria is winning.\tentailment\n",
        [("0", "Dana Reeve died.", "Christopher Reeve had an accident.", 1),
         ("1", "Yet, we now are discovering.", "Bacteria is winning.", 0)],
    ),
}  # fmt: skip


def test_every_task_has_a_canonical_case():
    assert set(CANONICAL) == set(TASKS)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_layout(tmp_path: Path, name: str):
    text, expected = CANONICAL[name]
    frame = read_glue(name, _write(tmp_path / "dev.tsv", text))
    assert frame.columns == ["example_id", "sentence1", "sentence2", "label"]
    assert frame.rows() == expected
    assert frame.schema["label"] == (pl.Float64 if name == "stsb" else pl.Int64)


# --- non-canonical layouts ----------------------------------------------------------------


def test_hf_export_layout_integer_labels(tmp_path: Path):
    # the shipped RTE layout: sentence1 sentence2 label idx, 0 = entailment
    path = _write(
        tmp_path / "rte.tsv", "sentence1\tsentence2\tlabel\tidx\nA.\tB.\t1\t0\nC.\tD.\t0\t1\n"
    )
    assert read_glue("rte", path).rows() == [("0", "A.", "B.", 1), ("1", "C.", "D.", 0)]
    qnli = _write(tmp_path / "qnli.tsv", "question\tsentence\tlabel\tidx\nQ?\tS.\t1\t5\n")
    assert read_glue("qnli", qnli).rows() == [("5", "Q?", "S.", 1)]
    mnli = _write(tmp_path / "mnli.tsv", "premise\thypothesis\tlabel\tidx\nP.\tH.\t2\t0\n")
    assert read_glue("mnli", mnli).rows() == [("0", "P.", "H.", 2)]


def test_lowercased_cola_headerless_and_xy_header(tmp_path: Path):
    plain = _write(tmp_path / "train.tsv", "our friends wo n't buy this\t1\nthe more we study\t0\n")
    assert read_glue("cola", plain).rows() == [
        ("0", "our friends wo n't buy this", None, 1),
        ("1", "the more we study", None, 0),
    ]
    xy = _write(tmp_path / "dev.tsv", "x\ty\nthe sailors rode the breeze\t1\n")
    assert read_glue("cola", xy).rows() == [("0", "the sailors rode the breeze", None, 1)]


def test_gzip_crlf_and_unlabeled_test_file(tmp_path: Path):
    path = tmp_path / "train.tsv.gz"
    path.write_bytes(gzip.compress(b"sentence\tlabel\r\ngood film\t1\r\n"))
    assert read_glue("sst2", path).rows() == [("0", "good film", None, 1)]
    test = _write(tmp_path / "test.tsv", "index\tsentence1\tsentence2\n0\tA.\tB.\n")
    assert read_glue("stsb", test, labeled=False).rows() == [("0", "A.", "B.", None)]
    with pytest.raises(RerankError, match=r"test.tsv:1: missing column 'score' or 'label'"):
        read_glue("stsb", test)


def test_text_keeps_quotes_and_unicode_separators(tmp_path: Path):
    path = _write(tmp_path / "d.tsv", 'sentence\tlabel\n"a \u2028 b\t1\n')
    assert read_glue("sst2", path)["sentence1"].to_list() == ['"a \u2028 b']


# --- malformed rows: one line naming file, line and column ------------------------------------


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("stsb", "sentence1\tsentence2\tscore\nA\tB\t5.5\n",
         r"bad.tsv:2: column 'score': expected a number in 0..5, got '5.5'"),
        ("stsb", "sentence1\tsentence2\tscore\nA\tB\t1\nA\tB\tx\n",
         r"bad.tsv:3: column 'score': expected a number in 0..5, got 'x'"),
        ("rte", "sentence1\tsentence2\tlabel\nA\tB\tmaybe\n",
         r"bad.tsv:2: column 'label': expected a class index 0..1 or one of "
         r"entailment, not_entailment; got 'maybe'"),
        ("mrpc", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tonly one\n",
         r"bad.tsv:2: expected 5 tab-separated fields, got 4"),
        ("cola", "a sentence\t1\n\nanother\t0\n", r"bad.tsv:2: expected 2 tab-separated fields, got 1"),
        ("cola", "a sentence\t2\n", r"bad.tsv:1: column 'label': expected a class index 0..1"),
        ("qnli", "question\tlabel\nQ\t0\n", r"bad.tsv:1: missing column 'sentence'"),
        ("sst2", "text\tlabel\tx\ty\tz\n", r"bad.tsv:1: expected a sst2 header naming 'sentence'"),
        ("rte", "idx\tsentence1\tsentence2\tlabel\n3\tA\tB\t0\n3\tC\tD\t1\n",
         r"bad.tsv:3: column 'example_id': example id '3' occurs more than once"),
        ("rte", "", r"bad.tsv:1: the file is empty"),
        ("rte", "sentence1\tsentence2\tlabel\n", r"bad.tsv: no rows"),
    ],
)  # fmt: skip
def test_malformed_rows_are_located(tmp_path: Path, task: str, text: str, message: str):
    path = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(RerankError, match=message) as info:
        read_glue(task, path)
    assert "\n" not in str(info.value)


def test_skip_mode_drops_malformed_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = _write(
        tmp_path / "qqp.tsv",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "1\t1\t2\tA?\tB?\t0\n2\t3\t4\tbroken\n3\t5\t6\tC?\tD?\t1\n",
    )
    frame = read_glue("qqp", path, on_error="skip")
    assert frame.rows() == [("1", "A?", "B?", 0), ("3", "C?", "D?", 1)]
    assert "skipped 1 malformed rows" in caplog.text


def test_missing_file_and_unknown_task(tmp_path: Path):
    with pytest.raises(RerankError, match=r"nope\.tsv: no such file"):
        read_glue("rte", tmp_path / "nope.tsv")
    with pytest.raises(RerankError, match="unknown GLUE task 'wnli'"):
        get_task("wnli")


# --- splits ---------------------------------------------------------------------------------


def test_holdout_split_is_deterministic_and_order_preserving():
    frame = pl.DataFrame({"x": list(range(20))})
    rest, held = holdout_split(frame, 5, seed=3)
    again_rest, again_held = holdout_split(frame, 5, seed=3)
    assert held.equals(again_held) and rest.equals(again_rest)
    assert sorted(rest["x"].to_list() + held["x"].to_list()) == list(range(20))
    assert held["x"].is_sorted() and rest["x"].is_sorted()
    assert not holdout_split(frame, 5, seed=4)[1].equals(held)


def test_mrpc_dev_is_held_out_of_msrp_train(tmp_path: Path):
    head = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    rows = "".join(f"{i % 2}\t{i}\t{i + 1000}\ts{i}\tt{i}\n" for i in range(500))
    _write(tmp_path / "MRPC" / "msr_paraphrase_train.txt", head + rows)
    _write(tmp_path / "MRPC" / "msr_paraphrase_test.txt", head + "1\t1\t2\tx\ty\n")
    splits = read_splits("mrpc", tmp_path)
    assert (splits.train.height, splits.dev.height, splits.test.height) == (92, 408, 1)
    assert not set(splits.train["example_id"]) & set(splits.dev["example_id"])
    assert any("408 pairs held out" in n for n in splits.notes)
    assert read_splits("mrpc", tmp_path / "MRPC").dev.equals(splits.dev)


def test_canonical_dirs_are_used_as_is(tmp_path: Path):
    text = "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n"
    _write(tmp_path / "RTE" / "train.tsv", text)
    _write(tmp_path / "RTE" / "dev.tsv", text)
    splits = read_splits("rte", tmp_path)
    assert splits.train.rows() == [("0", "A", "B", 0)] and splits.test is None
    with pytest.raises(RerankError, match="no stsb train file found"):
        read_splits("stsb", tmp_path)


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="shared GLUE data not present")
def test_shipped_glue_counts():
    counts = {}
    for name in ("stsb", "mrpc", "rte", "sst2", "qnli", "cola"):
        s = read_splits(name, SHIPPED)
        counts[name] = (s.train.height, s.dev.height, None if s.test is None else s.test.height)
    # PROVENANCE.md: STS-B 5,749/1,500; MSRP 4,076 (= GLUE 3,668 + 408)/1,725; RTE 2,490/277;
    # SST-2 67,349/872; QNLI dev 5,463 (split 4,463/1,000); CoLA 8,551/527+516
    assert counts == {
        "stsb": (5749, 1500, None),
        "mrpc": (3668, 408, 1725),
        "rte": (2490, 277, None),
        "sst2": (67349, 872, None),
        "qnli": (4463, 1000, None),
        "cola": (8551, 1043, None),
    }
    rte = read_splits("rte", SHIPPED).train
    assert rte["label"].value_counts().sort("label")["count"].to_list() == [1249, 1241]
