"""SMTP email with the standard library's smtplib, run in a worker thread.

STARTTLS (default) or implicit TLS with certificate verification, or plain SMTP for a
relay on the local network (``tls: none``). A 4xx reply or a dropped connection is
retried; a 5xx reply (bad recipient, relay denied) or an authentication failure is not.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Any

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.notifiers.base import NotifyError
from matrixwatch.alerts.notifiers.render import plain, render
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert


def build(alert: Alert, channel: Channel, registry: Registry | None) -> EmailMessage:
    assert channel.email is not None
    r = render(alert, registry)
    msg = EmailMessage()
    msg["Subject"] = r.title
    msg["From"] = channel.email.sender
    msg["To"] = ", ".join(channel.email.to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=alert.id, domain="matrixwatch.local")
    msg["X-Matrixwatch-Alert-Id"] = alert.id
    msg.set_content(plain(r), charset="utf-8")
    rows = "".join(f"<tr><th align='left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
                   for k, v in r.fields)
    samples = "".join(
        f"<li><a href='{escape(u)}'>{escape(t or u)}</a></li>" if u else f"<li>{escape(t)}</li>"
        for t, u in r.samples)
    link = f"<p><a href='{escape(r.link)}'>查看原微博</a></p>" if r.link else ""
    msg.add_alternative(
        f"<html><body><h3>{escape(r.title)}</h3><table>{rows}</table>"
        f"<p>{escape(r.message)}</p>{'<ol>' + samples + '</ol>' if samples else ''}{link}"
        f"</body></html>", subtype="html", charset="utf-8")
    return msg


def _send_sync(msg: EmailMessage, channel: Channel) -> None:
    cfg = channel.email
    assert cfg is not None
    ctx = ssl.create_default_context(cafile=channel.verify
                                     if isinstance(channel.verify, str) else None)
    if channel.verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    timeout = channel.retry.timeout
    smtp: Any
    if cfg.tls == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=ctx)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
    try:
        smtp.ehlo()
        if cfg.tls == "starttls":
            smtp.starttls(context=ctx)
            smtp.ehlo()
        if cfg.username and cfg.password is not None:
            smtp.login(cfg.username, cfg.password.get())
        smtp.send_message(msg, from_addr=cfg.sender, to_addrs=list(cfg.to))
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _classify(e: BaseException) -> NotifyError:
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return NotifyError(f"smtp_auth_{e.smtp_code}", False)
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = sorted({c for c, _ in e.recipients.values()})
        return NotifyError("smtp_recipients_refused", all(400 <= c < 500 for c in codes),
                           f"codes {codes}")
    if isinstance(e, smtplib.SMTPResponseException):
        return NotifyError(f"smtp_{e.smtp_code}", 400 <= e.smtp_code < 500,
                           e.smtp_error.decode("utf-8", "replace")
                           if isinstance(e.smtp_error, bytes) else str(e.smtp_error))
    if isinstance(e, smtplib.SMTPServerDisconnected | OSError):
        return NotifyError("smtp_connection", True, type(e).__name__)
    return NotifyError("smtp_error", False, type(e).__name__)


async def send(alert: Alert, channel: Channel, registry: Registry | None,
               client: Any, now: float) -> None:
    msg = build(alert, channel, registry)
    try:
        await asyncio.to_thread(_send_sync, msg, channel)
    except (smtplib.SMTPException, OSError) as e:
        raise _classify(e) from None
