"""Params and config travel in job specs and the run's config object, which every job of the
stack can read: the globals' secret check (rules/secrets.py) covers them too, with the same
way out (--knot-public-globals)."""

from __future__ import annotations

import pytest
from snakemake.iocontainers import Params

from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.rules.secrets import config_secret, param_secret, secret_name
from snakemake_executor_knot.run.plans import check_config_secrets, check_param_secrets

from ..conftest import fake_job, named

SECRET = "s3cr3t-value-for-tests"
ENVIRON = {"KNOT_TEST_SECRET": SECRET, "HOME": "/home/someone-long"}


def _params(*positional, **named_values) -> Params:
    params = named(Params, named_values)
    for value in positional:
        params.append(value)
    return params


@pytest.mark.parametrize(
    ("params", "where", "reason"),
    [
        (
            _params(token=SECRET),
            "param 'token'",
            "equals the environment variable KNOT_TEST_SECRET",
        ),
        (_params(nested={"a": [1, SECRET]}), "param 'nested'", "KNOT_TEST_SECRET"),
        (_params(api_key="abc"), "param 'api_key'", "its name says it holds a secret"),
        (_params("plain", SECRET), "param #1", "equals the environment variable"),
    ],
)
def test_a_secret_looking_param_is_found_and_named(params, where, reason):
    found = param_secret(params, frozenset(), ENVIRON)
    assert found is not None and found.where == where and reason in found.reason


@pytest.mark.parametrize(
    "name", ["api_key", "apiKey", "APIKEY", "ssh-key", "aws_access_key_id", "Token", "db_passwd"]
)
def test_names_that_say_secret(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", ["keyval", "keyword", "monkey", "keys", "turkey_count", "k"])
def test_names_with_key_inside_another_word_say_nothing(name):
    assert not secret_name(name)


def test_plain_params_and_public_ones_pass():
    plain = _params(n=3, label="words", home="/home/someone-long", sort_key=7, keyval="a=b")
    assert param_secret(plain, frozenset(), ENVIRON) is None
    public = _params(sort_key="name", token=SECRET)
    assert param_secret(public, frozenset({"sort_key", "token"}), ENVIRON) is None


@pytest.mark.parametrize(
    ("config", "where", "name"),
    [
        (
            {"aws": {"region": "x", "secret_key": "abc"}},
            "config['aws']['secret_key']",
            "secret_key",
        ),
        ({"samples": ["a", "b", SECRET]}, "config['samples'][2]", "samples"),
        ({"credentials": {"user": "me", "pass": "word"}}, "config['credentials']", "credentials"),
        ({"db": {"PASSWORD": ["x"]}}, "config['db']['PASSWORD'][0]", "PASSWORD"),
    ],
)
def test_a_secret_looking_config_entry_is_named_by_its_key_path(config, where, name):
    found = config_secret(config, frozenset(), ENVIRON)
    assert found is not None and (found.where, found.name) == (where, name)


def test_a_plain_config_and_public_keys_pass():
    plain = {"samples": ["a", "b"], "min_length": 3, "sort_key": 1, "outdir": "/home/someone-long"}
    assert config_secret(plain, frozenset(), ENVIRON) is None
    public = {"sort_key": "name", "aws": {"secret_key": "abc"}}
    assert config_secret(public, frozenset({"sort_key", "secret_key"}), ENVIRON) is None
    assert config_secret(public, frozenset({"sort_key", "aws"}), ENVIRON) is None


def test_a_secret_param_is_refused_naming_the_rule_the_param_and_the_way_out(monkeypatch):
    monkeypatch.setenv("KNOT_TEST_SECRET", SECRET)
    job = fake_job(rule="upload", params={"token": SECRET})
    with pytest.raises(RuleError) as caught:
        check_param_secrets([job], KnotConfig())
    message = str(caught.value)
    assert message.startswith("Rule 'upload' has the param 'token', which looks like a secret")
    assert "equals the environment variable KNOT_TEST_SECRET" in message
    assert 'envvars: "KNOT_TEST_SECRET"' in message
    assert "--knot-public-globals token" in message and SECRET not in message
    check_param_secrets([job], KnotConfig(public_globals=frozenset({"token"})))


def test_a_secret_config_entry_is_refused_naming_the_key_path_and_the_way_out():
    config = {"aws": {"secret_key": "abc"}, "samples": ["a"]}
    with pytest.raises(RuleError) as caught:
        check_config_secrets(config, "align", KnotConfig())
    message = str(caught.value)
    assert "entry config['aws']['secret_key'], sent to the jobs of rule 'align'" in message
    assert "its name says it holds a secret" in message
    assert 'envvars: "SECRET_KEY"' in message and "--knot-public-globals secret_key" in message
    check_config_secrets(config, "align", KnotConfig(public_globals=frozenset({"secret_key"})))
