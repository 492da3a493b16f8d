"""Sending one message to one channel: a webhook POST (JSON), a Slack incoming webhook
({"text": ...}) or email by SMTP. Errors name the channel and the server (host:port), never
the URL's path or credentials (they are the secret)."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.config.model import Channel
from runner.errors import NotifyError
from runner.notify.events import text


def send(channel: Channel, url: str, m: dict[str, Any], timeout: float) -> None:
    """Delivers `m` on `channel`, whose resolved URL is `url`; NotifyError says why not."""
    parts = urlsplit(url)
    try:
        where = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        where = "?"
    if channel.kind == "email":
        return _mail(channel, parts, where, m, timeout)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError(f"channel {channel.name}: its {channel.kind} URL is not an http(s) "
                          "URL; set the secret it references to https://...")
    body = m if channel.kind == "webhook" else {"text": _slack(text(m))}
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "runner"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(65536)
    except urllib.error.HTTPError as e:
        raise NotifyError(f"channel {channel.name}: {where} answered HTTP {e.code}") from None
    except (OSError, ValueError) as e:  # refused, timeout, DNS, TLS
        why = getattr(e, "reason", None) or e
        raise NotifyError(f"channel {channel.name}: cannot reach {where} ({why})") from None


def _slack(plain: str) -> str:
    """Plain text as Slack's mrkdwn shows it as written: an error a remote host wrote
    (`<!channel>`, `<https://x|click>`) neither notifies everyone nor becomes a link."""
    return plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mail(channel: Channel, parts: Any, where: str, m: dict[str, Any], timeout: float) -> None:
    if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
        raise NotifyError(f"channel {channel.name}: its SMTP URL is not smtp://user:pass@host"
                          ":port (smtp+starttls:// or smtps:// for TLS)")
    mail = EmailMessage()
    mail["Subject"] = (f"runner: {m['job']} {m['event']} (run {m['run_id']})" if "job" in m
                       else text(m).partition("\n")[0])  # approval, refused: the first line
    mail["From"], mail["To"] = channel.sender, ", ".join(channel.to)
    mail.set_content(text(m))
    try:
        if parts.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, parts.port or 465,
                                                  timeout=timeout)
        else:
            smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=timeout)
        with smtp:
            if parts.scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(mail)
    except smtplib.SMTPException as e:
        code = getattr(e, "smtp_code", None)
        raise NotifyError(f"channel {channel.name}: the SMTP server {where} refused the "
                          f"message{f' ({code})' if code else ''}") from None
    except OSError as e:
        raise NotifyError(f"channel {channel.name}: cannot reach the SMTP server {where} "
                          f"({e.strerror or type(e).__name__})") from None
