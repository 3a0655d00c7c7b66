"""BERT masked-language-model masking, as a per-batch transform of the training loop.

Standard BERT masking (Devlin et al., 2019, section 3.1): choose 15% of the maskable
tokens (never special tokens, never padding); of those, 80% become ``[MASK]``, 10% a
random token and 10% stay unchanged. The model must predict the original token at
every chosen position.

Where the knowledge-distillation scores come from is a switch (``separate_pass``):

- ``True`` (default, the cleanest): the ranking heads see the *unmasked* inputs, exactly
  what the teacher scored, and MLM runs on a second, masked copy of the batch. Costs a
  second forward/backward pass.
- ``False`` (cheaper): one pass over the masked inputs gives both the head scores and
  the MLM logits, so the student matches the teacher's score of the clean pair from a
  corrupted copy of it (15% of its tokens touched). Saves the second pass.

The transform is deterministic: the random draws of batch ``step`` come from a generator
seeded with ``(seed, step)``, so a resumed run masks exactly as an unbroken one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rerank.config import Config
from rerank.errors import RerankError

__all__ = ["MlmMasking", "mask_tokens", "mlm_transform"]

# Label of positions that are not predicted (PyTorch's cross-entropy ignore_index).
IGNORE = -100


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask a padded batch the BERT way.

    Parameters
    ----------
    input_ids, attention_mask
        ``[batch, seq]`` token ids and 1/0 padding mask.
    special_ids
        Token ids never chosen (CLS, SEP, PAD, MASK ...).
    mask_id
        The ``[MASK]`` token id.
    vocab_size
        Random replacements are drawn uniformly from the non-special ids below this.
    generator
        Source of randomness (seed it for reproducible masking).
    probability
        Chance that a maskable token is chosen.
    mask_fraction, random_fraction
        Of the chosen tokens: share replaced by ``[MASK]``, share replaced by a random
        token; the rest stay unchanged.

    Returns
    -------
    masked_ids : torch.Tensor
        ``[batch, seq]`` input ids with the replacements applied (a new tensor).
    positions : torch.Tensor
        Boolean ``[batch, seq]``: the chosen positions (what ``RerankModel.forward``
        takes as ``mlm_positions``).
    labels : torch.Tensor
        ``[n_chosen]`` original token ids at ``positions``, in row-major order (the order
        of ``logits[positions]``), ready for cross-entropy against the MLM logits.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    >>> masked, pos, labels = mask_tokens(ids, (ids != 0).long(), special_ids=[0, 2, 3, 4],
    ...                                    mask_id=4, vocab_size=20, generator=g, probability=1.0)
    >>> pos.tolist()
    [[False, True, True, True, False, False]]
    >>> labels.tolist()
    [7, 8, 9]
    """
    if not 0.0 <= probability <= 1.0:
        raise RerankError(f"mask_tokens: probability must be in [0, 1], got {probability}")
    if mask_fraction < 0 or random_fraction < 0 or mask_fraction + random_fraction > 1:
        raise RerankError(
            "mask_tokens: mask_fraction and random_fraction must be >= 0 and sum to <= 1, "
            f"got {mask_fraction} and {random_fraction}"
        )
    special = torch.zeros(max(vocab_size, int(input_ids.max()) + 1), dtype=torch.bool)
    special[list(special_ids)] = True
    maskable = attention_mask.bool() & ~special[input_ids]
    draw = torch.rand(input_ids.shape, generator=generator)
    positions = maskable & (draw < probability)
    # One more uniform draw per position splits the chosen tokens 80/10/10.
    kind = torch.rand(input_ids.shape, generator=generator)
    to_mask = positions & (kind < mask_fraction)
    to_random = positions & (kind >= mask_fraction) & (kind < mask_fraction + random_fraction)
    candidates = (~special[:vocab_size]).nonzero().squeeze(1)
    if len(candidates) == 0:
        raise RerankError("mask_tokens: every vocabulary id is special; nothing to draw from")
    random_ids = candidates[torch.randint(len(candidates), input_ids.shape, generator=generator)]
    masked = input_ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = random_ids[to_random]
    return masked, positions, input_ids[positions]


@dataclass
class MlmMasking:
    """Training-loop batch transform adding BERT MLM inputs to a tokenized batch.

    Adds ``mlm_input_ids`` (masked ids), ``mlm_positions`` (bool ``[batch, seq]``) and
    ``mlm_labels`` (``[n_chosen]``). With ``separate_pass=False`` the batch's own
    ``input_ids`` are replaced by the masked ids as well, so a single forward pass
    yields both head scores and MLM logits (see the module docstring).

    Parameters
    ----------
    special_ids, mask_id, vocab_size
        As in :func:`mask_tokens`; :meth:`from_tokenizer` fills them in.
    seed
        Base seed; batch ``step`` is masked with a generator seeded ``seed * 1_000_003 + step``.
    """

    special_ids: tuple[int, ...]
    mask_id: int
    vocab_size: int
    seed: int = 0
    probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    separate_pass: bool = True

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **options: Any) -> MlmMasking:
        """Build from a Hugging Face tokenizer (its special ids, mask id and vocab size)."""
        if tokenizer.mask_token_id is None:
            raise RerankError(
                f"MlmMasking: tokenizer {type(tokenizer).__name__} has no mask token; MLM needs one"
            )
        special = set(tokenizer.all_special_ids)
        if tokenizer.pad_token_id is not None:
            special.add(tokenizer.pad_token_id)
        return cls(
            special_ids=tuple(sorted(special)),
            mask_id=int(tokenizer.mask_token_id),
            vocab_size=len(tokenizer),
            **options,
        )

    def __call__(self, batch: dict[str, Any], *, step: int = 0) -> dict[str, Any]:
        """Return ``batch`` with the MLM entries added (the input dict is not modified)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        masked, positions, labels = mask_tokens(
            batch["input_ids"],
            batch["attention_mask"],
            special_ids=self.special_ids,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            generator=generator,
            probability=self.probability,
            mask_fraction=self.mask_fraction,
            random_fraction=self.random_fraction,
        )
        out = dict(batch)
        out["mlm_input_ids"] = masked
        out["mlm_positions"] = positions
        out["mlm_labels"] = labels
        if not self.separate_pass:
            out["input_ids"] = masked
        return out


def mlm_transform(model: Any, cfg: Config) -> MlmMasking:
    """The loop's MLM masking for ``model``'s tokenizer, seeded by ``train.seed``."""
    return MlmMasking.from_tokenizer(
        model.tokenizer,
        seed=cfg.train.seed,
        probability=cfg.data.mlm_probability,
        separate_pass=cfg.data.mlm_separate_pass,
    )
