"""The two configurations: full (the issue's sizes) and small (CI, under 3 minutes)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    name: str
    fanout_jobs: int
    pipeline_jobs_per_stage: int
    scale_jobs: int  # 0: no scale run
    staging_bytes: int  # total bytes moved, once as one file and once as many
    staging_files: int
    images: bool  # Docker builds (incremental build, image sizes)
    latency: bool  # real containers on the emulator, knot against the aws-batch plugin
    cache_jobs: int = 50  # jobs on one instance reading one input (the input cache)
    cache_bytes: int = 1024 * MIB
    pywren: bool = False  # a job past 300 s and one with an input past 1.5 GB (emulator)
    pywren_long_s: int = 310
    pywren_bytes: int = 1600 * MIB


FULL = Config(
    name="full",
    fanout_jobs=1000,
    pipeline_jobs_per_stage=100,
    scale_jobs=10_000,
    staging_bytes=1024 * MIB,
    staging_files=1000,
    images=True,
    latency=True,
    pywren=True,
)

SMALL = Config(
    name="small",
    fanout_jobs=150,
    pipeline_jobs_per_stage=10,
    scale_jobs=0,
    staging_bytes=16 * MIB,
    staging_files=100,
    images=False,
    latency=False,
    cache_jobs=6,
    cache_bytes=16 * MIB,
)
