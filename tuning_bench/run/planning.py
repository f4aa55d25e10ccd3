"""The methods of a run and the configuration each runs with, checked before any cell runs.

A run's methods are ``--methods`` (or every method of the default run, and those given ``--set``), plus
one per ``--method-config NAME=FILE``: a method of the run named NAME, run by the one installed method
that takes configuration files, with its config-file option set to FILE. ``run/runner.plan_run`` lays
the cells out from this plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.api.method import Method
from tuning_bench.host.plugins import Catalog
from tuning_bench.run.settings import RunSettings


@dataclass
class MethodPlan:
    """The run's methods in order, each one's resolved configuration, and which names ``--method-config``
    gave (with the method that runs them)."""

    names: list[str]
    configs: dict[str, dict[str, Any]]
    configured: dict[str, Method]
    catalog: Catalog

    def method_of(self, name: str) -> Method:
        """The registered method that runs ``name`` (a ``--method-config`` name runs as its taker)."""
        return self.configured[name] if name in self.configured else self.catalog.methods.get(name)

    def runs_as(self, name: str) -> str:
        """``CellSpec.runs_as`` for a cell of ``name``: the taker's name for a ``--method-config`` name, else ""."""
        return self.method_of(name).name if name in self.configured else ""

    @property
    def families(self) -> dict[str, str]:
        """Method name -> ``Method.family``."""
        return {name: self.method_of(name).family for name in self.names}


def configured_methods(settings: RunSettings, catalog: Catalog) -> dict[str, Method]:
    """The method that runs each ``--method-config NAME=FILE``: the one installed method that takes config files."""
    if not settings.method_files:
        return {}
    takers = [method for method in catalog.methods if method.config_file_option]
    if len(takers) != 1:
        found = f"several do ({', '.join(m.name for m in takers)}); block all but one with TBENCH_BLOCK_PLUGINS" \
            if takers else "none of the installed methods does"
        raise UsageError(f"--method-config needs a method that takes a configuration file; {found}")
    for name in settings.method_files:
        if name in catalog.methods:
            raise UsageError(f"--method-config {name}=…: '{name}' is already a registered method; "
                             "give the configuration another name")
    return {name: takers[0] for name in settings.method_files}


def plan_methods(settings: RunSettings, catalog: Catalog) -> MethodPlan:
    """Check every method name and option of ``settings`` and resolve each method's configuration;
    raises UsageError (unknown names with suggestions) before any work."""
    configured = configured_methods(settings, catalog)
    plan = MethodPlan([], {}, configured, catalog)
    methods = list(settings.methods) or [name for name in catalog.methods.names()
                                         if catalog.methods.get(name).in_default_run or name in settings.options]
    methods += [name for name in configured if name not in methods]
    for name in methods:
        plan.method_of(name)  # unknown names fail here, with suggestions
    for name in settings.options:
        if name not in methods:
            if name not in catalog.methods:
                catalog.methods.get(name)
            raise UsageError(f"--set {name}.…: method '{name}' is not part of this run (methods: {', '.join(methods)})")

    def config_of(name: str) -> dict[str, Any]:
        if name in configured:
            overrides = {configured[name].config_file_option: settings.method_files[name], **settings.options.get(name, {})}
            return configured[name].resolve_config(overrides, where=f"--method-config {name}")
        return plan.method_of(name).resolve_config(settings.options.get(name, {}))

    plan.names = methods
    plan.configs = {name: config_of(name) for name in methods}
    return plan


def sweep_trials(method: Method, config: dict[str, Any], sweep: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """The (trial label, config) pairs a method runs: its config alone, or one per sweep factor for a
    method that trains (e.g. ``("learning_rate=0.003", {..., "learning_rate": 0.003})``)."""
    if not (sweep and method.trains):
        return [("", config)]
    base = config[sweep["parameter"]]
    return [(f"{sweep['parameter']}={base * f:.3g}", {**config, sweep["parameter"]: float(f"{base * f:.3g}")})
            for f in sweep["factors"]]
