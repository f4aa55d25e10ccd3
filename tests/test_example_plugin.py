"""The example plugin's own tests (examples/tbench-normtune/tests), run as part of this suite."""

import importlib.util
import sys

from conftest import REPO

EXAMPLE = REPO / "examples" / "tbench-normtune"
sys.path.insert(0, str(EXAMPLE))  # the plugin imports by its package name, as when installed
_spec = importlib.util.spec_from_file_location("test_normtune", EXAMPLE / "tests" / "test_normtune.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

test_normtune_keeps_the_contract = _module.test_normtune_keeps_the_contract
test_normtune_metrics_register_and_score = _module.test_normtune_metrics_register_and_score
