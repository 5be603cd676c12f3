"""knot.lock: closure walk, PyPI hashes, the lock file, drift, requirements text, platform."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import tempfile
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakemake_executor_knot.errors import ConfigError, DockerError, RuleError
from snakemake_executor_knot.lock.format import (
    HEADER,
    BaseImage,
    Lock,
    Pinned,
    RuleLock,
    base_image_digest,
    check_lock,
    closure,
    index_hashes,
    platform_for,
    read_lock,
    requirements_lines,
    target_environment,
    write_lock,
)

SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
SHA_C = "sha256:" + "c" * 64


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


# ---------------------------------------------------------------- lock file


def sample_lock() -> Lock:
    return Lock(
        knot="0.1.0",
        platform="linux/amd64",
        python="3.11",
        base_image=BaseImage("python:3.11-slim", SHA_C),
        rules={
            "plot": RuleLock((Pinned("matplotlib", "3.9.2", (SHA_A,)),), "s2"),
            "fit": RuleLock(
                (Pinned("scipy", "1.14.1", (SHA_B, SHA_A)), Pinned("numpy", "2.0", (SHA_C,))),
                "s1",
            ),
        },
    )


def test_write_then_read_gives_the_same_lock(tmp_path):
    path = tmp_path / "knot.lock"
    write_lock(path, sample_lock())
    assert read_lock(path) == sample_lock()


def test_written_file_is_stable_and_readable(tmp_path):
    path = tmp_path / "knot.lock"
    write_lock(path, sample_lock())
    text = path.read_text()
    assert text.startswith(HEADER)
    assert text.splitlines()[1:6] == [
        "version: 1",
        "knot: 0.1.0",
        "platform: linux/amd64",
        "python: '3.11'",
        "base_image:",
    ]
    # Rules sorted by name, requirements by canonical name; "2.0" stays a string.
    assert text.index("fit:") < text.index("plot:")
    assert text.index("name: numpy") < text.index("name: scipy")
    assert "version: '2.0'" in text
    write_lock(tmp_path / "again.lock", sample_lock())
    assert (tmp_path / "again.lock").read_text() == text


yaml_tricky = st.sampled_from(["yes", "null", "3.10", "2.0", "- x", "a: b", "#c", "", "~"])
texts = st.one_of(yaml_tricky, st.text(st.characters(exclude_categories=("Cs",)), max_size=12))
digests = st.binary(max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest())
pins = st.builds(Pinned, texts, texts, st.lists(digests, max_size=3).map(tuple))
rule_locks = st.builds(
    RuleLock,
    st.lists(pins, max_size=4, unique_by=lambda pin: pin.name).map(tuple),
    texts,
)
locks = st.builds(
    Lock,
    knot=texts,
    platform=texts,
    python=texts,
    base_image=st.builds(BaseImage, texts, texts),
    rules=st.dictionaries(texts, rule_locks, max_size=3),
)


@settings(deadline=None)  # writes files; a loaded machine is slow, not wrong
@given(locks)
def test_round_trip_property(lock):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "knot.lock")
        write_lock(path, lock)
        assert read_lock(path) == lock


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "knot.lock"
    path.write_text(text)
    return path


def valid_text(tmp_path: Path) -> str:
    write_lock(tmp_path / "valid.lock", sample_lock())
    return (tmp_path / "valid.lock").read_text()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t + "rules: [unclosed\n", "is not valid YAML"),
        (lambda t: "- just\n- a list\n", "where the file should be a mapping"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: 2\n"), "format version 2"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: '1'\n"), "format version '1'"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: true\n"), "format version True"),
        (lambda t: t.replace("knot: 0.1.0\n", ""), "lacks key(s) knot in the file"),
        (lambda t: "version: 2\nsomething: else\n", "format version 2; this knot reads version 1"),
        (lambda t: t.replace("version: 1\n", ""), "format version None"),
        (lambda t: t.replace("version: '2.0'", "version: 2.0"), "float 2.0 where rules.fit"),
        (lambda t: t.replace("source: s1", "source: [s1]"), "rules.fit.source should be a str"),
        (lambda t: t.replace("    hashes:", "    hash:", 1), "lacks key(s) hashes in rules.fit"),
        (lambda t: t.replace("source: s1", "source: s1\n    notes: x"), "unknown key(s) notes"),
        (lambda t: t.replace("a" * 64, "a" * 10, 1), "not sha256:<64 hex digits>"),
        (lambda t: t[: t.index("rules:")] + "rules: 3\n", "int 3 where rules should be"),
        (lambda t: t.replace("  digest: ", "  digest: 5 #"), "int 5 where base_image.digest"),
    ],
)
def test_bad_lock_file_is_a_config_error(tmp_path, edit, expected):
    path = write_text(tmp_path, edit(valid_text(tmp_path)))
    with pytest.raises(ConfigError) as info:
        read_lock(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "Run 'knot lock' again" in str(info.value)


def test_duplicate_distribution_in_a_rule_is_a_config_error(tmp_path):
    text = valid_text(tmp_path).replace("name: scipy", "name: numpy")
    with pytest.raises(ConfigError, match="lists a distribution twice in rules.fit"):
        read_lock(write_text(tmp_path, text))


def test_missing_lock_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_lock(tmp_path / "absent.lock")


# ---------------------------------------------------------------- drift


def test_check_lock_finds_nothing_when_everything_matches():
    now = {"fit": "s1", "plot": "s2"}
    assert check_lock(sample_lock(), knot_version="0.1.0", platform="linux/amd64", rules=now) == []


def test_check_lock_finds_each_kind_of_drift():
    problems = check_lock(
        sample_lock(),
        knot_version="0.2.0",
        platform="linux/arm64",
        rules={"fit": "changed", "new_a": "x", "new_b": "y"},
        python="3.12",
        base_image=BaseImage("python:3.11-slim", SHA_A),
    )
    assert problems == [
        "knot.lock was written for knot 0.1.0, but this run uses knot 0.2.0.",
        "knot.lock was written for platform linux/amd64, but this run uses platform linux/arm64.",
        "knot.lock was written for python 3.11, but this run uses python 3.12.",
        f"knot.lock was written for base image python:3.11-slim ({SHA_C}), but this run "
        f"uses python:3.11-slim ({SHA_A}).",
        "knot.lock lacks rules 'new_a', 'new_b', which the workflow has.",
        "knot.lock has rule 'plot', which the workflow no longer has.",
        "The requirements of rule 'fit' may have changed since knot.lock was written: their "
        "source differs.",
    ]


# ---------------------------------------------------------------- requirements.txt


def test_requirements_lines_with_hashes():
    text, hashed = requirements_lines(
        [Pinned("scipy", "1.14.1", (SHA_B, SHA_A)), Pinned("numpy", "2.1.3", (SHA_C,))]
    )
    assert hashed is True
    assert text == (f"numpy==2.1.3 --hash={SHA_C}\nscipy==1.14.1 --hash={SHA_A} --hash={SHA_B}\n")


def test_requirements_lines_drop_all_hashes_when_one_pin_lacks_them():
    text, hashed = requirements_lines(
        [Pinned("scipy", "1.14.1", (SHA_A,)), Pinned("numpy", "2.1.3")]
    )
    assert (text, hashed) == ("numpy==2.1.3\nscipy==1.14.1\n", False)


def test_requirements_lines_of_nothing():
    assert requirements_lines([]) == ("", False)


# ---------------------------------------------------------------- base image, platform


def fake_docker(attrs: dict):
    images = {"python:3.11-slim": SimpleNamespace(attrs=attrs)}
    return SimpleNamespace(images=SimpleNamespace(get=images.__getitem__))


def test_base_image_digest_prefers_the_repo_digest():
    attrs = {
        "Id": SHA_A,
        "RepoDigests": [f"mirror.example/python@{SHA_B}", f"python@{SHA_C}"],
    }
    assert base_image_digest(fake_docker(attrs), "python:3.11-slim") == SHA_C


def test_base_image_digest_of_an_imported_image_is_its_id():
    assert (
        base_image_digest(fake_docker({"Id": SHA_A, "RepoDigests": []}), "python:3.11-slim")
        == SHA_A
    )
    with pytest.raises(DockerError, match="python:3.11-slim"):
        base_image_digest(fake_docker({}), "python:3.11-slim")


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ((), "linux/amd64"),
        (("optimal",), "linux/amd64"),
        (("default_x86_64",), "linux/amd64"),
        (("c5.large", "m6i", "g4dn.xlarge", "p4d"), "linux/amd64"),
        (("default_arm64",), "linux/arm64"),
        (("a1.medium", "m6g", "c7g.large", "r8g", "t4g.micro"), "linux/arm64"),
        (("x2gd.xlarge", "im4gn.large", "g5g.2xlarge", "c6gn", "M7GD.large"), "linux/arm64"),
    ],
)
def test_platform_for(types, expected):
    assert platform_for(types) == expected


def test_platform_for_a_mix_names_both_sides():
    with pytest.raises(ConfigError) as info:
        platform_for(("m6g.large", "c5.large", "optimal"))
    assert "arm64 (m6g.large)" in str(info.value)
    assert "x86_64 (c5.large, optimal)" in str(info.value)
