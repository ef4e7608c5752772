// rxchain pharmacy dApp: the "Insurance claim" step of the page (its logic is dapp/claims.js).
//
// Shown for a prescription with a fill whose boxes were recorded (DrugBoxes' FillBoxesRecorded): the
// fill's claim as the chain has it (none, filed, approved, paid, rejected with its reason, void), and
// every check fileClaim makes, each refusal by the contract's error name in plain words. When the fill
// can be claimed, the pharmacist picks the insurer, enters the amounts and the patient's insurance
// reference and files; the page checks everything again on the latest state, names the fill's boxes
// from its event, and sends fileClaim with the commitment alone. The opening (amounts, reference,
// salt) never goes on chain nor to the server: the page offers it as a file to send to the insurer.
//
// app.js makes one ClaimStep once the chain is reached, reads with prepare(rx, account) whenever it
// reads a prescription again and draws the step with the prescription, and calls clear() when the
// prescription is cleared.

import { ethers } from "ethers";
import * as core from "./rxcore.js";
import * as claims from "./claims.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const RECEIPT_TIMEOUT_MS = 120_000;
const REDEEMED = ["Dispensed", "Dispatched", "Delivered", "Completed", "Refillable", "Cancelled"];


function plural(n, word) {
  return `${n} ${word}${Number(n) === 1 ? "" : word.endsWith("x") ? "es" : "s"}`;
}

export class ClaimStep {
  /**
   * `page`: {provider, config, chainId, registry (ethers Contract), registryIface, say(text), nameOf(address),
   * timeText(seconds), blockTime(number)}.
   */
  constructor(page) {
    this.page = page;
    this.enabled = Boolean(page.config.boxes && page.config.boxesAbi);
    this.iface = this.enabled ? claims.claimsInterface(page.config.boxesAbi, page.config.abi) : null;
    this.boxes = this.enabled ? new ethers.Contract(page.config.boxes, this.iface, page.provider) : null;
    this.rx = null;
    this.account = null;
    this.generation = 0;
    this.busy = false;
    this.chosen = new Map(); // prescription id -> the fill (fills left) the pharmacist picked
    this.download = null; // the object URL of the last opening offered
    if (this.enabled) this.wire();
  }

  wire() {
    $("claim-fill").addEventListener("change", (event) => {
      if (this.rx) this.chosen.set(this.rx.verified.id, Number(event.target.value));
      this.update(this.rx, this.account);
    });
    $("claim-insurer-list").addEventListener("change", (event) => {
      if (event.target.value) $("claim-insurer").value = event.target.value;
    });
    $("claim-add-amount").addEventListener("click", () => this.addAmountRow("", ""));
    $("claim-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.file();
    });
    this.addAmountRow("total", "");
    this.addAmountRow("copay", "");
  }

  addAmountRow(name, value) {
    const body = $("claim-amounts").tBodies[0];
    const n = body.rows.length + 1;
    body.append(
      el(
        "tr",
        {},
        el("td", {}, el("input", { type: "text", class: "claim-amount-name", value: name, "aria-label": `Amount ${n}: name`, autocomplete: "off", spellcheck: "false" })),
        el("td", {}, el("input", { type: "text", class: "claim-amount-value", value, inputmode: "numeric", "aria-label": `Amount ${n}: in the currency's smallest unit`, autocomplete: "off" })),
      ),
    );
  }

  amountRows() {
    // A row without an amount is left out (the copay may not apply); a name is trimmed, as `rx claim file` does.
    return Array.from($("claim-amounts").tBodies[0].rows, (row) => [
      claims.pyStrip(row.querySelector(".claim-amount-name").value),
      row.querySelector(".claim-amount-value").value.trim(),
    ]).filter(([, value]) => value !== "");
  }

  clear() {
    this.generation++;
    this.rx = null;
    $("claim-section").hidden = true;
    if (this.busy) return; // a claim is being filed: its outcome stays until it is known
    $("claim-outcome").hidden = true;
    $("claim-opening").hidden = true;
    $("claim-reference").value = "";
    for (const input of document.querySelectorAll("#claim-amounts .claim-amount-value")) input.value = "";
    this.forgetDownload();
  }

  forgetDownload() {
    if (this.download) URL.revokeObjectURL(this.download);
    this.download = null;
    $("claim-download").removeAttribute("href");
  }

  /** Re-reads the prescription's fills and the chosen fill's claim from the chain, and redraws. */
  async update(rx, account) {
    (await this.prepare(rx, account))();
  }

  /**
   * Reads what the step shows for `rx` and `account`; returns the function that draws it (app.js reads
   * before it redraws the prescription, so the page is drawn from reads that are all done). A later
   * prepare() makes an earlier one's drawing do nothing.
   */
  async prepare(rx, account) {
    if (!this.enabled) return () => {};
    const generation = ++this.generation;
    let view = null;
    let failure = null;
    if (rx && REDEEMED.includes(rx.record.status)) {
      try {
        view = await this.read(rx, account);
      } catch (error) {
        failure = error;
      }
    }
    return () => {
      if (generation === this.generation) this.show(rx, account, view, failure);
    };
  }

  show(rx, account, view, failure) {
    const newRx = !this.rx || !rx || this.rx.verified.id !== rx.verified.id;
    if (newRx && !this.busy) { // while a claim is being filed its outcome stays on screen
      $("claim-outcome").hidden = true;
      $("claim-opening").hidden = true;
      this.forgetDownload();
    }
    this.rx = rx;
    this.account = account;
    if (failure) {
      $("claim-section").hidden = false;
      $("claim-reason").textContent = `Could not read the fill's claim from the chain: ${claims.explainClaimError(this.iface, failure).text}`;
      $("claim-reason").className = "reason bad";
      delete $("claim-reason").dataset.error;
      $("claim-form").hidden = true;
      return;
    }
    if (!view) {
      $("claim-section").hidden = true;
      return;
    }
    this.render(view);
  }

  /** One snapshot of everything the step shows, read at one block. */
  async read(rx, account) {
    const { provider, config, registry, registryIface } = this.page;
    const id = rx.verified.id;
    const head = Number(await provider.send("eth_blockNumber", []));
    const fills = await claims.recordedFills(provider, this.iface, config.boxes, id, config.deployBlock, head);
    const current = rx.record.fillsLeft;
    const options = fills.map((f) => ({ fillsLeft: f.fillsLeft, pharmacy: f.pharmacy, boxes: f.nullifiers.length }));
    if (!options.some((o) => o.fillsLeft === current) && rx.record.status !== "Cancelled") {
      options.push({ fillsLeft: current, pharmacy: null, boxes: 0 });
    }
    options.sort((a, b) => b.fillsLeft - a.fillsLeft); // oldest fill first: fills left only go down
    if (!fills.length) return { fills: [], options };
    // The fill the pharmacist picked; else the current fill when its boxes are recorded; else the latest
    // fill this pharmacy recorded; else the latest recorded.
    const picked = this.chosen.get(id);
    const own = fills.filter((f) => account && f.pharmacy.toLowerCase() === account.address.toLowerCase());
    let fillsLeft = (own.length ? own : fills)[(own.length ? own : fills).length - 1].fillsLeft;
    if (fills.some((f) => f.fillsLeft === current)) fillsLeft = current;
    if (options.some((o) => o.fillsLeft === picked)) fillsLeft = picked;
    const pharmacy = account ? account.address : core.ZERO_ADDRESS;
    const [fill, checks, events, insurers] = await Promise.all([
      claims.readFill(this.boxes, id, fillsLeft, head),
      claims.claimChecks({ registry, boxes: this.boxes, rxId: id, fillsLeft, pharmacy, blockTag: head }),
      claims.claimEvents(provider, this.iface, config.boxes, id, fillsLeft, config.deployBlock, head),
      claims.insurers(provider, registry, registryIface, config.registry, config.deployBlock, head).catch(() => []),
    ]);
    for (const event of Object.values(events)) event.time = await this.page.blockTime(event.blockNumber);
    return { fills, options, fillsLeft, fill, checks, events, insurers, head, noAccount: !account };
  }

  render(view) {
    const section = $("claim-section");
    section.hidden = view.fills.length === 0;
    if (section.hidden) return;
    const { nameOf } = this.page;
    const who = (address) => (address ? `${address}${nameOf(address) ? ` (${nameOf(address)})` : ""}` : "");

    const select = $("claim-fill");
    select.replaceChildren(
      ...view.options.map((o) =>
        el("option", {
          value: String(o.fillsLeft),
          text: `fill with ${plural(o.fillsLeft, "fill")} left after it — ${
            o.pharmacy ? `${plural(o.boxes, "box")} recorded by ${who(o.pharmacy)}` : "no boxes recorded"}`,
        }),
      ),
    );
    select.value = String(view.fillsLeft);
    section.dataset.fillsLeft = String(view.fillsLeft);

    $("claim-boxes").textContent = view.fill.pharmacy
      ? `${plural(view.fill.boxes, "box")} recorded by ${who(view.fill.pharmacy)}`
      : "none recorded";
    const state = $("claim-state");
    state.dataset.claim = view.fill.claim.toLowerCase();
    state.replaceChildren(...this.claimText(view.fill, view.events));

    // A claim already filed is this step done (the fill is claimed), not a fault: shown as such, still by name.
    const done = (check) => !check.ok && check.name === "ClaimAlreadyFiled";
    $("claim-checks").replaceChildren(
      ...view.checks.map((check) =>
        el("li", { class: check.ok ? "ok" : done(check) ? "done" : "bad", dataset: { check: check.key, ...(check.ok ? {} : { error: check.name }) } },
          check.ok ? check.text : `${check.name}: ${check.text}`),
      ),
    );
    const blocking = view.checks.find((check) => !check.ok);
    const reason = $("claim-reason");
    if (view.noAccount) {
      reason.textContent = "Choose the pharmacy's account first.";
      reason.className = "reason bad";
      delete reason.dataset.error;
    } else if (blocking) {
      reason.textContent = `${done(blocking) ? "Claimed already" : "Cannot file a claim"} — ${blocking.name}: ${blocking.text}`;
      reason.className = done(blocking) ? "reason" : "reason bad";
      reason.dataset.error = blocking.name;
    } else {
      reason.textContent = "This fill can be claimed: choose the insurer, enter the amounts and the patient's insurance reference.";
      reason.className = "reason";
      delete reason.dataset.error;
    }
    const can = !view.noAccount && !blocking;
    $("claim-form").hidden = !can;
    $("file-claim").disabled = this.busy || !can;

    const list = $("claim-insurer-list");
    const keep = list.value;
    list.replaceChildren(
      el("option", { value: "", text: view.insurers.length ? "— choose an insurer —" : "— no insurer found: enter the address —" }),
      ...view.insurers.map((address) => el("option", { value: address, text: who(address) })),
    );
    if (view.insurers.includes(keep)) list.value = keep;
  }

  claimText(fill, events) {
    const { timeText } = this.page;
    const when = (event) => (event && event.time ? ` on ${timeText(event.time)}` : "");
    switch (fill.claim) {
      case "None":
        return ["No claim filed for this fill."];
      case "Filed":
        return [
          el("span", { class: "badge", text: "filed" }),
          ` with insurer ${events.filed ? events.filed.insurer : "?"}${when(events.filed)}; awaiting the insurer's decision. Commitment `,
          el("span", { class: "mono", text: events.filed ? events.filed.commitment : "" }),
        ];
      case "Approved":
        return [el("span", { class: "badge ok", text: "approved" }), ` by the insurer${when(events.approved)}; its payment is not stamped yet.`];
      case "Paid":
        return [
          el("span", { class: "badge ok", text: "paid" }),
          ` by the insurer${when(events.paid)}: payment reference ${events.paid ? events.paid.paymentReference : "?"}.`,
        ];
      case "Rejected":
        return [el("span", { class: "badge bad", text: "rejected" }), ` by the insurer${when(events.rejected)} with reason code ${fill.reason}.`];
      case "Void":
        return [el("span", { class: "badge bad", text: "void" }), " the regulator voided this fill (its pharmacy lost custody): it can never be claimed."];
      default:
        return [fill.claim];
    }
  }

  // ---------------------------------------------------------------------------- filing

  outcome(kind, text, detail = null, error = null) {
    const box = $("claim-outcome");
    box.className = `message message-${kind}`;
    box.replaceChildren(el("span", { text }));
    if (detail) box.append(el("span", { class: "mono", text: detail }));
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    if (error) box.dataset.error = error;
    else delete box.dataset.error;
    box.hidden = false;
    this.page.say(text);
  }

  refuse(explained, hash = null) {
    const args = Object.entries(explained.args || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const after = hash ? ` (transaction ${hash})` : " Nothing was sent.";
    this.outcome("error", `Claim refused — ${explained.name}: ${explained.text}${after}`,
      args ? `${explained.name}(${args})` : null, explained.name);
  }

  async file() {
    const rx = this.rx;
    const account = this.account;
    if (!rx || !account || this.busy) return;
    const fillsLeft = Number($("claim-fill").value);
    $("claim-opening").hidden = true;
    this.forgetDownload();

    // The input first: nothing is read or sent for a claim that could not be opened.
    const insurer = $("claim-insurer").value.trim();
    if (!ethers.isAddress(insurer)) {
      $("claim-insurer").setAttribute("aria-invalid", "true");
      this.outcome("error", "Enter the insurer's account address: 0x followed by 40 hexadecimal digits. Nothing was sent.", null, "InvalidInsurer");
      return;
    }
    $("claim-insurer").removeAttribute("aria-invalid");
    let opening;
    try {
      opening = claims.newOpening(this.amountRows(), $("claim-reference").value);
    } catch (error) {
      if (!(error instanceof claims.ClaimInputError)) throw error;
      this.outcome("error", `${error.message} Nothing was sent.`, null, error.name);
      return;
    }

    this.busy = true;
    $("file-claim").disabled = true;
    let sent = null;
    try {
      const { provider, config, registry } = this.page;
      const id = rx.verified.id;
      this.page.say("Checking the claim on the chain…");
      const head = Number(await provider.send("eth_blockNumber", []));
      const refused = await claims.checkClaim({
        registry, boxes: this.boxes, rxId: id, fillsLeft, pharmacy: account.address, insurer: ethers.getAddress(insurer), blockTag: head,
      });
      if (refused) return this.refuse(refused);
      const nullifiers = await claims.fillNullifiers(provider, this.iface, config.boxes, id, fillsLeft, config.deployBlock, head);
      if (!nullifiers) return this.refuse(claims.refusal("NoBoxesRecorded", { id, fillsLeft }));

      const commitment = claims.commitment(opening);
      const fileText = claims.openingFileText(id, fillsLeft, opening);
      const data = this.iface.encodeFunctionData("fileClaim", [id, fillsLeft, nullifiers, ethers.getAddress(insurer), commitment]);
      this.page.say("Filing the claim…");
      sent = await this.send(data, (hash) => this.offerOpening(id, fillsLeft, fileText, hash));
      this.outcome("ok", `Claim filed with ${insurer} in block ${sent.blockNumber} at ${this.page.timeText(sent.time)}.`, `transaction ${sent.hash}`);
      $("claim-outcome").dataset.commitment = commitment;
      $("claim-reference").value = "";
      for (const input of document.querySelectorAll("#claim-amounts .claim-amount-value")) input.value = "";
    } catch (failure) {
      const explained = failure && failure.explained ? failure.explained : claims.explainClaimError(this.iface, failure);
      const hash = failure && failure.hash ? failure.hash : null;
      this.refuse(explained, hash);
      // A transaction that failed commits to nothing; one not yet mined may still be: keep its opening.
      if (explained.name !== "NotMined") {
        $("claim-opening").hidden = true;
        this.forgetDownload();
      }
    } finally {
      this.busy = false;
      await this.update(this.rx, this.account);
    }
    if (sent) $("claim-download").focus();
  }

  /**
   * The opening as a file, downloaded as soon as the transaction is sent (the claim commits to exactly
   * this file and the page keeps it nowhere else), and offered again by a link.
   */
  offerOpening(id, fillsLeft, text, hash) {
    this.forgetDownload();
    this.download = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    const link = $("claim-download");
    link.href = this.download;
    link.download = claims.openingFileName(id, fillsLeft);
    link.textContent = `Download the claim's opening again (${link.download})`;
    link.dataset.tx = hash;
    $("claim-opening-name").textContent = link.download;
    $("claim-opening").hidden = false;
    link.click();
  }

  /**
   * Estimates (a refusal comes back by name before anything is sent), then sends `data` to DrugBoxes
   * as a free-gas legacy transaction from the pharmacy's account and waits for its receipt.
   * `onSent(hash)` runs once the node has the transaction.
   */
  async send(data, onSent) {
    const result = await core.sendAndWait({
      provider: this.page.provider,
      account: this.account,
      chainId: this.page.chainId,
      to: this.page.config.boxes,
      data,
      explain: (error) => claims.explainClaimError(this.iface, error),
      onSent: (hash) => {
        onSent(hash);
        this.page.say(`Sent transaction ${hash.slice(0, 10)}…; waiting for it to be mined…`);
      },
      notMinedAdvice: "reload the prescription before trying again.",
      timeoutMs: RECEIPT_TIMEOUT_MS,
    });
    return { ...result, time: await this.page.blockTime(result.blockNumber) };
  }
}
