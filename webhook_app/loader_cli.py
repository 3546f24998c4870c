"""Console entry point `gong-webhook-loader`: the Snowflake loader (not yet implemented)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gong-webhook-loader", description="Runs the Snowflake loader.")
    parser.parse_args(argv)
    print("gong-webhook-loader: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
