"""Operator commands against a running server (standard library only, like the health check).

    python -m service.admin reload [--url http://127.0.0.1:8000]

``reload`` asks the server to swap to the newest build of its index (``POST /admin/reload``) with the
key in ``SIMSEARCH_ADMIN_KEY``; it prints the answer and exits 0 on success, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m service.admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", choices=["reload"])
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('SIMSEARCH_PORT', '8000')}")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    key = os.environ.get("SIMSEARCH_ADMIN_KEY", "")
    if not key:
        print("error: set SIMSEARCH_ADMIN_KEY (the server's admin key)", file=sys.stderr)
        return 1
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/admin/reload", method="POST", data=b"", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            print(json.dumps(json.load(response)))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"error: HTTP {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
