"""The run record knot writes after each run, ``.snakemake/knot/run-<run_id>.json``, read back
for the report.

The file is untrusted input (it may be damaged, hand-edited or from another knot version):
every field is type-checked, and a bad record becomes a ConfigError that names the file, the
job and the field. Any job field may be null or absent, because a job that failed early never
reached the later steps.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RUN_DIR = Path(".snakemake", "knot")
MARKETS = ("spot", "on-demand")
UNKNOWN_RULE = "(unknown rule)"
# A run id becomes part of the report's file names, so it may not hold a path separator.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Run ids start with the UTC start time, so their text order is their time order.
_RUN_TIME = re.compile(r"run-(\d{8}T\d{6})")
_MAX_BYTES = 256 * 1024 * 1024
_AGAIN = "Run the workflow again with --executor knot to write a new record."


@dataclass(frozen=True)
class Requested:
    """What the job asked Batch for."""

    vcpus: float | None = None
    memory_mib: float | None = None
    gpus: float | None = None


@dataclass(frozen=True)
class HostTimes:
    """Epoch seconds seen by the host running Snakemake."""

    handed_over: float | None = None
    submitted: float | None = None
    seen_finished: float | None = None  # the status check that saw the job end
    reported: float | None = None


@dataclass(frozen=True)
class BatchTimes:
    """Epoch seconds reported by AWS Batch."""

    created: float | None = None
    started: float | None = None
    stopped: float | None = None


@dataclass(frozen=True)
class Usage:
    """What the container measured; wall, CPU and peak RSS are of the rule's process tree."""

    start: float | None = None
    end: float | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    stage_in_s: float | None = None
    stage_in_bytes: float | None = None
    run_s: float | None = None
    stage_out_s: float | None = None
    stage_out_bytes: float | None = None
    exit_status: int | None = None


@dataclass(frozen=True)
class JobRecord:
    """One Snakemake job as it ran on Batch."""

    jobid: int | None
    rule: str
    batch_id: str | None
    status: str | None
    attempts: int | None
    reason: str | None
    requested: Requested
    instance_type: str | None
    host: HostTimes
    batch: BatchTimes
    usage: Usage
    # The instance type was not reported by AWS but chosen by knot (on the emulator): the
    # cheapest type the compute environment may use that fits the request.
    instance_estimated: bool = False
    # Attempts spot took back, and the seconds they had run.
    reclaims: int | None = None
    reclaimed_s: float | None = None
    wildcards: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None  # Batch's (the container's exit status)


@dataclass(frozen=True)
class Pricing:
    """Where the run ran, which decides the prices: region, spot or on-demand, instance types."""

    region: str | None = None
    market: str = "on-demand"
    emulator: bool = False
    instance_types: tuple[str, ...] = ("optimal",)


@dataclass(frozen=True)
class ImageBuild:
    """One image the run needed: found in ECR (``cached``), or built and pushed (epoch
    seconds of each step, and its size)."""

    rules: tuple[str, ...]
    tag: str
    outcome: str  # "cached" or "built"
    build: tuple[float, float] | None = None
    push: tuple[float, float] | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One knot run: its id, start time, pricing context and jobs (at least one); when the
    Snakemake process started and the run ended, and the host's steps before the first
    submission (name -> (start, end))."""

    run_id: str
    started: float | None
    pricing: Pricing
    jobs: tuple[JobRecord, ...]
    calls: dict[str, int]
    process_started: float | None = None
    ended: float | None = None
    steps: tuple[tuple[str, float, float], ...] = ()
    rule_order: tuple[str, ...] = ()  # the rules in DAG order (a rule after those it reads)
    image_builds: tuple[ImageBuild, ...] = ()
    images: dict[str, int] = field(default_factory=dict)  # built, pushed, skipped
    versions: dict[str, str] = field(default_factory=dict)  # knot, Snakemake, Python, boto3
    command: tuple[str, ...] = ()  # the command line of the run
    # Spot prices read from the account's price history at the end of the run:
    # {"as_of": date, "source": ..., "prices": {instance type: USD per hour}}
    spot_prices: dict = field(default_factory=dict)


def latest_run(directory: Path = RUN_DIR) -> Path:
    """The newest ``run-*.json`` in ``directory``: by the start time in its run id, then by
    modification time (two runs started in the same second)."""
    directory = Path(directory)
    runs = sorted(directory.glob("run-*.json"), key=_age_key) if directory.is_dir() else []
    if not runs:
        raise ConfigError(
            f"no knot runs recorded in {directory}: run a workflow with --executor knot first "
            "(each run writes run-<run_id>.json there)."
        )
    return runs[-1]


def find_run(run: str | None, directory: Path = RUN_DIR) -> Path:
    """The record named by ``run``: a path to a file, a run id in ``directory``, or, when
    ``run`` is None, the latest run."""
    if run is None:
        return latest_run(directory)
    if run.endswith(".json") or Path(run).is_file():
        return Path(run)
    if not _RUN_ID.fullmatch(run):
        raise ConfigError(
            f"{run!r} is neither a run record file nor a run id. Give a run id such as "
            f"20261129T130000-ab12cd34 (see {directory}) or a path to a run-*.json file."
        )
    return Path(directory, f"run-{run}.json")


def load_run(path: Path | str) -> RunRecord:
    """Read and check the run record at ``path``."""
    path = Path(path)
    return parse_run(_read_json(path), str(path))


def parse_run(data: object, source: str = "run record") -> RunRecord:
    """Check the decoded JSON of a run record and turn it into a RunRecord."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a run record is a JSON object, not {_kind(data)}. {_AGAIN}")
    jobs = data.get("jobs")
    if not jobs:
        raise ConfigError(
            f"{source} has no job records: it was written by a knot version that did not "
            f"record jobs, or the run submitted no job. {_AGAIN}"
        )
    if not isinstance(jobs, list):
        raise ConfigError(f"{source}: 'jobs' must be a list, not {_kind(jobs)}. {_AGAIN}")
    return RunRecord(
        run_id=_run_id(data, source),
        started=_number(data, "started", source),
        pricing=_pricing(_section(data, "pricing", source), f"{source}: pricing"),
        jobs=tuple(_job(job, f"{source}: job #{i}") for i, job in enumerate(jobs)),
        calls=_calls(data.get("calls"), source),
        process_started=_number(data, "process_started", source),
        ended=_number(data, "ended", source),
        steps=_steps(data.get("steps"), source),
        rule_order=_strings(data, "rule_order", source),
        image_builds=_image_builds(data.get("image_builds"), source),
        images=_calls(data.get("images"), source, "images"),
        versions=_labels(data.get("versions"), source, "versions"),
        command=_strings(data, "command", source),
        spot_prices=_spot_prices(data.get("spot_prices"), source),
    )


def _read_json(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"no knot run record at {path}: run a workflow with --executor knot first, or "
            f"name one of the run-*.json files in {path.parent}."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the run record {path}: {exc}") from exc
    if len(raw) > _MAX_BYTES:
        raise ConfigError(f"{path} is larger than {_MAX_BYTES >> 20} MiB: not a knot run record.")
    try:
        return json.loads(raw)
    # ValueError covers bad JSON, bad UTF-8 and over-long integers; RecursionError, deep nesting.
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): not a knot run record.") from exc


def _age_key(path: Path) -> tuple[str, float]:
    found = _RUN_TIME.match(path.name)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return (found.group(1) if found else "", mtime)


def _run_id(data: dict, source: str) -> str:
    run_id = data.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"{source}: 'run_id' must be a string of letters, digits, '.', '_' and '-' "
            f"(at most 128), not {run_id!r:.80}. {_AGAIN}"
        )
    return run_id


def _job(job: object, where: str) -> JobRecord:
    if not isinstance(job, dict):
        raise ConfigError(f"{where} must be a JSON object, not {_kind(job)}. {_AGAIN}")
    rule = _text(job, "rule", where) or UNKNOWN_RULE
    where = f"{where} (rule {rule!r:.80})"
    return JobRecord(
        jobid=_integer(job, "jobid", where),
        rule=rule,
        batch_id=_text(job, "batch_id", where),
        status=_text(job, "status", where),
        attempts=_integer(job, "attempts", where),
        reason=_text(job, "reason", where),
        requested=Requested(**_numbers(job, "requested", Requested, where)),
        instance_type=_text(job, "instance_type", where),
        host=HostTimes(**_numbers(job, "host", HostTimes, where)),
        batch=BatchTimes(**_numbers(job, "batch", BatchTimes, where)),
        usage=_usage(_section(job, "usage", where), f"{where}: usage"),
        instance_estimated=_text(job, "instance_type_source", where) == "estimate",
        reclaims=_integer(_section(job, "reclaims", where), "count", f"{where}: reclaims"),
        reclaimed_s=_number(_section(job, "reclaims", where), "seconds", f"{where}: reclaims"),
        wildcards=_labels(job.get("wildcards"), where, "wildcards"),
        exit_code=_integer(job, "exit_code", where),
    )


def _usage(usage: dict, where: str) -> Usage:
    names = [name for name in Usage.__dataclass_fields__ if name != "exit_status"]
    fields = {name: _number(usage, name, where) for name in names}
    return Usage(**fields, exit_status=_integer(usage, "exit_status", where))


def _numbers(
    parent: dict, key: str, cls: type[DataclassInstance], where: str
) -> dict[str, float | None]:
    """The fields of ``cls`` read as numbers from the object ``parent[key]``."""
    obj = _section(parent, key, where)
    return {name: _number(obj, name, f"{where}: {key}") for name in cls.__dataclass_fields__}


def _pricing(obj: dict, where: str) -> Pricing:
    market = _text(obj, "market", where) or "on-demand"
    market = market.lower().replace("_", "-").replace("ondemand", "on-demand")
    if market not in MARKETS:
        raise ConfigError(f"{where}: 'market' must be one of {MARKETS}, not {market!r:.40}.")
    emulator = obj.get("emulator", False)
    if not isinstance(emulator, bool | None):
        raise ConfigError(f"{where}: 'emulator' must be true or false, not {_kind(emulator)}.")
    return Pricing(
        region=_text(obj, "region", where),
        market=market,
        emulator=bool(emulator),
        instance_types=_strings(obj, "instance_types", where) or ("optimal",),
    )


def _calls(calls: object, source: str, key: str = "calls") -> dict[str, int]:
    if calls is None:
        return {}
    if not isinstance(calls, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in calls.values()
    ):
        raise ConfigError(f"{source}: '{key}' must map names to counts. {_AGAIN}")
    return dict(calls)


def _labels(value: object, source: str, key: str) -> dict[str, str]:
    """An object of strings (wildcards, versions)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{source}: '{key}' must map names to strings. {_AGAIN}")
    return {str(k): v for k, v in value.items()}


def _image_builds(value: object, source: str) -> tuple[ImageBuild, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{source}: 'image_builds' must be a list. {_AGAIN}")
    return tuple(
        _image_build(entry, f"{source}: image_builds #{i}") for i, entry in enumerate(value)
    )


def _image_build(entry: object, where: str) -> ImageBuild:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object, not {_kind(entry)}. {_AGAIN}")
    outcome = _text(entry, "outcome", where)
    if outcome not in ("cached", "built"):
        raise ConfigError(f"{where}: 'outcome' must be 'cached' or 'built'. {_AGAIN}")
    return ImageBuild(
        rules=_strings(entry, "rules", where),
        tag=_text(entry, "tag", where) or "",
        outcome=outcome,
        build=_span(entry, "build", where),
        push=_span(entry, "push", where),
        size_bytes=_integer(entry, "size_bytes", where),
    )


def _span(obj: dict, key: str, where: str) -> tuple[float, float] | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2 and all(_finite(n) for n in value):
        return float(value[0]), float(value[1])
    raise ConfigError(f"{where}: '{key}' must be [start, end]. {_AGAIN}")


def _spot_prices(value: object, source: str) -> dict:
    """{"as_of", "source", "prices": {type: USD per hour}}; prices finite and positive."""
    if value is None:
        return {}
    where = f"{source}: spot_prices"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object. {_AGAIN}")
    prices = _section(value, "prices", where)
    if not all(_finite(p) and p > 0 for p in prices.values()):
        raise ConfigError(f"{where}: 'prices' must map instance types to USD per hour. {_AGAIN}")
    return {
        "as_of": _text(value, "as_of", where),
        "source": _text(value, "source", where),
        "prices": {str(k): float(v) for k, v in prices.items()},
    }


def _steps(steps: object, source: str) -> tuple[tuple[str, float, float], ...]:
    """name -> [start, end] pairs of finite numbers; anything else is refused."""
    if steps is None:
        return ()
    if not isinstance(steps, dict) or not all(
        isinstance(v, list) and len(v) == 2 and all(_finite(n) for n in v) for v in steps.values()
    ):
        raise ConfigError(f"{source}: 'steps' must map step names to [start, end]. {_AGAIN}")
    return tuple((str(name), float(a), float(b)) for name, (a, b) in steps.items())


def _finite(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _section(obj: dict, key: str, where: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be an object, not {_kind(value)}. {_AGAIN}")
    return value


def _number(obj: dict, key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ConfigError(
        f"{where}: '{key}' must be a finite number, not {_kind(value)} {value!r:.40}. {_AGAIN}"
    )


def _integer(obj: dict, key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: '{key}' must be an integer, not {_kind(value)}. {_AGAIN}")


def _text(obj: dict, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{where}: '{key}' must be a string, not {_kind(value)}. {_AGAIN}")


def _strings(obj: dict, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: '{key}' must be a list of strings. {_AGAIN}")


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
