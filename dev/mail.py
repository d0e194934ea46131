"""Read what the local mail catcher received (the stack's `mail` process keeps a Maildir)."""

import mailbox
import re
import time
from pathlib import Path


def verification_code(maildir: Path, to: str, newer_than: float = 0.0, timeout: float = 10) -> str:
    """The six-digit code of the newest mail to `to` received after `newer_than` (epoch s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if maildir.exists():
            box = mailbox.Maildir(maildir, create=False)
            mails = [m for m in box if m["To"] == to and m.get_date() >= newer_than]
            if mails:
                newest = max(mails, key=lambda m: m.get_date())
                body = newest.get_payload(decode=True).decode()
                return re.search(r"\b(\d{6})\b", body).group(1)
        time.sleep(0.1)
    raise TimeoutError(f"no verification mail to {to} within {timeout} s")
