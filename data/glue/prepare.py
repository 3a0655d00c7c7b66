"""Make the shipped GLUE files and report the splits every task gets.

    python data/glue/prepare.py                      # sources under ../shared/data
    python data/glue/prepare.py --shared PATH --out data/glue

1. ``STS-B/``: ``train.tsv``, ``dev.tsv``, ``LICENSE.txt``, ``readme.txt`` copied byte for
   byte from ``<shared>/glue/STS-B`` (the canonical GLUE files; see README.md).
2. ``sentences.parquet``: unlabeled rekindle-NLU pairs, 4,000 pairs of sentences of the
   same Cranfield document (``<shared>/cranfield/docs.jsonl``), as
   ``rerank pairs --mode sentences --max-pairs 4000 --seed 0`` makes them.
3. Prints, for every task found under ``<shared>/glue``, the split sizes the readers
   produce and how missing splits were made (MRPC dev, QNLI train).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
STSB_FILES = ("train.tsv", "dev.tsv", "LICENSE.txt", "readme.txt")
MAX_PAIRS = 4000


def main() -> None:
    from rerank.data import read_documents, write_table
    from rerank.glue.readers import read_splits
    from rerank.glue.sentences import sentence_pairs
    from rerank.glue.tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    (args.out / "STS-B").mkdir(parents=True, exist_ok=True)
    for name in STSB_FILES:
        shutil.copyfile(args.shared / "glue" / "STS-B" / name, args.out / "STS-B" / name)
    docs = read_documents(args.shared / "cranfield" / "docs.jsonl")
    pairs = sentence_pairs(docs, random_pairs=1, max_pairs=MAX_PAIRS, seed=0)
    write_table(pairs, args.out / "sentences.parquet")
    print(f"sentences.parquet: {pairs.height:,} pairs from {docs.height:,} Cranfield documents")

    for name, task in TASKS.items():
        if not any((args.shared / "glue" / d).is_dir() for d in task.dirs):
            print(f"{name}: not found")
            continue
        splits = read_splits(task, args.shared / "glue")
        test = "" if splits.test is None else f" / test {splits.test.height:,}"
        print(f"{name}: train {splits.train.height:,} / dev {splits.dev.height:,}{test}")
        for note in splits.notes:
            if not note.startswith("read "):
                print(f"  {note}")


if __name__ == "__main__":
    main()
