"""YAML loading for rendered charts: libyaml's C parser where PyYAML was built with it, the pure-Python
safe loader otherwise. Both construct the same safe types; the C parser is about ten times faster on a
rendered chart (50 KB), which is most of what the unit tier spends in Python."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """One document, as yaml.safe_load reads it."""
    return yaml.load(text, Loader=SafeLoader)


def load_all(text: str) -> Iterator[Any]:
    """Every document, as yaml.safe_load_all reads them."""
    return yaml.load_all(text, Loader=SafeLoader)
