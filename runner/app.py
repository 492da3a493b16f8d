"""The Celery app of a running system, for Celery's own command line and for Flower:

    RUNNER_REPO=DIR celery -A runner.app inspect ping
    celery -A runner.app events
    celery -A runner.app flower

`app` is built when it is first asked for (never on import), the way runner's commands build
theirs: the repository is RUNNER_REPO (default: the current directory), the broker Redis when
REDIS_URL is set, else the embedded one under REPO/.runner/broker. Each access builds a new
app. A repository it cannot read is one line on stderr and exit status 2 (SystemExit: Celery
would print a traceback for any other exception).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from runner.celery.app import create_app
    from runner.errors import ConfigInvalid, RunnerError
    from runner.settings import Settings
    from runner.system import System

    repo = Path(os.environ.get("RUNNER_REPO") or ".").resolve()
    try:
        return create_app(System(Settings.from_env(), repo, repo / ".runner"))
    except RunnerError as e:
        why = (f"{repo}: its configuration has {len(e.problems)} error(s); runner validate "
               f"--repo {repo} lists them" if isinstance(e, ConfigInvalid) else
               f"{e}; set RUNNER_REPO to the configuration repository (default: the current "
               "directory)")
        print(f"error: runner.app: {why}", file=sys.stderr)
        raise SystemExit(2) from None
