"""rerank.vocab extension and from-scratch models, on tiny BERTs and hand-written vocabularies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_scores_close

from rerank.errors import RerankError
from rerank.model import HeadSpec, RerankModel
from rerank.vocab import ScratchSpec, extend_model, load_pieces, scratch_model
from rerank.vocab.pieces import SPECIALS, PieceSet, save_pieces

WORDS = ["flow", "wing", "the", "of", "##ing", "北", "京", "大", "学", "."]

# Hand-written vocabulary ("▁" marks a word start, as SentencePiece writes it).
PIECES = [
    "▁北京",  # span 北京, from 北 + 京
    "北京",  # the same token again: deduplicated
    "大学",  # span 大学, from 大 + 学
    "图书馆",  # span, no known sub-piece -> fallback row
    "▁flow",  # already present
    "▁flowing",  # word "flowing" = flow + ##ing
    "wing",  # inside a word: word "wing" (present) and continuation "##wing" (new) = [UNK] -> fallback
    "京",  # present
    "图",  # single CJK character: plain word, fallback
    "▁e.g.",  # would need to split inside English text: unreachable
    "▁",  # a bare word start: never a token of its own for BERT, skipped
]


def build_bert(path: Path, words: list[str], *, seed: int = 0) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(SPECIALS + tuple(words))})
    config = BertConfig(
        vocab_size=len(SPECIALS) + len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def write_pieces(path: Path, pieces: list[str]) -> Path:
    path.mkdir(parents=True)
    full = (*SPECIALS, *pieces)
    scores = tuple(0.0 if i < 5 else -float(i) for i in range(len(full)))
    save_pieces(PieceSet(path, full, scores, "unigram", True, SPECIALS, {}), path)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert(tmp_path_factory.mktemp("base"), WORDS)


@pytest.fixture(scope="module")
def ranker(tmp_path_factory: pytest.TempPathFactory, base: Path) -> Path:
    """A saved RerankModel with a score head, an extra head and an MLM head."""
    torch.manual_seed(1)
    model = RerankModel.from_pretrained(
        base, heads={"score": HeadSpec(), "aux": HeadSpec()}, mlm=True
    )
    with torch.no_grad():
        model.mlm_head.bias.copy_(torch.randn_like(model.mlm_head.bias))
    out = tmp_path_factory.mktemp("ranker") / "m"
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pieces(tmp_path_factory.mktemp("pieces") / "p", PIECES)


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory, ranker: Path, pieces: Path) -> Path:
    out = tmp_path_factory.mktemp("ext") / "m"
    extend_model(ranker, pieces, out, eval_texts=["北京大学 flowing", "图书馆"])
    return out


def _vocab(path: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path)).get_vocab()


def test_plan_counts_and_report(extended: Path) -> None:
    report = json.loads((extended / "rerank_vocab.json").read_text())
    assert report["added"] == {"word": 2, "continuation": 1, "span": 3}
    assert report["old_vocab_size"] == 15 and report["new_vocab_size"] == 21
    # present: flow, wing, 京; unreachable: e.g.
    assert report["already_present"] == 3 and report["unreachable"] == 1
    # from sub-pieces: 北京, 大学, flowing; fallback: 图书馆, ##wing, 图
    assert report["from_sub_pieces"] == 3 and report["fallback_rows"] == 3
    assert report["mlm_bias_extended"] is True
    vocab = _vocab(extended)
    assert [vocab[t] for t in ["北京", "大学", "图书馆", "flowing", "##wing", "图"]] == list(
        range(15, 21)
    )
    before, after = report["coverage"]["before"], report["coverage"]["after"]
    # 北京大学 flowing / 图书馆: before, 北京大学 -> 4 known chars, flowing -> flow ##ing,
    # 图书馆 -> 3 [UNK]; after, 书 and 馆 are still unknown only outside the span 图书馆.
    assert (before["unknown_characters"], after["unknown_characters"]) == (3, 0)
    assert (before["tokens"], after["tokens"]) == (9, 4)


def test_new_rows_are_means_of_old_sub_pieces(ranker: Path, extended: Path) -> None:
    from safetensors.torch import load_file

    old = RerankModel.from_pretrained(ranker, mlm=True)
    new = RerankModel.from_pretrained(extended, mlm=True)
    e_old = old.encoder.get_input_embeddings().weight.detach()
    e_new = new.encoder.get_input_embeddings().weight.detach()
    ov, nv = _vocab(ranker), _vocab(extended)
    assert torch.equal(e_new[:15], e_old)
    mean = lambda rows, *toks: rows[[ov[t] for t in toks]].mean(dim=0)  # noqa: E731
    torch.testing.assert_close(e_new[nv["北京"]], mean(e_old, "北", "京"))
    torch.testing.assert_close(e_new[nv["大学"]], mean(e_old, "大", "学"))
    torch.testing.assert_close(e_new[nv["flowing"]], mean(e_old, "flow", "##ing"))
    for fallback in ["图书馆", "##wing", "图"]:
        torch.testing.assert_close(e_new[nv[fallback]], e_old.mean(dim=0))
    b_old, b_new = old.mlm_head.bias.detach(), new.mlm_head.bias.detach()
    assert b_new.shape == (21,)
    torch.testing.assert_close(b_new[nv["大学"]], mean(b_old[:, None], "大", "学")[0])
    torch.testing.assert_close(b_new[nv["图"]], b_old.mean())
    assert load_file(str(extended / "rerank_mlm_head.safetensors"))["bias"].shape == (21,)


def test_identical_outputs_without_new_pieces(ranker: Path, extended: Path) -> None:
    old = RerankModel.from_pretrained(ranker, mlm=True).eval()
    new = RerankModel.from_pretrained(extended, mlm=True).eval()
    texts = [("flow of the wing", "北 大 学 ."), ("京大", "the wing flow")]
    a = old.tokenizer(
        [q for q, _ in texts], [d for _, d in texts], padding=True, return_tensors="pt"
    )
    b = new.tokenizer(
        [q for q, _ in texts], [d for _, d in texts], padding=True, return_tensors="pt"
    )
    assert torch.equal(a["input_ids"], b["input_ids"])
    positions = a["attention_mask"].bool()
    with torch.no_grad():
        out_a = old(**a, heads=("score", "aux"), mlm_positions=positions)
        out_b = new(**b, heads=("score", "aux"), mlm_positions=positions)
    # same weights for every old token; the bigger embedding matrix may pick other kernels
    assert_scores_close(out_a["score"], out_b["score"])
    assert_scores_close(out_a["aux"], out_b["aux"])
    assert_scores_close(out_a["mlm"], out_b["mlm"][:, :15])


def test_new_pieces_are_produced(extended: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(extended))
    assert tok.tokenize("我在北京大学图书馆 flowing wing.") == [
        "[UNK]", "[UNK]", "北京", "大学", "图书馆", "flowing", "wing", ".",
    ]  # fmt: skip
    # the continuation form is used inside a word
    assert tok.tokenize("flowwing") == ["flow", "##wing"]
    model = AutoModelForSequenceClassification.from_pretrained(str(extended))
    assert model.config.vocab_size == len(tok) == 21
    enc = tok("北京大学", "图书馆", return_tensors="pt")
    assert model(**enc).logits.shape == (1, 1)


def test_extend_plain_encoder_keeps_encoder_outputs(
    tmp_path: Path, base: Path, pieces: Path
) -> None:
    """A plain encoder (no ranking head yet): the backbone's hidden states are unchanged."""
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "m"
    report = extend_model(base, pieces, out)
    assert report.mlm_bias_extended is False
    assert not (out / "rerank_mlm_head.safetensors").exists()
    old, new = (
        AutoModel.from_pretrained(str(base)).eval(),
        AutoModel.from_pretrained(str(out)).eval(),
    )
    tok_old, tok_new = (
        AutoTokenizer.from_pretrained(str(base)),
        AutoTokenizer.from_pretrained(str(out)),
    )
    a, b = tok_old("the wing 京", return_tensors="pt"), tok_new("the wing 京", return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        assert_scores_close(old(**a).last_hidden_state, new(**b).last_hidden_state)


def test_extend_fallback_unk(tmp_path: Path, base: Path, pieces: Path) -> None:
    out = tmp_path / "m"
    extend_model(base, pieces, out, fallback="unk")
    e = RerankModel.from_pretrained(out).encoder.get_input_embeddings().weight.detach()
    torch.testing.assert_close(e[_vocab(out)["图"]], e[1])  # the [UNK] row


def test_extend_rejects_non_wordpiece(tmp_path: Path, pieces: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch_model(pieces, scratch, spec=ScratchSpec(layers=1, hidden=32, heads=4))
    with pytest.raises(RerankError, match=r"supports WordPiece .* this one is Unigram"):
        extend_model(scratch, pieces, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_from_scratch_loads_and_runs(tmp_path: Path, pieces: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "m"
    summary = scratch_model(pieces, out, spec=ScratchSpec(layers=2, hidden=32, heads=4), seed=3)
    assert summary["vocab_size"] == len(load_pieces(pieces).pieces) == 16
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    enc = tok("北京大学", "图书馆", return_tensors="pt")
    # [CLS] ▁北京 大学 [SEP] ▁ 图书馆 [SEP]
    assert enc["input_ids"][0].tolist() == [2, 5, 7, 3, 15, 8, 3]
    assert enc["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    ranker = RerankModel.from_pretrained(out, mlm=True)
    result = ranker(**enc, mlm_positions=enc["attention_mask"].bool())
    assert result["score"].shape == (1,) and result["mlm"].shape == (7, 16)
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "PreTrainedTokenizerFast"
    )


def test_scratch_spec_errors() -> None:
    with pytest.raises(
        RerankError, match="--hidden 90: must be a multiple of the 4 attention heads"
    ):
        ScratchSpec(hidden=90, heads=4)
    with pytest.raises(RerankError, match="--layers: expected a positive integer, got 0"):
        ScratchSpec(layers=0)
