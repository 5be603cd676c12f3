"""The workflow's own code travels with the rule: local modules found on the files of
tests/rules/data/localcode (lib/ next to the Snakefile, a helper next to a script), shipped
at their paths under RULE_DIR, with their third-party imports pinned."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image.dockerfile import ImageSpec, image_tag
from snakemake_executor_knot.rules.localcode import Root, find_local_code
from snakemake_executor_knot.rules.source import rule_source
from snakemake_executor_knot.run.plans import BuildTarget, image_spec
from snakemake_executor_knot.runtime import prelude
from snakemake_executor_knot.runtime.contract import RULE_DIR, RULE_MODULE_PATH, SYS_PATH_FILE
from snakemake_executor_knot.runtime.kinds import local_code_paths

from ..conftest import fake_job
from .test_rules import DATA, load_workflow

TARGET = BuildTarget("base:1", "linux/amd64")

FOLDER = DATA / "localcode"


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return load_workflow("localcode", tmp_path_factory.mktemp("localcode"))


def shipped(workflow, name):
    return rule_source(workflow, workflow.get_rule(name))


def test_run_rule_ships_the_local_package_it_imports_transitively(workflow):
    source = shipped(workflow, "count")
    assert set(source.files) == {
        RULE_MODULE_PATH,
        f"{RULE_DIR}/lib/__init__.py",
        f"{RULE_DIR}/lib/stats.py",  # imported by the Snakefile
        f"{RULE_DIR}/lib/util.py",  # imported by lib/stats.py, relatively
        f"{RULE_DIR}/{SYS_PATH_FILE}",
    }
    assert source.files[f"{RULE_DIR}/lib/util.py"] == (FOLDER / "lib/util.py").read_bytes()
    assert source.files[f"{RULE_DIR}/{SYS_PATH_FILE}"] == b".\n"
    assert source.local_names == {"lib"}


def test_an_import_inside_the_run_block_ships_only_what_it_names(workflow):
    assert set(shipped(workflow, "lazy").files) == {
        RULE_MODULE_PATH,
        f"{RULE_DIR}/lib/__init__.py",
        f"{RULE_DIR}/lib/util.py",
        f"{RULE_DIR}/{SYS_PATH_FILE}",
    }


def test_script_ships_its_neighbour_and_what_it_imports_from_the_workflow_folder(workflow):
    source = shipped(workflow, "report")
    assert set(source.files) == {
        f"{RULE_DIR}/scripts/report.py",
        f"{RULE_DIR}/scripts/helper.py",  # next to the script
        f"{RULE_DIR}/lib/__init__.py",  # via sys.path.insert(0, <the workflow's folder>)
        f"{RULE_DIR}/lib/util.py",
        f"{RULE_DIR}/{SYS_PATH_FILE}",
    }
    assert source.files[f"{RULE_DIR}/{SYS_PATH_FILE}"] == b"scripts\n.\n"


def test_data_unused_modules_and_snakemake_state_stay_home(workflow):
    every = {path for name in ("count", "lazy", "report") for path in shipped(workflow, name).files}
    assert not any("/data/" in p or "unused" in p or ".snakemake/" in p for p in every)


def test_requirements_pin_what_the_local_modules_import(workflow):
    spec = image_spec(shipped(workflow, "count"), fake_job(), TARGET, {})
    assert spec.requirements == (f"numpy=={importlib.metadata.version('numpy')}",)


def test_script_requirements_leave_out_local_modules(workflow):
    assert image_spec(shipped(workflow, "report"), fake_job(), TARGET, {}).requirements == ()


def test_local_module_importing_a_missing_package_names_rule_module_and_import(workflow):
    source = shipped(workflow, "broken")
    assert f"{RULE_DIR}/lib/broken.py" in source.files
    with pytest.raises(RuleError) as caught:
        image_spec(source, fake_job(), TARGET, {})
    message = str(caught.value)
    assert "Rule 'broken'" in message
    assert "lib/broken.py" in message
    assert "knot_no_such_package_xyz" in message


def test_editing_a_local_module_changes_only_the_tags_of_rules_that_use_it(tmp_path):
    copy = tmp_path / "wf"
    copy.mkdir()
    for path in FOLDER.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(FOLDER)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    before = {name: root_tag(copy, name) for name in ("count", "lazy")}
    stats = copy / "lib/stats.py"
    stats.write_text(stats.read_text() + "\n# edited\n")
    after = {name: root_tag(copy, name) for name in ("count", "lazy")}
    assert after["count"] != before["count"]
    assert after["lazy"] == before["lazy"]  # lazy imports lib.util only


def root_tag(folder: Path, rule: str) -> str:
    source = find_local_code(
        "from lib.stats import summarize\n" if rule == "count" else "from lib import util\n",
        [Root(folder, RULE_DIR)],
        rule,
    )
    spec = ImageSpec(rule=rule, base_image="base:1", requirements=("numpy==1",), files=source.files)
    return image_tag(spec, boto3_version="1.0")


def test_relative_import_beyond_the_package_and_unknown_names_are_not_local(tmp_path):
    (tmp_path / "solo.py").write_text("from .. import nothing\nimport os\nimport numpy\n")
    found = find_local_code("import solo\nimport json\n", [Root(tmp_path, RULE_DIR)], "r")
    assert set(found.files) == {f"{RULE_DIR}/solo.py"}
    assert found.names == {"solo"}


def test_runtime_puts_the_listed_folders_first_and_refuses_others(tmp_path):
    (tmp_path / SYS_PATH_FILE).write_text("scripts\n.\n../../etc\n")
    env = {"KNOT_RULE_DIR": str(tmp_path)}
    assert local_code_paths(env) == [str(tmp_path / "scripts"), str(tmp_path)]
    assert local_code_paths({"KNOT_RULE_DIR": str(tmp_path / "none")}) == []


def test_workflow_basedir_in_a_run_block_is_the_image_folder(workflow, monkeypatch, tmp_path):
    source = shipped(workflow, "basedir_on_path")
    assert "from knot_runtime.prelude import workflow\n" in source.module_source
    assert f"{RULE_DIR}/lib/util.py" in source.files
    assert prelude.workflow.basedir == RULE_DIR
    monkeypatch.setenv("KNOT_RULE_DIR", str(tmp_path))
    assert prelude.workflow.basedir == str(tmp_path)


def test_a_module_beside_an_include_outside_the_snakefiles_folder_is_shipped(tmp_path):
    """main/Snakefile includes ../shared/extra.smk, whose run: block imports
    shared/helper.py: local code with a place in the image, not a package to install."""
    workflow = load_workflow("outside/main", tmp_path)
    source = rule_source(workflow, workflow.get_rule("extra"))
    helper = f"{RULE_DIR}/.knot-up/shared/helper.py"
    assert source.files[helper] == (DATA / "outside/shared/helper.py").read_bytes()
    assert source.local_names == {"helper"}
    listing = source.files[f"{RULE_DIR}/{SYS_PATH_FILE}"].decode().split()
    assert listing == [".knot-up/shared", "."]  # Snakemake's order: the last included first
    (tmp_path / ".knot-up/shared").mkdir(parents=True)
    (tmp_path / SYS_PATH_FILE).write_text("\n".join(listing))
    paths = local_code_paths({"KNOT_RULE_DIR": str(tmp_path)})
    assert paths == [str(tmp_path / ".knot-up/shared"), str(tmp_path)]
    assert image_spec(source, fake_job(), TARGET, {}).requirements == ()
