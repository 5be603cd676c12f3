"""knot.lock for a workflow: the closure of a rule's imports and knot's runtime, the modules
its values need, the hash cache, and the locked requirement lines; no network (hashes are
stubbed)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.lock.format import read_lock
from snakemake_executor_knot.lock.load import load_workflow
from snakemake_executor_knot.lock.workflow import (
    HashCache,
    RuleBasis,
    build_lock,
    locked_lines,
    locked_rules,
    static_values,
)

from .helpers import BASE, bases, basis, fake_pypi, follow


def test_lock_of_scipy_pins_numpy_and_runtime_with_hashes(lock_file):
    lock = read_lock(lock_file)
    names = {pin.name for pin in lock.rules["a"].requirements}
    assert {"scipy", "numpy", "boto3", "botocore", "s3transfer"} <= names
    lines, hashed = locked_lines(lock, "a")
    assert all(" --hash=" in line for line in lines) is hashed
    # six (via python-dateutil) had no hash on the stub index: hash mode is off for all.
    assert "six" in {pin.name for pin in lock.rules["b"].requirements}
    assert not hashed and not any("--hash" in line for line in lines)


def test_a_numpy_value_pins_numpy_and_its_change_is_drift(lock_file):
    needs_numpy = RuleBasis("b", None, values=("numpy",))
    assert needs_numpy.source != basis("b").source
    lock = build_lock(
        bases(needs_numpy),
        platform="linux/amd64",
        base_image=BASE,
        hashes=HashCache(fetch=fake_pypi),
    )
    assert "numpy" in {pin.name for pin in lock.rules["b"].requirements}
    with pytest.raises(ConfigError, match="'b' now imports nothing.*its values need numpy"):
        follow(lock_file, bases(basis("a", "scipy", packages=("scipy",)), needs_numpy), locked=True)


def test_static_values_read_written_params_and_config(tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "import numpy as np\n"
        "rule typed:\n    output: 'a'\n    params: n=np.int64(3), f=lambda wc: np.int64(1)\n"
        "    run:\n        pass\n"
        "rule plain:\n    output: 'b'\n    params: n=3\n    run:\n        pass\n"
    )
    workflow = load_workflow(snakefile)
    rules = {rule.name: rule for rule in workflow.rules}
    assert static_values({})(rules["typed"]) == {"numpy"}
    assert static_values({})(rules["plain"]) == set()
    assert static_values({"when": Decimal("1.5")})(rules["plain"]) == set()  # stdlib


def test_hash_cache_fetches_each_release_once_and_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="knot")
    seen = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return fake_pypi(url)

    rules = bases(basis("a"), basis("b"))
    build_lock(rules, platform="linux/amd64", base_image=BASE, hashes=HashCache(fetch=fetch))
    assert len(seen) == len(set(seen))
    warnings = [r.getMessage() for r in caplog.records if "no hashes" in r.getMessage()]
    assert len(warnings) == 1 and "six==" in warnings[0]


def test_rules_knot_runs_include_a_group_s_member_with_no_action(tmp_path):
    """As Snakemake's Workflow.is_local: a rule with no action (or a local rule) runs on the
    host unless it is in a group; in one, its members share the group's locked image."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "localrules: listed\n"
        "rule all:\n    input: 'b'\n"
        "rule listed:\n    output: 'l'\n    shell: 'touch {output}'\n"
        "rule stamp:\n    output: touch('a')\n    group: 'g'\n"
        "rule after:\n    input: 'a'\n    output: 'b'\n    group: 'g'\n"
        "    shell: 'cp {input} {output}'\n"
    )
    workflow = load_workflow(snakefile)
    found = locked_rules(workflow, lambda rule: None, lambda rule: ())
    assert sorted(found) == ["after", "stamp"]
