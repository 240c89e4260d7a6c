"""Export a bi-encoder or cross-encoder to ONNX (fp32 and int8) into ``<model>/onnx/``.

    python -m training.export_onnx --model models/bench/stsb-en/cross-cosent --kind cross

The service does this itself on first start with ``SIMSEARCH_BACKEND=onnx`` or ``onnx-int8`` when the
model folder is writable; run this where it is not (a read-only volume in a container).
"""

from __future__ import annotations

import argparse
import sys

from simsearch.cli import fail, settings_with
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.loading import ModelLoadError, load_sentence_transformer
from simsearch.models.onnx import ExportError, export


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-export-onnx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", help="model folder (default: SIMSEARCH_BI_MODEL, or SIMSEARCH_CROSS_MODEL with --kind cross)"
    )
    p.add_argument("--kind", choices=["bi", "cross"], default="bi")
    args = p.parse_args(argv)
    settings = settings_with()
    path = args.model or (settings.bi_model if args.kind == "bi" else settings.cross_model)
    if not path:
        fail("give --model (no SIMSEARCH_CROSS_MODEL is set)")
    try:
        model = load_sentence_transformer(path) if args.kind == "bi" else CrossScorer.load(path).model
        files = export(model, path, args.kind)
    except (ModelLoadError, ExportError) as exc:
        fail(str(exc))
    for backend, file in files.items():
        print(f"{backend}: {file} ({file.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
