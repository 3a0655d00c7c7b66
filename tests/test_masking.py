from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from rerank.errors import RerankError
from rerank.training.masking import MlmMasking, mask_tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def padded_batch(tokenizer, n=400, seed=0):
    """CLS w... SEP w... SEP then padding, with random lengths (like a collated batch)."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    words = torch.tensor([i for i in range(vocab) if i not in special])
    seq = 64
    ids = torch.full((n, seq), tokenizer.pad_token_id)
    mask = torch.zeros((n, seq), dtype=torch.long)
    for i in range(n):
        length = int(torch.randint(8, seq + 1, (1,), generator=g))
        row = words[torch.randint(len(words), (length,), generator=g)]
        row[0] = tokenizer.cls_token_id
        row[length // 2] = tokenizer.sep_token_id
        row[-1] = tokenizer.sep_token_id
        ids[i, :length] = row
        mask[i, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


def test_masking_rates_and_never_specials_or_padding(tokenizer):
    batch = padded_batch(tokenizer)
    masking = MlmMasking.from_tokenizer(tokenizer, seed=3)
    out = masking(batch, step=0)
    ids, pos = batch["input_ids"], out["mlm_positions"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    maskable = batch["attention_mask"].bool() & ~special
    assert maskable.sum() > 10_000
    assert not (pos & ~maskable).any()  # never a special token or padding
    rate = pos.sum() / maskable.sum()
    assert abs(rate - 0.15) < 0.01
    chosen = out["mlm_input_ids"][pos]
    original = ids[pos]
    n = len(original)
    as_mask = (chosen == tokenizer.mask_token_id).sum() / n
    unchanged = (chosen == original).sum() / n
    replaced = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.03
    assert abs(unchanged - 0.1) < 0.02  # random draws equal to the original add ~0.1/400
    assert abs(replaced - 0.1) < 0.02
    # random replacements are ordinary tokens; unchosen positions are untouched
    assert not torch.isin(
        chosen[chosen != original],
        torch.tensor([i for i in tokenizer.all_special_ids if i != tokenizer.mask_token_id]),
    ).any()
    assert torch.equal(out["mlm_input_ids"][~pos], ids[~pos])
    assert torch.equal(out["mlm_labels"], original)
    assert torch.equal(out["input_ids"], ids)  # separate pass: KD inputs stay clean


def test_masking_is_seeded_per_step_and_shared_pass_masks_inputs(tokenizer):
    batch = padded_batch(tokenizer, n=20)
    a = MlmMasking.from_tokenizer(tokenizer, seed=1)
    b = MlmMasking.from_tokenizer(tokenizer, seed=1, separate_pass=False)
    first, again, other = a(batch, step=5), a(batch, step=5), a(batch, step=6)
    assert torch.equal(first["mlm_positions"], again["mlm_positions"])
    assert torch.equal(first["mlm_input_ids"], again["mlm_input_ids"])
    assert not torch.equal(first["mlm_positions"], other["mlm_positions"])
    shared = b(batch, step=5)
    assert torch.equal(shared["input_ids"], first["mlm_input_ids"])
    assert torch.equal(batch["input_ids"], padded_batch(tokenizer, n=20)["input_ids"])


def test_mask_tokens_hand_example_and_bad_fractions():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[2, 7, 8, 9, 3, 0, 0]])
    masked, pos, labels = mask_tokens(
        ids,
        (ids != 0).long(),
        special_ids=[0, 2, 3, 4],
        mask_id=4,
        vocab_size=20,
        generator=g,
        probability=1.0,
        mask_fraction=1.0,
        random_fraction=0.0,
    )
    assert masked.tolist() == [[2, 4, 4, 4, 3, 0, 0]]
    assert pos.tolist() == [[False, True, True, True, False, False, False]]
    assert labels.tolist() == [7, 8, 9]
    with pytest.raises(RerankError, match="sum to <= 1"):
        mask_tokens(
            ids,
            ids != 0,
            special_ids=[0],
            mask_id=4,
            vocab_size=20,
            generator=g,
            mask_fraction=0.9,
            random_fraction=0.2,
        )
