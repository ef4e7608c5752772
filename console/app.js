// rxchain regulator's console: reads the console server's JSON (the index database) and draws it.
// Read-only: no keys, no wallet, no writes. Every figure names the block it is for.
(function () {
  "use strict";

  const COLORS = {
    issued: "#3b6ea8",
    redeemed: "#2e8b57",
    cancelled: "#c07a2c",
    expired: "#b03a48",
    open: "#9aa3ad",
    dispatched: "#3b6ea8",
    inStore: "#6c8f3a",
    delivery: "#5a6fb0",
  };
  const REFRESH_MS = 10000;
  const charts = {};
  let config = null;
  let refreshTimer = null;
  let shownId = null;
  let view = "all"; // what the signed-in member sees: all (regulator, auditor), hospital, pharmacy

  // ------------------------------------------------------------------------------- helpers

  const $ = (selector) => document.querySelector(selector);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const reason = body && body.error ? body.error : `HTTP ${response.status}`;
      const error = new Error(reason);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-GB"));

  function utc(ts) {
    if (ts === null || ts === undefined) return "–";
    return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 90) return `${s} s`;
    const minutes = Math.round(s / 60);
    if (minutes < 90) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    if (hours < 48) return rest ? `${hours} h ${rest} min` : `${hours} h`;
    return `${(s / 86400).toFixed(1)} days`;
  }

  function short(hex, keep) {
    const k = keep || 6;
    return hex && hex.length > 2 + 2 * k ? `${hex.slice(0, 2 + k)}…${hex.slice(-k)}` : hex || "";
  }

  function label(address) {
    return (config && config.labels && address && config.labels[address]) || null;
  }

  function addr(address, keep) {
    if (!address) return el("span", { className: "hint", text: "–" });
    const name = label(address);
    return el("span", { className: "addr", title: address }, name ? el("span", { className: "name", text: name }) : null,
      name ? short(address, 4) : short(address, keep || 6));
  }

  function addrText(address) {
    if (!address) return "unknown";
    const name = label(address);
    return name ? `${name} (${short(address, 4)})` : short(address, 4);
  }

  function txLink(hash) {
    if (!config || !config.txUrl) return el("span", { className: "mono", title: hash, text: short(hash, 8) });
    const href = config.txUrl.split("{hash}").join(hash);
    return el("a", { className: "mono tx", href, target: "_blank", rel: "noopener noreferrer", title: hash, text: short(hash, 8) });
  }

  function cell(content, className) {
    return el("td", { className }, content);
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function showFatal(message) {
    const box = $("#fatal");
    box.textContent = message;
    box.hidden = !message;
  }

  // -------------------------------------------------------------------------------- charts

  function chart(id, type, data, options) {
    if (typeof Chart === "undefined") return;
    if (charts[id]) {
      charts[id].data = data;
      charts[id].update("none");
      return;
    }
    charts[id] = new Chart(document.getElementById(id), {
      type,
      data,
      options: Object.assign(
        {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        },
        options || {},
      ),
    });
  }

  // ------------------------------------------------------------------------------- sections

  function renderHeader() {
    const c = config;
    $("#chain").textContent = `chain ${c.chainId} · registry ${short(c.registry, 6)} · ${c.database}`;
    $("#chain").title = c.registry;
    const live = c.indexer && c.indexer.following;
    const parts = [
      el("span", { text: `Figures as of block ${number(c.lastBlock)} ` }),
      el("span", { className: "mono", title: c.lastBlockHash, text: `(${short(c.lastBlockHash, 6)})` }),
      el("span", { text: `, chain time ${utc(c.lastBlockTime)} · ${number(c.events)} events indexed` }),
    ];
    if (c.paused) parts.push(el("strong", { text: " · the registry is PAUSED" }));
    if (live) parts.push(el("span", { className: "live", text: " · following the chain" }));
    if (c.indexer && c.indexer.lastError) parts.push(el("span", { className: "stale", text: ` · indexer: ${c.indexer.lastError}` }));
    $("#provenance").replaceChildren(...parts);
  }

  function setFigure(key, value, sub) {
    const box = document.querySelector(`[data-figure="${key}"]`);
    box.querySelector(".value").textContent = value;
    box.querySelector(".sub").textContent = sub || "";
  }

  function renderSummary(s, delivery) {
    setFigure("issued", number(s.issued), `${number(s.issuedSingle)} single · ${number(s.issuedBatched)} in ${number(s.batches)} batches`);
    setFigure("redeemed", number(s.redeemed), `${number(s.fills)} fills`);
    setFigure("cancelled", number(s.cancelled), s.batchesCancelled ? `${number(s.batchesCancelled)} whole ${s.batchesCancelled === 1 ? "batch" : "batches"} withdrawn` : "");
    setFigure("expiredUnfilled", number(s.expiredUnfilled), "past expiry, not cancelled");
    setFigure("activeUnfilled", number(s.activeUnfilled), "still redeemable");
    setFigure("received", number(s.received), `${number(s.dispatched)} dispatched · ${number(s.handedOverInStore)} in store`);
    setFigure("delivery", duration(delivery.p50), delivery.count ? `p90 ${duration(delivery.p90)} · ${number(delivery.count)} deliveries` : "no deliveries yet");
    setFigure("membersExpiringSoon", number(s.membersExpiringSoon), `within ${s.expiringSoonDays} days · ${number(s.membersExpired)} expired`);
  }

  function renderDaily(days) {
    chart("chart-daily", "bar", {
      labels: days.map((d) => d.day),
      datasets: [
        { label: "issued", data: days.map((d) => d.issued), backgroundColor: COLORS.issued },
        { label: "redeemed (fills)", data: days.map((d) => d.redeemed), backgroundColor: COLORS.redeemed },
        { label: "cancelled", data: days.map((d) => d.cancelled), backgroundColor: COLORS.cancelled },
        { label: "expired unfilled", data: days.map((d) => d.expired), backgroundColor: COLORS.expired },
      ],
    }, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
    fillRows($("#daily-table tbody"), days.map((d) => el("tr", { "data-day": d.day },
      cell(d.day), cell(number(d.issued), "num"), cell(number(d.redeemed), "num"), cell(number(d.cancelled), "num"),
      cell(number(d.expired), "num"))));
  }

  function renderHospitals(rows) {
    chart("chart-hospitals", "bar", {
      labels: rows.map((r) => addrText(r.hospital)),
      datasets: [
        { label: "redeemed", data: rows.map((r) => r.redeemed), backgroundColor: COLORS.redeemed },
        { label: "cancelled", data: rows.map((r) => r.cancelled), backgroundColor: COLORS.cancelled },
        { label: "expired unfilled", data: rows.map((r) => r.expiredUnfilled), backgroundColor: COLORS.expired },
        { label: "open", data: rows.map((r) => r.activeUnfilled), backgroundColor: COLORS.open },
      ],
    }, { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } });
    fillRows($("#hospitals-table tbody"), rows.map((r) => el("tr", { "data-hospital": r.hospital || "" },
      cell(addr(r.hospital)), cell(number(r.issued), "num"), cell(number(r.batched), "num"), cell(number(r.redeemed), "num"),
      cell(number(r.cancelled), "num"), cell(number(r.expiredUnfilled), "num"), cell(number(r.activeUnfilled), "num"))));
  }

  function renderPharmacies(rows) {
    chart("chart-pharmacies", "bar", {
      labels: rows.map((r) => addrText(r.pharmacy)),
      datasets: [
        { label: "dispatched to a courier", data: rows.map((r) => r.dispatched), backgroundColor: COLORS.dispatched },
        { label: "handed over in store", data: rows.map((r) => r.handedOverInStore), backgroundColor: COLORS.inStore },
        { label: "not handed over yet", data: rows.map((r) => r.fills - r.dispatched - r.handedOverInStore), backgroundColor: COLORS.open },
      ],
    }, { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } });
    fillRows($("#pharmacies-table tbody"), rows.map((r) => el("tr", { "data-pharmacy": r.pharmacy },
      cell(addr(r.pharmacy)), cell(number(r.fills), "num"), cell(number(r.dispatched), "num"),
      cell(number(r.handedOverInStore), "num"), cell(number(r.received), "num"), cell(duration(r.medianDeliverySeconds), "num"))));
  }

  function binLabel(bin, width) {
    if (width >= 86400) return `${bin.from / 86400}–${bin.to / 86400} d`;
    if (width >= 3600 && width % 3600 === 0) return `${bin.from / 3600}–${bin.to / 3600} h`;
    return `${Math.round(bin.from / 60)}–${Math.round(bin.to / 60)} min`;
  }

  function renderDelivery(d) {
    chart("chart-delivery", "bar", {
      labels: d.bins.map((b) => binLabel(b, d.binSeconds)),
      datasets: [{ label: "deliveries", data: d.bins.map((b) => b.count), backgroundColor: COLORS.delivery }],
    }, { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
    $("#delivery-stats").textContent = d.count
      ? `${number(d.count)} deliveries by courier · median ${duration(d.p50)} · 90% within ${duration(d.p90)} · longest ${duration(d.max)}`
      : "No delivery by courier has been confirmed yet.";
  }

  function renderExpired(data) {
    $("#expired-note").textContent = data.total
      ? `${number(data.total)} prescriptions expired without a single fill and were not cancelled${data.total > data.rows.length ? ` (newest ${data.rows.length} shown)` : ""}. Select one to see its trail.`
      : "None: every prescription past its expiry was filled or cancelled.";
    fillRows($("#expired-table tbody"), data.rows.map((r) => el("tr", { "data-id": r.id },
      cell(el("button", { type: "button", className: "link mono", title: r.id, text: short(r.id, 8), onclick: () => search(r.id) })),
      cell(addr(r.hospital)), cell(utc(r.issuedAt)), cell(utc(r.expiresAt)),
      cell(r.kind === "batched" ? "in a batch" : "single"))));
  }

  function renderMembers(rows, days) {
    const soon = rows.filter((m) => m.standing === "expiring").length;
    const expired = rows.filter((m) => m.standing === "expired").length;
    $("#members-note").textContent = `${number(rows.length)} accounts · ${number(soon)} credentials end within ${days} days · ${number(expired)} expired (chain time).`;
    fillRows($("#members-table tbody"), rows.map((m) => el("tr", { className: m.standing, "data-account": m.account },
      cell(addr(m.account, 8)), cell(m.roles.join(", ") || "none"), cell(m.hospital ? addr(m.hospital) : "–"),
      cell(m.validUntil ? utc(m.validUntil) : "–"), cell(m.daysLeft === null ? "–" : m.daysLeft.toFixed(1), "num"),
      cell(m.standing))));
  }

  // ---------------------------------------------------------------- claims and box alarms

  const CLAIM_WORDS = { filed: "waiting for the insurer", approved: "approved, payment to follow", paid: "paid",
    rejected: "rejected", void: "fill voided by the regulator" };

  function drugBoxesNote(target, text) {
    $(target).textContent = config && config.boxes ? text
      : "This index does not follow DrugBoxes (the deployment has none, or the indexer was not given it): nothing to show.";
  }

  function fillText(r) {
    const left = `${number(r.fillsLeft)} ${r.fillsLeft === 1 ? "fill" : "fills"} left`;
    return r.fill ? `fill ${number(r.fill)} (${left})` : left;
  }

  function renderClaims(c) {
    drugBoxesNote("#claims-note", `${number(c.fillsWithBoxes)} fills had their boxes recorded; ${number(c.filed)} claims were filed ` +
      `with an insurer and ${number(c.unclaimed)} fills are not claimed. Amounts and insurance numbers are not on chain: only a salted commitment.`);
    setFigure("claims-filed", number(c.filed), `${number(c.fillsWithBoxes)} fills with boxes`);
    setFigure("claims-pending", number(c.pending), "filed, not yet decided");
    setFigure("claims-approved", number(c.approved), `${number(c.awaitingPayment)} awaiting the payment's reference`);
    setFigure("claims-paid", number(c.paid), "payment reference stamped");
    setFigure("claims-rejected", number(c.rejected), "with the insurer's reason code");
    setFigure("claims-void", number(c.void), "the pharmacy lost custody: never claimable");
    fillRows($("#claims-insurers tbody"), c.byInsurer.map((r) => el("tr", { "data-insurer": r.insurer },
      cell(addr(r.insurer)), cell(number(r.filed), "num"), cell(number(r.pending), "num"), cell(number(r.approved), "num"),
      cell(number(r.paid), "num"), cell(number(r.rejected), "num"))));
    fillRows($("#claims-pharmacies tbody"), c.byPharmacy.map((r) => el("tr", { "data-pharmacy": r.pharmacy },
      cell(addr(r.pharmacy)), cell(number(r.fillsWithBoxes), "num"), cell(number(r.filed), "num"), cell(number(r.pending), "num"),
      cell(number(r.approved), "num"), cell(number(r.paid), "num"), cell(number(r.rejected), "num"), cell(number(r.void), "num"))));
    fillRows($("#claims-table tbody"), c.rows.map((r) => {
      const decided = r.voidedAt || r.rejectedAt || r.paidAt || r.approvedAt;
      const detail = r.status === "paid" ? `payment ${r.paymentReference || "–"}`
        : r.status === "rejected" ? `reason code ${r.reason}`
        : r.status === "void" ? el("span", {}, "voided by ", addr(r.voidedBy)) : "–";
      return el("tr", { "data-id": r.id, "data-fills-left": String(r.fillsLeft), "data-status": r.status },
        cell(trailLink(r.id)), cell(fillText(r)), cell(addr(r.pharmacy)), cell(addr(r.insurer)),
        cell(el("strong", { text: CLAIM_WORDS[r.status] || r.status })), cell(utc(r.filedAt)), cell(utc(decided)), cell(detail));
    }));
  }

  function renderAlarms(a) {
    drugBoxesNote("#alarms-note", a.duplicates || a.clonedBoxes
      ? "A box is sold once. A box scanned again after its sale is a counterfeit copy or a resold (returned) box; a box " +
        "recorded by two fills had its code and secret registered in two lots."
      : `No alarm: no sold box was scanned again, and no box was recorded twice (${number(a.lots)} lots registered).`);
    setFigure("alarms-duplicates", number(a.duplicates), a.byPharmacy.length ? `reported by ${number(a.byPharmacy.length)} ${a.byPharmacy.length === 1 ? "pharmacy" : "pharmacies"}` : "");
    setFigure("alarms-cloned", number(a.clonedBoxes), "same code and secret in two lots");
    setFigure("alarms-recalled", number(a.recalledLots), `of ${number(a.lots)} lots registered`);
    fillRows($("#alarms-table tbody"), a.rows.map((r) => el("tr", { "data-lot": r.lot, "data-index": String(r.index), "data-tx": r.txHash },
      cell(utc(r.scannedAt)), cell(addr(r.pharmacy)), cell(el("span", { className: "mono", title: r.lot, text: short(r.lot, 6) })),
      cell(number(r.index), "num"),
      cell(r.firstSale ? trailLink(r.firstSale.id) : el("span", { className: "hint", text: "not in the index" })),
      cell(r.firstSale ? addr(r.firstSale.pharmacy) : "–"), cell(r.firstSale ? utc(r.firstSale.at) : "–"), cell(txLink(r.txHash)))));
    fillRows($("#alarms-pharmacies tbody"), a.byPharmacy.map((r) => el("tr", { "data-pharmacy": r.pharmacy },
      cell(addr(r.pharmacy)), cell(number(r.duplicates), "num"), cell(utc(r.lastAt)))));
    fillRows($("#alarms-days tbody"), a.byDay.map((d) => el("tr", { "data-day": d.day }, cell(d.day), cell(number(d.duplicates), "num"))));
    fillRows($("#cloned-table tbody"), a.cloned.flatMap((box) => box.fills.map((f, i) => el("tr", { "data-nullifier": box.nullifier, "data-id": f.id },
      cell(i === 0 ? el("span", { className: "mono", title: box.nullifier, text: short(box.nullifier, 8) }) : ""),
      cell(trailLink(f.id)), cell(`${number(f.fillsLeft)} left`), cell(addr(f.pharmacy)), cell(utc(f.recordedAt))))));
    fillRows($("#recalled-table tbody"), a.recalled.map((r) => el("tr", { "data-lot": r.root },
      cell(el("span", { className: "mono", title: r.root, text: short(r.root, 8) })), cell(addr(r.manufacturer)),
      cell(number(r.count), "num"), cell(utc(r.registeredAt)), cell(utc(r.recalledAt)), cell(addr(r.recalledBy)))));
  }

  // --------------------------------------------------------------------------------- search

  const STEP_ACTORS = { issued: "doctor", "issued in batch": "hospital", cancelled: "by", redeemed: "pharmacy", dispatched: "pharmacy",
    delivered: "courier", "handed over in store": "pharmacy", received: "relayer" };

  async function search(value) {
    const input = $("#search-input");
    const text = (value || input.value || "").trim();
    input.value = text;
    $("#search-error").hidden = true;
    $("#trail-result").hidden = true;
    shownId = null;
    if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) {
      $("#search-error").textContent = "A prescription id is 0x followed by 64 hexadecimal digits.";
      $("#search-error").hidden = false;
      return;
    }
    const id = (text.startsWith("0x") ? text : `0x${text}`).toLowerCase();
    try {
      const data = await api(`api/trail/${id}`);
      if (!data.found) throw new Error(data.error);
      renderTrail(data);
      history.replaceState(null, "", `#rx=${id}`);
      $("#search").scrollIntoView({ block: "start" });
    } catch (err) {
      $("#search-error").textContent = err.message;
      $("#search-error").hidden = false;
    }
  }

  function renderTrail(data) {
    const rx = data.prescription;
    const record = $("#trail-record");
    const items = [["id", el("span", { className: "mono", text: data.id })]];
    if (rx) {
      const state = rx.expired ? "expired" : rx.status;
      items.push(["status", el("span", {}, el("span", { className: `badge ${rx.status} ${rx.expired ? "expired" : ""}`, text: rx.status }),
        rx.expired ? " — past its expiry" : "", rx.cancelKind === "batch" ? " — its whole batch was withdrawn" : "")]);
      items.push(["issued", `${utc(rx.issuedAt)}${rx.kind === "batched" ? " in a batch" : ""}`]);
      items.push(["hospital", addr(rx.hospital)]);
      items.push(["doctor", rx.doctor ? addr(rx.doctor) : el("span", { className: "hint", text: rx.kind === "batched" ? "named in the batch's redemption only" : "–" })]);
      if (rx.designatedPharmacy) items.push(["designated pharmacy", addr(rx.designatedPharmacy)]);
      items.push(["expires", utc(rx.expiresAt)]);
      items.push(["fills", `${number(rx.redemptions)} of ${number(rx.fills)} taken`]);
      record.dataset.status = state;
    }
    record.replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
    fillRows($("#trail-steps tbody"), data.steps.map((s, i) => el("tr", { "data-step": s.step, "data-tx": s.txHash },
      cell(String(i + 1), "num"), cell(el("strong", { text: s.step })), cell(addr(s.actor)), cell(number(s.blockNumber), "num"),
      cell(utc(s.blockTime)), cell(txLink(s.txHash)))));
    $("#trail-result").hidden = false;
    shownId = data.id;
  }

  // ------------------------------------------------------------------------ a member's own

  const OUTCOMES = ["open", "redeemed", "dispatched", "delivered", "received", "cancelled", "expired unfilled"];

  function trailLink(id) {
    return el("a", { className: "mono", href: `#rx=${id}`, title: id, text: short(id, 6) });
  }

  function figureBox(key, value, text) {
    return el("div", { className: "figure", "data-figure": key },
      el("span", { className: "value", text: value }), el("span", { className: "label", text }), el("span", { className: "sub" }));
  }

  function head(...names) {
    return el("tr", {}, ...names.map((n) => el("th", { scope: "col", text: n })));
  }

  function renderMine(mine) {
    const table = $("#mine-table");
    if (mine.view === "hospital") {
      $("#mine-heading").textContent = "Your hospital's prescriptions: what became of them";
      $("#mine-note").textContent = `${number(mine.issued)} prescriptions issued by your ${number(mine.doctors)} doctors or in your batches; ` +
        `the ${number(mine.rows.length)} most recent below.`;
      $("#mine-figures").replaceChildren(figureBox("issued", number(mine.issued), "issued"),
        ...OUTCOMES.map((o) => figureBox(o, number(mine.byOutcome[o]), o)));
      table.tHead.replaceChildren(head("prescription", "doctor", "issued", "outcome", "redeemed by", "redeemed", "dispatched",
        "delivered", "received", "cancelled", "expires"));
      fillRows(table.tBodies[0], mine.rows.map((r) => el("tr", { "data-id": r.id, "data-outcome": r.outcome },
        cell(trailLink(r.id)), cell(addr(r.doctor)), cell(utc(r.issuedAt)), cell(el("strong", { text: r.outcome })),
        cell(addr(r.redeemedBy)), cell(utc(r.redeemedAt)), cell(utc(r.dispatchedAt)), cell(utc(r.deliveredAt)),
        cell(utc(r.receivedAt)), cell(utc(r.cancelledAt)), cell(utc(r.expiresAt)))));
    } else {
      $("#mine-heading").textContent = "Your pharmacy's fills and deliveries";
      $("#mine-note").textContent = `${number(mine.fills)} fills of ${number(mine.prescriptions)} prescriptions; ` +
        `the ${number(mine.rows.length)} most recent below.`;
      $("#mine-figures").replaceChildren(figureBox("fills", number(mine.fills), "fills"),
        figureBox("dispatched", number(mine.dispatched), "dispatched"), figureBox("handedOverInStore", number(mine.handedOverInStore), "handed over in store"),
        figureBox("received", number(mine.received), "receipts confirmed"), figureBox("delivery", duration(mine.medianDeliverySeconds), "median delivery"));
      table.tHead.replaceChildren(head("prescription", "fill", "redeemed", "courier", "dispatched", "delivered", "received"));
      fillRows(table.tBodies[0], mine.rows.map((r) => el("tr", { "data-id": r.id },
        cell(trailLink(r.id)), cell(number(r.fill), "num"), cell(utc(r.redeemedAt)),
        cell(r.inStore ? el("span", { text: "in store" }) : addr(r.courier)), cell(utc(r.dispatchedAt)),
        cell(utc(r.deliveredAt)), cell(utc(r.receivedAt)))));
    }
  }

  function showView(name) {
    for (const node of document.querySelectorAll("[data-view]")) {
      const v = node.dataset.view;
      const mineView = name === "hospital" || name === "pharmacy";
      node.hidden = !(v === "any" ? name !== "none" : v === "all" ? name === "all" : mineView);
    }
  }

  // ------------------------------------------------------------------------------- loading

  async function loadAll() {
    if (view !== "all") {
      config = await api("api/config");
      const mine = await api("api/mine?limit=200");
      renderHeader();
      renderMine(mine);
      document.body.dataset.block = String(config.lastBlock);
      return;
    }
    config = await api("api/config");
    const days = config.expiringSoonDays;
    const [summary, daily, hospitals, pharmacies, delivery, members, expired, claims, alarms] = await Promise.all([
      api(`api/summary?days=${days}`), api("api/daily"), api("api/hospitals"), api("api/pharmacies"),
      api("api/delivery-times"), api(`api/members?days=${days}`), api("api/expired?limit=100"),
      api("api/claims?limit=100"), api("api/box-alarms?limit=100"),
    ]);
    renderHeader();
    renderSummary(summary, delivery);
    renderDaily(daily);
    renderHospitals(hospitals);
    renderPharmacies(pharmacies);
    renderDelivery(delivery);
    renderExpired(expired);
    renderMembers(members, days);
    renderClaims(claims);
    renderAlarms(alarms);
    document.body.dataset.block = String(config.lastBlock);
  }

  async function refresh() {
    let ok = false;
    try {
      await loadAll();
      showFatal("");
      ok = true;
    } catch (err) {
      showFatal(err.status === 503 ? `Nothing indexed yet: ${err.message}` : `Could not load the figures: ${err.message}`);
    } finally {
      document.body.dataset.ready = "1";
      if (ok && config && config.indexer && config.indexer.following && !refreshTimer) {
        refreshTimer = setInterval(refresh, REFRESH_MS);
      } else if (!ok && !refreshTimer) {
        setTimeout(refresh, 3000); // the index may be on its way (a console that has just started following)
      }
    }
  }

  function start() {
    $("#search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    const fromHash = () => {
      const match = /#rx=(0x[0-9a-fA-F]{64})/.exec(location.hash);
      if (match && match[1].toLowerCase() !== shownId) search(match[1]);
    };
    window.addEventListener("hashchange", fromHash);
    api("api/whoami").then((me) => {
      if (me.signIn && !me.signedIn) {
        showView("none");
        $("#signin").hidden = false;
        $("#provenance").textContent = "Sign in to see the console.";
        $("#chain").textContent = "";
        document.body.dataset.signedIn = "0";
        document.body.dataset.ready = "1";
        return;
      }
      if (me.signIn) {
        view = me.member.view;
        $("#who-text").textContent = `${me.member.address} · ${me.member.roles.join(", ")}`;
        $("#who").hidden = false;
        document.body.dataset.signedIn = "1";
      }
      document.body.dataset.view = view;
      showView(view);
      refresh().then(fromHash);
    }, (err) => {
      showFatal(`Could not reach the console's server: ${err.message}`);
      document.body.dataset.ready = "1";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
