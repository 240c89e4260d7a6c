"""Container health check: exit 0 when ``/ready`` answers 200, else 1 (used by Docker and compose).

    python -m service.healthcheck [--url URL]

Standard library only, so it stays fast and does not load torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("SIMSEARCH_PORT", "8000")
    p = argparse.ArgumentParser(prog="simsearch-healthcheck", description=__doc__)
    p.add_argument("--url", default=f"http://127.0.0.1:{port}/ready")
    p.add_argument("--timeout", type=float, default=4.0)
    args = p.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
