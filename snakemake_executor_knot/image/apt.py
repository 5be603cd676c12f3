"""System packages for a rule without a container: ``resources: knot_apt="jq bc"``.

The packages are Debian's, installed with apt-get into the rule's image on knot's base
(Debian bookworm), in a layer of their own right after the user setup: rules with the same
package list share it, and a change of the rule's code or Python requirements keeps it
cached. ``name=version`` pins a package as apt-get does. A rule with a ``container:`` gets
an error instead: its image is the user's, and may not even have apt.
"""

from __future__ import annotations

import re

from ..errors import RuleError

# Debian policy 5.6.1 (names) and 5.6.12 (versions), loosely: no shell metacharacters.
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?$")


def parse_apt(value: object, rule: str) -> tuple[str, ...]:
    """The packages of a ``knot_apt`` value (names separated by spaces or commas), sorted
    and deduplicated so equal lists give one layer."""
    if not isinstance(value, str):
        raise RuleError(
            f"Rule '{rule}': resources: knot_apt must be a string of Debian package names, "
            f'like knot_apt="dcm2niix mrtrix3"; got {value!r}.'
        )
    names = sorted(set(value.replace(",", " ").split()))
    bad = [name for name in names if not _PACKAGE.match(name)]
    if bad:
        raise RuleError(
            f"Rule '{rule}': '{bad[0]}' in resources: knot_apt is not a Debian package name "
            "(lower case letters, digits and + . -, optionally =<version>). Write the "
            'names separated by spaces, like knot_apt="dcm2niix mrtrix3".'
        )
    return tuple(names)


def check_no_container(packages: tuple[str, ...], container: str | None, rule: str) -> None:
    if packages and container:
        raise RuleError(
            f"Rule '{rule}' has both resources: knot_apt and a container ({container}). "
            "knot installs apt packages only into its own base image. Install them in "
            "your container image instead, or drop the container."
        )


def apt_block(packages: tuple[str, ...]) -> str:
    """The Dockerfile step installing ``packages``; empty without any. The lists are
    removed in the same step, so the layer holds only the packages."""
    if not packages:
        return ""
    names = " ".join(packages)
    return f"""RUN apt-get update && \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {names} && \\
    rm -rf /var/lib/apt/lists/*"""


# ---- knot lock: the exact closure


_INSTALL = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ")


def simulate_command(packages: tuple[str, ...]) -> str:
    """The shell command, run as root in the base image, whose output lists every package
    that installing ``packages`` would install, with its exact version."""
    names = " ".join(packages)
    return f"apt-get update -qq >/dev/null && apt-get install -s --no-install-recommends {names}"


def parse_simulation(text: str, rule: str) -> tuple[str, ...]:
    """``name=version`` for each package apt-get's simulation would install, sorted."""
    pins = sorted(
        {f"{m.group(1)}={m.group(2)}" for m in map(_INSTALL.match, text.splitlines()) if m}
    )
    if not pins:
        raise RuleError(
            f"Rule '{rule}': apt-get found nothing to install for knot_apt; are the "
            "packages already part of the base image? Drop them from knot_apt."
        )
    return tuple(pins)
