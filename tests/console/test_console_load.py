"""How long the console takes to load a large index (slow: builds one with `rx index bench`'s varied
workload on a throwaway anvil, about two minutes). The time is written to
artifacts/console/load-time.json; the test only fails on an unusable page (over 10 s). It runs only
when asked for (``-m slow``), not in a plain ``ape test tests/console``."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from .conftest import ARTIFACTS, TIMEOUT_MS


@pytest.mark.slow
def test_the_console_loads_a_large_index(browser, tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (about two minutes): run with -m slow")
    from rxchain.web.console import make_server
    from rxchain.indexer.bench import bench

    db = tmp_path / "large.sqlite"
    figures = bench(prescriptions=5000, workload="varied", days=5, db_urls=[], keep_db=db)
    run = figures["runs"][0]
    assert run["verifyProblems"] == 0 and run["rows"]["prescriptions"] == figures["prescriptions"]

    with make_server(str(db), "127.0.0.1", 0) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB", timezone_id="UTC")
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            page.goto(server.url)
            page.wait_for_selector("body[data-ready]", timeout=TIMEOUT_MS)
            times.append(time.perf_counter() - started)
        issued = page.locator('[data-figure="issued"] .value').inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "03-large-index.png"), full_page=True)
        context.close()
    result = {
        "prescriptions": figures["prescriptions"],
        "events": run["events"],
        "loadSeconds": [round(t, 3) for t in times],
        "medianLoadSeconds": round(statistics.median(times), 3),
        "indexEventsPerSecond": run["eventsPerSecond"],
    }
    (ARTIFACTS / "load-time.json").write_text(json.dumps(result, indent=2) + "\n")
    assert issued == f"{figures['prescriptions']:,}"
    assert problems == []
    assert statistics.median(times) < 10, result
