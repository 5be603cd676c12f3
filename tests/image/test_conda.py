"""image/conda.py with a real solve and a real install (py-rattler) from a channel made
here (tests/condachannel.py): reading environment files, the explicit list, the installed
layer with its prefix rewritten, and the clear errors before anything is built."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image import conda
from snakemake_executor_knot.image.dockerfile import ImageSpec, build_context, render_dockerfile
from tests.condachannel import IMAGE_PYTHON, PYMOD, make_channel

ENV = "channels:\n  - {channel}\ndependencies:\n  - knot-greet >=2\n"


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> str:
    return make_channel(tmp_path_factory.mktemp("channel"))


def _env(channel: str, text: str = ENV) -> conda.CondaFile:
    return conda.read_conda_file("greet", "envs/greet.yaml", text.format(channel=channel))


def test_reads_channels_dependencies_and_pip():
    text = "channels: [a, nodefaults, b]\ndependencies:\n  - x =1\n  - pip:\n    - requests==2\n"
    env = conda.read_conda_file("r", "e.yaml", text)
    assert env.channels == ("a", "b")
    assert env.specs == ("x =1",)
    assert env.pip == ("requests==2",)
    assert conda.read_conda_file("r", "e.yaml", "dependencies: [x]").channels == ("conda-forge",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("channels: [a\n", "is not valid YAML"),
        ("- just a list\n", "is not a mapping"),
        ("channels: [a]\n", "has no 'dependencies:' list"),
        ("dependencies: []\n", "lists no conda 'dependencies:'"),
        ("dependencies: [{conda: x}]\n", "cannot read"),
    ],
)
def test_a_file_that_does_not_parse_names_rule_and_file(text, says):
    with pytest.raises(RuleError, match=says) as caught:
        conda.read_conda_file("fit", "envs/fit.yaml", text)
    assert "Rule 'fit'" in str(caught.value) and "envs/fit.yaml" in str(caught.value)


def test_solve_gives_every_package_by_url_and_sha256(channel):
    layer = conda.solve(_env(channel), "linux/amd64")
    names = sorted(p.file_name for p in layer.packages)
    assert names == ["knot-greet-2.0-0.tar.bz2", "knot-hello-1.0-0.tar.bz2"]
    explicit = layer.explicit().splitlines()
    assert explicit[:2] == ["@EXPLICIT", "# platform: linux-64"]
    assert all(line.startswith(channel) and "#" in line for line in explicit[2:])
    # The key follows the solve, not the rule: an equal file solves to the same layer.
    env = _env(channel)
    other = conda.CondaFile("other", "x.yaml", env.channels, env.specs, env.pip)
    assert conda.solve(other, "linux/amd64").key == layer.key
    assert layer.prefix == f"/opt/knot/conda/{layer.key}"


@pytest.mark.parametrize(
    "text",
    [
        "channels:\n  - {channel}\ndependencies:\n  - no-such-package\n",
        "channels:\n  - {channel}\ndependencies:\n  - knot-greet >=9\n",
    ],
)
def test_a_solve_that_fails_names_rule_file_and_what_to_do(channel, text):
    with pytest.raises(RuleError, match="cannot solve the conda environment") as caught:
        conda.solve(_env(channel, text), "linux/amd64")
    message = str(caught.value)
    assert "Rule 'greet'" in message and "envs/greet.yaml" in message
    assert "Check the package names" in message


def test_install_rewrites_the_prefix_and_leaves_no_host_paths(channel, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_HOME", str(tmp_path / "home"))
    layer = conda.solve(_env(channel), "linux/amd64")
    tree = conda.installed_tree(layer)
    greet = (tree / "bin" / "knot-greet").read_text()
    assert f"exec {layer.prefix}/bin/knot-hello" in greet
    assert (tree / "etc/conda/activate.d/knot-greet.sh").is_file()
    meta = "".join(p.read_text() for p in (tree / "conda-meta").glob("*.json"))
    assert str(tmp_path) not in meta.replace(channel, "")
    assert conda.listing(tree).count("\n") == 2


def test_two_cold_installs_of_one_list_give_identical_trees(channel, tmp_path, monkeypatch):
    layer = conda.solve(_env(channel), "linux/amd64")
    trees = []
    for name in ("one", "two"):
        monkeypatch.setenv("KNOT_HOME", str(tmp_path / name))
        trees.append(conda.installed_tree(layer))
    assert conda.listing(trees[0]) == conda.listing(trees[1])
    assert _contents(trees[0]) == _contents(trees[1])


def _contents(root):
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_a_changed_file_on_the_channel_is_refused(channel, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_HOME", str(tmp_path / "home"))
    layer = conda.solve(_env(channel), "linux/amd64")
    forged = conda.CondaPackage(layer.packages[0].url, "0" * 64)
    with pytest.raises(RuleError, match="has SHA-256"):
        conda.fetch_package(forged, tmp_path / "pkgs", "envs/greet.yaml")


def test_the_image_copies_the_layer_and_names_its_prefix(channel, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_HOME", str(tmp_path / "home"))
    layer = conda.solve(_env(channel), "linux/amd64")
    spec = ImageSpec(rule="greet", base_image="knot-base:py3.11", conda=layer)
    dockerfile = render_dockerfile(spec, boto3_version="1.0")
    assert f"COPY conda/ {layer.prefix}/" in dockerfile
    assert f"KNOT_CONDA_PREFIX={layer.prefix}" in dockerfile
    # The environment comes before the rule's code: editing the code keeps its layer.
    assert dockerfile.index("COPY conda/") < dockerfile.index("COPY runtime/")
    context = build_context(spec, boto3_version="1.0")
    assert b"conda/bin/knot-greet" in context


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("python-3.11.0-0.tar.bz2", "python"),
        ("knot-greet-2.0-0.conda", "knot-greet"),
        ("python_abi-3.11-4_cp311.conda", "python_abi"),
        ("r-base-4.3.1-h1234_5.tar.bz2", "r-base"),
    ],
)
def test_a_packages_name_is_read_from_its_file_name(file_name, name):
    assert conda.CondaPackage(f"https://c.example/linux-64/{file_name}", "0" * 64).name == name


@pytest.fixture(scope="module")
def python_channel(tmp_path_factory) -> str:
    return make_channel(tmp_path_factory.mktemp("pychannel"), python=True)


PY_ENV = "channels:\n  - {channel}\ndependencies:\n  - python =3.11\n{more}  - pip:\n    - six\n"


def test_a_pip_section_needs_pip_among_the_packages(python_channel):
    without = _env(python_channel, PY_ENV.replace("{more}", ""))
    layer = conda.solve(without, "linux/amd64")
    assert conda.runs_python(layer) and "pip" not in layer.names
    with pytest.raises(RuleError, match="Rule 'greet'.*envs/greet.yaml.*Add 'pip'"):
        conda.check_pip(layer, "greet")
    with_pip = conda.solve(_env(python_channel, PY_ENV.replace("{more}", "  - pip\n")), "x")
    assert {"pip", "python"} <= with_pip.names
    conda.check_pip(with_pip, "greet")  # no error
    assert not conda.runs_python(conda.solve(_env(python_channel), "linux/amd64"))


@pytest.mark.skipif(not os.path.exists(IMAGE_PYTHON), reason=f"no {IMAGE_PYTHON} here")
def test_the_environments_python_and_pip_install_and_run_from_the_layer(
    python_channel, tmp_path, monkeypatch
):
    """The channel's python wraps a real interpreter: installed, the layer's bin/python
    has the layer as its prefix and imports what only the layer has (pip included)."""
    monkeypatch.setenv("KNOT_HOME", str(tmp_path / "home"))
    text = PY_ENV.replace("{more}", "  - pip\n  - knot-pymod\n")
    layer = conda.solve(_env(python_channel, text), "linux/amd64")
    tree = conda.installed_tree(layer)
    code = "import sys, knot_pymod, pip; print(sys.prefix); print(knot_pymod.GREETING)"
    done = subprocess.run([tree / "bin" / "python", "-I", "-c", code], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [str(tree), PYMOD.decode().split('"')[1]]
    dockerfile = render_dockerfile(ImageSpec(rule="greet", base_image="b", conda=layer), "1.0")
    assert f"RUN {layer.prefix}/bin/python -m pip install" in dockerfile
    # The pip index's build args reach it in a rule's own container's stage too.
    spec = ImageSpec(
        rule="greet",
        base_image="debian:12",
        conda=layer,
        from_container=True,
        interpreter_image="knot-base:py3.11",
    )
    stage = render_dockerfile(spec, "1.0").split("FROM debian:12")[1]
    assert stage.index("ARG PIP_INDEX_URL") < stage.index("-m pip install")


def test_builds_fetching_one_package_at_once_each_get_it(tmp_path):
    """Rule images build three at a time, and two may need the same package: each download
    has a file of its own until it is checked and renamed into place."""
    from concurrent.futures import ThreadPoolExecutor

    source = tmp_path / "knot-tool-1.0-0.tar.bz2"
    source.write_bytes(os.urandom(1 << 20))
    package = conda.CondaPackage(source.as_uri(), hashlib.sha256(source.read_bytes()).hexdigest())
    cache = tmp_path / "pkgs"
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: conda.fetch_package(package, cache, "e.yaml"), range(8)))
    assert {p.read_bytes() for p in paths} == {source.read_bytes()}
    assert [p.name for p in cache.iterdir()] == [paths[0].name]
