"""The layout is the design: each folder of tuning_bench/ imports only from the folders below it.

docs/architecture.md draws the map; this test keeps the code to it, so a shortcut (the engine reading
the results document, the report calling the engine) shows up as a failure instead of a tangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tuning_bench"

# What each folder (or top-level module) may import from tuning_bench, besides itself. Data flows one
# way: api <- host/engine <- run <- report <- cli. Where a row names a single module of another folder
# ("run.settings"), only that module may be imported.
ALLOWED = {
    "api": set(),
    "files": set(),
    "stats": {"metrics", "run.records"},  # corpus metrics (chrF) are re-scored from resampled statistics
    "metrics": {"api", "files", "host.plugins"},  # a plugin's metric is looked up in the plugin host by name
    "models": {"api", "files"},
    "taskfiles": {"api", "metrics"},
    "host": {"api", "metrics", "models", "taskfiles", "__version__"},
    # The engine reads two definitions of a run: the settings table (its CellSpec defaults are the run's)
    # and the typed records it fills in; nothing else of a run.
    "engine": {"api", "files", "host", "metrics", "models", "run.settings", "run.records"},
    "run": {"api", "files", "host", "engine", "metrics", "models", "taskfiles", "report", "__version__"},
    "report": {"api", "files", "metrics", "run.results", "run.records", "stats"},
    "testing": {"api", "engine", "host"},
    "cli": {"api", "files", "host", "engine", "run", "report", "__version__"},
    "__init__": {"api"},
    "__main__": {"cli"},
}


def _imports(path: Path) -> set[str]:
    """The tuning_bench modules a file imports, as dotted names below tuning_bench (e.g. "run.settings")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tuning_bench":
                names.update(alias.name for alias in node.names)
            elif node.module.startswith("tuning_bench."):
                module = node.module.removeprefix("tuning_bench.")
                names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix("tuning_bench.") for a in node.names if a.name.startswith("tuning_bench."))
    return names


def _allowed(imported: str, rules: set[str]) -> bool:
    return any(imported == rule or imported.startswith(rule + ".") for rule in rules)


def test_each_folder_imports_only_from_the_folders_below_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        folder = parts[0] if len(parts) > 1 else path.stem
        assert folder in ALLOWED, f"{path}: a new folder or top-level module; add its row to ALLOWED and docs/architecture.md"
        for imported in _imports(path):
            if imported.split(".")[0] == folder:
                continue
            if not _allowed(imported, ALLOWED[folder]):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports tuning_bench.{imported}")
    assert not wrong, "imports against the layering of docs/architecture.md:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from tuning_bench.report.tables import build_tasks\nimport tuning_bench.cli.main\n")
    imported = _imports(module)
    assert imported == {"report.tables.build_tasks", "cli.main"}
    assert not _allowed("report.tables.build_tasks", ALLOWED["engine"])
    assert _allowed("run.settings.cell_default", ALLOWED["engine"])
    assert not _allowed("run.runner.plan_run", ALLOWED["engine"])
