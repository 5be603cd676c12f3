"""The rules package: kinds, unsupported rules, and the generated rule module of run: rules, on real
Snakemake workflows loaded (not run) from the Snakefiles in tests/rules/data/."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image.requirements import find_requirements
from snakemake_executor_knot.rules.literals import literal
from snakemake_executor_knot.rules.shipping import global_names
from snakemake_executor_knot.rules.source import check_supported, rule_kind, rule_source
from snakemake_executor_knot.rules.text import indent_block, statement_extent
from snakemake_executor_knot.runtime.contract import RULE_DIR, RULE_MODULE_PATH, RUN_ARGUMENTS

DATA = Path(__file__).parent / "data"


def load_workflow(name: str, workdir: Path):
    """Parse tests/rules/data/<name>/Snakefile into Snakemake's Workflow, without running
    it. Snakemake changes into the workdir; the test's working directory is restored."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow_api = api.workflow(
                ResourceSettings(), snakefile=DATA / name / "Snakefile", workdir=workdir
            )
            return workflow_api._workflow
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def run_workflow(tmp_path_factory):
    return load_workflow("run", tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def bad_workflow(tmp_path_factory):
    workflow = load_workflow("bad", tmp_path_factory.mktemp("bad"))
    yield workflow
    workflow.get_rule("uses_handle").run_func.__globals__["BAD_HANDLE"].close()


@pytest.fixture(scope="session")
def unsupported_workflow(tmp_path_factory):
    return load_workflow("unsupported", tmp_path_factory.mktemp("unsupported"))


def source_of(workflow, name: str):
    return rule_source(workflow, workflow.get_rule(name))


# ---- the run: block's text


def test_run_block_is_the_original_text_with_comments(run_workflow):
    module = source_of(run_workflow, "compute").module_source
    body = module.split(f"def knot_run({', '.join(RUN_ARGUMENTS)}):\n", 1)[1]
    assert body.startswith(
        "    # a comment at the top of the block\n"
        "    acc = Accumulator()\n"
        "    for value in params.numbers:\n"
        "        acc.add(value)  # a trailing comment\n"
        "\n"
        "    # a comment between statements\n"
        "    smoothed = ndimage.uniform_filter1d(np.arange(6, dtype=float), size=3)\n"
        '    text = """first\n'
        "  second, indented less than the block\n"
        'third"""\n'
    )
    assert body.endswith(
        "        json.dump(result, handle, sort_keys=True)\n"
        "    # a comment at the end of the block\n"
    )


def test_one_line_run_block(run_workflow):
    module = source_of(run_workflow, "one_liner").module_source
    assert module.endswith(':\n    open(output[0], "w").write(str(scaled(2)))\n')


# ---- what the block uses from the Snakefile


def test_snakefile_imports_are_reproduced(run_workflow):
    module = source_of(run_workflow, "compute").module_source
    lines = module.splitlines()
    assert lines[1] == "from knot_runtime.prelude import *"
    for statement in (
        "import functools",
        "import json",
        "import xml.etree.ElementTree",
        "from os.path import join as path_join",
        "import numpy as np",
        "from scipy import ndimage",
    ):
        assert statement in lines
    # The Snakefile's order is kept.
    assert lines.index("import numpy as np") < lines.index("from scipy import ndimage")


def test_helpers_are_shipped_in_dependency_order(run_workflow):
    module = source_of(run_workflow, "compute").module_source
    position = {key: module.index(key) for key in _DEFINITIONS}
    assert position["FACTOR = 3"] < position["def scaled(x):"] < position["class Accumulator:"]
    assert position["def scaled(x):"] < position["def describe(values):"]
    assert position["LABELS = "] < position["def describe(values):"]
    assert position["def cached_square(x):"] < position["square_plus = lambda"]
    assert "    # helpers keep their comments\n" in module
    assert "@functools.lru_cache(maxsize=None)\ndef cached_square(x):" in module
    assert "    def add(self, value):\n        self.total += scaled(value)\n" in module


_DEFINITIONS = (
    "FACTOR = 3",
    "LABELS = ",
    "def scaled(x):",
    "class Accumulator:",
    "def describe(values):",
    "def cached_square(x):",
    "square_plus = lambda",
)


def test_only_what_the_block_uses_is_shipped(run_workflow):
    module = source_of(run_workflow, "compute").module_source
    assert "UNUSED_OBJECT" not in module
    assert "OFFSET" not in module  # only the rule 'nested' uses it
    assert "config =" not in module
    assert "import os\n" not in module  # the prelude has it


def test_globals_of_functions_defined_in_the_block(run_workflow):
    module = source_of(run_workflow, "nested").module_source
    assert "OFFSET = 10\n" in module
    assert "def scaled(x):" in module


def test_constants_rebuild_the_same_values(run_workflow, fake_runtime):
    source = source_of(run_workflow, "compute")
    module = fake_runtime.load(source.module_source)
    snakefile = run_workflow.get_rule("compute").run_func.__globals__
    for name in ("FACTOR", "LABELS", "TABLE", "RAW", "EMPTY", "DATA_DIR"):
        assert getattr(module, name) == snakefile[name], name
        assert type(getattr(module, name)) is type(snakefile[name])
    assert math.isnan(module.NOT_A_NUMBER)
    assert "RAW = b'\\x00raw'\n" in source.module_source


def test_generated_modules_compile(run_workflow):
    for rule in run_workflow.rules:
        if rule.is_run and not rule.norun:
            module = rule_source(run_workflow, rule).module_source
            compile(module, RULE_MODULE_PATH, "exec")


# ---- running the generated module against the block itself


class FakeRuntime:
    """A stand-in for knot_runtime.prelude, and a loader for generated modules."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        package = folder / "knot_runtime"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "prelude.py").write_text(
            "import os, sys\n"
            "from pathlib import Path\n"
            "from snakemake.io import expand, glob_wildcards, multiext\n"
            "from snakemake.shell import shell\n"
        )
        self.count = 0

    def load(self, source: str, config: dict | None = None):
        self.count += 1
        path = self.folder / f"knot_rule_{self.count}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.config = config or {}
        return module


def _runtime_modules() -> list[str]:
    return [n for n in sys.modules if n == "knot_runtime" or n.startswith("knot_runtime.")]


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    """The fake prelude on sys.path; a knot_runtime imported before is set aside, and put
    back afterwards by monkeypatch."""
    for name in _runtime_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield FakeRuntime(tmp_path)
    for name in _runtime_modules():
        del sys.modules[name]


def run_arguments(rule, output: Path) -> dict:
    from snakemake.iocontainers import Namedlist

    params = {"numbers": [1, 2, 3]} if rule.name in ("compute", "compute_again") else {}
    return {
        "input": Namedlist(),
        "output": Namedlist(toclone=[str(output)]),
        "params": Namedlist(fromdict=params),
        "wildcards": Namedlist(),
        "threads": 1,
        "resources": Namedlist(fromdict={"_cores": 1}),
        "log": Namedlist(),
        "rule": rule.name,
        "jobid": 1,
    }


@pytest.mark.parametrize(
    "name", ["compute", "compute_again", "one_liner", "nested", "closure_block"]
)
def test_knot_run_does_what_the_block_does(run_workflow, fake_runtime, tmp_path, name):
    rule = run_workflow.get_rule(name)
    module = fake_runtime.load(rule_source(run_workflow, rule).module_source)
    module.knot_run(**run_arguments(rule, tmp_path / "knot.out"))

    # The block itself, as Snakemake runs it: the compiled function, with the arguments
    # knot does not provide set to None.
    code = rule.run_func.__code__
    arguments = dict.fromkeys(code.co_varnames[: code.co_argcount])
    arguments.update(run_arguments(rule, tmp_path / "snakemake.out"))
    rule.run_func(**arguments)

    produced = (tmp_path / "knot.out").read_bytes()
    assert produced == (tmp_path / "snakemake.out").read_bytes()
    if name == "compute":
        result = json.loads(produced)
        assert result["total"] == 3 + 3 * (1 + 2 + 3)
        assert result["text"] == "first\n  second, indented less than the block\nthird"


def test_requirements_of_a_generated_module(run_workflow):
    module = source_of(run_workflow, "compute").module_source
    assert find_requirements(module, rule="compute") == [
        f"numpy=={version('numpy')}",
        f"scipy=={version('scipy')}",
    ]


# ---- use rule, shell and script rules


def test_use_rule_with_names_the_new_rule(run_workflow):
    again = source_of(run_workflow, "compute_again")
    original = source_of(run_workflow, "compute")
    assert (again.rule, again.kind) == ("compute_again", "run")
    assert again.module_source == original.module_source
    assert again.files == {RULE_MODULE_PATH: again.module_source.encode()}


def test_use_rule_with_error_names_the_new_rule(bad_workflow):
    with pytest.raises(RuleError, match="Rule 'uses_handle_again' uses the global 'BAD_HANDLE'"):
        source_of(bad_workflow, "uses_handle_again")


def test_shell_rule(run_workflow):
    source = source_of(run_workflow, "plain_shell")
    assert (source.kind, source.shell_command) == ("shell", "touch {output}")
    assert (source.files, source.module_source, source.script_path) == ({}, None, None)


def test_shell_rule_using_a_snakefile_global_ships_it(run_workflow):
    source = source_of(run_workflow, "shell_with_global")
    assert source.shell_command == "echo {FACTOR} {output} > {output}"
    assert "\nFACTOR = 3\n" in source.module_source
    assert "def knot_run" not in source.module_source
    assert source.files == {RULE_MODULE_PATH: source.module_source.encode()}


def test_script_rule(run_workflow):
    source = source_of(run_workflow, "script_rule")
    script = DATA / "run" / "scripts" / "write.py"
    assert (source.kind, source.script_path, source.module_source) == (
        "script",
        "scripts/write.py",
        None,
    )
    assert source.files == {"/opt/knot/rule/scripts/write.py": script.read_bytes()}


def test_rule_kind(run_workflow):
    kinds = {rule.name: rule_kind(rule) for rule in run_workflow.rules}
    assert kinds["compute"] == kinds["compute_again"] == kinds["one_liner"] == "run"
    assert kinds["plain_shell"] == kinds["shell_with_global"] == "shell"
    assert kinds["script_rule"] == "script"
    assert kinds["no_action"] == "norun"


def test_a_rule_with_no_action_ships_nothing(run_workflow):
    # Snakemake runs it on the host unless it is in a group; in one, it runs nothing.
    source = source_of(run_workflow, "no_action")
    assert (source.kind, source.files, source.shell_command, source.module_source) == (
        "norun",
        {},
        None,
        None,
    )


# ---- what cannot be shipped


@pytest.mark.parametrize(
    "rule, named, says",
    [
        ("uses_handle", "'BAD_HANDLE'", "an open file"),
        ("uses_handle_via_helper", "'BAD_HANDLE' (through the helper 'bad_reads_handle')", ""),
        ("uses_workflow", "'workflow'", "Snakemake's 'workflow' object"),
        ("uses_rules", "'rules'", "params:"),
        ("uses_closure", "'bad_add_two'", "closure"),
        ("uses_instance", "'BAD_INSTANCE'", "instance of the Snakefile's class BadThing"),
        ("uses_snakemake_function", "'temp'", "part of Snakemake"),
    ],
)
def test_unshippable_globals(bad_workflow, rule, named, says):
    with pytest.raises(RuleError) as caught:
        source_of(bad_workflow, rule)
    message = str(caught.value)
    assert f"Rule '{rule}' uses the global {named}" in message
    assert says in message
    assert f"localrules: {rule}" in message


def test_unshippable_global_error_says_what_to_do(bad_workflow):
    with pytest.raises(RuleError, match="Create it inside the run: block, or make it a constant"):
        source_of(bad_workflow, "uses_handle")


def test_run_argument_knot_does_not_provide(bad_workflow):
    with pytest.raises(RuleError, match="Rule 'uses_basedir': its run: block uses 'basedir'"):
        source_of(bad_workflow, "uses_basedir")


@pytest.mark.parametrize(
    "rule, says",
    [
        ("cwl_rule", "'cwl:'"),
    ],
)
def test_unsupported_rules(unsupported_workflow, rule, says):
    snakemake_rule = unsupported_workflow.get_rule(rule)
    with pytest.raises(RuleError) as caught:
        check_supported(snakemake_rule)
    message = str(caught.value)
    assert message.startswith(f"Rule '{rule}' ")
    assert says in message
    assert f"localrules: {rule}'" in message
    assert "container:" in message
    with pytest.raises(RuleError):
        rule_source(unsupported_workflow, snakemake_rule)


def test_supported_rules_pass(run_workflow):
    for rule in run_workflow.rules:
        check_supported(rule)


# ---- the text machinery, on its own


def lines_of(text: str) -> list[str]:
    return textwrap.dedent(text).splitlines(keepends=True)


def test_statement_extent_of_an_indented_block_with_trailing_comments():
    lines = lines_of(
        """\
        rule a:
            run:
                x = 1

                if x:
                    y = 2
                # inside
        # a comment about the next rule, at column 0

        rule b:
        """
    )
    end, verbatim = statement_extent(lines, 2)
    assert (end, verbatim) == (9, set())
    body = indent_block(lines, 3, end, verbatim, "  ", floor=4)
    assert body == "  x = 1\n\n  if x:\n      y = 2\n  # inside\n"


def test_statement_extent_with_decorators_and_a_dedent_to_an_unknown_column():
    lines = lines_of(
        """\
        if True:
            @decorate
            def f():
                return '''
        kept as is
                '''
          z = 1
        """
    )
    end, verbatim = statement_extent(lines, 2)
    assert end == 6
    assert verbatim == {5, 6}
    assert indent_block(lines, 2, end, verbatim, "", floor=4) == (
        "@decorate\ndef f():\n    return '''\nkept as is\n        '''\n"
    )


def test_statement_extent_of_a_simple_statement_and_tabs():
    lines = ["x = (1,\n", "     2)\n", "y = 3\n", "\tdef f():\n"]
    assert statement_extent(lines, 1) == (2, set())
    tabbed = ["if a:\n", "\tdef f():\n", "\t\treturn 1\n", "\tz = 2\n"]
    end, verbatim = statement_extent(tabbed, 2)
    assert end == 3
    assert indent_block(tabbed, 2, end, verbatim, "") == "def f():\n\treturn 1\n"


def test_global_names_follow_nested_code_and_skip_own_names():
    source = textwrap.dedent(
        """\
        class K(Base):
            local = A
            other = local
            def m(self):
                return [helper(v) for v in B]
        def g():
            return K
        """
    )
    names = global_names(compile(source, "<test>", "exec"))
    assert names[:1] == ["Base"]
    assert set(names) == {"Base", "__name__", "A", "helper", "B", "K"}


_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children)
        | st.tuples(children, children)
        | st.dictionaries(st.text() | st.integers(), children)
        | st.frozensets(st.integers() | st.text())
    ),
    max_leaves=20,
)


@given(_plain)
def test_literals_rebuild_plain_constants(value):
    text = literal(value)
    assert text is not None
    rebuilt = eval(text, {"Path": Path})
    assert rebuilt == value
    assert type(rebuilt) is type(value)


def test_literals_refuse_other_objects():
    assert literal(object()) is None
    assert literal([1, object()]) is None
    assert literal({"a": open}) is None
    assert literal(float("-inf")) == "float('-inf')"
    assert literal(Path("a/b")) == "Path('a/b')"
    assert literal(set()) == "set()"
    assert literal((1,)) == "(1,)"


# ---- secrets never ship in code

SECRET = "s3cr3t-value-for-tests"


@pytest.fixture
def secrets_workflow(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_TEST_SECRET", SECRET)
    return load_workflow("secrets", tmp_path)


@pytest.mark.parametrize(
    ("rule", "name", "reason"),
    [
        ("uses_token", "TOKEN", "equals the environment variable KNOT_TEST_SECRET"),
        ("uses_environment_copy", "ENV", "its value equals the environment variable"),
        ("uses_api_key", "API_KEY", "its name says it holds a secret"),
        ("uses_copied_value", "COPIED", "equals the environment variable KNOT_TEST_SECRET"),
        ("uses_sort_key", "SORT_KEY", "its name says it holds a secret"),
    ],
)
def test_a_secret_looking_global_is_refused_pointing_to_envvars(
    secrets_workflow, rule, name, reason
):
    with pytest.raises(RuleError) as caught:
        rule_source(secrets_workflow, secrets_workflow.get_rule(rule))
    message = str(caught.value)
    assert f"Rule '{rule}' uses the global '{name}'" in message
    assert reason in message
    assert f'envvars: "{name}"' in message and f"--knot-public-globals {name}" in message
    assert SECRET not in message


def test_a_global_read_from_the_environment_is_refused_whatever_its_value(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_TEST_SECRET", "short")  # too short to match by value
    workflow = load_workflow("secrets", tmp_path)
    with pytest.raises(RuleError, match="read from the environment"):
        rule_source(workflow, workflow.get_rule("uses_token"))


def test_public_globals_let_a_false_positive_through(secrets_workflow):
    rule = secrets_workflow.get_rule("uses_sort_key")
    source = rule_source(secrets_workflow, rule, frozenset({"SORT_KEY"}))
    assert "SORT_KEY = 'name'" in source.module_source
    plain = rule_source(secrets_workflow, secrets_workflow.get_rule("plain")).module_source
    assert SECRET not in plain and "SEPARATOR = ' | '" in plain


def test_a_script_beside_an_included_rules_folder_stays_under_the_rule_folder(tmp_path):
    """workflow/rules/x.smk naming ../scripts/fit.py (the usual layout): in the image at
    RULE_DIR/.knot-up/scripts/fit.py, and the spec names it so for the runtime."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    from snakemake_executor_knot.jobs.preamble import script_section
    from snakemake_executor_knot.rules.source import script_relative

    (tmp_path / "rules").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "fit.py").write_text("print('fit')\n")
    (tmp_path / "rules" / "fit.smk").write_text(
        'rule fit:\n    output: "fit.txt"\n    script: "../scripts/fit.py"\n'
    )
    (tmp_path / "Snakefile").write_text('include: "rules/fit.smk"\n')
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            api_workflow = api.workflow(
                ResourceSettings(), snakefile=tmp_path / "Snakefile", workdir=tmp_path
            )
            workflow = api_workflow._workflow  # no public way to the parsed rules
    finally:
        os.chdir(cwd)
    rule = workflow.get_rule("fit")
    source = rule_source(workflow, rule)
    assert source.files == {f"{RULE_DIR}/.knot-up/scripts/fit.py": b"print('fit')\n"}
    job = SimpleNamespace(rule=rule)
    assert script_section(job, str) == {"path": ".knot-up/scripts/fit.py"}
    assert script_relative("scripts/../lib/x.py") == "lib/x.py"
