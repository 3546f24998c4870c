"""Console entry point `gong-webhook-operator`: the Kopf operator (not yet implemented)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gong-webhook-operator", description="Runs the Kopf operator.")
    parser.parse_args(argv)
    print("gong-webhook-operator: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
