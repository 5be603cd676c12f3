"""Secrets never ship: a global that looks like one is refused before it is written into a
rule module, since rule images go to ECR, where tagged images are kept; a param or a config
entry that looks like one is refused before it is written into a job spec or the run's
config object, since every job of the stack can read knot's specs.

A value is taken for a secret when it equals a host environment variable's value, when its
name looks secret and it holds text, or (globals only) when its assignment in the Snakefile
reads the environment. ``--knot-public-globals`` names the globals, params and config keys
that are not secret after all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass

from ..errors import RuleError
from .text import Snakefiles, statement_extent

# Anywhere in a name: these words hardly occur inside others.
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# "key" is a word of its own (api_key, apiKey, SSH-KEY), or one of these compounds: inside
# other words (keyval, keyword, monkey, keys) it names no secret.
KEY_WORDS = frozenset({"key", "apikey", "accesskey", "secretkey", "privatekey", "authkey"})
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
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
    if secret_name(name) and any(True for _ in _strings(value)):
        return "its name says it holds a secret, and it holds text"
    return None


def secret_name(name: str) -> bool:
    """Whether a name says its value is a secret: a secret word in it, or the word key."""
    if SECRET_WORDS.search(name):
        return True
    return any(word.lower() in KEY_WORDS for word in _NAME_WORDS.findall(name))


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


# ---- params and config: they travel in job specs and the run's config object, not images


@dataclass(frozen=True)
class SecretValue:
    """A param or config entry that looks like a secret: where it is (``param 'token'``,
    ``config['aws']['key']``), the name ``--knot-public-globals`` takes to let it through
    (None for a positional param), why, and the environment variable it copies, if any."""

    where: str
    name: str | None
    reason: str
    variable: str | None


def _found(
    where: str, name: str | None, value: object, environ: Mapping[str, str]
) -> SecretValue | None:
    reason = secret_reason(name or "", value, [], environ)
    if reason is None:
        return None
    return SecretValue(where, name, reason, next(_matching_variables(value, environ), None))


def param_secret(params, public: Set[str], environ: Mapping[str, str]) -> SecretValue | None:
    """The first of a job's params (Snakemake's named list) that looks like a secret."""
    names: dict[int, str] = {}
    for name, (start, end) in (getattr(params, "_names", None) or {}).items():
        for index in range(start, start + 1 if end is None else end):
            names[index] = name
    for index, value in enumerate(params):
        name = names.get(index)
        if name in public:
            continue
        found = _found(f"param '{name}'" if name else f"param #{index}", name, value, environ)
        if found:
            return found
    return None


def config_secret(
    config: object, public: Set[str], environ: Mapping[str, str]
) -> SecretValue | None:
    """The first config entry that looks like a secret, named by its key path."""
    return next(_config_secrets(config, "config", "config", public, environ), None)


def _config_secrets(
    value: object, name: str, where: str, public: Set[str], environ: Mapping[str, str]
) -> Iterator[SecretValue]:
    """Findings in ``value`` (reached through the key ``name``, at ``where``), deepest
    first so that the path is as exact as can be; a list's items go by the list's key."""
    if name in public:
        return
    children: list[tuple[object, str, str]] = []
    if isinstance(value, dict):
        children = [(v, str(k), f"{where}[{k!r}]") for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(v, name, f"{where}[{i}]") for i, v in enumerate(value)]
    deeper = False
    for child, child_name, child_where in children:
        for found in _config_secrets(child, child_name, child_where, public, environ):
            deeper = True
            yield found
    if not deeper and where != "config":
        here = _found(where, name, value, environ)
        if here:
            yield here


def param_secret_error(rule: str, found: SecretValue) -> RuleError:
    return RuleError(
        f"Rule '{rule}' has the {found.where}, which looks like a secret: {found.reason}. "
        "knot writes params into the job's spec in S3, which every job of the stack can "
        f"read, so a secret there would leak. {_what_to_do(found, 'param')}"
    )


def config_secret_error(rule: str, found: SecretValue) -> RuleError:
    return RuleError(
        f"The config entry {found.where}, sent to the jobs of rule '{rule}' and every "
        f"other rule, looks like a secret: {found.reason}. knot sends the config to jobs "
        "through S3, where every job of the stack can read it, so a secret there would "
        f"leak. {_what_to_do(found, 'config key')}"
    )


def _what_to_do(found: SecretValue, what: str) -> str:
    variable = found.variable or (found.name or "SECRET").upper()
    envvars = (
        f'Pass it to jobs as an environment variable instead (envvars: "{variable}", then '
        f'os.environ["{variable}"] in the rule)'
    )
    if found.name is None:
        return (
            f"{envvars}, or, if it is not secret, name the {what} and list the name with "
            "--knot-public-globals."
        )
    return f"{envvars}, or, if it is not secret, say so with --knot-public-globals {found.name}."
