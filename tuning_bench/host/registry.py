"""Typed registries: what plugins registered, under which names, by which plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tuning_bench.api.errors import PluginError, did_you_mean

T = TypeVar("T")


def block_hint(plugin: str) -> str:
    return f"block one of them with TBENCH_BLOCK_PLUGINS={plugin}"


class Registry(Generic[T]):
    """Names to registered objects of one kind, remembering which plugin registered each.

    ``conflict_hint(plugin)`` says how to drop a plugin, for the error when two plugins claim a name.
    """

    def __init__(self, kind: str, item_type: type, conflict_hint: Callable[[str], str] = block_hint):
        self.kind = kind
        self.item_type = item_type
        self._conflict_hint = conflict_hint
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, item: T, owner: str) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{owner}' registered a {self.kind} without a name")
        if name in self._items:
            raise PluginError(
                f"{self.kind} '{name}' is registered by both '{self._owners[name]}' and '{owner}'; "
                f"{self._conflict_hint(owner)}"
            )
        self._items[name] = item
        self._owners[name] = owner

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise did_you_mean(self.kind, name, self._items) from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class Register(Generic[T]):
    """The callable handed to a plugin's hook: ``register(item)`` adds one item, checked for type.

    ``check(item)`` returns a problem or None; an item with a problem is not added and its problem is
    collected in ``rejected`` (the host reports it naming the plugin; the plugin's other items register).
    """

    def __init__(self, registry: Registry[T], plugin_name: str, check: Callable[[T], str | None] | None = None):
        self._registry = registry
        self._plugin = plugin_name
        self._check = check
        self.rejected: list[str] = []

    def __call__(self, item: T) -> None:
        if isinstance(item, type) and issubclass(item, self._registry.item_type):
            item = item()  # registering the class is accepted as registering its default instance
        if not isinstance(item, self._registry.item_type):
            expected = f"{self._registry.item_type.__module__}.{self._registry.item_type.__name__}"
            self.rejected.append(f"registered {item!r} as a {self._registry.kind}; expected a {expected}")
            return
        problem = self._check(item) if self._check else None
        if problem:
            self.rejected.append(problem)
            return
        self._registry.add(item, self._plugin)
