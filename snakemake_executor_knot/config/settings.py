"""Settings: the ``--knot-*`` flags (also ``SNAKEMAKE_KNOT_*`` and profile keys), and the
parsed, validated form the rest of knot works with."""

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field

from snakemake_interface_executor_plugins.settings import (
    CommonSettings,
    ExecutorSettingsBase,
)

from ..aws.tags import KNOT_TAGS, MAX_KEY, MAX_TAGS, MAX_USER_TAGS, MAX_VALUE
from ..emulator.state import emulator_state
from ..errors import ConfigError
from .classes import (
    DEFAULT_CLASS,
    GRAMMAR,
    MAX_ROOT_VOLUME_GB,
    ComputeClass,
    check_gpu_split,
    parse_classes,
)

# can_transfer_local_files: in local mode knot stages inputs to S3 itself.
# job_deploy_sources is off: the rule's code travels inside its image, not as a source archive.
common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
    can_transfer_local_files=True,
)

DEFAULT_STACK = "knot"
DEFAULT_FILES_EXPIRY_DAYS = 30


def default_base_image() -> str:
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def _opt(help_text: str, **extra) -> dict:
    return {"help": help_text, "env_var": True, "required": False, **extra}


def _text(help_text: str) -> dict:
    """An optional string flag; argparse needs a callable type, not ``str | None``."""
    return _opt(help_text, type=str)


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    region: str | None = field(
        default=None,
        metadata=_text("AWS region. Default: AWS_REGION, AWS_DEFAULT_REGION or the profile's."),
    )
    profile: str | None = field(
        default=None, metadata=_text("AWS profile from ~/.aws/config. Default: AWS_PROFILE.")
    )
    endpoint_url: str | None = field(
        default=None,
        metadata=_text("AWS endpoint URL for every service. Default: AWS_ENDPOINT_URL."),
    )
    emulator: bool = field(
        default=False,
        metadata=_opt("Use the local emulator started by 'knot emulator start'. Default: off."),
    )
    stack_name: str = field(
        default=DEFAULT_STACK,
        metadata=_opt(
            "Name of the shared CloudFormation stack holding knot's infrastructure. "
            f"Default: {DEFAULT_STACK}."
        ),
    )
    instance_types: str = field(
        default="optimal",
        metadata=_opt(
            "Comma-separated EC2 instance types or families for compute environments. "
            "Default: optimal, which lets Batch pick current general purpose, compute- and "
            "memory-optimized x86 types (the c, m and r families) to fit the queued jobs."
        ),
    )
    min_vcpus: int = field(
        default=0,
        metadata=_opt(
            "Minimum vCPUs kept running in each compute environment. Default: 0 (scale to "
            "zero when idle)."
        ),
    )
    max_vcpus: int = field(
        default=256, metadata=_opt("Maximum vCPUs of each compute environment. Default: 256.")
    )
    # Snakemake turns a bool flag defaulting to True into an unprefixed "--no-<name>", so
    # every bool here defaults to False and names the non-default choice.
    on_demand: bool = field(
        default=False,
        metadata=_opt("Use on-demand instances only. Default: off (spot first, on-demand after)."),
    )
    spot_bid_percentage: int = field(
        default=100,
        metadata=_opt("Maximum spot price, as a percentage of on-demand. Default: 100."),
    )
    spot_retries: int = field(
        default=3, metadata=_opt("Retries after a spot interruption (Host EC2* exits). Default: 3.")
    )
    ami: str | None = field(
        default=None,
        metadata=_text("AMI id for compute instances. Default: the ECS-optimized AMI."),
    )
    root_volume_gb: int = field(
        default=30, metadata=_opt("Root volume size of compute instances, in GiB. Default: 30.")
    )
    buckets: str | None = field(
        default=None,
        metadata=_text(
            "Comma-separated extra S3 buckets the job role may read and write. Default: none."
        ),
    )
    tags: str | None = field(
        default=None,
        metadata=_text(
            "Comma-separated key=value tags for every resource knot creates. Default: none."
        ),
    )
    base_image: str | None = field(
        default=None,
        metadata=_text("Base image of rule images. Default: python:<local major.minor>-slim."),
    )
    single_jobs: bool = field(
        default=False,
        metadata=_opt(
            "Submit each job on its own instead of grouping them into array jobs. Default: off."
        ),
    )
    submit_rate: float = field(
        default=20.0,
        metadata=_opt(
            "Most Batch submissions per second (AWS allows about 50 per account). Default: 20."
        ),
    )
    public_globals: str | None = field(
        default=None,
        metadata=_text(
            "Comma-separated names of Snakefile globals, params and config keys that look "
            "like secrets but are not; knot refuses to write secret-looking ones into rule "
            "images, job specs or the run's config object otherwise. Default: none."
        ),
    )
    locked: bool = field(
        default=False,
        metadata=_opt(
            "Require knot.lock next to the Snakefile to match the workflow: a changed, added "
            "or removed rule is an error instead of a refresh of the lock. Default: off."
        ),
    )
    files_expiry_days: int = field(
        default=DEFAULT_FILES_EXPIRY_DAYS,
        metadata=_opt(
            "Days after which knot's copies of local files in its bucket expire. "
            f"Default: {DEFAULT_FILES_EXPIRY_DAYS}."
        ),
    )
    compute_classes: str | None = field(
        default=None,
        metadata=_text(
            f"Named compute classes a rule picks with resources: knot_class=NAME, as {GRAMMAR} "
            "(e.g. 'gpu=g5,g4dn; bigdisk=m6i:500GB'). Left-out options take the stack-wide "
            "flags; 'default' (the stack-wide flags) always exists. Default: none besides it."
        ),
    )
    subnets: str | None = field(
        default=None,
        metadata=_text(
            "Comma-separated ids of existing subnets (one VPC, private: no public IPs on "
            "launch) for the compute instances, instead of a VPC of knot's own; needs "
            "--knot-security-groups. The instances reach S3, ECR and CloudWatch Logs through "
            "the network's NAT or VPC endpoints. Default: none (knot makes a VPC)."
        ),
    )
    security_groups: str | None = field(
        default=None,
        metadata=_text(
            "Comma-separated ids of existing security groups, in the subnets' VPC, for the "
            "compute instances (with --knot-subnets). Default: none (knot makes one)."
        ),
    )
    budget: str | None = field(
        default=None,
        metadata=_text(
            "Most US dollars this run may spend: no new job is submitted once the spend so "
            "far plus the predicted cost of the jobs in flight would pass it (e.g. 25). "
            "Default: none (no budget)."
        ),
    )
    cfn_role: str | None = field(
        default=None,
        metadata=_text(
            "ARN of the CloudFormation service role that creates knot's stack (see 'knot "
            "infra service-role'). Default: that role if it exists, else your own identity."
        ),
    )


@dataclass(frozen=True)
class KnotConfig:
    """The settings parsed and checked, in the form the rest of knot uses."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    emulator: bool = False
    stack_name: str = DEFAULT_STACK
    instance_types: tuple[str, ...] = ("optimal",)
    min_vcpus: int = 0
    max_vcpus: int = 256
    spot: bool = True
    spot_bid_percentage: int = 100
    spot_retries: int = 3
    ami: str | None = None
    root_volume_gb: int = 30
    buckets: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    base_image: str | None = None  # None: the emulator's base image, else default_base_image()
    array_jobs: bool = True
    submit_rate: float = 20.0
    public_globals: frozenset[str] = frozenset()
    locked: bool = False  # --knot-locked: knot.lock must match, never refreshed
    files_expiry_days: int = DEFAULT_FILES_EXPIRY_DAYS
    cfn_role: str | None = None
    # An existing network (--knot-subnets, --knot-security-groups); empty: knot's own VPC.
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    budget_usd: float | None = None  # --knot-budget; None: no budget
    # The named classes besides ``default``, which the stack-wide fields above describe.
    classes: tuple[ComputeClass, ...] = ()
    # The default class's input cache (``cache=`` of a ``default`` entry), in GiB.
    cache_gb: int = 0

    @property
    def default_class(self) -> ComputeClass:
        return ComputeClass(
            DEFAULT_CLASS,
            self.instance_types,
            self.spot,
            self.root_volume_gb,
            self.max_vcpus,
            self.min_vcpus,
            self.cache_gb,
        )

    @property
    def compute_classes(self) -> tuple[ComputeClass, ...]:
        """Every class, ``default`` first."""
        return (self.default_class, *self.classes)

    def compute_class(self, name: str) -> ComputeClass | None:
        return next((c for c in self.compute_classes if c.name == name), None)

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)


def parse_settings(settings: ExecutorSettings | None) -> KnotConfig:
    """Check the flags and return a KnotConfig; raise ConfigError naming the flag."""
    if settings is None:
        return KnotConfig()
    _check_ranges(settings)
    config = KnotConfig(
        region=settings.region or None,
        profile=settings.profile or None,
        endpoint_url=settings.endpoint_url or None,
        emulator=bool(settings.emulator),
        stack_name=check_stack_name(settings.stack_name),
        instance_types=_split(settings.instance_types) or ("optimal",),
        min_vcpus=settings.min_vcpus,
        max_vcpus=settings.max_vcpus,
        spot=not settings.on_demand,
        spot_bid_percentage=settings.spot_bid_percentage,
        spot_retries=settings.spot_retries,
        ami=settings.ami or None,
        root_volume_gb=settings.root_volume_gb,
        buckets=parse_buckets(settings.buckets),
        tags=parse_tags(settings.tags),
        base_image=settings.base_image or None,
        array_jobs=not settings.single_jobs,
        submit_rate=settings.submit_rate,
        public_globals=frozenset(_split(settings.public_globals)),
        locked=bool(settings.locked),
        files_expiry_days=settings.files_expiry_days,
        cfn_role=settings.cfn_role or None,
        subnets=parse_ids(settings.subnets, "subnet", "--knot-subnets"),
        security_groups=parse_ids(settings.security_groups, "sg", "--knot-security-groups"),
        budget_usd=parse_budget(settings.budget),
    )
    if bool(config.subnets) != bool(config.security_groups):
        raise ConfigError(
            "--knot-subnets and --knot-security-groups go together: an existing network "
            "needs both the subnets and the security groups of its instances (give both, "
            "or neither for a VPC of knot's own)."
        )
    return with_classes(config, settings.compute_classes)


def parse_ids(value: str | None, kind: str, flag: str) -> tuple[str, ...]:
    """EC2 ids such as ``subnet-0abc...`` or ``sg-0abc...``, in order, without repeats."""
    ids = []
    for raw in _split(value):
        if not re.fullmatch(rf"{kind}-[0-9a-f]{{8,17}}", raw):
            raise ConfigError(
                f"{flag}: '{raw}' is not a {kind} id ({kind}- and 8 or 17 hex digits, e.g. "
                f"'{kind}-0123456789abcdef0'). List ids, comma-separated."
            )
        if raw not in ids:
            ids.append(raw)
    return tuple(ids)


def with_classes(config: KnotConfig, text: str | None) -> KnotConfig:
    """``config`` with the classes of ``--knot-compute-classes``; a ``default`` entry
    there overrides the stack-wide flags it sets."""
    classes = parse_classes(text, config.default_class)
    default = next((c for c in classes if c.name == DEFAULT_CLASS), config.default_class)
    check_gpu_split(default)
    if default.max_vcpus < config.min_vcpus:
        raise ConfigError(
            f"The default compute class allows {default.max_vcpus} vCPUs, fewer than "
            f"--knot-min-vcpus {config.min_vcpus}. Raise its maxvcpus or lower min-vcpus."
        )
    return dataclasses.replace(
        config,
        instance_types=default.instance_types,
        spot=default.spot,
        root_volume_gb=default.root_volume_gb,
        max_vcpus=default.max_vcpus,
        cache_gb=default.cache_gb,
        classes=tuple(c for c in classes if c.name != DEFAULT_CLASS),
    )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def parse_buckets(value: str | None) -> tuple[str, ...]:
    """--knot-buckets as plain bucket names (an ``s3://`` prefix is tolerated)."""
    names = []
    for raw in _split(value):
        name = raw.removeprefix("s3://").strip("/")
        problem = bucket_name_problem(name)
        if problem:
            raise ConfigError(
                f"--knot-buckets: '{raw}' is not an S3 bucket name ({problem}). List bucket "
                "names only, comma-separated (e.g. 'my-data,my-results')."
            )
        names.append(name)
    return tuple(names)


def parse_budget(value: str | None) -> float | None:
    """--knot-budget as US dollars: a positive, finite number, or None when not given."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().removeprefix("$")
    try:
        usd = float(text)
    except ValueError:
        usd = math.nan
    if not math.isfinite(usd) or usd <= 0:
        raise ConfigError(
            f"--knot-budget '{value}' is not a positive number of US dollars. Give the most "
            "this run may spend, e.g. --knot-budget 25 or --knot-budget 0.50."
        )
    return usd


def parse_tags(value: str | None) -> tuple[tuple[str, str], ...]:
    tags = []
    for item in _split(value):
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key:
            raise ConfigError(
                f"--knot-tags: '{item}' is not key=value. Write tags as 'team=neuro,project=hcp'."
            )
        _check_tag(key, val)
        tags.append((key, val))
    if len(dict(tags)) > MAX_USER_TAGS:
        raise ConfigError(
            f"--knot-tags: {len(dict(tags))} tags; AWS allows {MAX_TAGS} on a Batch job and "
            f"knot sets {MAX_TAGS - MAX_USER_TAGS} of its own, so give at most {MAX_USER_TAGS}."
        )
    return tuple(tags)


def _check_tag(key: str, value: str) -> None:
    # AWS reserves the aws: prefix in any case, and refuses such tags on every resource.
    if key.lower().startswith("aws:"):
        raise ConfigError(
            f"--knot-tags: the key '{key}' starts with 'aws:', which AWS reserves for its own "
            "tags. Rename the tag (e.g. 'team=neuro')."
        )
    if key in KNOT_TAGS:
        raise ConfigError(
            f"--knot-tags: knot sets the tag '{key}' on its jobs itself (cost allocation, "
            "adoption); pick another key."
        )
    if len(key) > MAX_KEY or len(value) > MAX_VALUE:
        raise ConfigError(
            f"--knot-tags: '{key[:40]}' is too long; AWS allows keys of up to 128 and values "
            "of up to 256 characters."
        )


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` breaks S3's rules for general purpose bucket names, or None."""
    if not _BUCKET.fullmatch(name):
        return (
            "a bucket name has 3 to 63 characters: lower-case letters, digits, dots and "
            "hyphens, beginning and ending with a letter or digit"
        )
    if ".." in name or _IP_ADDRESS.fullmatch(name):
        return "a bucket name has no two adjacent dots and is not an IP address"
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "the name starts or ends with a prefix or suffix S3 reserves"
    return None


def check_stack_name(
    name: str,
    flag: str = "--knot-stack-name",
    variable: str | None = "SNAKEMAKE_KNOT_STACK_NAME",
    legacy: bool = False,
) -> str:
    """A stack name knot can use: lower case only. The stack's ECR repository and the
    patterns that name its bucket in IAM policies are lower case (ECR and S3 allow
    nothing else), so two names that differ only in case would share them. ``legacy``
    lets an upper-case name through, to look at or remove a stack an older knot made."""
    upper = re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", name or "")
    if legacy and upper:
        return name
    if name and name.lower() != name and upper:
        raise ConfigError(
            f"{flag} '{name}'{f' ({variable})' if variable else ''} has upper-case letters; knot's "
            "stack names are lower case, since stacks whose names differ only in case would "
            f"share an ECR repository and a bucket. Use {flag} '{name.lower()}' (a stack an "
            f"older knot made under this name: 'knot --stack-name {name} infra down' removes "
            "it)."
        )
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,127}", name or ""):
        raise ConfigError(
            f"{flag} '{name}' is not a valid knot stack name: use a lower-case letter, then "
            "lower-case letters, digits and hyphens (at most 128)."
        )
    return name


# AWS's own limit: SubmitJob allows about 50 calls per second per account.
MAX_SUBMIT_RATE = 50.0


def _check_ranges(s: ExecutorSettings) -> None:
    problems = []
    if s.min_vcpus < 0 or s.max_vcpus < 1 or s.min_vcpus > s.max_vcpus:
        problems.append("--knot-min-vcpus/--knot-max-vcpus need 0 <= min <= max and max >= 1")
    if not 1 <= s.spot_bid_percentage <= 100:
        problems.append("--knot-spot-bid-percentage must be between 1 and 100")
    if not 0 <= s.spot_retries <= 9:
        problems.append("--knot-spot-retries must be between 0 and 9 (AWS allows 10 attempts)")
    if not 8 <= s.root_volume_gb <= MAX_ROOT_VOLUME_GB:
        problems.append(
            f"--knot-root-volume-gb must be between 8 and {MAX_ROOT_VOLUME_GB} (gp3's largest)"
        )
    if not 0 < s.submit_rate <= MAX_SUBMIT_RATE:
        problems.append(
            f"--knot-submit-rate must be above 0 and at most {MAX_SUBMIT_RATE:g} (AWS's limit)"
        )
    if s.files_expiry_days < 1:
        problems.append("--knot-files-expiry-days must be at least 1")
    if problems:
        raise ConfigError("Invalid knot settings: " + "; ".join(problems) + ".")


def resolve_base_image(config: KnotConfig) -> str:
    """What rule images build FROM: --knot-base-image, else the emulator's own base image
    under --knot-emulator, else python:<X.Y>-slim for the Python running knot."""
    if config.base_image:
        return config.base_image
    if config.emulator:
        return emulator_state().get("base_image") or default_base_image()
    return default_base_image()
