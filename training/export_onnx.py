"""Export a bi-encoder or cross-encoder to ONNX (fp32 and int8) into ``<model>/onnx/``.

    python -m training.export_onnx --model models/bench/stsb-en/cross-cosent --kind cross

The install step (``make install``, the image build) runs it for the default model. The service exports
any other model itself when it first loads it (at start, or when a collection naming it is created) if the
folder is writable; run this where it is not (a read-only volume in a container).
"""

from __future__ import annotations

import argparse
import sys

from simsearch.cli import fail, settings_with
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.loading import ModelLoadError, check_export, load_sentence_transformer
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
        # the fp32 export checked against torch now and recorded beside it, so that no start has to
        check = check_export(model, args.kind, files["onnx"], None)
    except (ModelLoadError, ExportError, OSError) as exc:
        fail(str(exc))
    for backend, file in files.items():
        print(f"{backend}: {file} ({file.stat().st_size / 1e6:.1f} MB)")
    verdict = "agrees with torch" if check["ok"] else "DIFFERS from torch: the service keeps this model on torch"
    print(f"check: {verdict} (largest difference {check['max_difference']:.2g}, tolerance {check['tolerance']:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
