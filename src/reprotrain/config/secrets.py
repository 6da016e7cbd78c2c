"""Secrets kept out of messages, logs and MLflow: the password of a URL."""

from __future__ import annotations


def redact(url: str) -> str:
    """The URL with its password shown as `***` (`scheme://user:***@host/...`)."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme_user = head.rsplit(":", 1)[0]
    return f"{scheme_user}:***@{tail}"
