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

# Reads the line count, then that many lines, and evals them; then the size of the step's own
# stdin, which it copies to a private temp file (fd 3; /dev/null if empty). A watcher blocks
# reading stdin, which the client never ends: end of file means the connection dropped or the
# session closed, and it kills the session's process group (sshd makes one per session; the
# shell leads it), the step's command with it. Without a pty sshd would leave it running.
# The watcher is stopped when the shell exits, so what a step leaves behind lives on.
_READ_ENV = ('IFS= read -r _rn || exit 125; _re=; while [ "$_rn" -gt 0 ] && '
             'IFS= read -r _rl; do _re="$_re$_rl\n"; _rn=$((_rn - 1)); done; '
             'eval "$_re"; unset _rn _re _rl; IFS= read -r _rs || exit 125; '
             'if [ "$_rs" -gt 0 ]; then _rt=$(mktemp) && head -c "$_rs" >"$_rt" && '
             'exec 3<"$_rt" && rm -f "$_rt" || exit 125; else exec 3</dev/null; fi; '
             'exec 4<&0; (while IFS= read -r _rl; do :; done; kill -KILL 0) <&4 >/dev/null '
             '2>&1 & _rw=$!; trap \'kill $_rw 2>/dev/null\' EXIT; unset _rs _rt; ')


def env_stdin(env: Mapping[str, str], stdin: bytes | None = None) -> bytes:
    """What the command's stdin starts with (the env for _READ_ENV), then its own stdin,
    preceded by its size. The client sends no end of file after it (see _READ_ENV)."""
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    head = f"{text.count(chr(10))}\n{text}{len(stdin or b'')}\n".encode(
        "utf-8", "surrogateescape")
    return head + (stdin or b"")


def sh_command(command: str, shell: str | None) -> str:
    """`command` for the remote login shell, with the env and stdin read first."""
    body = command if shell in (None, "sh") else f"{shell} -c {shlex.quote(command)}"
    return f"{_READ_ENV}{{ {body}\n}} <&3 3<&- 4<&-"


def sh_script(args: Sequence[str], shell: str | None) -> str:
    """Reads the env, then the script, from stdin into a private temp file, runs it with
    `args`, removes it."""
    run = '"$t"' if shell is None else f'{shell} "$t"'
    quoted = " ".join(shlex.quote(a) for a in args)
    return sh_command(f't=$(mktemp) && cat >"$t" && chmod 700 "$t" && '
                      f'{{ {run} {quoted}; rc=$?; rm -f "$t"; exit $rc; }}', None)
