"""Training objectives: plain functions with documented shapes, and their registry.

Three kinds of loss, by what they read (:class:`Loss.kind`):

``list``
    Query-grouped: ``scores [groups, list_size]``, ``targets [groups, list_size]`` and
    ``mask [groups, list_size]`` (bool, padding ``False``). Padding never contributes, a
    batch without any valid pair or row gives ``0`` (with a gradient of zeros, not NaN).
``row``
    One output per input row: ``logits [batch, C]`` against ``targets [batch]`` (class
    ids) or ``[batch, C]`` (teacher logits). Used by the GLUE heads.
``mlm``
    Masked-language-model logits ``[n, vocab]`` against token ids ``[n]``.

The training loop never calls a loss by attribute lookup: it goes through :data:`LOSSES`
(STYLE.md habit 4), and configuration names come from ``LOSSES.keys()``.

Knowledge rekindle (pointwise + pairwise MSE to a teacher, plus MLM) is
``pointwise_mse + pairwise_mse + mlm`` with teacher-score targets; Margin-MSE
(Hofstätter et al., 2020) is ``pairwise_mse`` on two-document lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from rerank.errors import RerankError

__all__ = [
    "LOSSES",
    "Loss",
    "cross_entropy",
    "get_loss",
    "hinge",
    "kl_div",
    "listwise_ce",
    "mlm_ce",
    "pairwise_mse",
    "pointwise_mse",
]


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # torch.where (not values * valid): padding may hold inf/NaN-producing garbage, and
    # 0 * inf is NaN. An empty selection gives 0 with a zero gradient.
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp(min=1)


def hinge(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    *,
    margin: float = 1.0,
    scale_by_gap: bool = False,
    ndcg_weight: bool = False,
) -> torch.Tensor:
    """Pairwise hinge: mean over pairs ``y_i > y_j`` of ``max(0, m - (s_i - s_j))``.

    Parameters
    ----------
    scores, labels
        ``[groups, list_size]`` floats.
    mask
        ``[groups, list_size]`` bool, ``False`` on padding.
    margin
        ``m``; with ``scale_by_gap`` the margin of a pair is ``margin * (y_i - y_j)``.
    ndcg_weight
        Weight each pair by how much swapping its two documents would change the list's
        nDCG under the current scores, ``|2^y_i - 2^y_j| * |1/log2(1+r_i) - 1/log2(1+r_j)|
        / IDCG`` (ranks ``r`` by the detached scores within the valid entries of the list;
        LambdaRank's weight, Burges 2006, and the LambdaLoss framework's hinge variant,
        Wang et al. 2018). The result is then the weighted mean ``sum w*l / sum w``: pairs
        that decide the top of the ranking (e.g. a grade-4 document below a grade-0 one)
        count most; pairs far down the list count little. Off by default: plain hinge.

    Returns
    -------
    torch.Tensor
        Scalar: the mean over all valid pairs of the batch (0 when there are none).

    Examples
    --------
    >>> s = torch.tensor([[2.0, 1.5, 0.0]]); y = torch.tensor([[2.0, 1.0, 0.0]])
    >>> round(float(hinge(s, y, torch.ones(1, 3, dtype=torch.bool))), 4)  # (0.5 + 0 + 0) / 3
    0.1667
    """
    diff = scores[:, :, None] - scores[:, None, :]
    gap = labels[:, :, None] - labels[:, None, :]
    valid = (gap > 0) & mask[:, :, None] & mask[:, None, :]
    m = margin * gap if scale_by_gap else margin
    if not ndcg_weight:
        return _masked_mean(F.relu(m - diff), valid)
    w = torch.where(valid, _delta_ndcg(scores.detach(), labels, mask), torch.zeros_like(diff))
    return (w * F.relu(m - diff)).sum() / w.sum().clamp(min=1e-12)


def _delta_ndcg(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[groups, n, n]``: |change of nDCG| when documents i and j swap rank positions.

    Ranks are 1-based by descending score among the valid entries of each group (ties by
    position, so every valid entry gets a distinct rank); padding gets no discount.
    """
    low = torch.finfo(scores.dtype).min
    order = scores.masked_fill(~mask, low).argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    discount = torch.where(mask, 1.0 / torch.log2(1.0 + ranks.to(scores.dtype)), 0.0)
    gain = torch.where(mask, torch.pow(2.0, labels.to(scores.dtype)) - 1.0, 0.0)
    ideal_gain = gain.sort(dim=1, descending=True).values
    ideal_discount = 1.0 / torch.log2(1.0 + positions.to(scores.dtype))
    idcg = (ideal_gain * ideal_discount).sum(dim=1).clamp(min=1e-12)
    dg = (gain[:, :, None] - gain[:, None, :]).abs()
    dd = (discount[:, :, None] - discount[:, None, :]).abs()
    return dg * dd / idcg[:, None, None]


def pointwise_mse(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid rows of ``(s_i - t_i)^2``; shapes ``[groups, list_size]``."""
    return _masked_mean((scores - targets) ** 2, mask)


def pairwise_mse(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over pairs ``i < j`` of a group of ``((s_i - s_j) - (t_i - t_j))^2``.

    The pairwise term of knowledge rekindle's expert-guided pre-training: the student
    matches the teacher's score *differences* within a query. With two documents per
    list it is Margin-MSE. Shapes ``[groups, list_size]``; ``i != j`` gives the same
    mean, each unordered pair counted once here.
    """
    d = (scores[:, :, None] - scores[:, None, :]) - (targets[:, :, None] - targets[:, None, :])
    size = scores.shape[1]
    upper = torch.ones(size, size, dtype=torch.bool, device=scores.device).triu(1)
    valid = upper & mask[:, :, None] & mask[:, None, :]
    return _masked_mean(d**2, valid)


def listwise_ce(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """ListNet top-one cross-entropy: ``-sum_i softmax(y / T)_i * log softmax(s)_i``.

    Both softmaxes run over the valid entries of each group only; the result is the
    mean over groups that have at least one valid entry. Shapes ``[groups, list_size]``.
    (Cao et al., 2007; allRank ``losses/listNet.py`` uses the same target distribution.)
    """
    # A finite fill keeps all-padding groups finite in the forward *and* backward pass
    # (log_softmax over all -inf is NaN, and NaN leaks through torch.where's gradient).
    low = torch.finfo(scores.dtype).min
    log_q = torch.log_softmax(scores.masked_fill(~mask, low), dim=1)
    p = torch.softmax((labels / temperature).masked_fill(~mask, low), dim=1)
    per_group = -torch.where(mask, p * log_q, torch.zeros_like(log_q)).sum(dim=1)
    return _masked_mean(per_group, mask.any(dim=1))


def kl_div(
    logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Distillation KL for classifiers: ``T^2 * KL(softmax(t/T) || softmax(s/T))``.

    ``logits`` and ``teacher_logits`` are ``[batch, C]``; the mean is over the batch.
    The ``T^2`` factor keeps gradient magnitudes comparable across temperatures
    (Hinton et al., 2015).
    """
    if logits.shape != teacher_logits.shape:
        raise RerankError(
            f"kl_div: student logits {tuple(logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    t = temperature
    log_p_s = torch.log_softmax(logits / t, dim=-1)
    log_p_t = torch.log_softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * t * t


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Classification cross-entropy: ``logits [batch, C]``, class ids ``labels [batch]``."""
    return F.cross_entropy(logits, labels.long())


def mlm_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MLM cross-entropy over masked positions: ``logits [n, vocab]``, ``labels [n]``.

    ``n == 0`` (nothing masked in the batch) gives 0.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels.long())


@dataclass(frozen=True)
class Loss:
    """A registered loss: the function, what it reads, and its tunable parameters.

    Attributes
    ----------
    fn
        The function.
    kind
        ``"list"``, ``"row"`` or ``"mlm"`` (see the module docstring).
    params
        Keyword parameters a configuration may set, name -> type.
    needs_label_pairs
        True when only lists with two or more distinct target values contribute
        (batching then skips single-level queries when every term is like this).
    """

    fn: Callable[..., torch.Tensor]
    kind: Literal["list", "row", "mlm"]
    params: dict[str, type] = field(default_factory=dict)
    needs_label_pairs: bool = False


LOSSES: dict[str, Loss] = {
    "hinge": Loss(
        hinge, "list", {"margin": float, "scale_by_gap": bool, "ndcg_weight": bool}, True
    ),
    "pointwise_mse": Loss(pointwise_mse, "list"),
    "pairwise_mse": Loss(pairwise_mse, "list"),
    "listwise_ce": Loss(listwise_ce, "list", {"temperature": float}, True),
    "kl_div": Loss(kl_div, "row", {"temperature": float}),
    "cross_entropy": Loss(cross_entropy, "row"),
    "mlm": Loss(mlm_ce, "mlm"),
}


def get_loss(name: str, *, where: str = "objective") -> Loss:
    """Look a loss up by name; an unknown name is a :class:`RerankError` listing the valid ones."""
    try:
        return LOSSES[name]
    except KeyError:
        raise RerankError(f"{where}: unknown loss '{name}' (valid: {', '.join(LOSSES)})") from None


def check_params(name: str, params: dict[str, Any], *, where: str = "objective") -> dict[str, Any]:
    """Validate and convert a term's loss parameters against the registry."""
    spec = get_loss(name, where=where)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in spec.params:
            valid = ", ".join(spec.params) or "none"
            raise RerankError(f"{where}: loss '{name}' has no parameter '{key}' (valid: {valid})")
        kind = spec.params[key]
        if kind is bool and not isinstance(value, bool):
            raise RerankError(f"{where}: parameter '{key}' of '{name}' must be true or false")
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RerankError(f"{where}: parameter '{key}' of '{name}' must be a number")
        out[key] = kind(value)
    return out
