"""A table of named entries that code outside the app may extend: the built-in entries, and those registered
later (a plugin, a test's toy). The engine table (backend/engines/table.py) and the task table
(backend/tasks/table.py) are two of them. Only the standard library here: models.yaml's validation reads both
tables, so nothing of the app may load with them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Generic, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")


class NamedTable(Generic[T]):
    """Entries by name, in the order they came: the built-in ones first. Iterating gives the names."""

    def __init__(self, what: str, built_in: Sequence[T], name: Callable[[T], str],
                 reserved: Sequence[str] = ()) -> None:
        """`what` names an entry in errors ("engine", "task"); `reserved` names no entry may take."""
        self._what = what
        self._name = name
        self._built_in = frozenset(name(entry) for entry in built_in)
        self._reserved = frozenset(reserved)
        self._entries: dict[str, T] = {name(entry): entry for entry in built_in}

    def get(self, name: str) -> Optional[T]:
        return self._entries.get(name)

    def values(self) -> tuple[T, ...]:
        return tuple(self._entries.values())

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def register(self, entry: T) -> None:
        """Adds an entry defined outside the app's own table (a plugin, a test's toy); registering the same entry
        again is a no-op."""
        name = self._name(entry)
        if name in self._reserved or (name in self._entries and self._entries[name] != entry):
            raise ValueError(f"{self._what} {name!r} is registered already")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        if name in self._built_in:
            raise ValueError(f"{self._what} {name!r} is built in")
        self._entries.pop(name, None)

    @contextmanager
    def registered(self, entry: T) -> Iterator[T]:
        """`entry` in the table for the duration of a `with` block."""
        self.register(entry)
        try:
            yield entry
        finally:
            self.unregister(self._name(entry))
