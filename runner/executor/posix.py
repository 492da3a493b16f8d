"""POSIX shell snippets for the ssh transport: how a step's env reaches its command.

No env value is ever on a command line (any user on the target can read every process's
argv in /proc/*/cmdline). The remote command is the same for every job: it first reads
`export NAME='value'` lines from its own stdin with the shell's `read` and `eval` (builtins, so
no process is started that could show them), then runs the step with the rest of stdin. The
bytes go over the session's encrypted channel together with the step's own stdin: no extra
round trip, no file on the target. SSH "env" requests are not used: sshd accepts only the
names its AcceptEnv lists (none by default, LANG and LC_* on most distributions).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

# Reads the line count, then that many lines, and evals them; the step follows.
_READ_ENV = ('IFS= read -r _rn || exit 125; _re=; while [ "$_rn" -gt 0 ] && '
             'IFS= read -r _rl; do _re="$_re$_rl\n"; _rn=$((_rn - 1)); done; '
             'eval "$_re"; unset _rn _re _rl; ')


def env_stdin(env: Mapping[str, str], stdin: bytes | None = None) -> bytes:
    """What the command's stdin starts with (the env for _READ_ENV), then its own stdin."""
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    head = f"{text.count(chr(10))}\n{text}".encode("utf-8", "surrogateescape")
    return head + (stdin or b"")


def sh_command(command: str, shell: str | None) -> str:
    """`command` for the remote login shell, with the env read from stdin first."""
    body = command if shell in (None, "sh") else f"{shell} -c {shlex.quote(command)}"
    return _READ_ENV + body


def sh_script(args: Sequence[str], shell: str | None) -> str:
    """Reads the env, then the script, from stdin into a private temp file, runs it with
    `args`, removes it."""
    run = '"$t"' if shell is None else f'{shell} "$t"'
    quoted = " ".join(shlex.quote(a) for a in args)
    return sh_command(f't=$(mktemp) && cat >"$t" && chmod 700 "$t" && '
                      f'{{ {run} {quoted}; rc=$?; rm -f "$t"; exit $rc; }}', None)
