"""Decode Stripe's form encoding (``metadata[key]=v``, ``lines[0][amount]=1``) into nested values.

The stripe library sends every v1 request this way, in the body of a POST and in the query string
of a GET. Leaves stay strings, as they do in Stripe's API: each endpoint coerces what it needs, so
that a wrong type becomes Stripe's own 400 with the parameter's name rather than a crash.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from billing.stripe_local.errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(raw: str) -> dict[str, Any]:
    """Nested dicts; a dict whose keys are all decimal indexes becomes a list in index order."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise invalid(f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid(f"Invalid nesting for parameter {key}", param=parts[0])
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# --- coercion, with Stripe's error for each wrong value ---------------------------------------

def as_int(params: dict, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=name) from None
    if minimum is not None and number < minimum:
        raise invalid(f"Invalid {name}: must be at least {minimum}", param=name)
    return number


def as_bool(params: dict, name: str, default: bool | None = None) -> bool | None:
    value = params.get(name)
    if value is None:
        return default
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {value}", param=name)


def as_str(params: dict, name: str, *, required: bool = False, choices: tuple[str, ...] | None = None) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name} must be a string", param=name)
    if choices is not None and value not in choices:
        raise invalid(f"Invalid {name}: must be one of {', '.join(choices)}", param=name)
    return value


def metadata(params: dict, current: dict[str, str] | None = None) -> dict[str, str]:
    """Stripe's metadata rules: merge keys; an empty value removes a key; ``metadata=`` clears."""
    result = dict(current or {})
    value = params.get("metadata")
    if value is None:
        return result
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid metadata: must be a hash", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"Invalid metadata[{key}]: must be a string", param=f"metadata[{key}]")
        if len(key) > 40:
            raise invalid("Metadata keys can be at most 40 characters", param=f"metadata[{key}]")
        if len(item) > 500:
            raise invalid("Metadata values can be at most 500 characters", param=f"metadata[{key}]")
        if item == "":
            result.pop(key, None)
        else:
            result[key] = item
    if len(result) > 50:
        raise invalid("Metadata can have at most 50 keys", param="metadata")
    return result


def created_filter(params: dict, name: str = "created"):
    """``created=123`` or ``created[gte]=..&created[lt]=..`` -> a predicate over epoch seconds."""
    value = params.get(name)
    if value is None:
        return lambda _t: True
    if isinstance(value, str):
        exact = as_int(params, name)
        return lambda t: t == exact
    bounds = {}
    for op in ("gt", "gte", "lt", "lte"):
        if op in value:
            bounds[op] = as_int(value, op)
    unknown = set(value) - {"gt", "gte", "lt", "lte"}
    if unknown:
        raise invalid(f"Received unknown parameter: {name}[{sorted(unknown)[0]}]", param=name)

    def test(t: int) -> bool:
        return (("gt" not in bounds or t > bounds["gt"]) and ("gte" not in bounds or t >= bounds["gte"])
                and ("lt" not in bounds or t < bounds["lt"]) and ("lte" not in bounds or t <= bounds["lte"]))
    return test
