"""The package's own data files (YAML), read with libyaml's C loader when PyYAML has it.

Same safe constructor and resolver as ``yaml.safe_load``, about ten times faster: the model library is
read on every simulation. Users' own YAML files keep ``yaml.safe_load`` and its error messages.
"""

from __future__ import annotations

from importlib.resources.abc import Traversable


def read_yaml(path: Traversable) -> object:
    """The parsed content of a data file shipped with ketaplan."""
    import yaml

    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
