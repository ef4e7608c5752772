// rxchain pharmacy dApp: the "Boxes" step. After the redemption (status Dispensed, this pharmacy the
// custodian) and before the hand-over, the pharmacist scans or types each box of the fill. Each box is
// checked before anything is sent: the web server locates its leaf among the public lot files (lot,
// index, proof; the page checks that the proof leads to the lot's root), then the chain says whether the
// proof holds, the lot is registered, recalled or expired and the box unsold (DrugBoxes.lot, boxState,
// isUnsold). The fill's multiproof is built from the boxes' proofs: no lot file is loaded in the page.
// A refused box is named by the contract's error. A box found already sold is reported on chain
// (reportDuplicate: the returned-drug alarm the regulator reads) and refused. Then one dispense(rxId,
// LotBoxes[]) records all the fill's boxes, after every check is run again on the latest state.

import { ethers } from "ethers";
import * as core from "./rxcore.js";
import * as boxes from "./boxes.js";

const $ = (id) => document.getElementById(id);
const RECEIPT_TIMEOUT_MS = 120_000;

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/**
 * The step, bound to the page's `state` ({rx, account, member, provider, config, chainId, busy}) and its
 * helpers {say, setBusy, refresh, timeText}. Returns {render(rx), clear()}.
 */
export function createBoxStep(state, { say, setBusy, refresh, timeText }) {
  const config = state.config;
  const enabled = Boolean(config.boxes && config.boxesAbi);
  const iface = enabled ? new ethers.Interface(config.boxesAbi) : null;
  const step = { rxId: null, fillsLeft: null, list: [], recorded: null };

  const contract = () => new ethers.Contract(config.boxes, iface, state.provider);

  // ---------------------------------------------------------------------------- messages

  function refuse(code, explained, extra = "") {
    const box = $("box-error");
    const args = Object.entries(explained.args || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    box.replaceChildren(document.createTextNode(`Box ${code} refused — ${explained.name}: ${explained.text}${extra}`));
    if (args) {
      const detail = document.createElement("span");
      detail.className = "mono";
      detail.textContent = `${explained.name}(${args})`;
      box.append(detail);
    }
    box.dataset.error = explained.name;
    box.hidden = false;
    say(`Box ${code} refused: ${explained.name}.${extra}`);
  }

  function outcome(kind, text, detail, name) {
    const box = $("boxes-outcome");
    box.className = `message message-${kind}`;
    box.replaceChildren(document.createTextNode(text));
    if (detail) {
      const span = document.createElement("span");
      span.className = "mono";
      span.textContent = detail;
      box.append(span);
    }
    if (name) box.dataset.error = name;
    else delete box.dataset.error;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.hidden = false;
  }

  function explain(error) {
    const explained = core.explainError(iface, error);
    if (boxes.BOX_ERROR_TEXT[explained.name]) explained.text = boxes.BOX_ERROR_TEXT[explained.name];
    return explained;
  }

  // ---------------------------------------------------------------------------- sending

  /** Estimates (a refusal comes back named before anything is sent), sends `method(args)` to DrugBoxes as
   * a free-gas legacy transaction, waits for its receipt: {hash, blockNumber, time}; throws {explained}. */
  async function send(method, args) {
    const result = await core.sendAndWait({
      provider: state.provider,
      account: state.account,
      chainId: state.chainId,
      to: config.boxes,
      data: iface.encodeFunctionData(method, args),
      explain,
      notMinedAdvice: "read the prescription again before retrying.",
      timeoutMs: RECEIPT_TIMEOUT_MS,
    });
    const block = await state.provider.getBlock(result.blockNumber);
    return { ...result, time: Number(block.timestamp) };
  }

  // ---------------------------------------------------------------------------- checking a box

  /** {box} located by the server's lot index, its proof leading to the lot's root (the chain checks it next), or
   * {refusal}. */
  async function locateBox(code, secret) {
    const nullifier = boxes.nullifier(code, secret);
    if (step.list.some((b) => b.nullifier === nullifier)) return { refusal: boxes.refusal("DuplicateScan") };
    const found = await boxes.locate(boxes.boxLeaf(nullifier));
    const root = found && typeof found.lot === "string" ? found.lot.toLowerCase() : null;
    const index = found ? Number(found.index) : null;
    const proof = found && Array.isArray(found.proof) ? found.proof.map((node) => String(node).toLowerCase()) : null;
    if (!root || !Number.isInteger(index) || !proof || boxes.proofRoot(nullifier, index, proof) !== root) {
      return { refusal: boxes.refusal("UnknownBox") };
    }
    return { box: { code, nullifier, root, index, proof } };
  }

  /** A scan (or a typed box) is queued: a scanner may send the next box while this one is checked. */
  let queue = Promise.resolve();
  function addBox(event) {
    event.preventDefault();
    const input = { scan: $("box-scan").value, code: $("box-code").value, secret: $("box-secret").value };
    $("box-scan").value = "";
    queue = queue.then(() => checkAndAdd(input)).catch(() => {});
  }

  async function checkAndAdd(input) {
    if (state.busy || !canRecord()) return;
    $("box-error").hidden = true;
    let code, secret;
    try {
      ({ code, secret } = boxes.readBox(input.scan, input.code, input.secret));
    } catch (error) {
      const box = $("box-error");
      box.textContent = error.message;
      box.dataset.error = error.code || "bad-input";
      box.hidden = false;
      say(`Box not read: ${error.message}`);
      return;
    }
    setBusy(true);
    say(`Checking box ${code}…`);
    try {
      const located = await locateBox(code, secret);
      if (located.refusal) return refuse(code, located.refusal);
      const latest = await state.provider.getBlock("latest");
      const refused = await boxes.boxRefusal(contract(), located.box, Number(latest.timestamp));
      if (refused && refused.name === "BoxAlreadyDispensed") return await reportDuplicate(located.box, refused);
      if (refused) return refuse(code, refused);
      step.list.push(located.box);
      if (!input.scan) for (const id of ["box-code", "box-secret"]) $(id).value = "";
      say(`Box ${code}: genuine and unsold; ${step.list.length} box${step.list.length === 1 ? "" : "es"} for this fill.`);
    } catch (error) {
      refuse(code, { name: "Failed", args: {}, text: `the box could not be checked (${error.shortMessage || error.message || error}).` });
    } finally {
      setBusy(false);
      draw();
      $("box-scan").focus();
    }
  }

  /** A box sold before: the returned-drug alarm goes on chain, then the box is refused. */
  async function reportDuplicate(box, refused) {
    say(`Box ${box.code} was sold before: reporting it to the regulator…`);
    try {
      const result = await send("reportDuplicate", [box.root, box.index, box.nullifier, box.proof]);
      refuse(box.code, refused, ` Reported to the regulator as a duplicate scan in block ${result.blockNumber} (transaction ${result.hash}).`);
      $("box-error").dataset.reportTx = result.hash;
    } catch (failure) {
      const why = failure && failure.explained ? failure.explained : explain(failure);
      refuse(box.code, refused, ` The duplicate scan could not be reported (${why.name}: ${why.text}).`);
    }
  }

  // ---------------------------------------------------------------------------- recording the fill

  /** Everything dispense would refuse, on the latest state; a refusal {name, args, text, code?} or null. */
  async function refusalBeforeSending(rxId) {
    const registry = state.registry;
    const [record, latest] = await Promise.all([registry.prescription(rxId), state.provider.getBlock("latest")]);
    const me = state.account.address;
    if (Number(record.status) === 0) return boxes.refusal("UnknownPrescription", { id: rxId });
    if (!same(record.custodian, me)) return boxes.refusal("NotCustodian", { id: rxId, caller: me, custodian: record.custodian });
    if (core.STATUS[Number(record.status)] !== "Dispensed") return boxes.refusal("NotDispensed", { id: rxId, current: core.STATUS[Number(record.status)] });
    const member = await registry.member(me);
    if ((Number(member.roles) & core.ROLE_BITS.pharmacy) === 0 || Number(latest.timestamp) > Number(member.validUntil)) {
      return boxes.refusal("NotInGoodStanding", { account: me });
    }
    const fill = await contract().fill(rxId, record.fillsLeft);
    if (fill.pharmacy !== ethers.ZeroAddress) return boxes.refusal("FillAlreadyRecorded", { id: rxId, fillsLeft: String(record.fillsLeft) });
    if (step.list.length < 1 || step.list.length > 255) return boxes.refusal("InvalidBoxCount", { count: String(step.list.length), maximum: "255" });
    for (const box of step.list) {
      const refused = await boxes.boxRefusal(contract(), box, Number(latest.timestamp));
      if (refused) return { ...refused, code: box.code };
    }
    return null;
  }

  async function record() {
    const rx = state.rx;
    if (state.busy || !rx || !canRecord() || !step.list.length) return;
    $("boxes-outcome").hidden = true;
    setBusy(true);
    try {
      say("Checking every box again before sending…");
      const refused = await refusalBeforeSending(rx.verified.id);
      if (refused) {
        const what = refused.code ? `Box ${refused.code}: ` : "";
        outcome("error", `Nothing was sent — ${refused.name}: ${what}${refused.text}`, null, refused.name);
        say(`The boxes were not recorded: ${refused.name}. Nothing was sent.`);
        return;
      }
      say("Recording the fill's boxes…");
      const count = step.list.length;
      const result = await send("dispense", [rx.verified.id, boxes.dispenseArgs(step.list)]);
      step.list = [];
      outcome("ok", `Recorded ${count} box${count === 1 ? "" : "es"} of this fill in block ${result.blockNumber} at ${timeText(result.time)}.`, `transaction ${result.hash}`);
      say(`Recorded ${count} box${count === 1 ? "" : "es"} of this fill.`);
    } catch (failure) {
      const explained = failure && failure.explained ? failure.explained : explain(failure);
      outcome("error", `The boxes were not recorded — ${explained.name}: ${explained.text}`, null, explained.name);
      say(`The boxes were not recorded: ${explained.name}.`);
    } finally {
      setBusy(false);
      await refresh().catch(() => {});
    }
  }

  // ---------------------------------------------------------------------------- drawing

  function same(a, b) {
    return Boolean(a && b) && a.toLowerCase() === b.toLowerCase();
  }

  function canRecord() {
    const rx = state.rx;
    return Boolean(enabled && rx && rx.record && rx.record.status === "Dispensed" && state.account
      && same(rx.record.custodian, state.account.address) && !step.recorded);
  }

  function draw() {
    const can = canRecord();
    $("box-list").tBodies[0].replaceChildren(...step.list.map((box) => {
      const tr = document.createElement("tr");
      tr.dataset.code = box.code;
      tr.append(cell(box.code, "mono"), cell(short(box.root), "mono"), cell(`#${box.index}`), cell("✓ genuine, unsold"));
      return tr;
    }));
    $("box-list").hidden = step.list.length === 0;
    for (const id of ["box-scan", "box-code", "box-secret"]) $(id).disabled = !can;
    $("add-box").disabled = state.busy || !can;
    $("record-boxes").disabled = state.busy || !can || step.list.length === 0;
    let reason;
    if (step.recorded) {
      reason = `The boxes of this fill are recorded: ${step.recorded.boxes} box${step.recorded.boxes === 1 ? "" : "es"}. Hand the drugs over below.`;
    } else if (can) {
      reason = step.list.length
        ? `${step.list.length} box${step.list.length === 1 ? "" : "es"} checked. Scan the next box, or record them.`
        : "Scan or type each box of this fill; each is checked before anything is sent.";
    } else {
      reason = "Only the pharmacy holding the redeemed prescription records its boxes.";
    }
    $("boxes-reason").textContent = reason;
  }

  /** Shows the step for a prescription this pharmacy holds, Dispensed; reads whether its fill's boxes are recorded. */
  function render(rx) {
    const section = $("boxes-section");
    const visible = Boolean(enabled && rx && rx.record && rx.record.status === "Dispensed" && state.account
      && same(rx.record.custodian, state.account.address));
    section.hidden = !visible;
    if (!visible) return;
    const id = rx.verified.id;
    if (step.rxId !== id || step.fillsLeft !== rx.record.fillsLeft) {
      Object.assign(step, { rxId: id, fillsLeft: rx.record.fillsLeft, list: [], recorded: null });
      $("box-error").hidden = true;
      $("boxes-outcome").hidden = true;
    }
    draw();
    contract().fill(id, rx.record.fillsLeft).then((fill) => {
      if (step.rxId !== id) return;
      step.recorded = fill.pharmacy === ethers.ZeroAddress ? null : { pharmacy: fill.pharmacy, boxes: Number(fill.boxes) };
      section.dataset.recorded = step.recorded ? "true" : "false";
      draw();
    }).catch(() => {});
  }

  function clear() {
    Object.assign(step, { rxId: null, fillsLeft: null, list: [], recorded: null });
    $("boxes-section").hidden = true;
  }

  if (enabled) {
    $("box-form").addEventListener("submit", addBox);
    $("record-boxes").addEventListener("click", record);
  }
  return { render, clear, draw };
}
