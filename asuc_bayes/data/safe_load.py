"""TOML and YAML patient files parsed as bounded, duplicate-free data.

YAML is read with a :class:`yaml.SafeLoader` subclass that rejects duplicate mapping keys and
aliases (``*name``: no alias bomb can expand), caps the nesting depth, and keeps the ``id``
of a patient as the text written (YAML 1.1 would read ``0123`` as 83 and ``12:30`` as 750).
Both formats reject integers too large for a float. Every problem is an :class:`InputError`.

>>> load_document("patient:\\n  - id: 0123\\n", "yaml")["patient"][0]["id"]
'0123'
>>> try:
...     load_document("a: 1\\na: 2\\n", "yaml")
... except InputError as exc:
...     print(exc)
not valid YAML: duplicate key 'a' (line 2, also line 1) (fix: keep one entry of each key)
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from asuc_bayes.data.errors import InputError

__all__ = ["MAX_DEPTH", "load_document"]

#: Deepest nesting accepted (a patient file needs 4: patient list, patient, doses, dose).
MAX_DEPTH = 16
#: Largest magnitude of an integer accepted (beyond it ``float()`` overflows).
_MAX_INT = int(sys.float_info.max)
#: Keys whose scalar values are kept as the text written.
_TEXT_KEYS = frozenset({"id"})


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader without aliases, without duplicate keys, with a depth cap."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:  # type: ignore[override]
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise InputError(
                f"not valid YAML: alias *{event.anchor} at line {event.start_mark.line + 1} "
                "(aliases and anchors are not accepted) (fix: write the values out)"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise InputError(
                    f"not valid YAML: nested more than {MAX_DEPTH} levels deep (line "
                    f"{mark.line + 1}) (fix: a patient file needs 4 levels: see the README)"
                )
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, "expected a mapping", node.start_mark)
        self.flatten_mapping(node)
        mapping: dict[object, object] = {}
        lines: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise InputError(
                    f"not valid YAML: a mapping key at line {key_node.start_mark.line + 1} is "
                    "not a plain value (fix: use text keys)"
                ) from None
            line = key_node.start_mark.line + 1
            if key in mapping:
                raise InputError(
                    f"not valid YAML: duplicate key {key!r} (line {line}, also line "
                    f"{lines[key]}) (fix: keep one entry of each key)"
                )
            lines[key] = line
            if key in _TEXT_KEYS and isinstance(value_node, ScalarNode):
                value: object = _scalar_text(self, value_node)
            else:
                value = self.construct_object(value_node, deep=deep)
            mapping[key] = value
        return mapping


def _scalar_text(loader: yaml.SafeLoader, node: ScalarNode) -> str | None:
    """The scalar as written (``0123`` stays ``'0123'``); ``None`` for a YAML null."""
    if node.tag == "tag:yaml.org,2002:null":
        return None
    return str(node.value)


_BoundedSafeLoader.add_constructor(
    "tag:yaml.org,2002:map",
    _BoundedSafeLoader.construct_mapping,  # type: ignore[arg-type]
)


def load_document(text: str, kind: str) -> object:
    """The data of a ``"toml"`` or ``"yaml"`` document, checked for depth and number size.

    Raises
    ------
    InputError
        Not valid TOML/YAML, a duplicate key, a YAML alias, nesting deeper than
        :data:`MAX_DEPTH`, or an integer that does not fit a float.
    """
    name = kind.upper()
    try:
        if kind == "toml":
            document: object = tomllib.loads(text)
        else:
            document = yaml.load(text, Loader=_BoundedSafeLoader)  # safe subclass
    except InputError:
        raise
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"not valid {name}: {exc}") from None
    except RecursionError:
        raise InputError(
            f"not valid {name}: nested too deeply (fix: a patient file needs 4 levels)"
        ) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise InputError(f"not valid {name}: {exc} (fix: write plain numbers)") from None
    _check_bounded(document, name, 1, "")
    return document


def _check_bounded(value: object, name: str, depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise InputError(
            f"not valid {name}: nested more than {MAX_DEPTH} levels deep (at {path or 'top'}) "
            "(fix: a patient file needs 4 levels: see the README)"
        )
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > _MAX_INT:
        raise InputError(
            f"not valid {name}: the number at {path or 'top'} ({len(str(abs(value)))} digits) "
            "is too large for a floating-point number (fix: write a plausible value)"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_bounded(item, name, depth + 1, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_bounded(item, name, depth + 1, f"{path}[{index}]")
