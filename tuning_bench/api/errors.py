"""Errors a user can cause, each carrying one line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user (names, files, options). The CLI prints the message alone and exits 2."""

    exit_code = 2


class PluginError(UsageError):
    """A conflict between plugins that the user has to resolve (e.g. two plugins claim one name)."""


class FetchError(Exception):
    """A model artifact could not be fetched or verified; the message names the fix command."""

    exit_code = 2


def did_you_mean(kind: str, name: str, known: Iterable[str], of: str = "") -> UsageError:
    """Build the error for an unknown name, with close matches as suggestions.

    ``of`` qualifies the name, e.g. kind="option", of=" of method 'lora'".
    """
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UsageError(f"Unknown {kind} '{name}'{of}.{hint} Known {kind}s: {', '.join(known) or '(none)'}.")
