"""YAML that users write (model files, plans): read safely, strictly and cheaply.

* only plain data (PyYAML's safe constructors);
* a key given twice in one mapping is refused, naming the key and its line (YAML 1.1 lets the last win
  silently: ``CL: 5`` then ``CL: 6`` would be 6);
* numbers in exponent form without a dot, such as ``1e3`` or ``2E-5``, are numbers (PyYAML's YAML 1.1
  resolver reads them as text); ``.inf`` and ``.nan`` stay floats, for the callers to refuse in their own
  words;
* the file's size and the number of values its aliases expand to are limited
  (:data:`ketaplan.limits.YAML_BYTES`, :data:`ketaplan.limits.YAML_VALUES`), checked on the parsed nodes
  before any Python object is built, so an alias bomb costs nothing;
* every failure is one :class:`~ketaplan.errors.InputError` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ketaplan.errors import InputError, Verbatim
from ketaplan.limits import YAML_BYTES, YAML_VALUES

_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
                        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)
"""YAML 1.2's floats (with exponents without a dot, '1e3') plus YAML 1.1's forms PyYAML already reads."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with exponent floats, duplicate keys refused and alias expansion counted."""

    field = "YAML"


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _Loader.yaml_implicit_resolvers[_first] = [(tag, regexp) for tag, regexp in
                                              _Loader.yaml_implicit_resolvers.get(_first, [])
                                              if tag != "tag:yaml.org,2002:float"]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
# integers are tried before floats for the same first character: '10' stays an int
for _first in "-+0123456789":
    _Loader.yaml_implicit_resolvers[_first].sort(key=lambda pair: pair[0] != "tag:yaml.org,2002:int")


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:  # the mapping's own keys (a merged '<<' key may be overridden)
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise InputError(loader.field, Verbatim(f"a list or mapping as a key on line "
                                                     f"{key_node.start_mark.line + 1}"),
                             "mapping keys must be plain values (text or numbers)") from None
        if key in seen:
            raise InputError(loader.field, Verbatim(f"'{key}' twice (lines {seen[key]} and "
                                                     f"{key_node.start_mark.line + 1})"),
                             "a key may appear only once in a mapping; remove one of them")
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _expanded_size(node: yaml.Node, limit: float) -> int:
    """Values the node stands for with every alias expanded (memoised per node, so aliases cost nothing)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes:
            continue
        if isinstance(current, yaml.ScalarNode):
            sizes[id(current)] = 1
            continue
        children = [n for pair in current.value for n in pair] if isinstance(current, yaml.MappingNode) \
            else list(current.value)
        if not children_done:
            stack.append((current, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 0) for c in children)
        sizes[id(current)] = total
        if total > limit:
            return total
    return sizes[id(node)]


def load_yaml(text: str, field: str, name: str = "the text") -> object:
    """The data of a YAML text a user gave; ``field`` and ``name`` (its file) name it in messages."""
    YAML_BYTES.check(field, len(text.encode("utf-8", "surrogatepass")), "a model or plan file is a few kB")
    loader = None
    try:
        loader = _Loader(text)  # the reader checks the characters here already
        loader.field = field
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, YAML_VALUES.value)
        YAML_VALUES.check(field, size, "write the values out instead of multiplying them with aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise InputError(field, name, f"is not valid YAML ({_first_line(exc)})") from None
    except RecursionError:
        raise InputError(field, name, "is nested too deeply to be a model or plan") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | Path, field: str, missing: str = "the file does not exist") -> object:
    """:func:`load_yaml` of a file, refusing a missing, unreadable or oversized one in one sentence."""
    p = Path(path)
    if not p.is_file():
        raise InputError(field, str(path), missing)
    YAML_BYTES.check(field, p.stat().st_size, "a model or plan file is a few kB")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, str(path), f"could not be read as UTF-8 text ({type(exc).__name__})") from None
    return load_yaml(text, field, str(path))


def _first_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
