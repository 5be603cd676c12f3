"""A group job's one image (image/group.py): the members' files each in a folder of their
own, the union of their requirements, and a refusal naming group and rules where they
cannot share one image."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image.dockerfile import ImageSpec
from snakemake_executor_knot.image.group import Member, group_image
from snakemake_executor_knot.runtime.contract import MEMBERS_DIR


def _image(rule, base="knot-base:py3.11", requirements=(), files=None, platform="linux/amd64"):
    files = files or {"/opt/knot/lib/knot_rule.py": f"# {rule}\n".encode()}
    return ImageSpec(rule=rule, base_image=base, requirements=requirements, files=files,
                     platform=platform)  # fmt: skip


def test_the_group_image_holds_each_rule_under_its_own_folder_and_all_requirements():
    parts = [
        Member("upper", _image("upper", requirements=("numpy==2.0.0",))),
        Member("report", _image("report", requirements=("pandas==2.2.0", "numpy==2.0.0"))),
    ]
    image = group_image("group:prep:report+upper", "prep", parts)
    assert image.rule == "group:prep:report+upper"
    assert image.requirements == ("numpy==2.0.0", "pandas==2.2.0")
    assert dict(image.files) == {
        f"{MEMBERS_DIR}/report/lib/knot_rule.py": b"# report\n",
        f"{MEMBERS_DIR}/upper/lib/knot_rule.py": b"# upper\n",
    }


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (Member("report", _image("report", base="rocker/r-ver:4")), "different container:"),
        (Member("report", _image("report", platform="linux/arm64")), "different platform"),
        (Member("report", None, "repo/img:1"), "knot_image=repo/img:1"),
        (Member("report", _image("report", requirements=("numpy==1.26.4",))), "numpy==1.26.4"),
    ],
)
def test_rules_that_cannot_share_one_image_are_refused_naming_group_and_rules(other, words):
    parts = [Member("upper", _image("upper", requirements=("numpy==2.0.0",))), other]
    with pytest.raises(RuleError) as caught:
        group_image("group:prep:report+upper", "prep", parts)
    message = str(caught.value)
    assert "Group 'prep' (rules report, upper) cannot run as one AWS Batch job" in message
    assert words in message and "remove 'group:'" in message
