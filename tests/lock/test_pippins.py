"""The pip: lines of a conda environment pinned for knot.conda.lock (lock/pippins.py): pip's
report read as hostile input, the environment's Python and platform, and a real resolve."""

from __future__ import annotations

import json
import logging
import re

import pytest

from snakemake_executor_knot.image.conda import CondaLayer, CondaPackage
from snakemake_executor_knot.lock import pippins

HASH = "ab" * 32
PYTHON = CondaPackage("https://c.example/linux-64/python-3.11.7-h0_cpython.conda", "0" * 64)
PIP = CondaPackage("https://c.example/noarch/pip-24.0-pyhd8ed1ab_0.conda", "1" * 64)


def _report(*items: dict) -> str:
    return json.dumps({"version": "1", "install": list(items)})


def _item(name="six", version="1.17.0", sha256=HASH) -> dict:
    archive = {"hashes": {"sha256": sha256}} if sha256 else {}
    return {
        "metadata": {"name": name, "version": version},
        "download_info": {"url": f"https://files.example/{name}.whl", "archive_info": archive},
    }


def test_a_report_becomes_sorted_hashed_pins():
    pins = pippins.pins_from_report(_report(_item("six"), _item("Attrs", "23.1.0", "cd" * 32)))
    assert pins == (f"Attrs==23.1.0 --hash=sha256:{'cd' * 32}", f"six==1.17.0 --hash=sha256:{HASH}")


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (_report(_item(sha256=None)), "no archive with a SHA-256"),
        (_report(_item(name="six\n--index-url http://x")), "distribution name"),
        (_report(_item(version="1.0 --hash=sha256:00")), "version"),
        (_report(_item(sha256="not-hex")), "no archive with a SHA-256"),
        (_report(), "names nothing"),
        ('{"install": [{"metadata": 3}]}', "not one this knot reads"),
        ("[]", "not one this knot reads"),
        ("{", "not one this knot reads"),
    ],
)
def test_a_report_that_is_not_what_pip_writes_pins_nothing(report, reason):
    with pytest.raises(pippins.Unpinnable, match=reason):
        pippins.pins_from_report(report)


def test_the_python_and_platform_of_the_environment():
    assert pippins.python_version(CondaLayer("e.yaml", "linux-64", (PIP, PYTHON))) == "3.11"
    assert pippins.python_version(CondaLayer("e.yaml", "linux-64", (PIP,))) is None
    tags = pippins.platform_tags("x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert tags[-1] == "manylinux2014_x86_64" and not any("musl" in t for t in tags)


def test_pins_resolve_for_the_environments_python_from_the_index():
    """A real resolve with this machine's pip and its configured index."""
    layer = CondaLayer("e.yaml", "linux-64", (PYTHON, PIP), ("six", "requests<3"))
    pins = pippins.pinned(layer).pip
    names = {line.split("==")[0].lower() for line in pins}
    assert {"six", "requests", "urllib3", "idna", "certifi"} <= names
    assert all(re.fullmatch(r"[\w.-]+==\S+ --hash=sha256:[0-9a-f]{64}", line) for line in pins)
    assert pippins.pinned(pippins.pinned(layer)) == pippins.pinned(layer)  # pins stay


def test_lines_pip_cannot_pin_stay_as_written_with_one_warning(caplog):
    layer = CondaLayer("envs/e.yaml", "linux-64", (PYTHON, PIP), ("knot-no-such-package-xyz",))
    with caplog.at_level(logging.WARNING, logger="knot"):
        assert pippins.pinned(layer) == layer
    [record] = caplog.records
    assert "'envs/e.yaml' are locked as written, unpinned" in record.message
    assert "knot-no-such-package-xyz" in record.message
    without_python = CondaLayer("envs/e.yaml", "linux-64", (PIP,), ("six",))
    assert pippins.pinned(without_python) == without_python


def test_index_options_stay_in_front_of_the_pins(tmp_path):
    lines = ("--extra-index-url https://x.example/simple", "-i=https://y.example", "six", " ")
    assert pippins.index_options(lines) == lines[:2]
    links = f"--find-links {tmp_path}"  # an empty folder: the configured index still serves
    layer = CondaLayer("e.yaml", "linux-64", (PYTHON, PIP), ("six", links))
    pins = pippins.pinned(layer).pip
    assert pins[0] == links and pins[1].startswith("six==1.") and len(pins) == 2
    assert pippins.pinned(pippins.pinned(layer)) == pippins.pinned(layer)
