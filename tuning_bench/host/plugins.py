"""The plugin manager: built-in plugins and installed ones (entry-point group ``tuning_bench``).

Environment variables:
  TBENCH_PLUGINS        comma list: load only these installed plugins ("" loads none). Unset: all.
  TBENCH_BLOCK_PLUGINS  comma list: never load these plugins (installed or built-in).
A plugin is named by its entry-point name or its distribution name.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from tuning_bench.api import hookspecs
from tuning_bench.api.errors import PluginError
from tuning_bench.api.method import Method
from tuning_bench.api.model import ModelSource
from tuning_bench.host.registry import Register, Registry
from tuning_bench.api.task import Task

ENTRY_POINT_GROUP = "tuning_bench"
# Packages shipped with tuning-bench whose PLUGINS list names built-in plugin modules.
BUILTIN_PACKAGES = ("tuning_bench_plugins", "tuning_bench_tasks")
REGISTER_HOOKS = ("register_methods", "register_tasks", "register_models")


@dataclass
class PluginFailure:
    """A plugin that could not be imported, or whose hook raised."""

    plugin: str
    stage: str
    error: str

    def message(self) -> str:
        return f"plugin '{self.plugin}' failed {self.stage}: {self.error}"


@dataclass
class Catalog:
    """Everything the loaded plugins registered."""

    methods: Registry[Method]
    tasks: Registry[Task]
    models: Registry[ModelSource]
    failures: list[PluginFailure] = field(default_factory=list)


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


_manager: pluggy.PluginManager | None = None
_load_failures: list[PluginFailure] = []


def _plugin_names(entry_point: metadata.EntryPoint) -> set[str]:
    names = {entry_point.name}
    if entry_point.dist is not None:
        names.add(entry_point.dist.name)
    return names


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading built-in and installed plugins on first use."""
    global _manager
    if _manager is not None:
        return _manager
    manager = pluggy.PluginManager("tuning_bench")
    manager.add_hookspecs(hookspecs)
    blocked = _names_from_env("TBENCH_BLOCK_PLUGINS") or set()
    allowed = _names_from_env("TBENCH_PLUGINS")

    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for module_name in package.PLUGINS:
            short = f"builtin:{module_name}"
            if short in blocked or module_name in blocked:
                continue
            try:
                module = importlib.import_module(f"{package_name}.{module_name}")
            except Exception as exc:  # a broken built-in must not take the others down
                _load_failures.append(PluginFailure(short, "to import", f"{type(exc).__name__}: {exc}"))
                continue
            manager.register(module, name=short)

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        names = _plugin_names(entry_point)
        if names & blocked or (allowed is not None and not names & allowed):
            continue
        if manager.get_plugin(entry_point.name) is not None:
            continue  # the same distribution installed twice on sys.path
        try:
            module = entry_point.load()
        except Exception as exc:  # report by name; the other plugins still load
            _load_failures.append(PluginFailure(entry_point.name, "to import", f"{type(exc).__name__}: {exc}"))
            continue
        manager.register(module, name=entry_point.name)
    _manager = manager
    return manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, or after changing the environment variables)."""
    global _manager
    _manager = None
    _load_failures.clear()


def build_catalog(manager: pluggy.PluginManager | None = None) -> Catalog:
    """Call every registration hook, plugin by plugin, so each item is attributed to its plugin.

    A plugin whose hook raises is reported and skipped; a name registered twice is a PluginError.
    """
    manager = manager or get_plugin_manager()
    catalog = Catalog(
        methods=Registry("method", Method),
        tasks=Registry("task", Task),
        models=Registry("model", ModelSource),
        failures=list(_load_failures),
    )
    registries = {"register_methods": catalog.methods, "register_tasks": catalog.tasks, "register_models": catalog.models}
    for hook_name, registry in registries.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            try:
                impl.function(register=Register(registry, impl.plugin_name))
            except PluginError:
                raise
            except Exception as exc:
                catalog.failures.append(PluginFailure(impl.plugin_name, f"in {hook_name}", f"{type(exc).__name__}: {exc}"))
    return catalog


def plugin_infos(manager: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Name, version and implemented hooks of each loaded plugin."""
    manager = manager or get_plugin_manager()
    from tuning_bench import __version__

    dists = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.dist is not None:
            dists[entry_point.name] = entry_point.dist
    infos = []
    for name, plugin in manager.list_name_plugin():
        hooks = sorted(impl.name for impl in manager.get_hookcallers(plugin) or [])
        dist = dists.get(name)
        infos.append(
            {
                "name": name,
                "version": dist.version if dist else __version__,
                "distribution": dist.name if dist else "tuning-bench",
                "builtin": name.startswith("builtin:"),
                "hooks": hooks,
            }
        )
    return infos


def warn_failures(catalog: Catalog) -> None:
    """Print one warning line per failed plugin to stderr."""
    for failure in catalog.failures:
        print(f"warning: {failure.message()}; the other plugins are loaded", file=sys.stderr)


_extra_modules: list[str] = []


def register_module(module_name: str) -> None:
    """Load a plugin from an importable module that is not installed as an entry point.

    Used for plugins under development and by tests (``tuning_bench.testing``). The module names are
    passed on to cell processes, which register them too. TBENCH_PLUGIN_MODULES=a.b,c.d does the same.
    """
    manager = get_plugin_manager()
    if manager.get_plugin(module_name) is None:
        manager.register(importlib.import_module(module_name), name=module_name)
    if module_name not in _extra_modules:
        _extra_modules.append(module_name)


def unregister_module(module_name: str) -> None:
    manager = get_plugin_manager()
    plugin = manager.get_plugin(module_name)
    if plugin is not None:
        manager.unregister(plugin)
    if module_name in _extra_modules:
        _extra_modules.remove(module_name)


def extra_modules() -> list[str]:
    """Plugin modules registered with ``register_module`` (to be registered again in cell processes)."""
    env = [m.strip() for m in os.environ.get("TBENCH_PLUGIN_MODULES", "").split(",") if m.strip()]
    return list(dict.fromkeys(env + _extra_modules))


def load_catalog(modules: list[str] | None = None) -> Catalog:
    """The catalog of the current plugins, after registering ``modules`` (and TBENCH_PLUGIN_MODULES)."""
    for module_name in list(modules or []) + extra_modules():
        try:
            register_module(module_name)
        except ImportError as exc:
            _load_failures.append(PluginFailure(module_name, "to import", f"{type(exc).__name__}: {exc}"))
    return build_catalog()
