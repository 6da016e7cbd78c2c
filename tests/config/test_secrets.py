"""URLs without their passwords."""

from __future__ import annotations

from reprotrain.config.secrets import redact


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://user:secret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert redact("postgresql://user@host/db") == "postgresql://user@host/db"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
