"""One base error for the project, one subclass per area, so callers can catch exactly what they handle."""

from __future__ import annotations


class FundflowError(Exception):
    """Base of every error fundflow raises on purpose."""


# How long a command waits for a server before it says the server is not answering: long enough for a busy
# server on a slow network, short enough that a wrong address is reported while the operator still waits.
CONNECT_TIMEOUT_S = 5


def not_answering(what: str, address: str, detail: object) -> str:
    """The one wording of a server that cannot be reached, so every command names it the same way:
    'the broker at kafka://h:9092 is not answering (...)'."""
    return f"the {what} at {address} is not answering ({detail})"


class EventError(FundflowError):
    """An input event was refused.

    `reason` is a short, stable code (e.g. ``bad_amount``) used for dead-letter metrics and filters;
    the message tells the producer what was expected and what arrived.
    """

    def __init__(self, reason: str, message: str, *, event_id: str | None = None) -> None:
        self.reason = reason
        self.event_id = event_id
        where = f" (event_id {event_id!r})" if event_id else ""
        super().__init__(f"{reason}: {message}{where}")
        self.detail = message


class SettingsError(FundflowError):
    """The settings file or environment is invalid; raised at start, before anything runs."""


class RuleError(FundflowError):
    """A rule file is invalid. Carries the file, line and rule id so an analyst can go straight to it."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 rule_id: str | None = None) -> None:
        self.file = file
        self.line = line
        self.rule_id = rule_id
        self.message = message
        super().__init__(self.located())

    def located(self) -> str:
        where = self.file or "<rules>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        rule = f" rule {self.rule_id!r}:" if self.rule_id else ""
        return f"{where}:{rule} {self.message}"


class RuleSetError(FundflowError):
    """Several rule errors found in one load; all are reported, not just the first."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.located() for e in errors))


class SinkError(FundflowError):
    """A sink could not deliver; `retryable` says whether trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(message)
