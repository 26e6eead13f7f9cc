"""What every command shares: the settings, progress lines with the time since start, errors that
exit with code 2, and options named as the user typed them."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from featureloop.params import Label
    from featureloop.settings import Settings


def load_settings() -> Settings:
    from featureloop.settings import Settings

    return Settings()


class Clock:
    """Prints each progress line with the time since the command started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        typer.echo(f"[{self.elapsed:6.1f}s] {message}", err=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def fail(message: str) -> typer.Exit:
    """Print the error; the caller raises what this returns (exit code 2)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def quoted(text: str) -> str:
    """A value as typed, quoted as a shell would need it (control characters escaped)."""
    return shlex.quote(text) if text.isprintable() else repr(text)


def labeller(options: dict[str, str], typed: dict[str, str | None]) -> Label:
    """How a command's messages name a parameter: its option with the value as typed, or with the
    value it took by default (and saying so); a parameter without an option by its own name."""
    from featureloop.params import parameter_label

    def label(name: str, value: object) -> str:
        option, text = options.get(name), typed.get(name)
        if option is None:
            return parameter_label(name, value)
        if text is not None:
            return f"{option} {quoted(text)}"
        shown = value.isoformat() if isinstance(value, datetime) else value
        return f"{option} {shown} (the default)"

    return label


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time given to `option` (UTC unless it says otherwise), or a named error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise fail(
            f"{option} {quoted(value)} is not a time: use ISO 8601, e.g. 2013-05-01 or 2013-05-01T06:30+00:00"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
