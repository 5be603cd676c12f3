"""knot.conda.lock (lock/conda.py) on a real workflow and a channel made here: 'knot lock'
pins each environment by URL and SHA-256; a build follows the pins without solving;
drift re-solves with a notice, or with --knot-locked is an error; two cold installs from
the lock give byte-identical environments."""

from __future__ import annotations

import logging

import pytest
import yaml

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.image import conda
from snakemake_executor_knot.lock.conda import (
    conda_lock_path,
    lock_environments,
    locked_layer,
    read_conda_lock,
    write_conda_lock,
)
from snakemake_executor_knot.lock.load import load_workflow
from tests.condachannel import make_channel

SNAKEFILE = """
rule greet:
    output: "out.txt"
    conda: "envs/greet.yaml"
    shell: "knot-greet x > {output}"
"""
ENV = "channels: ['{channel}']\ndependencies: ['knot-greet']\n"
PLATFORM = "linux/amd64"


@pytest.fixture
def workflow(tmp_path):
    channel_dir = tmp_path / "channel"
    channel = make_channel(channel_dir)
    folder = tmp_path / "wf"
    (folder / "envs").mkdir(parents=True)
    (folder / "Snakefile").write_text(SNAKEFILE)
    (folder / "envs" / "greet.yaml").write_text(ENV.format(channel=channel))
    return load_workflow(folder / "Snakefile"), channel_dir


def _env(folder):
    text = (folder / "envs" / "greet.yaml").read_text()
    return conda.read_conda_file("greet", "envs/greet.yaml", text), text


def _lock(workflow):
    path = conda_lock_path(workflow)
    write_conda_lock(path, PLATFORM, lock_environments(workflow, PLATFORM))
    return path


def test_knot_lock_pins_every_package_by_url_and_sha256(workflow):
    wf, channel_dir = workflow
    path = _lock(wf)
    document = yaml.safe_load(path.read_text())
    assert document["platform"] == "linux-64"
    entry = document["environments"]["envs/greet.yaml"]
    files = sorted(p.name for p in (channel_dir / "linux-64").glob("*.tar.bz2"))
    assert [p["url"].rsplit("/", 1)[1] for p in entry["packages"]] == files
    assert all(len(p["sha256"]) == 64 for p in entry["packages"])
    assert entry["source"].startswith("sha256:")


def test_a_locked_build_installs_exactly_the_pinned_files_without_solving(
    workflow, tmp_path, monkeypatch
):
    wf, channel_dir = workflow
    path = _lock(wf)
    # With the channel's index gone no solve could succeed: the build reads the lock.
    for index in channel_dir.rglob("repodata*"):
        index.unlink()
    env, text = _env(path.parent)
    layer = locked_layer(path, env, text, PLATFORM, locked=True)
    pinned = read_conda_lock(path)[1]["envs/greet.yaml"]["packages"]
    assert sorted((p.url, p.sha256) for p in layer.packages) == sorted(
        (p["url"], p["sha256"]) for p in pinned
    )
    listings = []
    for name in ("cold-1", "cold-2"):
        monkeypatch.setenv("KNOT_HOME", str(tmp_path / name))
        listings.append(conda.listing(conda.installed_tree(layer)))
    assert listings[0] == listings[1]
    assert len(listings[0].splitlines()) == 2


def test_drift_resolves_with_a_notice_or_fails_when_locked(workflow, caplog):
    wf, _ = workflow
    path = _lock(wf)
    envfile = path.parent / "envs" / "greet.yaml"
    envfile.write_text(envfile.read_text().replace("knot-greet", "knot-hello"))
    env, text = _env(path.parent)
    with pytest.raises(ConfigError, match="changed since it was written, and --knot-locked"):
        locked_layer(path, env, text, PLATFORM, locked=True)
    with caplog.at_level(logging.WARNING, logger="knot"):
        layer = locked_layer(path, env, text, PLATFORM, locked=False)
    assert [p.file_name for p in layer.packages] == ["knot-hello-1.0-0.tar.bz2"]
    assert "refreshed" in caplog.text
    assert locked_layer(path, env, text, PLATFORM, locked=True) == layer


def test_locked_without_a_lock_or_for_another_platform_is_an_error(workflow):
    wf, _ = workflow
    path = conda_lock_path(wf)
    env, text = _env(path.parent)
    with pytest.raises(ConfigError, match="there is no"):
        locked_layer(path, env, text, PLATFORM, locked=True)
    _lock(wf)
    with pytest.raises(ConfigError, match="was written for linux-64"):
        locked_layer(path, env, text, "linux/arm64", locked=False)


def test_a_malformed_lock_is_named(tmp_path):
    path = tmp_path / "knot.conda.lock"
    path.write_text("version: 1\nplatform: linux-64\nenvironments:\n  e.yaml: {source: x}\n")
    with pytest.raises(ConfigError, match="malformed entry for 'e.yaml'"):
        read_conda_lock(path)
