"""Secrets never ship in code: a global that looks like one is refused before it is written
into a rule module, since rule images go to ECR, where tagged images are kept.

A global is taken for a secret when its value equals a host environment variable's, when
its assignment in the Snakefile reads the environment, or when its name looks secret and
it holds text. ``--knot-public-globals`` names the globals that are not secret after all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from .text import Snakefiles, statement_extent

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
_READS_ENVIRONMENT = re.compile(r"\b(environ|getenv|environb)\b")
# Variables whose values are everywhere and secret nowhere; matching them proves nothing.
_PUBLIC_VARIABLES = frozenset(
    {"HOME", "PATH", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME", "HOSTNAME", "TERM", "LANG"}
    | {"TMPDIR", "SHLVL", "_", "LANGUAGE", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX"}
)
_SHORTEST_SECRET = 8  # shorter values ("1", "true", "C.UTF-8") match too much to mean anything


def secret_reason(
    name: str, value: object, assignments: list[str], environ: Mapping[str, str]
) -> str | None:
    """Why the global ``name`` holding ``value`` looks like a secret, or None."""
    for variable in _matching_variables(value, environ):
        return f"its value equals the environment variable {variable}"
    if any(_READS_ENVIRONMENT.search(text) for text in assignments):
        return "it is read from the environment (os.environ or os.getenv)"
    if SECRET_NAME.search(name) and any(True for _ in _strings(value)):
        return "its name says it holds a secret, and it holds text"
    return None


def _matching_variables(value: object, environ: Mapping[str, str]) -> Iterator[str]:
    values = {text for text in _strings(value) if len(text) >= _SHORTEST_SECRET}
    for variable, text in environ.items():
        if text in values and variable not in _PUBLIC_VARIABLES and not variable.startswith("LC_"):
            yield variable


def _strings(value: object) -> Iterator[str]:
    """Every str (and decoded bytes) inside a constant, its dict keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)


def assignments(files: Snakefiles, name: str) -> list[str]:
    """The text of every statement in the Snakefiles that assigns ``name`` at the start of
    a line (``NAME = ...``, ``NAME: type = ...``, ``NAME += ...``)."""
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*(:[^=]*)?[-+*/|&]?=(?!=)")
    found = []
    for filename in files.filenames():
        lines = files.lines(filename)
        for number, line in enumerate(lines, start=1):
            if pattern.match(line):
                end, _ = statement_extent(lines, number)
                found.append("".join(lines[number - 1 : end]))
    return found
