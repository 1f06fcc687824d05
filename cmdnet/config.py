"""The configuration: `config.yaml` owns every default, `schemas/config.schema.yaml` every type and range.

The library reads both through `cmdnet/default_config.yaml` and `cmdnet/config.schema.yaml` (links to the
repository's files, copied into an installed package), so a dataclass of settings takes its defaults from
`config.yaml` (`config_default("mvi.training.epochs")`) instead of restating them. `parse_section` is the one strict
parser of a config section into such a dataclass: an unknown key is an error naming it, as the schema makes it
for the workflow.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cmdnet.errors import CmdnetError

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "default_config.yaml"
SCHEMA = HERE / "config.schema.yaml"

T = TypeVar("T")


class ConfigError(CmdnetError):
    """A configuration value that cannot be used; the message names the key."""


@functools.cache
def _defaults() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def default_config() -> dict:
    """A fresh copy of `config.yaml`."""
    return copy.deepcopy(_defaults())


def lookup(config: Mapping, key: str) -> Any:
    """The value at a dotted key (`"mvi.training.epochs"`)."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"config has no key {key!r}")
        value = value[part]
    return value


def config_default(key: str) -> Any:
    """`config.yaml`'s value at a dotted key: the default of a settings field."""
    value = copy.deepcopy(lookup(_defaults(), key))
    return tuple(value) if isinstance(value, list) else value


def default_field(key: str) -> Any:
    """A dataclass field whose default is `config.yaml`'s value at `key`."""
    value = config_default(key)
    if isinstance(value, dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(value))
    return dataclasses.field(default=value)


def section(key: str, **overrides: Any) -> dict:
    """A copy of `config.yaml`'s section at `key` with some values replaced (for library callers and tests)."""
    values = copy.deepcopy(lookup(_defaults(), key))
    unknown = set(overrides) - set(values)
    if unknown:
        raise ConfigError(f"config {key}: unknown key(s) {', '.join(sorted(unknown))}")
    return {**values, **overrides}


def deep_merge(base: Mapping, override: Mapping | None) -> dict:
    """`base` with `override`'s values put in, dicts merged key by key (how `--configfile` overrides work)."""
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) \
            else copy.deepcopy(value)
    return out


def schema_problems(config: Mapping) -> list[str]:
    """Every place where `config` breaks the schema, one line each naming the key, the value and the rule."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(map(str, e.absolute_path)))
    return [describe_schema_error(e) for e in errors]


def validate(config: Mapping) -> None:
    """Check a whole configuration against the schema; a failure names the key, the rule and the value."""
    problems = schema_problems(config)
    if problems:
        raise ConfigError("; ".join(problems[:5]))


def describe_schema_error(error) -> str:
    """One line for a jsonschema error: the dotted key, the value and what was expected."""
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        return f"config {key}: {error.message}"
    if error.validator in ("oneOf", "anyOf"):
        return f"config {key} = {error.instance!r}: not one of the allowed forms"
    expected = {"type": f"expected {error.validator_value}", "enum": f"expected one of {error.validator_value}",
                "minimum": f"expected >= {error.validator_value}", "maximum": f"expected <= {error.validator_value}",
                "exclusiveMinimum": f"expected > {error.validator_value}",
                "required": error.message}.get(error.validator, error.message)
    return f"config {key} = {error.instance!r}: {expected}" if error.validator != "required" \
        else f"config {key}: {expected}"


def read_config(*files: str | Path) -> dict:
    """`config.yaml` with the given files merged over it in order, as `snakemake --configfile A B` does."""
    config = default_config()
    for path in map(Path, files):
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            detail = err.strerror if isinstance(err, OSError) else str(err).splitlines()[0]
            raise ConfigError(f"cannot read config file {path} ({detail})") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path} must hold a mapping of keys")
        config = deep_merge(config, loaded)
    return config


def load_config(*files: str | Path) -> dict:
    """`read_config`, validated against the schema."""
    config = read_config(*files)
    validate(config)
    return config


def parse_section(cls: type[T], values: Mapping[str, Any] | None, section_name: str) -> T:
    """A settings dataclass from a config section; unknown keys are an error naming them and the known ones."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"config {section_name}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(fields))}")
    missing = sorted(name for name, f in fields.items() if name not in values
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"config {section_name}: missing key(s) {', '.join(missing)}")
    return cls(**values)
