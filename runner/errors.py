"""The one exception root of runner and the problem record for configuration errors.

    RunnerError                  everything runner raises on purpose; the CLI turns it into exit 2
    ├── UsageError               a bad option or argument (unknown job, bad --now, ...)
    ├── SourceError              the repository cannot be read (missing dir, bad git revision)
    │   └── StoreUnavailable     the store (Redis, or the state directory) cannot be used now
    ├── ConfigInvalid            the configuration is wrong; carries every Problem; exit 1
    ├── ReportError              the report branch cannot be written, fetched or pushed
    ├── NotifyError              a notification could not be delivered (notify/)
    ├── RunFailed                a run ended FAILURE; raised by the Celery task, for Celery
    ├── SlotTimeout              a run waited longer than RUNNER_LIMIT_WAIT_MAX for a slot
    └── TargetError              one target of a run failed; names the target (executor/)
        ├── Unreachable          no connection (refused, DNS, network, connect timeout)
        ├── AuthFailed           the target refused our credentials
        ├── HostKeyRejected      unknown or changed host key: never connected to
        ├── SecretUnavailable    an env:/file: secret cannot be resolved on this worker
        ├── TransferFailed       an upload or download did not complete
        └── TargetTimeout        the target's time ran out; its command was killed

Adapters translate their library's errors (yaml, git) into these at the boundary,
so no dependency exception reaches the user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One configuration error, located: repo-relative file, 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "message": self.message}


class RunnerError(Exception):
    """Root of every error runner raises on purpose."""

    exit_code = 2


class UsageError(RunnerError):
    """The command was called wrongly."""


class SourceError(RunnerError):
    """The configuration source (directory or git revision) cannot be read."""


class StoreUnavailable(SourceError):
    """The store cannot be used now: Redis is away, or the embedded state directory is full
    or read-only. Long-running processes wait and try again; a command exits 2."""


class ConfigInvalid(RunnerError):
    """The configuration has problems; all of them, sorted."""

    exit_code = 1

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__(f"{len(self.problems)} configuration error(s)")


class ReportError(RunnerError):
    """The report branch cannot be written (git failed) or pushed (the remote refused)."""


class NotifyError(RunnerError):
    """A notification could not be delivered: one sentence naming the channel and why (its
    URL's secrets masked)."""


class SlotTimeout(RunnerError):
    """A run (or one of its targets) waited longer than RUNNER_LIMIT_WAIT_MAX for its
    cluster-wide slots and was not run; the message names what it waited for."""


class RunFailed(RunnerError):
    """A run ended FAILURE; the message is its reason. The Celery task raises it so that
    Celery (task-failed, Flower) sees what the run's record says."""

    exit_code = 1


class TargetError(RunnerError):
    """One target failed; the message is one sentence that names the target and the cause.

    `retryable`: worth another attempt after a backoff. `connect`: a failure to connect,
    counted by the circuit breaker.
    """

    status = "failed"
    retryable = True
    connect = False

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        super().__init__(message)


class Unreachable(TargetError):
    """The target could not be connected to."""

    connect = True


class AuthFailed(TargetError):
    """The target refused the credentials: trying again would not help."""

    retryable = False
    connect = True


class HostKeyRejected(TargetError):
    """The target's host key is not the known one: never retried."""

    retryable = False
    connect = True


class SecretUnavailable(TargetError):
    """A secret the target needs could not be read."""

    retryable = False


class TransferFailed(TargetError):
    """A file could not be uploaded to or downloaded from the target."""

    pass


class TargetTimeout(TargetError):
    """A step ran past its timeout on the target."""

    status = "timeout"


class BrokerError(RunnerError):
    """The broker cannot be used now: Redis is away, or the embedded queue folder cannot be
    read. A command exits 2."""
