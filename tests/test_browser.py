"""report.html in a real browser (headless Chromium over the DevTools protocol, see tests/browser.py):
it loads with no console error, every image decodes and the sortable tables sort.

Skipped, with the reason, only where Chromium is not installed; `.ci/run` installs Debian's `chromium`.
"""

from __future__ import annotations

import pytest
from browser import check_page, find_chromium

from tuning_bench.host.plugins import load_catalog
from tuning_bench.run.executor import InProcessExecutor
from tuning_bench.run.runner import execute, plan_run
from tuning_bench.run.settings import RunSettings

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="Chromium is not installed: apt-get install chromium (.ci/run installs it)")

# Click the first header of the first sortable table twice; the first column's order after each click.
SORT_TWICE = """
(() => {
  const table = document.querySelector('table.sortable');
  const firstColumn = () => [...table.tBodies[0].rows].map(row => row.cells[0].textContent.trim());
  const header = table.querySelector('thead th');
  header.click();
  const ascending = firstColumn();
  header.click();
  return {ascending: ascending, descending: firstColumn(), state: header.getAttribute('aria-sort')};
})()
"""


def test_the_check_reports_console_errors_exceptions_and_broken_images(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><title>broken</title><img src="data:image/png;base64,AAAA">'
                    '<script>console.error("deliberate error")</script><script>notDefinedAnywhere()</script>')
    check = check_page(page)
    assert check.loaded and check.title == "broken"
    assert any("deliberate error" in e for e in check.errors), check.errors
    assert any("notDefinedAnywhere" in e for e in check.errors), check.errors
    assert len(check.images) == 1 and len(check.broken_images) == 1


def test_report_html_loads_without_errors_and_every_image_decodes(tiny, tmp_path):
    settings = RunSettings(methods=["zero-shot", "prompt", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0],
                           steps=2, batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4,
                           out=str(tmp_path / "run"), executor="in-process", samples=2)
    execute(plan_run(settings, load_catalog()), executor=InProcessExecutor(), prepare_model=False)
    check = check_page(tmp_path / "run" / "report.html", then_evaluate=SORT_TWICE)
    assert check.loaded and "tbench" in check.title.lower(), check.title
    assert check.errors == []
    assert len(check.images) >= 3, check.images  # loss curves, quality vs parameters, quality vs memory
    assert check.broken_images == []
    ascending, descending = check.result["ascending"], check.result["descending"]
    assert sorted(ascending) == sorted(["zero-shot", "prompt", "lora"]) and ascending == sorted(ascending)
    assert descending == ascending[::-1] and check.result["state"] == "descending"
