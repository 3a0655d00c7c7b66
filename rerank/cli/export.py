"""``rerank export``: a saved model as ONNX or OpenVINO graphs (fp32, int8)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export a saved model to ONNX or OpenVINO (fp32, int8) for fast CPU scoring",
        description=(
            "Copy a saved model directory and add ONNX (onnx/model.onnx) or OpenVINO "
            "(openvino/openvino_model.xml) graphs, in the layout sentence-transformers' "
            "CrossEncoder(dir, backend=...) loads. --quantize int8 adds an int8 graph: "
            "ONNX Runtime dynamic quantisation, or OpenVINO static quantisation (NNCF) "
            "calibrated on --calibration pairs; its PNR and nDCG@10 against fp32 on those "
            "pairs are printed. Score the export with `rerank score --backend`."
        ),
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="saved model directory")
    parser.add_argument(
        "--format", dest="fmt", required=True, choices=("onnx", "openvino"), help="graph format"
    )
    parser.add_argument(
        "--quantize", choices=("int8",), default=None, help="also write an int8 graph"
    )
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="pairs table (.parquet, .tsv, .jsonl; a label column for PNR/nDCG@10): OpenVINO "
        "int8 calibrates on them (required there); int8 is compared with fp32 on them",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens a pair when calibrating and comparing (default: as trained, else 256)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the exported copy")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import logging

    from rerank.export import export_model

    logging.basicConfig(level=logging.WARNING, format="rerank export: %(message)s")
    export_model(
        args.model,
        args.out,
        fmt=args.fmt,
        quantize=args.quantize,
        calibration=args.calibration,
        max_length=args.max_length,
        echo=lambda line: print(line, file=sys.stderr),
    )
    return 0
