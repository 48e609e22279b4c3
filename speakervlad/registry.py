"""Name -> builder registries for frontends, trunks, poolings and heads."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders; unknown names list the valid ones.

    >>> POOLINGS = Registry("pooling")
    >>> @POOLINGS.register("mean")
    ... def build_mean(**kw): ...
    >>> POOLINGS.names()
    ['mean']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._builders[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._builders, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._builders)
