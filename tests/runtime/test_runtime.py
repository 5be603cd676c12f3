"""Unit tests of the in-container runtime: named lists, shell(), patterns, spec, benchmark."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess

import pytest

from snakemake_executor_knot.runtime import benchmark, patterns, spec, staging
from snakemake_executor_knot.runtime.contract import SPEC_VERSION
from snakemake_executor_knot.runtime.job import output_problems, parent_folders, touch_outputs
from snakemake_executor_knot.runtime.kinds import apply_shell_wrap
from snakemake_executor_knot.runtime.namedlist import Namedlist, Wildcards, from_section, paths_of
from snakemake_executor_knot.runtime.namespace import Namespace
from snakemake_executor_knot.runtime.report import JobFailure
from snakemake_executor_knot.runtime.script import ScriptContext
from snakemake_executor_knot.runtime.shell import format_command, shell

# --- Namedlist ------------------------------------------------------------------------


@pytest.fixture
def files() -> Namedlist:
    return Namedlist(["a.txt", "b c.txt", "d.txt"], {"first": (0, None), "rest": (1, 3)})


def test_namedlist_index_attribute_and_key(files):
    assert files[0] == "a.txt"
    assert files.first == "a.txt" == files["first"]
    assert files.rest == ["b c.txt", "d.txt"]
    assert isinstance(files.rest, Namedlist)
    assert files[1:] == ["b c.txt", "d.txt"]


def test_namedlist_iteration_len_str(files):
    assert list(files) == ["a.txt", "b c.txt", "d.txt"]
    assert len(files) == 3
    assert str(files) == "a.txt b c.txt d.txt"
    assert str(files.rest) == "b c.txt d.txt"


def test_namedlist_mapping_methods(files):
    assert list(files.keys()) == ["first", "rest"]
    assert dict(files.items()) == {"first": "a.txt", "rest": ["b c.txt", "d.txt"]}
    assert files.get("first") == "a.txt"
    assert files.get("nope", 7) == 7
    with pytest.raises(KeyError):
        files["nope"]
    with pytest.raises(AttributeError):
        files.nope  # noqa: B018


def test_namedlist_in_str_format(files):
    template = "{0.first}|{0[rest]}|{0}"
    assert template.format(files) == "a.txt|b c.txt d.txt|a.txt b c.txt d.txt"


def test_namedlist_reserved_names():
    with pytest.raises(ValueError, match="reserved"):
        Namedlist([1], {"keys": (0, None)})
    # Snakemake lets "index" and "sort" name items.
    assert Namedlist([5], {"index": (0, None)}).index == 5


def test_from_spec_sections():
    params = from_section({"items": [1, "x", {"a": 2}], "names": {"alpha": [0, None]}})
    assert params.alpha == 1 and params[2] == {"a": 2}
    resources = from_section(
        {"items": [1, 1000], "names": {"_cores": [0, None], "mem_mb": [1, None]}}
    )
    assert resources.mem_mb == 1000 and resources.get("disk_mb") is None
    paths = paths_of({"items": [{"path": "p/q.txt", "uri": "s3://b/k"}], "names": {"q": [0, None]}})
    assert paths.q == "p/q.txt" and paths == ["p/q.txt"]
    assert from_section(None) == [] and paths_of(None) == []


# --- shell formatting -------------------------------------------------------------------


@pytest.fixture
def names() -> dict:
    return {
        "input": Namedlist(["in/a b.txt", "in/c.txt"], {"a": (0, None)}),
        "output": Namedlist(["out/x.txt"], {"x": (0, None)}),
        "params": Namedlist([3, ["u", "v"]], {"n": (0, None), "many": (1, None)}),
        "wildcards": from_section(
            {"items": ["01", "L2"], "names": {"s": [0, None], "l": [1, None]}}, Wildcards
        ),
        "threads": 4,
        "resources": Namedlist([2048], {"mem_mb": (0, None)}),
        "log": Namedlist(["logs/x.log"]),
        "config": {"ref": "hg 38"},
    }


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{input}", "in/a b.txt in/c.txt"),
        ("{input[0]}", "in/a b.txt"),
        ("{input.a:q}", "'in/a b.txt'"),
        ("{input:q}", "'in/a b.txt' in/c.txt"),
        ("{output.x}", "out/x.txt"),
        ("{params.n} {params.many}", "3 u v"),
        ("{wildcards.s}-{wildcards[l]}", "01-L2"),
        ("{wildcards}", "l=L2,s=01"),
        ("{threads} {resources.mem_mb}", "4 2048"),
        ("{log}", "logs/x.log"),
        ("{config[ref]:q}", "'hg 38'"),
        ("{params.n:03d}", "003"),
        ("awk '{{print $1}}'", "awk '{print $1}'"),
    ],
)
def test_format_command(names, pattern, expected):
    assert format_command(pattern, (), names) == expected


def test_format_command_unknown_names(names):
    with pytest.raises(NameError, match="wildcards.s"):
        format_command("{s}", (), names)
    with pytest.raises(NameError, match="double the braces"):
        format_command("{nothing}", (), names)


def test_shell_formats_from_caller_locals_and_kwargs(tmp_path):
    output = Namedlist([str(tmp_path / "o u t.txt")], {"main": (0, None)})
    message = "hello world"
    shell("printf '%s|%s' {message:q} {extra:q} > {output.main:q}", extra="it's")
    assert (tmp_path / "o u t.txt").read_text() == "hello world|it's"
    assert output and message  # used by shell() through the caller's frame


SHARED = "from the module"


def test_shell_formats_from_caller_globals():
    assert shell("echo {SHARED}", read=True) == "from the module\n"


def test_shell_read_and_iterable():
    assert shell("printf 'a\\nb\\n'", read=True) == "a\nb\n"
    assert list(shell("printf 'a\\nb\\nc'", iterable=True)) == ["a", "b", "c"]


def test_shell_strict_mode_fails_on_pipe_stage():
    with pytest.raises(subprocess.CalledProcessError) as info:
        shell("false | cat")
    assert info.value.returncode == 1
    assert info.value.cmd.startswith("set -euo pipefail;")
    with pytest.raises(subprocess.CalledProcessError):
        shell("echo $UNDEFINED_KNOT_VARIABLE")
    with pytest.raises(subprocess.CalledProcessError):
        list(shell("echo a; exit 3", iterable=True))


def test_shell_sets_thread_and_tmpdir_variables(tmp_path):
    threads = 3
    resources = Namedlist([str(tmp_path)], {"tmpdir": (0, None)})
    assert shell("echo $OMP_NUM_THREADS $TMPDIR", read=True) == f"{threads} {resources.tmpdir}\n"


@pytest.fixture
def fresh_shell():
    saved = (shell._executable, shell._prefix, shell._suffix)
    yield shell
    shell._executable, shell._prefix, shell._suffix = saved


def test_shell_executable_prefix_suffix(fresh_shell):
    fresh_shell.executable("sh")
    assert fresh_shell._executable.endswith("/sh")
    # Not bash: no strict-mode prefix, so a failing first pipe stage passes.
    fresh_shell("false | cat")
    fresh_shell.executable("bash")
    word = "pre"
    fresh_shell.prefix("echo {word};")
    fresh_shell.suffix("; echo post")
    assert fresh_shell("echo mid", read=True) == f"{word}\nmid\npost\n"
    with pytest.raises(FileNotFoundError):
        fresh_shell.executable("no-such-shell-knot")


def test_the_snakefiles_shell_prefix_and_suffix_from_the_spec_wrap_commands(fresh_shell):
    fresh_shell.executable("bash")
    apply_shell_wrap({"prefix": "echo pre;", "suffix": "; echo post"})
    assert fresh_shell("false | echo mid", read=True) == "pre\nmid\npost\n"  # no strict mode
    apply_shell_wrap({"prefix": 3})  # not text: ignored
    assert fresh_shell._prefix == "echo pre;"


def test_shell_long_command_goes_through_a_script():
    payload = "x" * 200_000
    assert shell("echo {payload} | wc -c", read=True).strip() == str(len(payload) + 1)


# --- expand, glob_wildcards, multiext -----------------------------------------------------


def test_expand_product_zip_and_missing():
    assert patterns.expand("{s}_{r}.txt", s=["a", "b"], r=[1, 2]) == [
        "a_1.txt",
        "a_2.txt",
        "b_1.txt",
        "b_2.txt",
    ]
    assert patterns.expand("{s}_{r}", zip, s=["a", "b"], r=[1, 2]) == ["a_1", "b_2"]
    assert patterns.expand(["{s}.x", "{s}.y"], s="a") == ["a.x", "a.y"]
    assert patterns.expand("{s}/{t}", s=[1], allow_missing=True) == ["1/{t}"]
    with pytest.raises(patterns.WildcardError, match="t"):
        patterns.expand("{s}/{t}", s=[1])


def test_expand_ignores_unused_wildcards():
    # Snakemake drops values a pattern does not use, so no duplicates appear.
    assert patterns.expand("{s}.txt", s=["a", "b"], unused=[1, 2, 3]) == ["a.txt", "b.txt"]


def test_glob_wildcards(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("data/s1/r1.fq", "data/s1/r2.fq", "data/s2/r1.fq", "data/s2/notes.md"):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        open(name, "w").close()
    found = patterns.glob_wildcards("data/{sample}/r{read,\\d}.fq")
    pairs = sorted(zip(found.sample, found.read, strict=True))
    assert pairs == [("s1", "1"), ("s1", "2"), ("s2", "1")]
    same = patterns.glob_wildcards("{a}/{a}.txt", files=["x/x.txt", "x/y.txt"])
    assert same.a == ["x"]


def test_multiext():
    assert patterns.multiext("ref/genome", ".fa", ".fai") == ["ref/genome.fa", "ref/genome.fai"]
    assert patterns.multiext("r", a=".1", b=".2") == ["r.1", "r.2"]
    with pytest.raises(ValueError):
        patterns.multiext("r", ".a", b=".b")


def test_prelude_exports():
    from snakemake_executor_knot.runtime import prelude

    scope: dict = {}
    exec("from snakemake_executor_knot.runtime.prelude import *", scope)
    assert set(prelude.__all__) <= scope.keys()
    assert scope["shell"] is shell and scope["expand"] is patterns.expand


# --- spec ------------------------------------------------------------------------------

DIGEST = {"KNOT_SPEC_SHA256": "ab" * 32}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KNOT_SPEC_URI": "s3://b/plain.json", **DIGEST}, None),
        ({"KNOT_SPEC_URI": "s3://b/j.jsonl", "KNOT_SPEC_RECORD_BYTES": "100", **DIGEST}, (0, 99)),
        (
            {
                "KNOT_SPEC_URI": "s3://b/j.jsonl",
                "KNOT_SPEC_RECORD_BYTES": "100",
                "AWS_BATCH_JOB_ARRAY_INDEX": "7",
                **DIGEST,
            },
            (700, 799),
        ),
        # moto sets only the job id, whose suffix is the index for array children.
        (
            {
                "KNOT_SPEC_URI": "s3://b/j",
                "KNOT_SPEC_RECORD_BYTES": "10",
                "AWS_BATCH_JOB_ID": "a:4",
                **DIGEST,
            },
            (40, 49),
        ),
        # Without a record width the object is one document, whatever the index.
        ({"KNOT_SPEC_URI": "s3://b/plain.json", "AWS_BATCH_JOB_ARRAY_INDEX": "2", **DIGEST}, None),
    ],
)
def test_spec_location(env, expected):
    where = spec.spec_location(env)
    assert where.uri == env["KNOT_SPEC_URI"]
    assert where.byte_range == expected


def test_spec_location_needs_the_uri_and_the_digest():
    with pytest.raises(JobFailure, match="KNOT_SPEC_URI and KNOT_SPEC_SHA256"):
        spec.spec_location({})
    with pytest.raises(JobFailure, match="KNOT_SPEC_SHA256"):
        spec.spec_location({"KNOT_SPEC_URI": "s3://b/j"})


@pytest.mark.parametrize("width", ["0", "-5", "ten"])
def test_spec_location_bad_record_width(width):
    env = {"KNOT_SPEC_URI": "s3://b/j", "KNOT_SPEC_RECORD_BYTES": width, **DIGEST}
    with pytest.raises(JobFailure, match="KNOT_SPEC_RECORD_BYTES"):
        spec.spec_location(env)


def test_parse_s3_uri():
    assert spec.parse_s3_uri("s3://bkt/a/b/") == ("bkt", "a/b/")
    assert spec.parse_s3_uri("s3://bkt") == ("bkt", "")
    with pytest.raises(JobFailure):
        spec.parse_s3_uri("https://bkt/a")


def _doc(**changes) -> dict:
    doc = {"version": SPEC_VERSION, "rule": "r", "kind": "run", "jobid": 3}
    return doc | changes


def test_parse_spec_checks():
    assert spec.parse_spec(json.dumps(_doc()), "s3://b/k")["rule"] == "r"
    with pytest.raises(JobFailure, match="version 99"):
        spec.parse_spec(json.dumps(_doc(version=99)), "s3://b/k")
    with pytest.raises(JobFailure, match="kind"):
        spec.parse_spec(json.dumps(_doc(kind="cwl")), "s3://b/k")
    with pytest.raises(JobFailure, match="not valid JSON"):
        spec.parse_spec("{", "s3://b/k")


def test_namespace_from_spec():
    doc = _doc(
        input={"items": [{"path": "i.txt", "uri": "s3://b/i.txt"}], "names": {"i": [0, None]}},
        params={"items": [0.5], "names": {"alpha": [0, None]}},
        wildcards={"items": ["01"], "names": {"subject": [0, None]}},
        threads=2,
        config={"k": 1},
    )
    ns = Namespace.from_spec(doc)
    assert ns.input.i == "i.txt" and ns.params.alpha == 0.5 and ns.wildcards.subject == "01"
    assert ns.output == [] and ns.log == [] and ns.threads == 2
    assert set(ns.run_arguments()) == {
        "input", "output", "params", "wildcards", "threads", "resources", "log", "rule", "jobid",
    }  # fmt: skip
    assert ns.variables()["config"] == {"k": 1}


@pytest.mark.parametrize(("threads", "expected"), [(0, 0), (None, 1), (8, 8)])
def test_namespace_keeps_the_rules_thread_count(threads, expected):
    doc = _doc() if threads is None else _doc(threads=threads)
    assert Namespace.from_spec(doc).threads == expected


@pytest.mark.parametrize("threads", [-1, "4", 2.5, True])
def test_a_thread_count_that_is_not_one_is_refused(threads):
    with pytest.raises(JobFailure, match="threads"):
        spec.parse_spec(json.dumps(_doc(threads=threads)), "s3://b/k")


# --- staging plans, outputs, folders ------------------------------------------------------


def test_download_plan_directory_keys():
    item = spec.FileItem("in/dir", "s3://b/pre/dir/", directory=True)
    keys = ["pre/dir/", "pre/dir/a.txt", "pre/dir/sub/b.txt", "pre/dir/sub/"]
    plan = staging.download_plan(item, keys)
    assert [(t.key, t.path) for t in plan] == [
        ("pre/dir/a.txt", "in/dir/a.txt"),
        ("pre/dir/sub/b.txt", "in/dir/sub/b.txt"),
    ]
    with pytest.raises(JobFailure, match="'..' part"):
        staging.download_plan(item, ["pre/dir/../../etc/x"])


def test_upload_plan_walks_directories(tmp_path):
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "s" / "b").write_text("b")
    (tmp_path / "d" / "a").write_text("a")
    plan = staging.upload_plan(spec.FileItem(str(tmp_path / "d"), "s3://b/o/d", directory=True))
    assert [t.key for t in plan] == ["o/d/a", "o/d/s/b"]
    single = staging.upload_plan(spec.FileItem(str(tmp_path / "d" / "a"), "s3://b/o/a"))
    assert [(t.bucket, t.key) for t in single] == [("b", "o/a")]


def test_output_problems(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    items = [
        spec.FileItem(str(tmp_path / "f"), None),
        spec.FileItem(str(tmp_path / "gone"), None),
        spec.FileItem(str(tmp_path / "d"), None),
        spec.FileItem(str(tmp_path / "f"), None, directory=True),
    ]
    problems = output_problems(items)
    assert len(problems) == 3
    assert "gone (missing)" in problems[0]


def test_parent_folders():
    doc = _doc(
        input={"items": [{"path": "a/b.txt"}, {"path": "in/dir", "directory": True}]},
        output={"items": [{"path": "o.txt"}, {"path": "out/deep/x"}]},
        log={"items": [{"path": "logs/r.log"}]},
        benchmark={"path": "bench/r.tsv", "uri": "s3://b/bench/r.tsv"},
    )
    assert parent_folders(doc) == {"a", "in", "in/dir", "out/deep", "logs", "bench"}


# --- benchmark, script context ------------------------------------------------------------


def test_benchmark_tsv():
    start = benchmark.Usage(wall=10.0, cpu=1.0, max_rss_kib=2048, blocks_in=0, blocks_out=0)
    end = benchmark.Usage(wall=3735.5, cpu=3.5, max_rss_kib=4096, blocks_in=2048, blocks_out=4096)
    header, row = benchmark.to_tsv(benchmark.record(start, end)).splitlines()
    assert (
        header == "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    )
    assert row.split("\t") == [
        "3725.50",
        "1:02:05",
        "4.00",
        "NA",
        "NA",
        "NA",
        "1.00",
        "2.00",
        "NA",
        "2.50",
    ]


def test_benchmark_measures_children():
    start = benchmark.Usage.now()
    subprocess.run(["python3", "-c", "sum(range(3_000_000))"], check=True)
    end = benchmark.Usage.now()
    row = benchmark.record(start, end)
    assert row[0] > 0 and row[9] > 0 and row[2] > 0


def test_log_fmt_shell():
    ns = Namespace.from_spec(_doc(log={"items": [{"path": "l.log"}]}))
    context = ScriptContext(ns, "/x")
    assert context.log_fmt_shell() == " > l.log 2>&1"
    assert context.log_fmt_shell(stderr=False, append=True) == " >> l.log"
    assert context.log_fmt_shell(stdout=False) == " 2> l.log"
    assert ScriptContext(Namespace.from_spec(_doc()), "/x").log_fmt_shell() == ""


def test_quote_matches_shlex(names):
    assert format_command("{input:q}", (), names) == " ".join(map(shlex.quote, names["input"]))


def test_benchmark_tsv_with_a_row_per_repeat():
    start = benchmark.Usage(wall=0.0, cpu=0.0, max_rss_kib=1024, blocks_in=0, blocks_out=0)
    end = benchmark.Usage(wall=2.0, cpu=1.0, max_rss_kib=1024, blocks_in=0, blocks_out=0)
    rows = [benchmark.record(start, end)] * 3
    lines = benchmark.to_tsv(*rows).splitlines()
    assert len(lines) == 4 and lines[1] == lines[3]


@pytest.mark.parametrize(("bench", "count"), [(None, 1), ({"path": "b"}, 1), ({"repeat": 3}, 3)])
def test_benchmark_repeats(bench, count):
    assert spec.benchmark_repeats({"benchmark": bench}) == count


@pytest.mark.parametrize("repeat", [0, -1, "3", True, 1001])
def test_benchmark_repeats_out_of_range_are_refused(repeat):
    with pytest.raises(ValueError, match="repeat count"):
        spec.benchmark_repeats({"benchmark": {"repeat": repeat}})


def test_touch_outputs_are_created_or_touched(tmp_path):
    made = tmp_path / "made.flag"
    old = tmp_path / "old.flag"
    old.write_text("kept")
    os.utime(old, (1, 1))
    items = [
        spec.FileItem(str(made), None, touch=True),
        spec.FileItem(str(old), None, touch=True),
        spec.FileItem(str(tmp_path / "plain.txt"), None),
    ]
    touch_outputs(items)
    assert made.read_bytes() == b"" and old.read_text() == "kept"
    assert old.stat().st_mtime > 1
    assert not (tmp_path / "plain.txt").exists()
    parsed = spec.file_items({"output": {"items": [{"path": "f", "touch": True}]}}, "output")
    assert parsed[0].touch


def test_ensured_outputs_fail_when_empty_or_not_the_checksum(tmp_path):
    empty, right, wrong = tmp_path / "empty.txt", tmp_path / "right.txt", tmp_path / "wrong.txt"
    empty.write_bytes(b"")
    right.write_bytes(b"data\n")
    wrong.write_bytes(b"other\n")
    digest = "sha256:" + hashlib.sha256(b"data\n").hexdigest()
    items = [
        spec.FileItem(str(empty), None, non_empty=True),
        spec.FileItem(str(right), None, non_empty=True, checksum=digest),
        spec.FileItem(str(wrong), None, checksum=digest),
    ]
    assert output_problems(items) == [
        f"{empty} (empty, but marked ensure(non_empty=True))",
        f"{wrong} (its checksum is not ensure()'s {digest})",
    ]
    section = {"output": {"items": [{"path": "f", "non_empty": True, "checksum": digest}]}}
    (parsed,) = spec.file_items(section, "output")
    assert parsed.non_empty and parsed.checksum == digest


@pytest.mark.parametrize("checksum", ["sha512:" + "a" * 128, "sha256:xyz", 5, "sha256:" + "A" * 64])
def test_a_checksum_that_is_not_one_fails_the_job(checksum):
    section = {"output": {"items": [{"path": "f", "checksum": checksum}]}}
    with pytest.raises(JobFailure, match="checksum"):
        spec.file_items(section, "output")


def test_report_href_gives_the_links_snakemakes_own_gives():
    from snakemake.iocontainers import ReportHref as SnakemakeHref

    from snakemake_executor_knot.runtime.script import ReportHref

    cases = [
        lambda h: h("test.html").url_args(foo=4, q="a b").anchor("bar"),
        lambda h: h("subdir").child_path("subdir/test3.html"),
        lambda h: h("subdir").child_path("subdir/x").child_path("subdir/x/y.html"),
        lambda h: h("out/a b.html").anchor("x y"),
    ]
    for case in cases:
        assert str(case(ReportHref)) == str(case(SnakemakeHref))
