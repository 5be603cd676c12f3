"""Benchmark files like Snakemake's, from what the standard library can measure."""

from __future__ import annotations

import datetime
import os
import resource
import time
from dataclasses import dataclass

HEADER = (
    "s",
    "h:m:s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
)
_MIB = 1024 * 1024
_BLOCK = 512  # getrusage counts block I/O in 512-byte units on Linux


@dataclass(frozen=True)
class Usage:
    """A snapshot of time and of resource use by this process plus its waited-for children."""

    wall: float
    cpu: float
    max_rss_kib: int
    blocks_in: int
    blocks_out: int

    @classmethod
    def now(cls) -> Usage:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            wall=time.monotonic(),
            cpu=own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
            # ru_maxrss is in KiB on Linux; for children it is the largest child's peak.
            max_rss_kib=max(own_peak_kib(own.ru_maxrss), kids.ru_maxrss),
            blocks_in=own.ru_inblock + kids.ru_inblock,
            blocks_out=own.ru_oublock + kids.ru_oublock,
        )


def own_peak_kib(fallback: int) -> int:
    """This process's peak RSS in KiB (VmHWM). Linux keeps RUSAGE_SELF's ru_maxrss across
    execve, so it would also count the (maybe much larger) process this one was forked from."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return fallback


def hms(seconds: float) -> str:
    """``h:mm:ss`` without fractions, as Snakemake writes the second column."""
    return str(datetime.timedelta(seconds=int(seconds)))


def record(start: Usage, end: Usage) -> list[object]:
    """One benchmark row. USS, PSS and VMS need /proc walks of every process (psutil), and
    Snakemake's mean_load comes from sampled CPU percentages, so those are NA here."""
    seconds = end.wall - start.wall
    return [
        round(seconds, 4),
        hms(seconds),
        end.max_rss_kib / 1024,
        "NA",
        "NA",
        "NA",
        (end.blocks_in - start.blocks_in) * _BLOCK / _MIB,
        (end.blocks_out - start.blocks_out) * _BLOCK / _MIB,
        "NA",
        end.cpu - start.cpu,
    ]


def to_tsv(*rows: list[object]) -> str:
    """Header and a row per run; floats with two decimals, as Snakemake writes them."""
    lines = ["\t".join(HEADER)]
    for row in rows:
        lines.append("\t".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    return "\n".join(lines) + "\n"


def write(path: str, start: Usage, end: Usage) -> None:
    write_rows(path, [record(start, end)])


def write_rows(path: str, rows: list[list[object]]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(to_tsv(*rows))
