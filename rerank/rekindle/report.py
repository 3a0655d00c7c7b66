"""The cycle's report: ``report.json``, ``report.md`` and two PNG plots.

``results.png``
    PNR and nDCG@10 of every model (BM25, teacher, plain fine-tune, rekindled student)
    on the eval and test splits.
``pretraining.png``
    The paper's Figure 3: downstream PNR on the eval split of checkpoints taken during
    expert-guided pre-training, one line per pre-training variant (KD+MLM vs KD only).

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rerank.atomic import atomic_path

__all__ = [
    "MODEL_LABELS",
    "comparisons_markdown",
    "markdown_report",
    "plot_pretraining",
    "plot_results",
    "write_report",
]

MODEL_LABELS = {
    "bm25": "BM25 (first stage)",
    "dense": "zero-shot dense (bi-encoder, no training)",
    "teacher": "teacher (fine-tuned)",
    "plain": "student, plain fine-tune",
    "plain (long)": "student, plain fine-tune as long as pre-training + fine-tune",
    "rekindled": "student, rekindled + fine-tune",
    "rekindled + dense": "student, rekindled + fine-tune, fused with the dense expert",
}
"""Row labels of the results table, in display order."""

SHOWN_MEASURES = ("pnr", "ndcg@10")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


def results_markdown(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table: one row per model, ``<split> <measure>`` columns.

    ``results[model][split][measure]`` -> value; models in :data:`MODEL_LABELS` order first.
    """
    models = [m for m in MODEL_LABELS if m in results] + [
        m for m in results if m not in MODEL_LABELS
    ]
    splits = sorted({s for m in models for s in results[m]}, key=lambda s: (s != "eval", s))
    cols = [(s, k) for s in splits for k in SHOWN_MEASURES]
    lines = [
        "| model | " + " | ".join(f"{s} {k}" for s, k in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for m in models:
        cells = [_fmt(results[m].get(s, {}).get(k)) for s, k in cols]
        lines.append(f"| {MODEL_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(
    results: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | os.PathLike[str]
) -> None:
    """Grouped bars: one panel per measure, bars per model, groups per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in MODEL_LABELS if m in results] + [
        m for m in results if m not in MODEL_LABELS
    ]
    splits = sorted({s for m in models for s in results[m]}, key=lambda s: (s != "eval", s))
    fig, axes = plt.subplots(1, len(SHOWN_MEASURES), figsize=(5 * len(SHOWN_MEASURES), 3.6))
    width = 0.8 / max(len(models), 1)
    for ax, measure in zip(axes, SHOWN_MEASURES, strict=True):
        lows = []
        for i, m in enumerate(models):
            values = [results[m].get(s, {}).get(measure, float("nan")) for s in splits]
            lows += [v for v in values if v == v]
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(splits))]
            bars = ax.bar(xs, values, width, label=MODEL_LABELS.get(m, m))
            ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
        ax.set_xticks(range(len(splits)), splits)
        ax.set_title(measure + (" (concordant / discordant pairs)" if measure == "pnr" else ""))
        if lows:  # PNR is unbounded above; nDCG lies in [0, 1]
            top = max(lows) * 1.12
            ax.set_ylim(0.0, top if measure == "pnr" else min(1.0, top))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(models), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_pretraining(
    curves: Mapping[str, Sequence[Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    ylabel: str = "eval PNR",
    references: Mapping[str, float] | None = None,
) -> None:
    """Figure 3: ``curves[variant] = [(step, value), ...]``; ``references`` draw flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, points in curves.items():
        if points:
            xs, ys = zip(*sorted((float(s), float(v)) for s, v in points), strict=True)
            ax.plot(xs, ys, marker="o", label=name)
    for name, value in (references or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(
            name,
            (0, value),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            va="bottom",
            color="grey",
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("expert-guided pre-training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def markdown_report(report: Mapping[str, Any]) -> str:
    """The human-readable report built from the ``report.json`` content."""
    lines = [f"# Knowledge rekindle cycle: {report.get('name', '')}", ""]
    lines += [results_markdown(report["results"]), ""]
    comparisons = report.get("comparisons")
    if comparisons:
        lines += [*comparisons_markdown(report["final"], comparisons, report.get("fusion")), ""]
    gains = report.get("gains")
    if gains and not comparisons:
        lines += ["Rekindled student minus the other models (positive: rekindling helped):", ""]
        lines += [
            f"- {split} {measure}: "
            + ", ".join(f"vs {MODEL_LABELS.get(o, o)} {v:+.4f}" for o, v in d.items())
            for split, by_measure in gains.items()
            for measure, d in by_measure.items()
        ]
        lines.append("")
    lines += ["![results](results.png)", ""]
    if report.get("pretraining"):
        proxy = report.get("pretraining_proxy", "")
        lines += [
            "## Expert-guided pre-training checkpoints (Figure 3)",
            "",
            f"Downstream measure: {proxy}.",
            "",
            "| variant | "
            + " | ".join(f"step {int(s)}" for s, _ in _steps(report["pretraining"]))
            + " |",
            "|---|" + "---:|" * len(_steps(report["pretraining"])),
        ]
        for name, points in report["pretraining"].items():
            by_step = {int(s): v for s, v in points}
            lines.append(
                f"| {name} | "
                + " | ".join(_fmt(by_step.get(int(s))) for s, _ in _steps(report["pretraining"]))
                + " |"
            )
        lines += ["", "![pre-training checkpoints](pretraining.png)", ""]
    if report.get("timings"):
        lines += ["## Stage times (seconds; 0 = skipped, output already complete)", ""]
        lines += [f"- {k}: {v:.1f}" for k, v in report["timings"].items()]
        lines.append("")
    if report.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in report["notes"]], ""]
    if report.get("provenance"):
        lines += [
            "## Provenance",
            "",
            "```json",
            json.dumps(report["provenance"], indent=2),
            "```",
            "",
        ]
    return "\n".join(lines)


def comparisons_markdown(
    final: str, comparisons: Mapping[str, Any], fusion: Mapping[str, Any] | None = None
) -> list[str]:
    """The final model minus every other row, per split: difference and 95% interval.

    A row is called beaten only when the whole interval is above zero; a difference whose
    interval straddles zero is reported as such, never as a win.
    """
    label = MODEL_LABELS.get(final, final)
    lines = [
        f"## {label} against every other row",
        "",
        "Paired over the split's queries: the difference (final minus the row), its 95% "
        "bootstrap interval over queries (PNR: resampled concordant/discordant counts), and "
        "whether the interval excludes zero.",
        "",
    ]
    if fusion:
        lines += [
            f"Fusion weight of the dense expert: {fusion['weight']:.1f}, the best eval "
            "nDCG@10 among " + ", ".join(fusion["eval_ndcg@10_by_weight"]) + ".",
            "",
        ]
    lines += ["| split | vs | PNR difference [95% CI] | nDCG@10 difference [95% CI] |"]
    lines += ["|---|---|---|---|"]
    for split, rows in comparisons.items():
        for other, by in rows.items():
            cells = []
            for m in SHOWN_MEASURES:
                d = by[m]
                verdict = (
                    "ahead" if d["wins"] else "behind" if d["ci95"][1] < 0 else "not separable"
                )
                cells.append(
                    f"{d['delta']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] {verdict}"
                )
            lines.append(
                f"| {split} | {MODEL_LABELS.get(other, other)} | " + " | ".join(cells) + " |"
            )
    return lines


def _steps(curves: Mapping[str, Sequence[Sequence[float]]]) -> list[tuple[float, None]]:
    return [(s, None) for s in sorted({float(s) for pts in curves.values() for s, _ in pts})]


def gains(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """``rekindled - <other>`` per split and shown measure, for teacher and plain baselines."""
    out: dict[str, Any] = {}
    if "rekindled" not in results:
        return out
    others = [m for m in ("teacher", "plain", "plain (long)") if m in results]
    for split, values in results["rekindled"].items():
        out[split] = {
            k: {o: values[k] - results[o][split][k] for o in others}
            for k in SHOWN_MEASURES
            if k in values
        }
    return out


def write_report(out: str | os.PathLike[str], report: dict[str, Any]) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``results.png`` and ``pretraining.png`` (if curves)."""
    out = Path(out)
    report = {**report, "gains": gains(report["results"])}
    written = []
    plot_results(report["results"], out / "results.png")
    written.append(out / "results.png")
    if report.get("pretraining"):
        plot_pretraining(
            report["pretraining"], out / "pretraining.png", references=report.get("references")
        )
        written.append(out / "pretraining.png")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report))
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return [out / "report.json", out / "report.md", *written]
