"""The plugin host: built-in plugins, installed ones (entry-point group ``tuning_bench``) and plugin
modules named by import path, in one pluggy manager; what their hooks register is the Catalog.

Environment variables (read when a host first loads its plugins):
  TBENCH_PLUGINS         comma list: load only these installed plugins ("" loads none). Unset: all.
  TBENCH_BLOCK_PLUGINS   comma list: never load these plugins (installed, built-in or plugin modules).
  TBENCH_PLUGIN_MODULES  comma list of importable modules to load as plugins (plugin development).
An installed plugin is named by its entry-point or distribution name, a built-in one ``builtin:<module>``,
a plugin module by its import path.

A plugin that fails (anything raised at import, a hook name no spec declares, a hook that raises, an
item that fails the checks when it registers) is reported by name in ``Catalog.failures``; the others
load. Two plugins registering one name is a PluginError, since only the user can choose between them.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from tuning_bench.api import hookspecs
from tuning_bench.api.errors import PluginError
from tuning_bench.api.method import Method
from tuning_bench.api.model import ModelSource
from tuning_bench.api.task import Task
from tuning_bench.host.checks import method_problem, task_problem
from tuning_bench.host.registry import Register, Registry, block_hint
from tuning_bench.metrics.registry import MetricRegister, RegisteredMetric

ENTRY_POINT_GROUP = "tuning_bench"
# Packages shipped with tuning-bench whose PLUGINS list names built-in plugin modules.
BUILTIN_PACKAGES = ("tuning_bench_plugins", "tuning_bench_tasks")
BUILTIN_METRICS = "builtin:metrics"  # registers the shipped metrics (tuning_bench_plugins.metrics)


@dataclass
class PluginFailure:
    """A plugin that could not be imported or registered, whose hook raised, or one item it registered."""

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
    metrics: Registry[RegisteredMetric]
    failures: list[PluginFailure] = field(default_factory=list)
    # Tasks whose examples passed check_examples (done once, when a task is first resolved).
    checked_tasks: set[str] = field(default_factory=set)


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _entry_point_names(entry_point: metadata.EntryPoint) -> set[str]:
    names = {entry_point.name}
    if entry_point.dist is not None:
        names.add(entry_point.dist.name)
    return names


class PluginHost:
    """One set of loaded plugins and the catalog they register.

    The process uses one (``default_host()``); a test builds its own. Plugins load on first use of
    ``manager``; ``catalog()`` calls the registration hooks once and is rebuilt after a plugin is added.
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._manager: pluggy.PluginManager | None = None
        self._failures: list[PluginFailure] = []
        self._modules: list[str] = []  # plugin modules loaded by import path, passed on to cell processes
        self._tried_modules: set[str] = set()
        self._catalog: Catalog | None = None

    # --- loading ------------------------------------------------------------------------------------

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager, with the built-in, installed and TBENCH_PLUGIN_MODULES plugins loaded."""
        if self._manager is None:
            self._manager = pluggy.PluginManager("tuning_bench")
            self._manager.add_hookspecs(hookspecs)
            self._load_builtin()
            self._load_installed()
            for module_name in _names(self._environ.get("TBENCH_PLUGIN_MODULES")):
                self.add_module(module_name)
        return self._manager

    @property
    def blocked(self) -> set[str]:
        return set(_names(self._environ.get("TBENCH_BLOCK_PLUGINS")))

    def _load_builtin(self) -> None:
        for package_name in BUILTIN_PACKAGES:
            package = importlib.import_module(package_name)
            for module_name in package.PLUGINS:
                name = f"builtin:{module_name}"
                if not {name, module_name} & self.blocked:
                    self._import_and_register(name, lambda m=module_name, p=package_name: importlib.import_module(f"{p}.{m}"))

    def _load_installed(self) -> None:
        allowed = self._environ.get("TBENCH_PLUGINS")
        allowed_names = None if allowed is None else set(_names(allowed))
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            names = _entry_point_names(entry_point)
            if names & self.blocked or (allowed_names is not None and not names & allowed_names):
                continue
            if self._manager.get_plugin(entry_point.name) is not None:
                continue  # the same distribution installed twice on sys.path
            self._import_and_register(entry_point.name, entry_point.load)

    def add_module(self, module_name: str) -> bool:
        """Load a plugin from an importable module that is not installed as an entry point.

        For plugins under development (TBENCH_PLUGIN_MODULES) and tests (``tuning_bench.testing``). The
        module names are passed on to cell processes, which load them too. Returns whether it loaded;
        a failure is reported like any plugin's.
        """
        manager = self.manager
        if module_name in self._tried_modules or module_name in self.blocked:
            return module_name in self._modules
        self._tried_modules.add(module_name)
        if manager.get_plugin(module_name) is None and not self._import_and_register(
                module_name, lambda: importlib.import_module(module_name)):
            return False
        self._modules.append(module_name)
        self._catalog = None
        return True

    def add_plugin(self, plugin: object, name: str) -> bool:
        """Register a plugin object (a module, or any object with ``@hookimpl`` functions) under a name."""
        self.manager  # noqa: B018  # load the others first, as in normal use
        self._catalog = None
        return self._register(plugin, name)

    def _import_and_register(self, name: str, load: Callable[[], object]) -> bool:
        try:
            plugin = load()
        except (Exception, SystemExit) as exc:  # anything a plugin raises at import: report it, load the others
            self._fail(name, "to import", f"{type(exc).__name__}: {exc}")
            return False
        return self._register(plugin, name)

    def _register(self, plugin: object, name: str) -> bool:
        manager = self._manager
        try:
            manager.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:  # e.g. a hook with arguments its spec lacks
            self._fail(name, "to register", str(exc).splitlines()[0])
            return False
        try:
            manager.check_pending()  # a hook implementation no spec declares: a misspelt hook name
        except pluggy.PluginValidationError:
            unknown = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [] if not caller.has_spec())
            manager.unregister(plugin)
            self._fail(name, "to register", _unknown_hook_message(unknown))
            return False
        return True

    def _fail(self, plugin: str, stage: str, error: str) -> None:
        failure = PluginFailure(plugin, stage, error)
        self._failures.append(failure)
        if self._catalog is not None:
            self._catalog.failures.append(failure)

    # --- what the plugins provide -------------------------------------------------------------------

    def modules(self) -> list[str]:
        """Plugin modules loaded by import path (to be loaded again in cell processes)."""
        self.manager  # noqa: B018  # TBENCH_PLUGIN_MODULES loads with the others
        return list(self._modules)

    def catalog(self, modules: Iterable[str] = ()) -> Catalog:
        """The catalog of the loaded plugins, after loading ``modules`` (import paths) as plugins."""
        for module_name in modules:
            self.add_module(module_name)
        if self._catalog is None:
            self._catalog = self._build_catalog()
        return self._catalog

    def _conflict_hint(self, plugin: str) -> str:
        hint = block_hint(plugin)
        if plugin in self._modules:
            return hint + " (or leave it out of TBENCH_PLUGIN_MODULES)"
        return hint

    def _build_catalog(self) -> Catalog:
        """Call every registration hook, plugin by plugin, so each item is attributed to its plugin.

        Metrics register first, so that tasks can name them.
        """
        from tuning_bench.metrics import SHIPPED_METRICS

        manager = self.manager  # loading first: its failures belong in the catalog
        catalog = Catalog(
            methods=Registry("method", Method, self._conflict_hint),
            tasks=Registry("task", Task, self._conflict_hint),
            models=Registry("model", ModelSource, self._conflict_hint),
            metrics=Registry("metric", RegisteredMetric, self._conflict_hint),
            failures=list(self._failures),
        )
        directions = lambda: {m.name: m.higher_is_better for m in catalog.metrics}  # noqa: E731
        registers: dict[str, Callable[[str], Any]] = {
            # The shipped names are reserved for the built-in metric plugin that registers them.
            "register_metrics": lambda plugin: MetricRegister(
                catalog.metrics, plugin, () if plugin == BUILTIN_METRICS else SHIPPED_METRICS),
            "register_models": lambda plugin: Register(catalog.models, plugin),
            "register_methods": lambda plugin: Register(catalog.methods, plugin, method_problem),
            "register_tasks": lambda plugin: Register(catalog.tasks, plugin, lambda t: task_problem(t, directions())),
        }
        for hook_name, make_register in registers.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                register = make_register(impl.plugin_name)
                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:
                    catalog.failures.append(
                        PluginFailure(impl.plugin_name, f"in {hook_name}", f"{type(exc).__name__}: {exc}"))
                kind = hook_name.removeprefix("register_").rstrip("s")
                for problem in register.rejected:
                    catalog.failures.append(PluginFailure(impl.plugin_name, f"to register a {kind}", problem))
        return catalog

    def add_commands(self, cli: Any) -> None:
        """Let plugins add commands to the ``tbench`` click group; a hook that raises is reported."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:  # a broken plugin must not break the CLI
                self._fail(impl.plugin_name, "in register_commands", f"{type(exc).__name__}: {exc}")

    def infos(self) -> list[dict[str, Any]]:
        """Name, version and implemented hooks of each loaded plugin."""
        from tuning_bench import __version__

        dists = {ep.name: ep.dist for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.dist is not None}
        infos = []
        for name, plugin in self.manager.list_name_plugin():
            dist = dists.get(name)
            infos.append({
                "name": name,
                "version": dist.version if dist else __version__,
                "distribution": dist.name if dist else "tuning-bench",
                "builtin": name.startswith("builtin:"),
                "hooks": sorted(impl.name for impl in self.manager.get_hookcallers(plugin) or []),
            })
        return infos


def _unknown_hook_message(unknown: list[str]) -> str:
    specs = sorted(name for name in dir(hookspecs) if name.startswith("register_"))
    name = unknown[0] if unknown else "?"
    close = difflib.get_close_matches(name, specs, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"hook '{name}' is not a tuning_bench hook.{hint} Hooks: {', '.join(specs)}"


_default: PluginHost | None = None


def default_host() -> PluginHost:
    """The process-wide plugin host (created on first use)."""
    global _default
    if _default is None:
        _default = PluginHost()
    return _default


def reset_default_host(host: PluginHost | None = None) -> PluginHost:
    """Replace the process-wide host (tests; or after changing the environment variables)."""
    global _default
    _default = host or PluginHost()
    return _default


# Shorthands on the default host, for the CLI, the runner and cell processes.

def load_catalog(modules: Iterable[str] | None = None) -> Catalog:
    """The default host's catalog, after loading ``modules`` (and TBENCH_PLUGIN_MODULES) as plugins."""
    return default_host().catalog(modules or ())


def register_module(module_name: str) -> bool:
    """Load an importable module as a plugin in the default host (see ``PluginHost.add_module``)."""
    return default_host().add_module(module_name)


def extra_modules() -> list[str]:
    """Plugin modules the default host loaded by import path (to be loaded again in cell processes)."""
    return default_host().modules()


def plugin_infos() -> list[dict[str, Any]]:
    """Name, version and hooks of each plugin the default host loaded."""
    return default_host().infos()


def warn_failures(catalog: Catalog) -> None:
    """Print one warning line per failed plugin to stderr."""
    for failure in catalog.failures:
        print(f"warning: {failure.message()}; the other plugins are loaded", file=sys.stderr)
