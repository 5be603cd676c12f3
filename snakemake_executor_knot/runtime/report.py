"""What the runtime tells the user: progress lines and failures, on stderr (CloudWatch Logs)."""

from __future__ import annotations

import os
import sys
import traceback


class JobFailure(Exception):
    """A failure of the job itself (not of user code): bad spec, transfer, missing output."""


class Reporter:
    """Writes one-line progress and failure reports, prefixed by the rule and jobid."""

    def __init__(self, rule: str = "?", jobid: object = "?") -> None:
        self.rule = rule
        self.jobid = jobid

    @property
    def prefix(self) -> str:
        return f"knot: rule {self.rule}, jobid {self.jobid}"

    def progress(self, message: str) -> None:
        print(f"{self.prefix}: {message}", file=sys.stderr, flush=True)

    def failure(self, message: str) -> None:
        print(f"{self.prefix}: FAILED: {message}", file=sys.stderr, flush=True)

    def user_error(self, exc: BaseException, log_path: str | None) -> str:
        """Report an exception raised by the rule's code; returns the text written.

        The summary line comes first so that a log tail shows what failed; the traceback
        follows. The same text is appended to the rule's first log file, if any.
        """
        summary = f"{self.prefix}: FAILED: {type(exc).__name__}: {exc}"
        text = summary + "\n" + user_traceback(exc)
        print(text, file=sys.stderr, end="", flush=True)
        if log_path:
            append_text(log_path, text)
        return text


def user_traceback(exc: BaseException) -> str:
    """The traceback without the runtime's own leading frames, so it starts in user code."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(package):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def append_text(path: str, text: str) -> None:
    """Append ``text`` to ``path``; a log we cannot write must not hide the real error."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"knot: could not append the error to log {path}: {exc}", file=sys.stderr)
