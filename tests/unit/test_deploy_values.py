"""deploy/values.yaml is valid for the Zero to JupyterHub chart it names, by the chart's own schema
(deploy/schema/, chart 4.4.0), checked as helm checks it: the chart's defaults merged with our
values. And it fails closed: a class list, no open login, no hub without the class password."""

from __future__ import annotations

import copy
import json
import re
import secrets
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from traitlets.config import Config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCHEMA = json.loads((DEPLOY / "schema" / "values.schema.json").read_text())
CHART_DEFAULTS = yaml.safe_load((DEPLOY / "schema" / "values.yaml").read_text())
VALUES = yaml.safe_load((DEPLOY / "values.yaml").read_text())


def merged(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """helm's merge of user values over a chart's defaults: maps merge, null removes a key."""
    result = dict(defaults)
    for key, value in values.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(merged(CHART_DEFAULTS, values))]


def test_the_charts_own_defaults_are_valid() -> None:
    """The schema and the defaults kept in deploy/schema/ belong together."""
    assert errors({}) == []


def test_values_yaml_is_valid_for_the_chart() -> None:
    assert errors(VALUES) == []


def with_change(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(VALUES)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


@pytest.mark.parametrize(("path", "value", "complaint"), [
    ("singleuser.cloudMetadata.blockWithIptable", False, "Additional properties are not allowed"),  # a typo
    ("singleuser.memory.limits", "1G", "Additional properties are not allowed"),
    ("singleuser.cpu.limit", "one core", "is not of type"),
    ("cull.enabled", "yes", "is not of type"),
    ("hub.config.authenticator_class", "dummy", "does not match any of the regexes"),  # not under a class
])
def test_a_wrong_key_or_value_is_rejected(path: str, value: Any, complaint: str) -> None:
    found = errors(with_change(path, value))
    assert found, f"the chart's schema accepted {path}: {value!r}"
    assert any(complaint in error for error in found), found


def test_only_the_class_list_may_log_in() -> None:
    config = VALUES["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "shared-password"
    assert config["Authenticator"]["allowed_users"], "an explicit class list"
    assert not config["Authenticator"].get("allow_all")
    assert "SharedPasswordAuthenticator" not in config, "no password is shipped"
    assert VALUES["singleuser"]["cloudMetadata"]["blockWithIptables"] is False
    assert CHART_DEFAULTS["singleuser"]["networkPolicy"]["enabled"], "the network policy blocks the metadata server"
    assert not CHART_DEFAULTS["singleuser"]["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"]


def hub_config(extra_values: dict[str, Any]) -> Config:
    """hub.config, then every hub.extraConfig snippet, as the chart's jupyterhub_config.py runs them."""
    hub = merged(VALUES, extra_values)["hub"]
    c = Config()
    for section, settings in hub["config"].items():
        c[section].update(settings)
    for _, snippet in sorted(hub["extraConfig"].items()):
        exec(snippet, {"c": c})  # noqa: S102 - the shipped snippet itself
    return c


def test_the_hub_does_not_start_without_the_class_password() -> None:
    with pytest.raises(SystemExit, match=re.escape("SharedPasswordAuthenticator.user_password is not set")):
        hub_config({})
    with pytest.raises(SystemExit, match="user_password is not set"):
        hub_config({"hub": {"config": {"SharedPasswordAuthenticator": {"user_password": ""}}}})
    password = secrets.token_urlsafe(12)
    given = {"hub": {"config": {"SharedPasswordAuthenticator": {"user_password": password}}}}
    assert hub_config(given).SharedPasswordAuthenticator.user_password == password
