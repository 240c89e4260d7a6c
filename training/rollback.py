"""Point an index back at its previous build (kept by every build and CUR fit), then reload the service.

python -m training.rollback --name scifact && python -m service.admin reload
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simsearch.cli import fail, settings_with
from simsearch.index import IndexLoadError
from simsearch.index.publish import BuildLockedError, rollback


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-rollback", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.name, index_dir=args.index_dir)
    try:
        build = rollback(settings.index_dir, settings.collection)
    except (IndexLoadError, BuildLockedError) as exc:
        fail(str(exc))
    print(f"{settings.index_path} -> {build.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
