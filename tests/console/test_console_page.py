"""The regulator's console in a real browser (headless Debian chromium): the figures of the scripted
workload, the charts, the members whose credentials end soon, and the trail search — with no console
error and no CSP violation. Screenshots go to artifacts/console/."""

from __future__ import annotations

import pytest

from rxchain import audit
from rxchain.indexer.workload import expected_figures
from rxchain.paths import project_root

from .conftest import UPDATE_DOCS_IMAGE

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect


def test_the_page_shows_the_scripted_figures(console_page, scenario, client):
    page = console_page.open().page
    now = client.latest_block_time()
    want = expected_figures(scenario, now)
    assert console_page.figure("issued") == str(want["issued"])
    assert console_page.figure("redeemed") == str(want["redeemed"])
    assert console_page.figure("cancelled") == str(want["cancelled"])
    assert console_page.figure("expiredUnfilled") == str(want["expiredUnfilled"])
    assert console_page.figure("activeUnfilled") == str(want["activeUnfilled"])
    assert console_page.figure("received") == str(want["received"])
    assert console_page.figure("membersExpiringSoon") == "1"
    expect(page.locator('[data-figure="issued"] .sub')).to_contain_text(
        f"{want['issuedBatched']} in {want['batches']} batches"
    )
    expect(page.locator("#provenance")).to_contain_text(f"block {client.w3.eth.block_number:,}")

    # the charts are drawn from the same figures
    daily = page.evaluate("Chart.getChart('chart-daily').data.datasets.map(d => d.data.reduce((a, b) => a + b, 0))")
    assert daily == [want["issued"], want["fills"], want["cancelled"], want["expiredUnfilled"]]
    hospitals = page.evaluate("Chart.getChart('chart-hospitals').data.labels")
    assert sorted(hospitals) == sorted(f"{name} ({a[:6]}…{a[-4:]})" for a, name in scenario.hospitals.items())
    histogram = page.evaluate("Chart.getChart('chart-delivery').data.datasets[0].data.reduce((a, b) => a + b, 0)")
    assert histogram == sum(1 for p in scenario.prescriptions for f in p.taken if f.courier and f.received)
    for canvas in ("chart-daily", "chart-hospitals", "chart-pharmacies", "chart-delivery"):
        assert page.locator(f"#{canvas}").bounding_box()["height"] > 100

    rows = page.locator("#hospitals-table tbody tr")
    expect(rows).to_have_count(len(scenario.hospitals))
    for address in scenario.hospitals:
        issued = sum(1 for p in scenario.prescriptions if p.hospital == address)
        expect(page.locator(f'#hospitals-table tr[data-hospital="{address}"] td').nth(1)).to_have_text(str(issued))
    soon = next(a for a, story in scenario.member_notes.items() if story == "credential ends soon")
    lapsed = next(a for a, story in scenario.member_notes.items() if story == "credential expired")
    expect(page.locator(f'#members-table tr[data-account="{soon}"]')).to_have_class("expiring")
    expect(page.locator(f'#members-table tr[data-account="{lapsed}"]')).to_have_class("expired")
    expect(page.locator("#members-table tbody tr").first).to_have_attribute("data-account", lapsed)  # soonest first
    expect(page.locator("#expired-table tbody tr")).to_have_count(want["expiredUnfilled"])
    console_page.screenshot("01-overview")
    if UPDATE_DOCS_IMAGE:
        target = project_root() / "docs" / "img" / "console.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(target), full_page=False)
    console_page.assert_clean()


def test_the_trail_search_shows_rx_trail_with_transaction_links(console_page, scenario, client):
    page = console_page.open().page
    p = next(p for p in scenario.prescriptions if p.fate == "courier" and p.root is not None)
    steps = audit.trail(client, p.rx_id)

    page.fill("#search-input", p.id_hex)
    page.click("#search-button")
    rows = page.locator("#trail-steps tbody tr")
    expect(rows).to_have_count(len(steps))
    assert [rows.nth(i).get_attribute("data-step") for i in range(len(steps))] == [s.step for s in steps]
    assert [rows.nth(i).get_attribute("data-tx") for i in range(len(steps))] == [s.tx_hash for s in steps]
    expect(page.locator("#trail-record")).to_contain_text("completed")
    link = page.locator("#trail-steps a.tx").last
    expect(link).to_have_attribute("href", f"tx/{steps[-1].tx_hash}")
    shown = page.request.get(console_page.url + f"tx/{steps[-1].tx_hash}").json()
    assert int(shown["receipt"]["blockNumber"], 16) == steps[-1].block_number
    assert page.url.endswith(f"#rx={p.id_hex}")
    console_page.screenshot("02-trail")

    page.fill("#search-input", "0x1234")
    page.click("#search-button")
    expect(page.locator("#search-error")).to_contain_text("64 hexadecimal digits")
    page.fill("#search-input", "0x" + "ab" * 32)
    page.press("#search-input", "Enter")
    expect(page.locator("#search-error")).to_contain_text("no prescription")
    expect(page.locator("#trail-result")).to_be_hidden()
    console_page.assert_clean()


def test_an_expired_prescription_opens_its_trail_and_deep_links_work(console_page, scenario):
    page = console_page.open().page
    first = page.locator("#expired-table tbody tr").first
    rx_id = first.get_attribute("data-id")
    first.locator("button").click()
    expect(page.locator("#trail-record")).to_have_attribute("data-status", "expired")
    expect(page.locator("#trail-steps tbody tr").first).to_have_attribute(
        "data-step", "issued" if scenario.by_id()[rx_id].root is None else "issued in batch"
    )

    voided = next(p for p in scenario.prescriptions if p.cancelled == "batch")
    console_page.open(f"#rx={voided.id_hex}")
    expect(page.locator("#trail-record")).to_contain_text("its whole batch was withdrawn")
    expect(page.locator("#trail-steps tbody tr")).to_have_count(1)
    console_page.assert_clean()
