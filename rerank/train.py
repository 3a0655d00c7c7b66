"""The one training loop: teacher fine-tuning, rekindle, re-fine-tuning and GLUE.

Distillation is a loss plus a label source, not a new loop: every stage is a
:class:`rerank.config.Config` whose objective is a weighted sum of terms from
:data:`rerank.losses.LOSSES`, each judging one head's output against one target column
(``label`` or a teacher-score column such as ``teacher:t1``). Teacher fine-tuning is
``hinge(score, label)``; expert-guided pre-training (rekindle) is
``pointwise_mse(score, teacher:t1) + pairwise_mse(score, teacher:t1) + mlm``.

What the loop does (rank 0 alone logs, evaluates and writes):

- AdamW without decay on biases and LayerNorm weights; linear warm-up to ``lr_max``,
  then polynomial decay to ``lr_min`` (:func:`lr_at`); gradient accumulation; norm
  clipping; bf16 autocast where the hardware computes bf16 natively.
- Batches of whole query groups from :class:`rerank.batching.GroupBatcher`
  (pre-tokenized once, length-bucketed).
- Evaluation on the eval split every ``eval_every`` steps and at the end: PNR and
  nDCG@10 of the primary head via :func:`rerank.measures.evaluate`; the best model by
  ``metric_for_best`` goes to ``best/``, the last to ``final/``.
- ``log.jsonl`` (one line per logged step), a tqdm bar (loss, pairs/s, ETA), and the
  resolved ``config.toml`` next to the outputs.
- ``checkpoint/`` every ``save_every`` steps, written atomically: model, optimizer, RNG
  states and the data position. ``resume`` continues exactly: the data order is a pure
  function of ``(seed, epoch)``, MLM masking of the batch serial, and dropout is
  reseeded from ``(seed, step, rank)`` at every step, so an interrupted and resumed
  run ends with the same weights as an unbroken one. Resuming with other data, learning
  rate or steps than the checkpoint's is allowed and warned about, naming what changed.
- A loss or gradient norm that is not finite stops the run with an error naming the
  step, before anything is saved from the diverged weights. A run that fails with a
  user error before its first checkpoint removes the outputs it wrote.
- Runs unchanged under ``torchrun`` (DDP; gloo on CPU): each rank trains on a disjoint
  shard of the groups of every epoch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import torch

from rerank import checkpoint as ckpt
from rerank._train_setup import (
    build_model,
    evaluate_ranking,
    init_distributed,
    load_frames,
    make_batcher,
    make_optimizer,
    mlm_transform,
    use_bf16,
    use_cpu_attention,
)
from rerank.batching import Batch, GroupedData, Transform
from rerank.config import Config, to_toml, validate, write_config
from rerank.errors import RerankError
from rerank.losses import LOSSES
from rerank.model_card import training_facts
from rerank.progress import ProgressLog, Tracker, plot_training_log, stderr_is_terminal

log = logging.getLogger(__name__)

__all__ = ["RUN_OUTPUTS", "TrainResult", "lr_at", "prepare_output_dir", "train"]

# What a run writes under train.output_dir (checkpoint.py adds .checkpoint.old).
RUN_OUTPUTS = (
    "config.toml",
    "log.jsonl",
    "loss.png",
    "tensorboard",
    "checkpoint",
    ".checkpoint.old",
    "best",
    "final",
)


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    output_dir: Path
    final_dir: Path | None
    best_dir: Path | None
    steps: int
    total_steps: int
    finished: bool
    seconds: float
    metrics: dict[str, float]
    best_metric: float | None
    best_step: int | None
    skipped_groups: int


def lr_at(
    step: int,
    *,
    total_steps: int,
    lr_max: float,
    lr_min: float = 0.0,
    warmup_steps: int = 0,
    power: float = 1.0,
) -> float:
    """Learning rate of the update with 0-based index ``step``.

    Linear warm-up, ``lr_max * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    then ``lr_min + (lr_max - lr_min) * (1 - p) ** power`` with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)``: the polynomial decay of
    BERT-style schedules (``power=1`` is linear), reaching ``lr_min`` after the last step.

    Examples
    --------
    >>> [lr_at(s, total_steps=6, lr_max=1.0, warmup_steps=2) for s in range(6)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    if step < warmup_steps:
        return lr_max * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr_min + (lr_max - lr_min) * max(0.0, 1.0 - progress) ** power


# -- one step ---------------------------------------------------------------------------


def _model_forward(model: Any, batch: Batch, heads: tuple[str, ...], mlm: bool) -> dict:
    x = batch.inputs
    types = x.get("token_type_ids")
    if not mlm:
        return model(x["input_ids"], x["attention_mask"], types, heads=heads)
    if x["mlm_input_ids"] is x["input_ids"]:  # one pass over the masked inputs
        return model(
            x["input_ids"],
            x["attention_mask"],
            types,
            heads=heads,
            mlm_positions=x["mlm_positions"],
        )
    # Clean rows for the heads and masked rows for MLM in one forward call (one DDP
    # forward per backward); the heads' outputs on the masked half are dropped.
    n = x["input_ids"].shape[0]
    out = model(
        torch.cat([x["input_ids"], x["mlm_input_ids"]]),
        torch.cat([x["attention_mask"], x["attention_mask"]]),
        None if types is None else torch.cat([types, types]),
        heads=heads,
        mlm_positions=torch.cat([torch.zeros_like(x["mlm_positions"]), x["mlm_positions"]]),
    )
    return {k: (v if k == "mlm" else v[:n]) for k, v in out.items()}


def _loss_terms(out: dict, batch: Batch, cfg: Config) -> list[torch.Tensor]:
    values = []
    for term in cfg.objective:
        spec = LOSSES[term.loss]
        if spec.kind == "mlm":
            values.append(spec.fn(out["mlm"], batch.inputs["mlm_labels"]))
        elif spec.kind == "row":
            values.append(spec.fn(out[term.head], batch.targets[term.target], **term.params))
        else:
            scores = batch.grouped(out[term.head])
            target = batch.grouped(batch.targets[term.target])
            values.append(spec.fn(scores, target, batch.mask, **term.params))
    return values


# -- the loop ---------------------------------------------------------------------------


def train(
    config: Config,
    *,
    train_frame: pl.DataFrame | None = None,
    eval_frame: pl.DataFrame | None = None,
    transform: Transform | None = None,
    max_steps_this_run: int | None = None,
    evaluator: Callable[[Any], dict[str, float]] | None = None,
    single_sentence: bool = False,
) -> TrainResult:
    """Train as ``config`` says and return what happened.

    Parameters
    ----------
    config
        The resolved configuration (validated here).
    train_frame, eval_frame
        Data given in memory instead of ``data.train``/``data.eval`` (the rekindle stage
        passes pairs with teacher-score columns this way).
    transform
        Batch transform (``transform(inputs, step=serial) -> inputs``); default: BERT
        MLM masking when the objective has an ``mlm`` term.
    max_steps_this_run
        Stop after this many optimizer steps *in total* without finishing (as if the run
        were interrupted; the last checkpoint is what a resumed run continues from).
    evaluator
        ``evaluator(model) -> {metric: value}`` instead of the ranking evaluation of the
        eval split (GLUE task metrics); ``train.metric_for_best`` must be one of its keys.
    single_sentence
        Encode the ``query`` column alone (single-sentence tasks: GLUE CoLA, SST-2).
    """
    cfg = validate(config)
    out_dir = Path(cfg.train.output_dir).resolve()
    cfg.train.output_dir = str(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RerankError(f"train.output_dir: {out_dir} is a file; expected a directory")
    before = set(os.listdir(out_dir)) if out_dir.is_dir() else None
    dist = init_distributed()
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    try:
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        elif dist.world > 1 and dist.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.local_world))
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
        return _train(
            cfg,
            out_dir,
            dist,
            train_frame,
            eval_frame,
            transform,
            max_steps_this_run,
            evaluator=evaluator,
            single=single_sentence,
        )
    except RerankError:
        if dist.main and not ckpt.exists(out_dir):
            _remove_outputs(out_dir, before)
        raise
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _train(
    cfg, out_dir, dist, train_frame, eval_frame, transform, max_steps_this_run, *, evaluator, single
):
    t_start = time.perf_counter()
    tc = cfg.train
    targets = list(dict.fromkeys(t.target for t in cfg.objective if t.loss != "mlm"))
    has_mlm = any(t.loss == "mlm" for t in cfg.objective)
    state = ckpt.load_state(out_dir) if tc.resume else None
    if state is None and ckpt.exists(out_dir) and not tc.resume:
        raise RerankError(
            f"{out_dir}: holds a checkpoint of an earlier run; resume it (--resume) "
            "or choose another train.output_dir"
        )
    source = ckpt.model_dir(out_dir) if state else cfg.model.resolved_path()
    if not Path(source).is_dir():
        raise RerankError(f"{source}: model directory does not exist")
    if tc.resume and state is None and dist.main:
        log.warning("%s: no checkpoint to resume from; starting at step 0", out_dir)
    if state is not None and dist.main:
        for change in _changes_since(state, cfg):
            log.warning("resuming with %s", change)
    train_frame, eval_frame = load_frames(cfg, targets, train_frame, eval_frame)

    ckpt.seed_everything(tc.seed)
    mlm = has_mlm if cfg.model.mlm == "auto" else bool(cfg.model.mlm)
    model = build_model(cfg, Path(source), mlm=mlm).to(dist.device)
    model.input_lengths = {
        "max_length": cfg.model.max_length,
        "max_query_length": cfg.model.max_query_length,
    }
    model.truncation = cfg.model.truncation
    model.card_facts = training_facts(cfg, train_frame)
    model.check_max_length(cfg.model.max_length, key="model.max_length")
    model.train()
    encoder = model.pair_encoder()  # the input lengths just set
    if has_mlm and transform is None:
        transform = mlm_transform(model, cfg)
    data = GroupedData.from_frame(
        train_frame,
        encoder,
        targets=targets,
        source=Path(cfg.data.train).name or "training data",
        single=single,
    )
    batcher = make_batcher(cfg, data, dist, targets=targets, transform=transform)
    per_epoch = max(1, batcher.batches_per_epoch(0) // tc.grad_accum)
    total = tc.steps or max(1, math.ceil(tc.epochs * per_epoch))
    eval_data = None
    if eval_frame is not None and dist.main:
        eval_data = GroupedData.from_frame(
            eval_frame, encoder, targets=["label"], source="eval data"
        )

    if (
        evaluator is None
        and eval_data is not None
        and tc.metric_for_best not in ("pnr", "pnr_macro")
    ):
        from rerank.measures.ir import parse_measure

        parse_measure(tc.metric_for_best)  # an unknown name fails now, not after training
    if tc.eval_every and eval_frame is None and evaluator is None and dist.main:
        log.warning("train.eval_every is set but there is no eval data (data.eval): no evaluation")
    bf16 = use_bf16(tc.bf16, dist.device)
    if dist.device.type == "cpu":
        use_cpu_attention(model)
    if evaluator is None and eval_data is not None:
        evaluator = lambda m: evaluate_ranking(m, eval_data, cfg, bf16)  # noqa: E731
    if not dist.main:
        evaluator = None
    optimizer = make_optimizer(model, cfg)
    heads = tuple(dict.fromkeys(t.head for t in cfg.objective if LOSSES[t.loss].kind != "mlm"))
    net: Any = model
    if dist.world > 1:
        unused = set(model.specs) - set(heads) or (mlm and not has_mlm)
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=bool(unused))

    step, epoch, position = 0, 0, 0
    best: dict[str, Any] = {"value": None, "step": None}
    if state is not None:
        if state.get("world", 1) != dist.world:
            raise RerankError(
                f"{out_dir}: the checkpoint was written by {state.get('world', 1)} process(es); "
                f"resume it with as many (the data position is per process), not {dist.world}"
            )
        optimizer.load_state_dict(ckpt.load_optimizer(out_dir))
        ckpt.restore_rng(out_dir, state)
        step, epoch, position = state["step"], state["epoch"], state["position"]
        best = state["best"]
    if dist.main:
        # lines after the checkpoint (all of them when starting over) would be repeated
        ckpt.truncate_log(out_dir / "log.jsonl", step)
        write_config(cfg, out_dir / "config.toml")
    dist.barrier()

    from tqdm.auto import tqdm

    # a bar on a terminal; in a log file (or with train.progress off, as in the cycle)
    # a progress line at most every 30 s instead (rerank.progress)
    shown = dist.main and tc.progress and stderr_is_terminal()
    bar = tqdm(total=total, initial=step, unit="step", disable=not shown, dynamic_ncols=True)
    lines = ProgressLog(total, start=step, logger=log) if dist.main and not shown else None
    tracker = Tracker(tc.report_to, out_dir, enabled=dist.main)  # train.report_to
    batches = batcher.iter_from(epoch, position)
    window = {"rows": 0, "tokens": 0, "t": time.perf_counter(), "n": 0}
    sums = torch.zeros(len(cfg.objective) + 1, device=dist.device)  # .item() only when logging
    metrics: dict[str, float] = {}
    autocast = torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=bf16)
    stop = total if max_steps_this_run is None else min(total, max_steps_this_run)
    threads = torch.get_num_threads()
    # 1-based step of the first non-finite loss or gradient norm (0: none); read only
    # when the run logs, evaluates or saves, so that a GPU never waits on it.
    diverged = torch.zeros((), dtype=torch.long, device=dist.device)
    while step < stop:
        lr = lr_at(
            step,
            total_steps=total,
            lr_max=tc.lr_max,
            lr_min=tc.lr_min,
            warmup_steps=tc.warmup_steps,
            power=tc.power,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        # Dropout randomness is a function of (seed, step, rank): resume-exact by design.
        torch.manual_seed((tc.seed * 1_000_003 + step) * 64 + dist.rank)
        finite = torch.ones((), dtype=torch.bool, device=dist.device)
        for micro in range(tc.grad_accum):
            batch = next(batches).to(dist.device)
            sync = micro == tc.grad_accum - 1 or dist.world == 1
            with contextlib.nullcontext() if sync else net.no_sync(), autocast:
                out = _model_forward(net, batch, heads, has_mlm)
                values = _loss_terms(out, batch, cfg)
                loss = sum(t.weight * v for t, v in zip(cfg.objective, values, strict=True))
            (loss / tc.grad_accum).backward()
            epoch, position = batch.epoch, batch.position + 1
            sums += torch.stack([loss.detach(), *(v.detach() for v in values)]) / tc.grad_accum
            finite = finite & torch.isfinite(loss.detach())
            window["rows"] += batch.n_rows * dist.world
            window["tokens"] += batch.stats["tokens"] * dist.world
        if tc.clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
            finite = finite & torch.isfinite(norm)
        diverged = torch.where((diverged == 0) & ~finite, step + 1, diverged)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window["n"] += 1
        bar.update(1)
        last = step == total
        evaluating = evaluator is not None and (
            (tc.eval_every and step % tc.eval_every == 0) or last
        )
        saving = bool(tc.save_every) and (step % tc.save_every == 0 or last)
        if evaluating or saving or last or step == stop or step % tc.log_every == 0:
            _check_finite(diverged, cfg, dist)
        if step % tc.log_every == 0 or last or step == stop:
            record = _log_record(step, lr, sums, window, cfg, dist, epoch)
            bar.set_postfix(loss=f"{record['loss']:.4f}", pairs_s=f"{record['pairs_per_s']:.1f}")
            if lines is not None:
                lines.report(step, loss=record["loss"], pairs_per_s=record["pairs_per_s"])
            tracker.scalars("train", {k: v for k, v in record.items() if k != "step"}, step)
            if dist.main:
                ckpt.append_log(out_dir / "log.jsonl", record)
            sums.zero_()
            window.update(rows=0, tokens=0, t=time.perf_counter(), n=0)
        if evaluating:
            t_eval = time.perf_counter()
            metrics = evaluator(model)
            # numba's OpenMP layer (the PNR kernels) shares torch's libgomp and resets its
            # thread count on the way out; without this, training after the first
            # evaluation silently runs on a different number of threads.
            torch.set_num_threads(threads)
            value = metrics[tc.metric_for_best]
            improved = best["value"] is None or value > best["value"]
            if improved:
                best = {"value": value, "step": step}
                model.card_facts.update(step=step, total_steps=total, eval=metrics)
                model.save_pretrained(out_dir / "best")
            ckpt.append_log(
                out_dir / "log.jsonl", {"step": step, "eval": metrics, "best": improved}
            )
            tracker.scalars("eval", metrics, step)
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            window["t"] += time.perf_counter() - t_eval  # not training throughput
        if saving:
            if dist.main:
                ckpt.save(
                    out_dir,
                    model,
                    optimizer,
                    {
                        "step": step,
                        "epoch": epoch,
                        "position": position,
                        "best": best,
                        "world": dist.world,
                        "config": to_toml(cfg),
                        "data_bytes": _data_bytes(cfg),
                    },
                )
            dist.barrier()
    bar.close()
    tracker.close()
    finished = step >= total
    final_dir = None
    if finished and dist.main:
        final_dir = out_dir / "final"
        model.card_facts.update(step=step, total_steps=total, eval=metrics)
        model.save_pretrained(final_dir)
    if dist.main:  # loss.png beside log.jsonl: the loss curve and the eval measures
        try:
            plot_training_log(out_dir / "log.jsonl", out_dir / "loss.png")
        except (OSError, ValueError, RuntimeError) as err:  # the run itself succeeded
            log.warning("%s: could not plot the training log: %s", out_dir / "loss.png", err)
    dist.barrier()
    best_dir = out_dir / "best" if best["step"] is not None else None
    return TrainResult(
        output_dir=out_dir,
        final_dir=final_dir,
        best_dir=best_dir,
        steps=step,
        total_steps=total,
        finished=finished,
        seconds=time.perf_counter() - t_start,
        metrics=metrics,
        best_metric=best["value"],
        best_step=best["step"],
        skipped_groups=batcher.skipped,
    )


def _check_finite(diverged: torch.Tensor, cfg: Config, dist: Any) -> None:
    if dist.world > 1:
        torch.distributed.all_reduce(diverged, op=torch.distributed.ReduceOp.MAX)
    step = int(diverged.item())
    if step:
        raise RerankError(
            f"training diverged: the loss or its gradient is not finite at step {step} "
            f"(train.lr_max = {cfg.train.lr_max:g}); nothing was saved from that step on. "
            "Lower train.lr_max, or check the training targets"
        )


def _data_bytes(cfg: Config) -> int | None:
    path = Path(cfg.data.train) if cfg.data.train else None
    return path.stat().st_size if path is not None and path.is_file() else None


# Settings whose change on --resume is allowed but changes the run (warned about).
_RESUME_KEYS = (
    ("data", "train"),
    ("data", "eval"),
    ("train", "lr_max"),
    ("train", "lr_min"),
    ("train", "warmup_steps"),
    ("train", "power"),
    ("train", "steps"),
    ("train", "epochs"),
    ("train", "grad_accum"),
    ("train", "seed"),
)


def _changes_since(state: dict, cfg: Config) -> list[str]:
    """What differs between the checkpoint's run and this one, e.g. ``train.lr_max 3e-05 -> 1e-4``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        old = tomllib.loads(state.get("config") or "")
    except tomllib.TOMLDecodeError:
        return []
    changes = []
    for section, key in _RESUME_KEYS:
        if section not in old or key not in old[section]:
            continue
        was, now = old[section][key], getattr(getattr(cfg, section), key)
        if was != now:
            changes.append(f"{section}.{key} {was!r} -> {now!r}")
    size = _data_bytes(cfg)
    saved = state.get("data_bytes")
    if (
        saved is not None
        and size is not None
        and saved != size
        and not any(c.startswith("data.train ") for c in changes)
    ):
        changes.append(f"data.train changed since the checkpoint ({saved:,} -> {size:,} bytes)")
    return changes


def _remove_outputs(out_dir: Path, before: set[str] | None) -> None:
    """Remove the outputs a failed run wrote (never a file that was there before it)."""
    import shutil

    for name in RUN_OUTPUTS:
        path = out_dir / name
        if before is not None and name in before:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
    if before is None:
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # only when empty: this run created it


def prepare_output_dir(out_dir: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a directory holding files unless resuming or overwriting.

    ``resume`` continues (or, without a checkpoint, starts over in) the directory;
    ``overwrite`` removes an earlier run's outputs (:data:`RUN_OUTPUTS`) first, and
    nothing else. Without either, a directory that exists and is not empty is refused:
    training into it would replace ``final/`` and ``config.toml`` and mix two runs'
    ``log.jsonl``. Used by ``rerank train``; library callers (the cycles) manage their
    own stage directories. Under ``torchrun`` only rank 0 looks (the others would find
    the files rank 0 is writing).
    """
    import shutil

    if int(os.environ.get("RANK", "0")) != 0:
        return
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise RerankError(f"train.output_dir: {path} is a file; expected a directory")
    if resume and overwrite:
        raise RerankError("--resume continues a run and --overwrite starts over: choose one")
    held = sorted(os.listdir(path)) if path.is_dir() else []
    if not held or resume:
        return
    if not overwrite:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise RerankError(
            f"train.output_dir: {path} already holds files ({shown}); choose another "
            "directory, --resume the run in it, or --overwrite its outputs "
            f"({', '.join(n for n in RUN_OUTPUTS if not n.startswith('.'))})"
        )
    for name in RUN_OUTPUTS:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _log_record(step, lr, sums, window, cfg, dist, epoch) -> dict[str, Any]:
    if dist.world > 1:
        torch.distributed.all_reduce(sums)
        sums /= dist.world
    n = max(1, window["n"])
    seconds = max(time.perf_counter() - window["t"], 1e-9)
    values = (sums / n).tolist()
    record: dict[str, Any] = {"step": step, "epoch": epoch, "lr": lr, "loss": values[0]}
    for i, term in enumerate(cfg.objective):
        record[f"loss/{i}:{term.loss}"] = values[i + 1]
    record["pairs_per_s"] = window["rows"] / seconds
    record["tokens_per_s"] = window["tokens"] / seconds
    return record


# The public API's `rerank.train(config, overrides)` (rerank.api.train): once imported,
# the package attribute `rerank.train` is this module, so the module itself is callable.
import rerank.api as _api  # noqa: E402

sys.modules[__name__].__class__ = _api.CallableTrainModule
