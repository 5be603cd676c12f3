"""The ``knot`` command's settings: the plugin's own (``ExecutorSettings``), read from the
same places a Snakemake run reads them, in the same order: a flag of this command, then
``SNAKEMAKE_KNOT_<NAME>``, then the key ``knot-<name>`` of the workflow profile, then of
the Snakemake profiles (``--snakemake-profile`` or ``SNAKEMAKE_PROFILE``), then the default.

The command spells each flag without the ``knot-`` prefix (``--stack-name``), and every
flag is accepted before or after the subcommand. ``Origins`` remembers where each value
came from, so that an error can name the flag, variable or profile key that set it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from platformdirs import AppDirs

from ..errors import ConfigError, SettingError
from .settings import ExecutorSettings, KnotConfig, check_stack_name, parse_settings

# Flags every subcommand takes: which account, region and stack to talk to.
GLOBAL = ("region", "profile", "endpoint_url", "emulator", "stack_name")
# Flags that shape the stack: 'knot infra up' makes it so, 'knot infra status' compares.
SIZING = (
    "instance_types", "min_vcpus", "max_vcpus", "on_demand", "spot_bid_percentage",
    "spot_retries", "ami", "root_volume_gb", "buckets", "tags", "files_expiry_days",
    "compute_classes", "cfn_role", "subnets", "security_groups",
)  # fmt: skip

FIELDS = {f.name: f for f in dataclasses.fields(ExecutorSettings)}
# Snakemake's file names in a profile folder: profile.yaml or config.yaml, optionally for
# a lowest Snakemake major version (config.v9+.yaml); the highest version that fits wins.
_PROFILE_FILE = re.compile(r"(?:profile|config)(?:\.v(\d+)\+)?\.yaml")
SNAKEMAKE_MAJOR = 9


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def variable(name: str) -> str:
    return f"SNAKEMAKE_KNOT_{name.upper()}"


def profile_key(name: str) -> str:
    return "knot-" + name.replace("_", "-")


def _kind(name: str) -> type:
    """The Python type of a setting: bool, int, float or str."""
    declared = FIELDS[name].type
    return declared if declared in (bool, int, float) else str


def help_text(name: str) -> str:
    """The plugin's help for a setting; its default is already part of it."""
    return FIELDS[name].metadata["help"]


def add_setting_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add ``--<name>`` for each setting. Nothing is stored unless the flag is given
    (default SUPPRESS), so a flag after the subcommand does not overwrite one before it
    with a default, and ``resolve`` can tell a given flag from an absent one."""
    for name in names:
        kind = _kind(name)
        if kind is bool:
            parser.add_argument(
                flag(name), action="store_true", default=argparse.SUPPRESS, help=help_text(name)
            )
        else:
            parser.add_argument(
                flag(name), type=kind, default=argparse.SUPPRESS, metavar="VALUE",
                help=help_text(name),
            )  # fmt: skip


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snakemake-profile",
        action="append",
        default=argparse.SUPPRESS,
        metavar="PROFILE",
        help="Snakemake profile whose knot-* keys to read, as for 'snakemake --profile': a "
        "name looked up in ., the user's and the site's Snakemake config folders, or a "
        "path; repeatable, later ones win. Default: SNAKEMAKE_PROFILE, else none.",
    )
    parser.add_argument(
        "--workflow-profile",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="workflow profile, read after the Snakemake profiles. Default: profiles/default "
        "in this folder if it exists; 'none' reads none.",
    )


@dataclass(frozen=True)
class Origins:
    """Where each setting's value came from: 'flag', 'env', a profile file, or absent
    (the default)."""

    found: Mapping[str, str]
    environ: Mapping[str, str]

    def of(self, name: str) -> str | None:
        """The place that set ``name``, in words, or None for the default."""
        source = self.found.get(name)
        if source == "flag":
            return flag(name)
        if source == "env":
            return variable(name)
        if source:
            return f"{profile_key(name)} in {source}"
        return None

    def spellings(self, name: str) -> str:
        return f"{flag(name)}, {variable(name)} or the profile key {profile_key(name)}"

    def explain(self, name: str, value: object) -> str:
        """One sentence: where ``value`` of ``name`` came from, and how to set it."""
        if name == "region" and self.of(name) is None:
            source = self._aws_region_source()
        elif name == "profile" and self.of(name) is None:
            source = "AWS_PROFILE" if self.environ.get("AWS_PROFILE") else None
        else:
            source = self.of(name)
        label = name.replace("_", " ")
        shown = f"{label} '{value}'" if value else f"no {label}"
        origin = f"from {source}" if source else "the default"
        return f"{shown} ({origin}); set it with {self.spellings(name)}."

    def _aws_region_source(self) -> str | None:
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.environ.get(name):
                return name
        return None


def find_profile(profile: str, cwd: Path, where: str) -> Path:
    """The config file of a Snakemake profile given by name or path, found as Snakemake
    finds it: a file; a folder holding profile.yaml or config.yaml; or a name looked up
    in the working folder, the user's and the site's Snakemake config folders."""
    given = Path(profile).expanduser()
    if given.is_absolute() or given.exists():
        candidates = [given if given.is_absolute() else cwd / given]
    else:
        candidates = [folder / profile for folder in _profile_folders(cwd)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
        found = _config_file(candidate) if candidate.is_dir() else None
        if found is not None:
            return found
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"Snakemake profile '{profile}' ({where}) not found: looked for profile.yaml or "
        f"config.yaml in {searched}."
    )


def _profile_folders(cwd: Path) -> list[Path]:
    dirs = AppDirs("snakemake", "snakemake")  # Snakemake's own folders
    return [cwd, Path(dirs.user_config_dir), Path(dirs.site_config_dir)]


def _config_file(folder: Path) -> Path | None:
    versions = {}
    for path in folder.iterdir():
        match = _PROFILE_FILE.fullmatch(path.name)
        if match and int(match.group(1) or 0) <= SNAKEMAKE_MAJOR:
            versions[path] = int(match.group(1) or 0)
    return max(versions, key=lambda path: versions[path]) if versions else None


def profile_files(args: argparse.Namespace, environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """The profiles to read, weakest first: the Snakemake profiles, then the workflow's."""
    named = getattr(args, "snakemake_profile", None)
    if named:
        files = [find_profile(p, cwd, "--snakemake-profile") for p in named]
    elif environ.get("SNAKEMAKE_PROFILE"):
        files = [find_profile(environ["SNAKEMAKE_PROFILE"], cwd, "SNAKEMAKE_PROFILE")]
    else:
        files = []
    workflow = getattr(args, "workflow_profile", None)
    if workflow and workflow != "none":
        files.append(find_profile(workflow, cwd, "--workflow-profile"))
    elif workflow is None and (cwd / "profiles" / "default").is_dir():
        found = _config_file(cwd / "profiles" / "default")
        files += [found] if found else []
    return files


def profile_values(path: Path) -> dict[str, Any]:
    """The knot-* keys of one profile file, by setting name (hyphens or underscores)."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read Snakemake profile {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        return {}
    values = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_").removeprefix("knot_")
        if str(key).replace("-", "_").startswith("knot_") and name in FIELDS and value is not None:
            # Snakemake expands ~ and $VARS in a profile's string values; so does knot.
            values[name] = (
                os.path.expanduser(os.path.expandvars(value)) if isinstance(value, str) else value
            )
    return values


def convert(name: str, value: Any, where: str) -> Any:
    """A raw value (a variable's text, a profile's YAML value) as the setting's type."""
    kind = _kind(name)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{where}: '{value}' is not true or false.")
    if kind is str:
        return str(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: '{value}' is not a number.") from None


def resolve(
    args: argparse.Namespace, environ: Mapping[str, str], cwd: Path
) -> tuple[ExecutorSettings, Origins]:
    """Every setting from flag, variable, workflow profile, Snakemake profiles, default."""
    values: dict[str, Any] = {}
    found: dict[str, str] = {}
    for path in profile_files(args, environ, cwd):
        for name, value in profile_values(path).items():
            values[name] = convert(name, value, f"{profile_key(name)} in {path}")
            found[name] = str(path)
    for name in FIELDS:
        if variable(name) in environ:
            values[name] = convert(name, environ[variable(name)], variable(name))
            found[name] = "env"
        if hasattr(args, name):
            values[name] = getattr(args, name)
            found[name] = "flag"
    return ExecutorSettings(**values), Origins(found, environ)


def config_from(settings: ExecutorSettings, origins: Origins, legacy: bool) -> KnotConfig:
    """The checked KnotConfig; ``legacy`` lets an upper-case stack name through (to see or
    remove a stack an older knot made)."""
    name = settings.stack_name
    checked = dataclasses.replace(settings, stack_name="knot")
    config = parse_settings(checked)
    where = origins.of("stack_name")
    return dataclasses.replace(
        config,
        stack_name=check_stack_name(
            name,
            flag="--stack-name",
            variable=where if where and where != "--stack-name" else None,
            legacy=legacy,
        ),
    )


_KNOT_FLAG = re.compile(r"--knot-([a-z][a-z0-9-]*)")


def in_cli_terms(message: str, origins: Origins) -> str:
    """A message of the plugin in the command's terms: ``--knot-max-vcpus`` becomes
    ``--max-vcpus``, and a value that came from a variable or profile says so once."""
    named: list[str] = []

    def spell(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        if name not in FIELDS:
            return match.group(0)
        if name not in named:
            named.append(name)
        return flag(name)

    text = _KNOT_FLAG.sub(spell, message)
    notes = [
        f"{flag(name)} came from {origins.of(name)}"
        for name in named
        if origins.of(name) not in (None, flag(name))
    ]
    return f"{text} ({'; '.join(notes)})" if notes else text


def explain_error(exc: SettingError, origins: Origins, config: KnotConfig | None) -> str:
    """A SettingError's message, then where each setting it involves came from."""
    values = dataclasses.asdict(config) if config else {}
    region = values.get("region") or _first(origins.environ, "AWS_REGION", "AWS_DEFAULT_REGION")
    values["region"] = region
    values["profile"] = values.get("profile") or origins.environ.get("AWS_PROFILE")
    notes = " ".join(origins.explain(name, values.get(name)) for name in exc.settings)
    return f"{in_cli_terms(str(exc), origins)} {notes}".strip()


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)
