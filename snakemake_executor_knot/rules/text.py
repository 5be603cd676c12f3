"""The Snakefiles' original text, and the ``run:`` block found in it.

Snakemake compiles a Snakefile to Python before running it, so a ``run:`` block is a function
whose line numbers are those of the compiled text (``inspect.getsource`` finds nothing useful).
This module reads the Snakefiles as written, maps compiled lines back through
``workflow.linemaps``, finds where a statement ends with Python's tokenizer, and re-indents
blocks of original lines.
"""

from __future__ import annotations

import dis
import inspect
import io
import re
import tokenize
import types
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake.sourcecache import infer_source_file

from ..errors import RuleError

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

_RUN_HEADER = re.compile(r"^\s*run\s*:")


# ---- the Snakefiles' original text


class Snakefiles:
    """A workflow's Snakefiles as written, and the map from compiled to original lines."""

    def __init__(self, workflow: Workflow, rule: str) -> None:
        self.rule = rule
        self._linemaps = workflow.linemaps
        self._sourcecache = workflow.sourcecache
        self._lines: dict[str, list[str]] = {}

    def __contains__(self, filename: object) -> bool:
        return filename in self._linemaps

    def filenames(self) -> list[str]:
        return list(self._linemaps)

    def lines(self, filename: str) -> list[str]:
        if filename not in self._lines:
            self._lines[filename] = self._read(filename)
        return self._lines[filename]

    def _read(self, filename: str) -> list[str]:
        try:
            if Path(filename).is_file():
                text = Path(filename).read_text(encoding="utf-8")
            else:
                with self._sourcecache.open(infer_source_file(filename)) as handle:
                    text = handle.read()
        except OSError as exc:
            raise RuleError(
                f"Rule '{self.rule}': knot cannot read the Snakefile {filename} ({exc})."
            ) from exc
        # Line numbers count "\n" only, as Python's tokenizer does (not str.splitlines).
        pieces = text.split("\n")
        if pieces[-1] == "":
            pieces.pop()
        return [piece + "\n" for piece in pieces]

    def original_line(self, filename: str, compiled: int) -> int | None:
        return self._linemaps.get(filename, {}).get(compiled)

    def first_code_line(self, code: types.CodeType) -> int | None:
        """The first original line of a function's body. Instructions on the ``def`` line
        itself (RESUME, and MAKE_CELL/COPY_FREE_VARS before it when the body has closures)
        are not the body."""
        lines = [
            line
            for _, line in dis.findlinestarts(code)
            if line is not None and line != code.co_firstlineno
        ]
        mapped = [self.original_line(code.co_filename, line) for line in lines]
        return min((line for line in mapped if line is not None), default=None)

    def statement(self, filename: str, start: int) -> str:
        """The statement starting on line ``start`` (with its suite), dedented to column 0."""
        lines = self.lines(filename)
        end, verbatim = statement_extent(lines, start)
        return indent_block(lines, start, end, verbatim, "", floor=_indent(lines[start - 1]))

    def class_source(self, cls: type) -> str | None:
        """A class's statement, decorators included: the last ``class <name>`` line before
        its methods' code (Python 3.11 classes do not record their own line)."""
        pattern = re.compile(rf"\s*class\s+{re.escape(cls.__name__)}\b")
        found = [
            (filename, number)
            for filename in self.filenames()
            for number, line in enumerate(self.lines(filename), 1)
            if pattern.match(line)
        ]
        method = self._first_method_line(cls)
        if method is not None:
            found = [(f, n) for f, n in found if f == method[0] and n <= method[1]]
        if not found:
            return None
        filename, start = found[-1]
        lines = self.lines(filename)
        while start > 1 and lines[start - 2].lstrip().startswith("@"):
            start -= 1
        return self.statement(filename, start)

    def _first_method_line(self, cls: type) -> tuple[str, int] | None:
        found = []
        for attribute in vars(cls).values():
            func = getattr(attribute, "__func__", None) or getattr(attribute, "fget", attribute)
            code = getattr(inspect.unwrap(func), "__code__", None) if callable(func) else None
            if code is not None and code.co_filename in self:
                line = self.original_line(code.co_filename, code.co_firstlineno)
                if line is not None:
                    found.append((code.co_filename, line))
        return min(found, default=None)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# ---- statements, by Python's tokenizer


class _Extent:
    """Follows tokens from a statement's first line to find where it ends."""

    def __init__(self, start: int) -> None:
        self.offset = start - 1
        self.depth = 0
        self.base: int | None = None  # indentation depth of the statement itself
        self.header_end: int | None = None  # the line ending its header (or whole statement)
        self.suite = False
        self.line_start = True
        self.decorator = False
        self.verbatim: set[int] = set()

    def feed(self, token: tokenize.TokenInfo) -> int | None:
        """The statement's last line once it is known, else None."""
        row = token.start[0] + self.offset
        if token.type == tokenize.INDENT:
            self.depth += 1
            self.suite = self.suite or self.header_end is not None
        elif token.type == tokenize.DEDENT:
            self.depth -= 1
            if self.base is not None and self.depth <= self.base:
                return row - 1 if self.suite else self.header_end
        elif token.type == tokenize.ENDMARKER:
            return self.header_end if self.header_end and not self.suite else row - 1
        elif token.type not in (tokenize.NL, tokenize.COMMENT):
            return self._code(token, row)
        return None

    def _code(self, token: tokenize.TokenInfo, row: int) -> int | None:
        if self.base is None:
            self.base = self.depth
        if self.header_end is not None and self.depth == self.base:
            return self.header_end  # a second statement after a one-line one
        if token.type == tokenize.STRING and token.end[0] > token.start[0]:
            self.verbatim.update(range(row + 1, token.end[0] + self.offset + 1))
        if token.type == tokenize.NEWLINE and self.depth == self.base:
            if not self.decorator:
                self.header_end = row
            self.line_start = True
        elif self.line_start:
            self.decorator = token.string == "@"
            self.line_start = False
        return None


def statement_extent(lines: list[str], start: int) -> tuple[int, set[int]]:
    """The last line (1-based, inclusive) of the statement starting on line ``start``,
    suite and trailing comments included, and the lines that continue a multi-line string
    (to be kept byte for byte)."""
    extent = _Extent(start)
    readline = io.StringIO("".join(lines[start - 1 :])).readline
    try:
        for token in tokenize.generate_tokens(readline):
            end = extent.feed(token)
            if end is not None:
                return end, extent.verbatim
    except IndentationError as exc:  # a dedent to a column the snippet never saw: its end
        if extent.suite and exc.lineno:
            return exc.lineno - 1 + extent.offset, extent.verbatim
    except tokenize.TokenError:
        pass
    return len(lines), extent.verbatim


def indent_block(
    lines: list[str], first: int, last: int, verbatim: set[int], indent: str, floor: int = -1
) -> str:
    """Lines ``first``..``last`` re-indented from their own indentation to ``indent``.
    Trailing blank lines, and trailing comments no deeper than ``floor`` (they belong to
    what follows), are dropped; lines inside multi-line strings are kept as they are."""
    while last >= first and _trailing(lines[last - 1], floor):
        last -= 1
    numbers = range(first, last + 1)
    prefix = next(
        (_leading(lines[n - 1]) for n in numbers if n not in verbatim and _is_code(lines[n - 1])),
        "",
    )
    out = []
    for number in numbers:
        line = lines[number - 1].rstrip("\r\n")
        if number in verbatim:
            out.append(line)
        elif not line.strip():
            out.append("")
        elif line.startswith(prefix):
            out.append(indent + line[len(prefix) :])
        else:  # comments and bracketed continuation lines: their indentation is free
            out.append(indent + line.lstrip())
    return "".join(line + "\n" for line in out)


def _trailing(line: str, floor: int) -> bool:
    stripped = line.strip()
    return not stripped or (stripped.startswith("#") and _indent(line) <= floor)


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _leading(line: str) -> str:
    return line[: _indent(line)]


# ---- the run: block


def run_block(files: Snakefiles, code: types.CodeType) -> str:
    """The original text of a ``run:`` block, dedented and indented as ``knot_run``'s body."""
    lines = files.lines(code.co_filename)
    # The function's first line is the compiled `@workflow.rule(...)` line: the rule's own.
    rule_line = files.original_line(code.co_filename, code.co_firstlineno)
    header = _run_header(lines, rule_line, files.first_code_line(code))
    if header is None:
        raise RuleError(
            f"Rule '{files.rule}': knot could not find its run: block in {code.co_filename}. "
            "Add the rule to 'localrules:' for now, and please report this as a knot bug."
        )
    end, verbatim = statement_extent(lines, header)
    header_text = lines[header - 1].rstrip("\r\n")
    inline = header_text.split(":", 1)[1].strip()
    if inline and not inline.startswith("#"):  # `run: f(x)`: the block is the rest of the line
        return "    " + inline + "\n" + indent_block(lines, header + 1, end, verbatim, "    ")
    return indent_block(lines, header + 1, end, verbatim, "    ", floor=_indent(header_text))


def _run_header(lines: list[str], rule_line: int | None, first_code: int | None) -> int | None:
    """The ``run:`` line: the last one before the block's first line of code, or the first
    one after the rule's own line when the block has no code lines (only a docstring)."""
    if first_code is None and rule_line is None:
        return None
    found = None
    for number in range(rule_line or 1, min(first_code or len(lines), len(lines)) + 1):
        if _RUN_HEADER.match(lines[number - 1]):
            found = number
            if first_code is None:
                break
    return found
