"""operator: placeholder until the operator benchmark lands (issue 6, operator section).

Plug-in contract (same for every module in bench.run.MODULES): ``NAME``; ``KEYS`` (the keys it
owns under ``latest.json[NAME]``); ``available(ctx) -> str | None`` (a reason when it cannot run
here: the keys are then written as null and the reason printed in the table, never a guessed
number); ``run(ctx) -> dict`` (merged into ``latest.json[NAME]``); optional ``charts(result, outdir, prefix)``
returning the PNG paths it saved.
"""

from __future__ import annotations

from typing import Any

NAME = "operator"
KEYS = ["apply_p50_ms", "converge_300_s", "idle_resync_writes", "rss_mib"]


def available(ctx: Any) -> str | None:
    return "operator benchmark not implemented yet (needs the local control plane, scripts/devcluster)"


def run(ctx: Any) -> dict[str, Any]:
    raise NotImplementedError
