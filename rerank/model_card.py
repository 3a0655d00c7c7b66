"""The model card (``README.md``) written into every saved model directory.

:meth:`rerank.model.RerankModel.save_pretrained` writes it: what the model is (base
model, heads, input lengths, truncation), how it was trained when ``rerank train`` saved
it (data, objective, steps, evaluation figures: :func:`training_facts`), and how to load
it in ``rerank``, sentence-transformers' ``CrossEncoder`` and ``transformers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["model_card", "training_facts"]


def training_facts(cfg: Any, train_frame: Any = None) -> dict[str, Any]:
    """What a card says about a training run of ``cfg`` (a :class:`rerank.config.Config`).

    The training loop adds ``step``, ``total_steps`` and ``eval`` (measures) before each save.
    """
    objective = []
    for term in cfg.objective:
        params = ", ".join(f"{k}={v}" for k, v in term.params.items())
        target = "" if term.loss == "mlm" else f" on {term.target} (head {term.head})"
        objective.append(
            f"{term.loss}{f' ({params})' if params else ''}{target}, weight {term.weight:g}"
        )
    facts: dict[str, Any] = {
        "base_model": cfg.model.path,
        "train_data": cfg.data.train or "(in memory)",
        "eval_data": cfg.data.eval,
        "objective": objective,
        "lr_max": cfg.train.lr_max,
        "batch": f"{cfg.data.groups_per_batch} queries x {cfg.data.list_size} documents",
        "seed": cfg.train.seed,
    }
    if train_frame is not None and "query_id" in getattr(train_frame, "columns", ()):
        facts["train_rows"] = train_frame.height
        facts["train_queries"] = train_frame.get_column("query_id").n_unique()
    return facts


def _table(metrics: dict[str, float]) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items()]
    return lines


def model_card(model: Any, name: str) -> str:
    """The ``README.md`` text for ``model`` (a :class:`rerank.model.RerankModel`) saved as ``name``.

    Examples
    --------
    >>> from rerank.model import RerankModel
    >>> card = model_card(RerankModel.from_pretrained(path), "ranker")  # doctest: +SKIP
    >>> card.splitlines()[0]  # doctest: +SKIP
    '---'
    """
    from rerank.model_dir import DEFAULT_MAX_LENGTH, DEFAULT_MAX_QUERY_LENGTH

    lengths = model.input_lengths
    max_length = lengths.get("max_length", DEFAULT_MAX_LENGTH)
    query_length = lengths.get("max_query_length", DEFAULT_MAX_QUERY_LENGTH)
    sep = model.tokenizer.sep_token or " "
    lines = _header(model, name, sep, max_length, query_length)
    lines += _training(dict(model.card_facts))
    lines += _usage(sep, model.truncation, query_length)
    return "\n".join(lines)


def _header(model: Any, name: str, sep: str, max_length: int, query_length: int) -> list[str]:
    """Front matter, what the model is, and its input layout and truncation."""
    truncation = model.truncation
    kinds = {k: v.kind for k, v in model.specs.items()}
    ranking = kinds[model.primary] == "score"
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking" if ranking else "pipeline_tag: text-classification",
        "tags:",
        "- cross-encoder",
        "- reranker",
        "- rerank",
        "---",
        "",
        f"# {name}",
        "",
        f"A cross-encoder {'re-ranker' if ranking else 'model'} saved by "
        "rerank (`rerank train`). Its primary head "
        f"`{model.primary}` ({kinds[model.primary]}) is the Hugging Face classifier of an "
        f"ordinary `{type(model.encoder).__name__}` checkpoint"
        + (
            f"; extra heads: {', '.join(f'`{k}` ({v})' for k, v in kinds.items() if k != model.primary)}"
            if len(kinds) > 1
            else ""
        )
        + ".",
        "",
        "## Input",
        "",
        f"`[CLS] query [SEP] title {sep} summary [SEP]`, at most {max_length} tokens. "
        + (
            f"Truncation `query_cap`: the query keeps up to {query_length} tokens, then the "
            "summary is cut first, then the title."
            if truncation == "query_cap"
            else "Truncation `longest_first`: the Hugging Face tokenizer's pair truncation "
            "(the longer of query and document is cut first)."
        ),
        "",
    ]
    return lines


def _training(facts: dict[str, Any]) -> list[str]:
    """How the model was trained and its evaluation (none for a model not trained here)."""
    lines: list[str] = []
    if facts:
        lines += ["## Training", ""]
        lines.append(f"- Base model: `{facts.get('base_model')}`")
        data = f"- Training data: `{Path(str(facts.get('train_data'))).name}`"
        if "train_rows" in facts:
            data += f" ({facts['train_rows']:,} pairs, {facts['train_queries']:,} queries)"
        lines.append(data)
        lines.append("- Objective: " + "; ".join(facts.get("objective") or ["(none recorded)"]))
        if "step" in facts:
            lines.append(f"- Steps: {facts['step']:,} of {facts['total_steps']:,}")
        lines.append(
            f"- Batch: {facts.get('batch')}; peak learning rate {facts.get('lr_max'):g}; "
            f"seed {facts.get('seed')}"
        )
        lines.append("")
        if facts.get("eval"):
            where = Path(str(facts.get("eval_data") or "")).name or "the eval split"
            at = f" at step {facts['step']:,}" if "step" in facts else ""
            lines += [f"## Evaluation ({where}{at})", "", *_table(facts["eval"]), ""]
    return lines


def _usage(sep: str, truncation: str, query_length: int) -> list[str]:
    """Loading and scoring with rerank, sentence-transformers and transformers."""
    return [
        "## Usage",
        "",
        "rerank (same truncation and scores as `rerank score`):",
        "",
        "```python",
        "import rerank",
        "",
        'ranker = rerank.Reranker.from_pretrained("path/to/this/dir")',
        'scores = ranker.score([("query", "title", "summary"), ("query", "a document")])',
        'ranked = ranker.rank("query", ["first document", "second document"])',
        "```",
        "",
        "sentence-transformers (the document is `title + "
        f'" {sep} " + summary`; `config.json` sets an identity activation, so the scores '
        "are the raw ones rerank writes):",
        "",
        "```python",
        "from sentence_transformers import CrossEncoder",
        "",
        'model = CrossEncoder("path/to/this/dir")',
        f'scores = model.predict([("query", "title {sep} summary")])',
        "```",
        "",
        "transformers:",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/dir")',
        'model = AutoModelForSequenceClassification.from_pretrained("path/to/this/dir").eval()',
        f'batch = tokenizer(["query"], ["title {sep} summary"], truncation=True, '
        'padding=True, return_tensors="pt")',
        "with torch.no_grad():",
        "    scores = model(**batch).logits[:, 0]",
        "```",
        "",
        (
            "CrossEncoder and transformers give the scores rerank gives for every input "
            "(truncation `longest_first`)."
            if truncation == "longest_first"
            else "CrossEncoder and transformers give the scores rerank gives while the query "
            f"fits in {query_length} tokens; a longer query is cut at {query_length} tokens "
            'by rerank but not by them (train with `model.truncation = "longest_first"` '
            "for identical scores at every query length)."
        ),
        "",
    ]
