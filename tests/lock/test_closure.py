"""The requirement closure from installed metadata, the target's marker environment, and
PyPI's file hashes (stubbed unless KNOT_TEST_NETWORK=1)."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import urllib.error
from types import SimpleNamespace

import pytest

from snakemake_executor_knot.errors import ConfigError, RuleError
from snakemake_executor_knot.lock.closure import closure, index_hashes, target_environment
from snakemake_executor_knot.lock.format import Pinned

from .helpers import SHA_A, SHA_B, SHA_C

# ---------------------------------------------------------------- closure


def fake_metadata(packages: dict[str, tuple[str, list[str]]]):
    """A ``distribution`` lookup over {name: (version, requires)}."""

    def distribution(name: str):
        key = name.lower().replace("_", "-")
        if key not in packages:
            raise metadata.PackageNotFoundError(name)
        version, requires = packages[key]
        return SimpleNamespace(version=version, requires=requires)

    return distribution


FAKE = fake_metadata(
    {
        "app": (
            "1.0",
            [
                "lib>=1",
                'winonly; sys_platform == "win32"',
                'armonly; platform_machine == "aarch64"',
                'ancient; python_version < "3.8"',
                'tester; extra == "test"',
            ],
        ),
        "lib": ("2.5", ['fast[speed]; python_version >= "3.10"']),
        "fast": ("0.3", ['accel; extra == "speed"', 'docs-tool; extra == "docs"']),
        "accel": ("4.0", None),
        "armonly": ("1.1", []),
        "tester": ("7.0", ["app"]),  # a cycle back to app
    }
)


def names(pins: list[Pinned]) -> list[str]:
    return [pin.name for pin in pins]


def test_closure_of_scipy_includes_numpy_at_installed_versions():
    scipy, numpy = metadata.version("scipy"), metadata.version("numpy")
    pins = closure([f"scipy=={scipy}"], python="3.11", platform="linux/amd64", rule="fit")
    assert pins == [Pinned("numpy", numpy), Pinned("scipy", scipy)]


def test_closure_honours_target_markers_and_extras():
    amd = closure(["app==1.0"], python="3.11", platform="linux/amd64", rule="r", distribution=FAKE)
    assert amd == [
        Pinned("accel", "4.0"),
        Pinned("app", "1.0"),
        Pinned("fast", "0.3"),
        Pinned("lib", "2.5"),
    ]
    arm = closure(["app==1.0"], python="3.11", platform="linux/arm64", rule="r", distribution=FAKE)
    assert names(arm) == ["accel", "app", "armonly", "fast", "lib"]


def test_closure_follows_requested_extras_and_python_version():
    pins = closure(["app[test]"], python="3.9", platform="linux/amd64", rule="r", distribution=FAKE)
    # python 3.9: lib's fast[speed] dependency is not needed; [test] brings tester.
    assert names(pins) == ["app", "lib", "tester"]


def test_closure_is_independent_of_input_order():
    kwargs = dict(python="3.11", platform="linux/arm64", rule="r", distribution=FAKE)
    assert closure(["lib", "app"], **kwargs) == closure(["app", "lib"], **kwargs)


def test_closure_skips_top_level_requirement_whose_marker_is_false():
    pins = closure(
        ['winonly; sys_platform == "win32"', "lib"],
        python="3.11",
        platform="linux/amd64",
        rule="r",
        distribution=FAKE,
    )
    assert names(pins) == ["accel", "fast", "lib"]


def test_missing_dependency_names_rule_chain_and_fix():
    lookup = fake_metadata({"scipy": ("1.14.1", ["numpy>=1.23"])})
    with pytest.raises(RuleError) as info:
        closure(
            ["scipy==1.14.1"],
            python="3.11",
            platform="linux/amd64",
            rule="fit",
            distribution=lookup,
        )
    message = str(info.value)
    assert "Rule 'fit'" in message
    assert "scipy -> numpy" in message
    assert "pip install 'numpy>=1.23'" in message


def test_missing_target_only_dependency_suggests_install_without_marker():
    lookup = fake_metadata({"app": ("1.0", ['armonly>=1; platform_machine == "aarch64"'])})
    with pytest.raises(RuleError, match=r"app -> armonly.*pip install 'armonly>=1'\)"):
        closure(["app"], python="3.11", platform="linux/arm64", rule="fit", distribution=lookup)


def test_specifier_violation_names_rule_chain_and_installed_version():
    lookup = fake_metadata(
        {"top": ("1.0", ["mid"]), "mid": ("2.0", ["base>=2,<3"]), "base": ("1.4", [])}
    )
    with pytest.raises(RuleError) as info:
        closure(["top"], python="3.11", platform="linux/amd64", rule="fit", distribution=lookup)
    message = str(info.value)
    assert "Rule 'fit'" in message
    assert "top -> mid -> base" in message
    assert "1.4 is installed" in message


def test_top_level_specifier_violation_is_an_error():
    with pytest.raises(RuleError, match="Rule 'fit' needs lib==9.0 \\(a top-level requirement\\)"):
        closure(["lib==9.0"], python="3.11", platform="linux/amd64", rule="fit", distribution=FAKE)


def test_target_environment_for_arm64_and_unknown_platform():
    env = target_environment("3.12.1", "linux/arm64")
    assert (env["platform_machine"], env["python_version"], env["python_full_version"]) == (
        "aarch64",
        "3.12",
        "3.12.1",
    )
    assert env["sys_platform"] == "linux"
    with pytest.raises(ConfigError, match="windows/amd64"):
        target_environment("3.11", "windows/amd64")
    with pytest.raises(ConfigError, match="3.x"):
        target_environment("3.x", "linux/amd64")


# ---------------------------------------------------------------- index hashes


def pypi_document(*digests: str) -> bytes:
    return json.dumps({"urls": [{"digests": {"sha256": d, "md5": "x"}} for d in digests]}).encode()


def test_index_hashes_reads_every_file_of_the_release():
    seen = []

    def fetch(url):
        seen.append(url)
        return pypi_document("b" * 64, "a" * 64, "not-a-digest")

    assert index_hashes("numpy", "2.1.3", fetch=fetch, environ={}) == [SHA_A, SHA_B]
    assert seen == ["https://pypi.org/pypi/numpy/2.1.3/json"]


def test_index_hashes_accepts_pypi_index_url_and_refuses_others():
    def fetch(url):
        return pypi_document("a" * 64)

    pypi = {"PIP_INDEX_URL": "https://pypi.org/simple/"}
    assert index_hashes("numpy", "2.1.3", fetch=fetch, environ=pypi) == [SHA_A]

    def refuse(url):
        raise AssertionError("another index: PyPI must not be asked")

    for environ in (
        {"PIP_INDEX_URL": "https://mirror.example.org/simple"},
        {"PIP_EXTRA_INDEX_URL": "https://download.pytorch.org/whl/cpu"},
    ):
        assert index_hashes("numpy", "2.1.3", fetch=refuse, environ=environ) == []


def test_index_hashes_falls_back_to_project_document_on_404():
    def fetch(url):
        if url.endswith("/2.1.3/json"):
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        releases = {"2.1.3": [{"digests": {"sha256": "c" * 64}}], "2.0": []}
        return json.dumps({"releases": releases}).encode()

    assert index_hashes("numpy", "2.1.3", fetch=fetch, environ={}) == [SHA_C]


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("no route"),
        TimeoutError("timed out"),
        urllib.error.HTTPError("u", 503, "busy", {}, None),
    ],
)
def test_index_hashes_is_empty_on_network_error(error):
    def fetch(url):
        raise error

    assert index_hashes("numpy", "2.1.3", fetch=fetch, environ={}) == []


def test_index_hashes_is_empty_on_garbage():
    assert index_hashes("x", "1", fetch=lambda url: b"<html>", environ={}) == []
    assert index_hashes("x", "1", fetch=lambda url: b'{"urls": 3}', environ={}) == []


@pytest.mark.skipif(
    os.environ.get("KNOT_TEST_NETWORK") != "1", reason="asks PyPI; set KNOT_TEST_NETWORK=1"
)
def test_index_hashes_from_real_pypi():
    hashes = index_hashes("sortedcontainers", "2.4.0", environ={})
    # The wheel and the sdist of sortedcontainers 2.4.0.
    assert hashes == [
        "sha256:25caa5a06cc30b6b83d11423433f65d1f9d76c4c6a0c90e3379eaa43b9bfdb88",
        "sha256:a163dcaede0f1c021485e957a39245190e74249897e2ae4b2aa38595db237ee0",
    ]
