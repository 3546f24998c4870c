"""The fakesnow HTTP server with its shared database kept in files, so it can be stopped and started
again without losing what was committed (the `fakesnow -s` CLI keeps everything in memory; its
`-d` option applies only to patched in-process connections).

Run as a script: ``python fakesnow_on_disk.py PORT DB_DIR``. It serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import sys

import fakesnow.server
import uvicorn
from fakesnow.instance import FakeSnow


def main(argv: list[str]) -> int:
    port, db_dir = int(argv[0]), argv[1]
    # login_request() reads this module global for every session that does not ask for its own path.
    fakesnow.server.shared_fs = FakeSnow(db_path=db_dir)
    uvicorn.run(fakesnow.server.app, host="127.0.0.1", port=port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
