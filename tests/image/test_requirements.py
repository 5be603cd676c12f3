"""image.requirements: pipreqs on a rule module, import -> distribution mapping, local pins,
and the knot_packages resource."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image import requirements as requirements
from snakemake_executor_knot.image.requirements import find_requirements, parse_packages, pypi_name

PRELUDE = "from knot_runtime.prelude import *\n"


def module(*imports: str) -> str:
    body = "def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):\n"
    return PRELUDE + "".join(f"{line}\n" for line in imports) + "\n" + body + "    pass\n"


def test_imports_are_pinned_to_the_installed_versions():
    source = module("import numpy as np", "from scipy import ndimage", "import yaml")
    # yaml is imported as `yaml` but installed (and pinned) as the PyYAML distribution.
    assert find_requirements(source, rule="r") == [
        f"numpy=={version('numpy')}",
        f"PyYAML=={version('PyYAML')}",
        f"scipy=={version('scipy')}",
    ]


def test_imports_inside_functions_count_too():
    source = module("def helper():", "    import yaml", "    return yaml")
    assert find_requirements(source, rule="r") == [f"PyYAML=={version('PyYAML')}"]


def test_standard_library_and_runtime_are_not_requirements():
    source = module(
        "import os, json, asyncio, collections.abc",
        "import xml.etree.ElementTree",
        "from concurrent.futures import ThreadPoolExecutor",
        "from __future__ import annotations",
        "from knot_runtime.shell import shell",
    )
    assert find_requirements(source, rule="r") == []


def test_boto3_only_when_the_code_imports_it():
    assert find_requirements(module(), rule="r") == []
    assert find_requirements(module("import boto3"), rule="r") == [f"boto3=={version('boto3')}"]


def test_unresolved_import_is_an_error_that_says_what_to_do():
    source = module("import numpy", "import sklearn", "import knot_no_such_module")
    with pytest.raises(RuleError) as caught:
        find_requirements(source, rule="fit")
    message = str(caught.value)
    assert message.startswith("Rule 'fit' imports ")
    assert "sklearn (distribution scikit-learn)" in message
    assert "knot_no_such_module" in message
    assert "numpy" not in message
    assert "Install it here (pip install ...)" in message
    assert 'knot_packages="' in message


def test_extra_covers_an_import_that_is_not_installed():
    source = module("import numpy", "from sklearn.linear_model import Ridge")
    found = find_requirements(source, rule="fit", extra=["scikit-learn==1.5.2"])
    assert found == [f"numpy=={version('numpy')}", "scikit-learn==1.5.2"]


def test_extra_replaces_the_local_pin_and_adds_packages():
    source = module("import numpy")
    found = find_requirements(source, rule="r", extra=["numpy>=2,<3", "tqdm", "tqdm"])
    assert found == ["numpy<3,>=2", "tqdm"]


def test_invalid_extra_names_the_rule():
    with pytest.raises(RuleError, match="Rule 'fit': 'numpy==' in resources: knot_packages"):
        find_requirements(module(), rule="fit", extra=["numpy=="])


def test_namespace_packages_keep_the_distribution_that_has_the_submodule(monkeypatch):
    # Several distributions can share a top-level name (google.*, mpl_toolkits.*); the one
    # whose files hold the imported submodule is the requirement.
    monkeypatch.setattr(
        requirements, "_installed", lambda: {"mpl_toolkits": ["numpy", "matplotlib"]}
    )
    source = module("from mpl_toolkits.mplot3d import Axes3D")
    assert find_requirements(source, rule="r") == [f"matplotlib=={version('matplotlib')}"]


def test_pipreqs_mapping_names():
    assert pypi_name("sklearn") == "scikit-learn"
    assert pypi_name("skimage") == "scikit-image"
    assert pypi_name("yaml") == "PyYAML"
    assert pypi_name("numpy") == "numpy"


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, []),
        ("", []),
        ("tqdm", ["tqdm"]),
        ("scikit-learn==1.5.2, pandas>=2,<3 tqdm", ["scikit-learn==1.5.2", "pandas>=2,<3", "tqdm"]),
        ("numpy >= 1.0 , < 2", ["numpy>=1.0,<2"]),
        ("a,b\tc\nd", ["a", "b", "c", "d"]),
        ("requests[socks, security]==2.32.0", ["requests[socks,security]==2.32.0"]),
    ],
)
def test_parse_packages(value, expected):
    assert parse_packages(value, rule="r") == expected


@pytest.mark.parametrize("value", ["numpy==1 ==2", "==1.0", "not a package!"])
def test_parse_packages_rejects_bad_specifiers(value):
    with pytest.raises(RuleError, match="Rule 'plot':"):
        parse_packages(value, rule="plot")


def test_parse_packages_rejects_non_strings():
    with pytest.raises(RuleError, match="knot_packages must be a string"):
        parse_packages(3, rule="plot")
