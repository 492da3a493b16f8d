"""`runner api`: the monitoring and control service (FastAPI on uvicorn).

Reads state (runs, workers, queues, jobs, schedules, revisions, statistics), controls runs
(cancel, retry, trigger a job) and pushes live events over a WebSocket; `/metrics` speaks
Prometheus; `/` serves the dashboard. Definitions stay in git: nothing here edits a job.

Access: a bearer token on every endpoint but /api/health and /metrics. Tokens come from
RUNNER_API_TOKENS (role viewer or operator, values behind env:/file: references) or are JWTs
with a `role` claim verified with RUNNER_API_JWT_KEY (an `exp` within
RUNNER_API_JWT_MAX_LIFETIME; `aud` and `iss` when set). Tokens are compared as SHA-256 digests
in constant time, never logged. With neither set, an operator token is generated once into
STATE_DIR/api-token (mode 0600). Every control action is appended to the run record's
`actions` (who, what, when, via), so it lands in the run's report commit.

Where each part lives: app (assembly, error answers, serve), auth (tokens), context (the
shared state and the auth dependencies), read and control (the viewer's and the operator's
routes), live (WS /api/events), metrics (/metrics), pages (dashboard files, the run pages'
cache), views (answers assembled from the store), models (the OpenAPI schemas), guard (the
Host allow-list and security headers).
"""

from runner.api.app import check_listen, create_api, parse_bind, serve
from runner.api.auth import Auth, Principal, load_auth

__all__ = ["Auth", "Principal", "check_listen", "create_api", "load_auth", "parse_bind", "serve"]
