"""A strict YAML reader for job files: YAML 1.2 scalars, duplicate keys rejected.

PyYAML implements YAML 1.1, whose implicit typing surprises people writing configuration:
``yes``/``no``/``on``/``off``/``y``/``n`` are booleans, ``1e-5`` is a *string* (1.1 floats
need a dot), ``0755`` is octal, ``1:30`` is the sexagesimal integer 90, ``2024-01-02`` a date,
and a key given twice silently keeps the last value. :func:`load_yaml` reads with the YAML 1.2
core schema instead:

- null: ``~``, ``null``, ``Null``, ``NULL`` or nothing;
- booleans: ``true``/``True``/``TRUE``/``false``/``False``/``FALSE`` only;
- integers: ``[-+]?[0-9]+`` (decimal, leading zeros allowed), ``0o[0-7]+``, ``0x[0-9a-fA-F]+``;
- floats: ``[-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?``, ``.inf``, ``-.inf``, ``.nan``;
- everything else is a string (``yes``, ``on``, ``2024-01-02``, ``1:30``); no merge keys (``<<``).

A key that appears twice in one mapping raises :class:`DuplicateKeyError` naming the key and
both line numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice (``key``, ``first_line``, ``second_line``)."""

    def __init__(self, key: Any, first_line: int, second_line: int, mark: Any) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.key = key
        self.first_line = first_line
        self.second_line = second_line


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema scalars and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeConstructor reports it below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(key, first, line, key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        if text.startswith(("0o", "0x")):
            return int(text, 0)
        return int(text, 10)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = self.construct_scalar(node).lower()
        if text.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if text == ".nan":
            return math.nan
        return float(text)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        return self.construct_scalar(node).lower() == "true"


# Implicit resolvers: only the YAML 1.2 core schema (no 1.1 booleans, sexagesimal numbers,
# timestamps, merge keys or '=' values).
StrictLoader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    (_BOOL_TAG, _BOOL, "tTfF"),
    (_INT_TAG, _INT, "-+0123456789"),
    (_FLOAT_TAG, _FLOAT, "-+0123456789."),
    (_NULL_TAG, _NULL, ["~", "n", "N", ""]),
):
    StrictLoader.add_implicit_resolver(_tag, _regexp, list(_first))
StrictLoader.add_constructor(_INT_TAG, StrictLoader.construct_yaml_int)
StrictLoader.add_constructor(_FLOAT_TAG, StrictLoader.construct_yaml_float)
StrictLoader.add_constructor(_BOOL_TAG, StrictLoader.construct_yaml_bool)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`.

    Raises:
        DuplicateKeyError: a key appears twice in one mapping.
        yaml.YAMLError: any other syntax error (with its position).
    """
    return yaml.load(text, Loader=StrictLoader)
