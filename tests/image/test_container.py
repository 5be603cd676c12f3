"""A rule's own container: its reference, the bundled interpreter in its Dockerfile, apt
packages, and the workflow's source files as the last layer (all pure)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from types import SimpleNamespace

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image.apt import (
    apt_block,
    check_no_container,
    parse_apt,
    parse_simulation,
)
from snakemake_executor_knot.image.base import BaseImage
from snakemake_executor_knot.image.container import (
    container_reference,
    job_container,
    per_job_container,
)
from snakemake_executor_knot.image.dockerfile import (
    ImageSpec,
    build_context,
    image_tag,
    render_dockerfile,
)
from snakemake_executor_knot.image.sources import FILE_CAP, workflow_files
from snakemake_executor_knot.lock.format import Lock, RuleLock, read_lock, write_lock

DIGEST = "@sha256:" + "a" * 64


def spec(**changes) -> ImageSpec:
    fields = {"rule": "fit", "base_image": "knot-base:py3.11", "requirements": ("six==1.17.0",)}
    return ImageSpec(**{**fields, **changes})


@pytest.mark.parametrize(
    ("uri", "reference"),
    [
        ("docker://bash", "bash"),
        ("docker://quay.io/bio/samtools:1.19--h50ea8bc_0", "quay.io/bio/samtools:1.19--h50ea8bc_0"),
        ("ubuntu:24.04", "ubuntu:24.04"),
        (f"docker://localhost:5000/team/tool{DIGEST}", f"localhost:5000/team/tool{DIGEST}"),
    ],
)  # fmt: skip
def test_container_reference_drops_the_docker_scheme(uri, reference):
    assert container_reference(uri, "r") == reference


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("shub://vsoch/hello-world", "not Singularity"),
        ("library://sylabs/examples/ruby", "not Singularity"),
        ("images/tool.sif", "Singularity image file"),
        ("docker://Bad Name", "not a valid Docker image reference"),
        ("docker://tool:{version}", "wildcards were not filled in"),
    ],
)
def test_container_reference_refuses_what_docker_cannot_build_from(uri, words):
    with pytest.raises(RuleError) as raised:
        container_reference(uri, "align")
    message = str(raised.value)
    assert "Rule 'align'" in message and uri in message and words in message
    assert "docker://<repository>" in message  # what to do


def test_a_per_job_container_is_formatted_for_each_job():
    rule = SimpleNamespace(name="greet", container_img="docker://img-{flavour}:1")
    job = SimpleNamespace(rule=rule, container_img_url="docker://img-a:1")
    assert per_job_container(rule)
    assert job_container(job) == "img-a:1"
    static = SimpleNamespace(name="s", container_img=False)
    assert not per_job_container(static)
    assert job_container(SimpleNamespace(rule=static)) is None


def test_a_container_function_must_return_a_string():
    rule = SimpleNamespace(name="greet", container_img=lambda wildcards: 3)
    with pytest.raises(RuleError, match="Rule 'greet': its container function returned 3"):
        job_container(SimpleNamespace(rule=rule, container_img_url=3))


def test_a_container_image_gets_knots_interpreter_from_a_first_stage():
    text = render_dockerfile(
        spec(base_image="tool:1", from_container=True, interpreter_image="knot-base:py3.11"),
        boto3_version="1.35.0",
    )
    stage, final = text.split("\nFROM tool:1\n")
    assert stage.startswith("FROM knot-base:py3.11 AS knot-python\n")
    # The venv and requirements are made with the base's python, in the stage.
    assert "python3 -m venv /opt/knot/venv" in stage and "requirements.txt" in stage
    assert "--library-path" in stage and "ld.so" in stage
    # The container itself is never asked for python3, and gets the bundle.
    assert "python3" not in final.split("COPY --from")[0]
    assert "COPY --from=knot-python /opt/knot/ /opt/knot/" in final
    assert "PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}:" in final


def test_the_interpreter_base_is_part_of_the_tag():
    one = spec(base_image="tool:1", from_container=True, interpreter_image="knot-base:py3.11")
    other = spec(base_image="tool:1", from_container=True, interpreter_image="knot-base:py3.12")
    assert image_tag(one, "1.35.0") != image_tag(other, "1.35.0")


# --- apt ----------------------------------------------------------------------------------


def test_apt_packages_are_sorted_and_get_their_own_layer_after_the_user():
    packages = parse_apt("mrtrix3, dcm2niix jq=1.6-2.1", "r")
    assert packages == ("dcm2niix", "jq=1.6-2.1", "mrtrix3")
    text = render_dockerfile(spec(apt=packages), boto3_version="1.35.0")
    assert text.index("chown knot /work") < text.index("apt-get install") < text.index("venv")
    assert "--no-install-recommends dcm2niix jq=1.6-2.1 mrtrix3 &&" in text
    assert apt_block(()) == ""


@pytest.mark.parametrize("value", ["jq; rm -rf /", "Jq", 3])
def test_bad_apt_values_name_the_rule(value):
    with pytest.raises(RuleError, match="Rule 'tools': .*knot_apt"):
        parse_apt(value, "tools")


def test_apt_with_a_container_is_refused():
    with pytest.raises(RuleError, match="Rule 'tools' has both resources: knot_apt and a"):
        check_no_container(("jq",), "ubuntu:24.04", "tools")
    check_no_container((), "ubuntu:24.04", "tools")


# --- the workflow's source files ----------------------------------------------------------


def _tree(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_source_files_without_git_skip_hidden_folders_data_and_large_files(tmp_path, caplog):
    _tree(
        tmp_path,
        {
            "Snakefile": b"rule a: ...\n",
            "scripts/fit.py": b"print(1)\n",
            ".snakemake/log/x": b"log",
            "scripts/__pycache__/fit.pyc": b"\0",
            "data/in.txt": b"input",
            "out/result.txt": b"output",
            "big.bin": b"\0" * (FILE_CAP + 1),
        },
    )
    excluded = ["data/in.txt", str(tmp_path / "out")]  # a relative input, an absolute dir
    files = dict(workflow_files(tmp_path, tmp_path, excluded))
    assert files == {"Snakefile": b"rule a: ...\n", "scripts/fit.py": b"print(1)\n"}
    assert "big.bin" in caplog.text


def test_source_files_of_a_git_repository_are_the_tracked_ones(tmp_path):
    _tree(tmp_path, {"Snakefile": b"s\n", "bin/tool.sh": b"echo\n", "notes.txt": b"n\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "Snakefile", "bin/tool.sh"], cwd=tmp_path, check=True)
    assert [name for name, _ in workflow_files(tmp_path, tmp_path, [])] == [
        "Snakefile",
        "bin/tool.sh",
    ]


def test_source_files_are_the_last_layer_at_their_relative_paths(tmp_path):
    image = spec(workdir_files=(("scripts/fit.py", b"print(1)\n"),))
    text = render_dockerfile(image, boto3_version="1.35.0")
    last_copy = [line for line in text.splitlines() if line.startswith("COPY")][-1]
    assert last_copy == "COPY --chown=1000:1000 workdir/ /work/"
    with tarfile.open(fileobj=io.BytesIO(build_context(image, "1.35.0"))) as tar:
        assert tar.extractfile("workdir/scripts/fit.py").read() == b"print(1)\n"
    edited = spec(workdir_files=(("scripts/fit.py", b"print(2)\n"),))
    assert image_tag(edited, "1.35.0") != image_tag(image, "1.35.0")


def test_empty_folders_of_the_workflow_are_shipped_as_folders(tmp_path):
    _tree(tmp_path, {"Snakefile": b"s\n"})
    (tmp_path / "an_empty_dir").mkdir()
    (tmp_path / "out" / "empty").mkdir(parents=True)  # a directory() output: not shipped
    (tmp_path / ".snakemake" / "empty").mkdir(parents=True)
    files = workflow_files(tmp_path, tmp_path, [str(tmp_path / "out" / "empty")])
    assert files == (("Snakefile", b"s\n"), ("an_empty_dir/", b""))
    image = spec(workdir_files=files)
    with tarfile.open(fileobj=io.BytesIO(build_context(image, "1.35.0"))) as tar:
        assert tar.getmember("workdir/an_empty_dir").isdir()
        assert [m.name for m in tar.getmembers() if "an_empty_dir" in m.name] == [
            "workdir/an_empty_dir"
        ]
    assert image_tag(image, "1.35.0") != image_tag(spec(workdir_files=files[:1]), "1.35.0")


@pytest.mark.parametrize("path", ["/etc/passwd", "../up", "a/../../b", "a//", "/"])
def test_source_file_paths_stay_relative(path):
    with pytest.raises(ValueError, match="must be normalised and relative"):
        spec(workdir_files=((path, b""),))


SIMULATION = """\
NOTE: This is only a simulation!
Inst libonig5 (6.9.8-1 Debian:12.8/stable [amd64])
Inst libjq1 (1.6-2.1 Debian:12.8/stable [amd64])
Inst jq [1.6-2] (1.6-2.1 Debian:12.8/stable [amd64])
Conf libonig5 (6.9.8-1 Debian:12.8/stable [amd64])
"""


def test_apt_simulation_gives_the_closure_pinned():
    assert parse_simulation(SIMULATION, "r") == ("jq=1.6-2.1", "libjq1=1.6-2.1", "libonig5=6.9.8-1")
    with pytest.raises(RuleError, match="Rule 'r': apt-get found nothing to install"):
        parse_simulation("0 upgraded, 0 newly installed\n", "r")


def test_a_locked_rules_apt_pins_survive_the_lock_file(tmp_path):
    lock = Lock(
        "0", "linux/amd64", "3.11", BaseImage("b", "sha256:" + "0" * 64),
        {"a": RuleLock((), "s1", ("jq=1.6-2.1",)), "b": RuleLock((), "s2")},
    )  # fmt: skip
    write_lock(tmp_path / "knot.lock", lock)
    assert read_lock(tmp_path / "knot.lock") == lock
    assert "apt" not in (tmp_path / "knot.lock").read_text().split("  b:")[1]
