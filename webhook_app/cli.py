"""Console entry point `gong-webhook-app`: the webhook ingest service (not yet implemented)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gong-webhook-app", description="Runs the webhook ingest service.")
    parser.parse_args(argv)
    print("gong-webhook-app: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
