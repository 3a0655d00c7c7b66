"""Set-up pieces of the training loop: processes, precision, data, model, optimizer, eval.

Kept apart from :mod:`rerank.train` so that the loop itself reads top-down in one file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rerank.batching import GroupBatcher, GroupedData, Transform, pad_rows
from rerank.config import Config
from rerank.errors import RerankError, input_error
from rerank.losses import LOSSES

log = logging.getLogger("rerank.train")

__all__ = [
    "Dist",
    "build_model",
    "evaluate_ranking",
    "init_distributed",
    "load_frames",
    "make_batcher",
    "make_optimizer",
    "mlm_transform",
    "read_train_frame",
    "use_bf16",
    "use_cpu_attention",
]

# -- setup ------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world <= 1:
        return Dist(device=device)
    dist = torch.distributed
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(device)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return Dist(dist.get_rank(), dist.get_world_size(), local_world, device, owns)


def use_bf16(setting: bool | str, device: torch.device) -> bool:
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # Without AVX512-BF16/AMX, CPU bf16 is emulated and slower than fp32.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, p, lambda: False)()) for p in probes)


def use_cpu_attention(model: Any) -> bool:
    """On CPU, compute self-attention with :func:`rerank.attention.hf_attention`.

    Two reasons. (1) Under CPU bf16 autocast attention runs in fp32 (linear layers stay
    bf16): PyTorch's CPU SDPA kernel is about 3x slower in bf16 than in fp32 for BERT-sized
    heads (fwd+bwd, [16, 12, 128, 32], 1 thread: 0.60 s vs 0.20 s here), while bf16 linear
    layers are about 3x faster than fp32 ones. (2) With attention dropout in training, SDPA
    falls back to an unfused path that is several times slower than without dropout;
    :func:`rerank.attention.dropout_attention` computes the same in cache-sized chunks.
    Registered as a Hugging Face attention implementation (not saved in config.json).
    Returns whether the model's attention was switched (only SDPA models are).
    """
    from transformers import AttentionInterface

    from rerank.attention import hf_attention

    encoder = model.encoder
    if getattr(encoder.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register("rerank_cpu", hf_attention)
    encoder.set_attn_implementation("rerank_cpu")
    return True


def _label_terms(cfg: Config) -> list[int]:
    return [i for i, t in enumerate(cfg.objective) if t.loss != "mlm" and t.target == "label"]


def read_train_frame(cfg: Config, targets: list[str]) -> pl.DataFrame:
    from rerank.data import read_pairs

    path = Path(cfg.data.train)
    frame = read_pairs(path, labels="optional", label_range=tuple(cfg.data.label_range))
    if "label" in targets and "label" not in frame.columns:
        i = _label_terms(cfg)[0]
        raise RerankError(
            f"{path.name}: the training data has no 'label' column, but objective term {i} "
            f"('{cfg.objective[i].loss}') trains on labels"
        )
    # a training JSONL's teacher scores come with the frame (rerank.pairs.read_training_jsonl)
    extra = [t for t in targets if t != "label" and t not in frame.columns]
    if extra:
        frame = frame.hstack(_read_columns(path, extra, frame.height))
    return frame


def load_frames(
    cfg: Config,
    targets: list[str],
    train_frame: pl.DataFrame | None,
    eval_frame: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The training and eval frames: the ones given, else read from ``data.train``/``data.eval``."""
    if train_frame is None:
        train_frame = read_train_frame(cfg, targets)
    elif "label" in targets and "label" not in train_frame.columns:
        raise RerankError("training frame: no 'label' column, but the objective trains on labels")
    if eval_frame is None and cfg.data.eval:
        from rerank.data import read_pairs

        eval_frame = read_pairs(
            cfg.data.eval, labels="required", label_range=tuple(cfg.data.label_range)
        )
    return train_frame, eval_frame


def mlm_transform(model: Any, cfg: Config) -> Transform:
    """BERT MLM masking, seeded per batch (rerank.rekindle.masking)."""
    from rerank.rekindle.masking import MlmMasking

    return MlmMasking.from_tokenizer(
        model.tokenizer,
        seed=cfg.train.seed,
        probability=cfg.data.mlm_probability,
        separate_pass=cfg.data.mlm_separate_pass,
    )


def make_batcher(
    cfg: Config, data: GroupedData, dist: Dist, *, targets: list[str], transform: Transform | None
) -> GroupBatcher:
    """Query-group batches for this process; single-level queries are skipped (and logged)
    only when every objective term is pairwise on the stratified target."""
    has_mlm = any(t.loss == "mlm" for t in cfg.objective)
    list_terms = [t for t in cfg.objective if LOSSES[t.loss].kind == "list"]
    stratify = "label" if "label" in targets else (list_terms[0].target if list_terms else None)
    pairwise_only = not has_mlm and all(
        LOSSES[t.loss].needs_label_pairs and t.target == stratify for t in cfg.objective
    )
    batcher = GroupBatcher(
        data,
        list_size=cfg.data.list_size,
        groups_per_batch=cfg.data.groups_per_batch,
        max_tokens=cfg.data.max_tokens,
        bucket_size=cfg.data.bucket_size,
        seed=cfg.train.seed,
        stratify_by=stratify,
        skip_single_level=pairwise_only,
        rank=dist.rank,
        world_size=dist.world,
        transform=transform,
    )
    if batcher.skipped and dist.main:
        log.warning(
            "%d of %d queries have a single label level and are skipped (no pairs to rank)",
            batcher.skipped,
            data.n_groups,
        )
    return batcher


def _read_columns(path: Path, names: list[str], height: int) -> pl.DataFrame:
    """Extra target columns (teacher scores) of a pairs file, in file order."""
    from rerank import _data_io as files

    source = files.Source.of(path, "pairs")
    lazy = files._scan(source)  # as read_pairs read it (gzip, byte-order mark)
    have = files.columns(source)
    missing = [n for n in names if n not in have]
    if missing:
        raise RerankError(
            f"{path.name}: missing target column(s) {', '.join(map(repr, missing))} "
            f"(have {', '.join(have)})"
        )
    try:
        out = lazy.select(pl.col(n).cast(pl.Float64) for n in names).collect().head(height)
    except pl.exceptions.PolarsError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise input_error(path, f"target column(s) {', '.join(names)}: {first}") from None
    for name in names:  # a NaN target trains to NaN weights
        bad = ~out.get_column(name).is_finite().fill_null(False)
        if bad.any():
            index = int(bad.arg_max() or 0)
            got = out[index, name]
            shown = "nothing" if got is None else got
            raise source.error(index, f"expected a finite number, got {shown}", column=name)
    return out


def build_model(cfg: Config, source: Path, *, mlm: bool) -> Any:
    from rerank.model import HeadSpec, RerankModel

    heads = {name: HeadSpec(**vars(h)) for name, h in cfg.model.heads.items()}
    model = RerankModel.from_pretrained(
        source,
        heads=heads,
        primary=cfg.model.primary or None,
        mlm=mlm,
        num_layers=cfg.model.num_layers or None,
    )
    p = cfg.model.attention_dropout
    if p >= 0 and not set_attention_dropout(model.encoder, p):
        raise RerankError(
            f"model.attention_dropout: no self-attention dropout found in "
            f"{type(model.encoder).__name__}; leave it at -1"
        )
    return model


def set_attention_dropout(encoder: Any, p: float) -> int:
    """Set the attention-probability dropout of every self-attention module; returns how many.

    Hugging Face attention modules (BERT, RoBERTa, ELECTRA, ...) pass ``self.dropout.p``
    to their attention kernel while training. The saved config is left as it was.
    """
    count = 0
    for module in encoder.modules():
        if type(module).__name__.endswith("SelfAttention") and isinstance(
            getattr(module, "dropout", None), torch.nn.Dropout
        ):
            module.dropout.p = p
            count += 1
    return count


def head_parameters(model: Any) -> set[int]:
    """Ids of the scoring-head parameters: the HF classification head (everything outside
    the base model, plus BERT's pooler, which only that head reads) and the extra heads."""
    encoder = model.encoder
    body = {id(p) for p in encoder.base_model.parameters()}
    prefix = getattr(encoder, "base_model_prefix", "")
    pooler = getattr(getattr(encoder, prefix, None), "pooler", None)
    pooled = {id(p) for p in pooler.parameters()} if pooler is not None else set()
    heads = {id(p) for p in model.heads.parameters()}
    return {id(p) for p in encoder.parameters() if id(p) not in body} | pooled | heads


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW; each group carries ``lr_scale`` (the loop sets ``lr = lr_at(step) * lr_scale``)."""
    # No decay on biases and LayerNorm weights (every parameter with fewer than 2 dims),
    # as in BERT's and nanoGPT's optimizers. The scoring heads may learn faster
    # (train.head_lr_scale): a fresh head on a small pooled vector otherwise takes many
    # steps before the encoder gets a useful gradient.
    heads = head_parameters(model) if cfg.train.head_lr_scale != 1.0 else set()
    groups = []
    for is_head, scale in ((False, 1.0), (True, cfg.train.head_lr_scale)):
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in heads) == is_head]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                wd = cfg.train.weight_decay if decay else 0.0
                groups.append({"params": chosen, "weight_decay": wd, "lr_scale": scale})
    # The fused kernel (CPU and CUDA) updates all parameters in one pass: on CPU the
    # default per-tensor loop costs more than the forward pass for a MiniLM.
    return torch.optim.AdamW(groups, lr=cfg.train.lr_max, betas=(0.9, 0.999), eps=1e-8, fused=True)


def evaluate_ranking(model: Any, data: GroupedData, cfg: Config, bf16: bool) -> dict[str, float]:
    from rerank.inference import run_batches, torch_forward
    from rerank.measures import evaluate

    # The one inference core and precision policy of `rerank score` (encoder bf16 where
    # training runs bf16, pooler and head fp32; not autocast), so that the figures that
    # choose best/ are the ones `rerank score` + `rerank evaluate` report for it.
    order = np.argsort(-data.lengths, kind="stable")
    size = cfg.data.eval_batch_size
    chunks = (order[start : start + size] for start in range(0, len(order), size))
    batches = ((rows, pad_rows(data, rows)) for rows in chunks)
    with torch_forward(model, (model.primary,), "bf16" if bf16 else "fp32") as forward:
        scores = run_batches(forward, batches, data.n_rows)[:, 0]
    run = pl.DataFrame(
        {
            "query_id": np.repeat(np.array(data.query_ids), np.diff(data.group_offsets)),
            "doc_id": data.doc_ids,
            "label": data.targets["label"].astype(np.int64),
            "score": scores.astype(np.float64),
        }
    )
    measures = list(dict.fromkeys(["pnr", "ndcg@10", cfg.train.metric_for_best]))
    result = evaluate(run, measures)
    return {k: float(result.aggregate[k]) for k in measures}
