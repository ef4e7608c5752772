// rxchain pharmacy dApp: the page. A pharmacist chooses the pharmacy's account, reads the patient's
// prescription code, sees whether it can be redeemed (and why not, before anything is sent),
// redeems it with the patient's claim-key authorization, records the dispatch to a courier or the
// handover at the counter, and reads the prescription's trail.
//
// With the patient's app (dapp/handover.js) the claim key never reaches the pharmacy: the page shows
// its own consent request (RXP1), the patient's app shows back an authorization for this pharmacy and
// this fill (RXA1), checked here before anything is sent; at the counter the page shows a delivery
// request (RXD1) and sends the patient's receipt (RXR1) with the hand-over. The prescription code
// with the claim key in it (RX1, the weaker single-QR mode) is still read as before.
//
// A prescription a hospital issued in a batch has no record of its own until its first redemption:
// the page finds its batch in the chain's PrescriptionBatched events (as src/rxchain/core/batch.py
// find_batch_proof does), reads the batch's record, rebuilds the Merkle proof from the batch's ids and
// redeems with redeemBatched; later fills are plain redeems.
//
// Everything on chain goes through the dApp server's same-origin JSON-RPC relay (config.rpcUrl);
// transactions are free-gas legacy transactions (type 0, gas price 0), signed by the browser
// wallet (EIP-1193) or, on a development chain only, by a development key.

import { ethers } from "ethers";
import * as core from "./rxcore.js";
import * as handover from "./handover.js";
import { drawQr, findQr } from "./qrcodes.js";
import { signIn } from "./signin.js";
import { el } from "./dom.js";
import { ClaimStep } from "./claimstep.js"; // the insurance claim step
import { createBoxStep } from "./boxstep.js";
import { mountBoxCheck } from "./boxcheck.js";

const $ = (id) => document.getElementById(id);

const TRAIL_EVENTS = {
  PrescriptionIssued: { step: "issued", actor: "doctor" },
  PrescriptionBatched: { step: "issued in batch", actor: null }, // the actor is the batch's hospital
  PrescriptionOpened: { step: "opened from batch", actor: "doctor" },
  PrescriptionCancelled: { step: "cancelled", actor: "by" },
  PrescriptionRedeemed: { step: "redeemed", actor: "pharmacy" },
  PrescriptionDispatched: { step: "dispatched", actor: "pharmacy" },
  PrescriptionDelivered: { step: "delivered", actor: "by" },
  ReceiptConfirmed: { step: "received", actor: "relayer" },
  CustodyReassigned: { step: "custody reassigned", actor: "by" },
  CustodyVoided: { step: "custody voided", actor: "by" },
};
const SIGNATURE_TTL = 15 * 60;
const RECEIPT_TIMEOUT_MS = 120_000;

const state = {
  config: null,
  provider: null,
  iface: null,
  registry: null,
  chainId: null,
  names: new Map(), // address -> development identity name
  account: null, // {address, signer, kind: "wallet" | "dev", name}
  member: null, // {roles, validUntil}
  rx: null, // {payload, verified, record, issued, batch, steps, now, paused, checks}
  busy: false,
  blockTimes: new Map(),
  batchIds: new Map(), // issuing transaction -> the batch's prescription ids in issue order (a batch never changes)
};

// ------------------------------------------------------------------------------ small helpers

function say(text) {
  $("status").textContent = text;
}

function show(element, visible) {
  element.hidden = !visible;
}

function same(a, b) {
  return Boolean(a && b) && a.toLowerCase() === b.toLowerCase();
}

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

function nameOf(address) {
  if (!address) return "";
  if (state.account && same(address, state.account.address)) return "this pharmacy";
  return state.names.get(address.toLowerCase()) || "";
}

/** An address with its known name; the full address stays readable (and copyable). */
function addressNode(address) {
  const span = el("span", {}, el("span", { class: "addr", text: address }));
  const name = nameOf(address);
  if (name) span.append(el("span", { class: "name", text: `(${name})` }));
  return span;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
});

function timeText(seconds) {
  return DATE_FORMAT.format(new Date(Number(seconds) * 1000));
}

function timeNode(seconds) {
  return el("time", { datetime: new Date(Number(seconds) * 1000).toISOString(), text: timeText(seconds) });
}

function span(seconds) {
  const s = Math.abs(Number(seconds));
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.round(s / 86400)} days`;
}

function relative(target, now) {
  const delta = Number(target) - Number(now);
  return delta >= 0 ? `in ${span(delta)}` : `${span(delta)} ago`;
}

function message(box, kind, text, detail) {
  box.className = `message message-${kind}`;
  box.replaceChildren(el("span", { text }));
  if (detail) box.append(el("span", { class: "mono", text: detail }));
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  show(box, true);
}

function setBusy(busy) {
  state.busy = busy;
  document.querySelector("main").setAttribute("aria-busy", busy ? "true" : "false");
  if (busy) {
    for (const id of ["redeem", "dispatch", "deliver", "check-code", "deliver-receipt", "ask-receipt"]) $(id).disabled = true;
  } else {
    $("check-code").disabled = false;
  }
}

async function blockTime(number) {
  if (!state.blockTimes.has(number)) {
    const block = await state.provider.getBlock(number);
    state.blockTimes.set(number, block.timestamp);
  }
  return state.blockTimes.get(number);
}


// ------------------------------------------------------------------------------ start-up

async function start() {
  let config;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    return fatal("The dApp server sent no configuration: start it with `rx dapp`, then reload this page.");
  }
  state.config = config;
  state.iface = new ethers.Interface(config.abi);
  const rpc = new URL(config.rpcUrl, location.href).href;

  let chainId;
  try {
    const response = await fetch(rpc, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
    const answer = await response.json();
    if (answer.error) throw new Error(answer.error.message);
    chainId = Number(BigInt(answer.result));
  } catch (error) {
    return fatal(`The chain's node (${config.nodeUrl}) does not answer. Start it (for the devnet: rx devnet up), then reload this page.`);
  }
  if (chainId !== Number(config.chainId)) {
    return fatal(
      `The node serves chain ${chainId}, but the registry is recorded on chain ${config.chainId}. Point the dApp server at the right node.`,
    );
  }
  state.chainId = chainId;
  state.provider = new ethers.JsonRpcProvider(rpc, ethers.Network.from(chainId), { staticNetwork: true, batchStallTime: 5 });
  state.registry = new ethers.Contract(config.registry, state.iface, state.provider);
  if ((await state.provider.getCode(config.registry)) === "0x") {
    return fatal(`There is no registry at ${config.registry} on chain ${chainId}: was the devnet reset? Deploy again (rx deploy).`);
  }
  // The insurance claim step (dapp/claimstep.js): shown when DrugBoxes is deployed.
  state.claims = new ClaimStep({
    provider: state.provider, config, chainId, registry: state.registry, registryIface: state.iface, say, nameOf, timeText, blockTime,
  });
  $("network").textContent = `${config.network} · chain ${chainId} · registry ${short(config.registry)}`;
  $("network").title = `registry ${config.registry} on ${config.nodeUrl}`;

  wireEvents();
  setUpBoxes();
  const devKeys = core.DEV_CHAIN_IDS.includes(chainId) && config.devKeys ? config.devKeys : null;
  if (devKeys) setUpDevAccounts(devKeys);
  if (window.ethereum) show($("wallet-choice"), true);
  if (!devKeys && !window.ethereum) {
    $("account-info").textContent =
      "No wallet found in this browser. Install or enable the pharmacy's wallet, then reload this page.";
  }
  if (devKeys) await useDevAccount($("dev-account").value);
  say(state.account
    ? `Ready: using account ${short(state.account.address)} (${state.account.name}). Paste or upload the patient's prescription code.`
    : "Ready. Choose the pharmacy account, then paste or upload the patient's prescription code.");
  document.body.dataset.ready = "true";
}

function fatal(text) {
  const box = $("fatal");
  box.textContent = text;
  show(box, true);
  say("Not connected.");
  $("network").textContent = "Not connected";
}

function setUpDevAccounts(devKeys) {
  const entries = Object.entries(devKeys).map(([name, key]) => {
    const address = new ethers.Wallet(key).address;
    state.names.set(address.toLowerCase(), name);
    return { name, key, address };
  });
  const pharmacyFirst = [...entries].sort((a, b) => Number(!a.name.startsWith("pharmacy")) - Number(!b.name.startsWith("pharmacy")));
  const select = $("dev-account");
  select.replaceChildren(
    ...pharmacyFirst.map(({ name, address }) => el("option", { value: name, text: `${name} (${short(address)})` })),
  );
  state.devKeys = Object.fromEntries(entries.map((entry) => [entry.name, entry]));
  show($("dev-choice"), true);

  const couriers = entries.filter(({ name }) => name.startsWith("courier"));
  if (couriers.length) {
    $("dev-courier").replaceChildren(
      el("option", { value: "", text: "— choose a courier —" }),
      ...couriers.map(({ name, address }) => el("option", { value: address, text: `${name} (${short(address)})` })),
    );
    show($("dev-courier-row"), true);
  }
}

// ------------------------------------------------------------------------------ accounts

async function useDevAccount(name) {
  const entry = state.devKeys && state.devKeys[name];
  if (!entry) return;
  const signer = new ethers.Wallet(entry.key, state.provider);
  await setAccount({ address: signer.address, signer, kind: "dev", name });
}

async function connectWallet() {
  if (!window.ethereum) return;
  say("Asking the wallet for the pharmacy's account…");
  try {
    const browser = new ethers.BrowserProvider(window.ethereum, "any");
    await browser.send("eth_requestAccounts", []);
    const network = await browser.getNetwork();
    if (Number(network.chainId) !== state.chainId) {
      try {
        await browser.send("wallet_switchEthereumChain", [{ chainId: ethers.toQuantity(state.chainId) }]);
      } catch {
        message(
          $("fatal"), "error",
          `The wallet is on chain ${network.chainId}; switch it to chain ${state.chainId} (${state.config.network}) and connect again.`,
        );
        say("Wallet on another chain.");
        return;
      }
    }
    const signer = await browser.getSigner();
    await setAccount({ address: await signer.getAddress(), signer, kind: "wallet", name: "wallet" });
  } catch (error) {
    const explained = core.explainError(state.iface, error);
    say(`Wallet not connected: ${explained.text}`);
  }
}

async function setAccount(account) {
  state.account = account;
  state.member = null;
  try {
    const [member, latest] = await Promise.all([state.registry.member(account.address), state.provider.getBlock("latest")]);
    state.member = { roles: Number(member.roles), validUntil: Number(member.validUntil) };
    const info = $("account-info");
    info.replaceChildren(el("strong", { text: "Account " }), addressNode(account.address), " ");
    const pharmacy = (state.member.roles & core.ROLE_BITS.pharmacy) !== 0;
    if (!pharmacy) {
      info.append(el("span", { class: "badge bad", text: "not a pharmacy" }));
    } else if (latest.timestamp > state.member.validUntil) {
      info.append(el("span", { class: "badge bad", text: "credential expired" }), " on ", timeNode(state.member.validUntil));
    } else {
      info.append(el("span", { class: "badge ok", text: "pharmacy in good standing" }), " until ", timeNode(state.member.validUntil));
      if (state.config.signIn) await signInNote(account, info); // the server relays a pharmacy's sends once it has signed in
    }
    say(`Using account ${short(account.address)}${account.kind === "dev" ? ` (${account.name})` : ""}.`);
  } catch (error) {
    say(`Could not read the account's membership: ${core.explainError(state.iface, error).text}`);
  }
  await renderConsent().catch(() => {});
  document.body.dataset.account = account.address; // the account is read (and signed in, if it may)
  if (state.rx) await refresh();
}

/** The pharmacy's own consent request (RXP1): its address, this registry, a deadline 15 minutes past the head's time. */
async function renderConsent() {
  const account = state.account;
  const pharmacy = account && state.member && (state.member.roles & core.ROLE_BITS.pharmacy) !== 0;
  show($("consent-section"), Boolean(pharmacy));
  if (!pharmacy) return;
  const latest = await state.provider.getBlock("latest");
  const deadline = latest.timestamp + SIGNATURE_TTL;
  const code = handover.encodeConsentRequest({ chainId: state.chainId, registry: state.config.registry, pharmacy: account.address, deadline });
  $("consent-code").value = code;
  drawQr($("consent-qr"), code);
  $("consent-info").replaceChildren("Pharmacy ", addressNode(account.address), " · valid until ", timeNode(deadline));
  $("consent-section").dataset.deadline = String(deadline);
}

async function signInNote(account, info) {
  try {
    await signIn(account.signer);
    info.append(" ", el("span", { class: "badge ok", id: "signed-in", text: "signed in" }));
  } catch (error) {
    info.append(" ", el("span", { class: "badge bad", id: "signed-in", text: `not signed in: ${error.message || error}` }));
  }
}

// ------------------------------------------------------------------------------ reading a code

function clearPrescription() {
  state.rx = null;
  if (boxStep) boxStep.clear();
  for (const id of ["rx-section", "handover-section", "trail-section", "code-error", "redeem-outcome", "handover-outcome"]) {
    show($(id), false);
  }
  if (state.claims) state.claims.clear();
}

function codeError(text) {
  const box = $("code-error");
  box.textContent = text;
  show(box, true);
  $("payload").setAttribute("aria-invalid", "true");
  say(`Prescription code refused: ${text}`);
}

async function readCode(text) {
  if (state.busy) return;
  clearPrescription();
  $("payload").removeAttribute("aria-invalid");
  say("Reading the prescription code…");
  let payload, verified;
  let auth = null;
  const kind = handover.kindOf(text);
  try {
    if (kind === "authorization") {
      // The patient's consent: the document, the claim key's address and its signature; no key.
      auth = handover.decodeAuthorization(text, { chainId: state.chainId, registry: state.config.registry });
      payload = { doc: auth.doc };
      verified = { id: auth.rxId, terms: auth.terms, docHash: auth.docHash, doctor: auth.doctor, pharmacy: auth.designated, claim: null };
    } else if (kind === "consent" || kind === "delivery" || kind === "receipt") {
      const what = { consent: "a pharmacy's consent request", delivery: "a delivery request", receipt: "a patient's receipt" }[kind];
      const where = kind === "receipt" ? " Paste it under “Hand over” once the prescription is redeemed." : "";
      return codeError(`This is ${what}, not the patient's authorization or prescription code.${where}`);
    } else {
      payload = await core.decodePayload(text);
      verified = core.verifyPayload(payload, { chainId: state.chainId, registry: state.config.registry });
    }
  } catch (error) {
    if (error instanceof core.PayloadError) return codeError(error.message);
    return codeError("The prescription code could not be read. Scan or copy it again.");
  }
  state.rx = { payload, verified, auth, meds: core.medications(payload.doc) };
  try {
    await refresh();
  } catch (error) {
    say(`Could not read the prescription from the chain: ${core.explainError(state.iface, error).text}`);
    return;
  }
  say(`Prescription ${short(verified.id)}: ${state.rx.verdict}`);
  $("rx-heading").focus();
}

async function readQrPicture(file) {
  if (!file) return;
  if (typeof window.jsQR !== "function") return codeError("The QR reader did not load; paste the code instead.");
  say("Looking for a QR code in the picture…");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return codeError("This file is not a picture this browser can open. Upload a PNG or JPEG photo or screenshot.");
  }
  const found = findQr(bitmap);
  bitmap.close();
  if (!found) {
    return codeError("No QR code was found in this picture. Take the photo again, straight on and in focus, or paste the code.");
  }
  $("payload").value = found;
  await readCode(found);
}

// ------------------------------------------------------------------------------ on-chain state

/** `hospital`'s batch `root`, as the registry records it (issuedAt 0: that hospital issued no such batch). */
async function readBatch(hospital, root) {
  const batch = await state.registry.batch(hospital, root);
  return {
    root: root.toLowerCase(),
    hospital,
    issuedAt: Number(batch.issuedAt),
    expiresAt: Number(batch.expiresAt),
    fills: Number(batch.fills),
    cancelled: batch.cancelled,
  };
}

/**
 * {steps, batches}: every event of prescription `id`, oldest first, and the record of each batch
 * that announced it (issuing transaction -> batch, with its hospital: two members may announce the
 * same root, each in a batch of its own). One log query finds the trail (every trail event has the id
 * as its first indexed topic), asked in windows a range-limited node answers (core.getLogsInWindows); a batched prescription's trail also shows its batch's withdrawal.
 */
async function readTrail(id, toBlock = "latest") {
  const registry = state.config.registry;
  const fromBlock = state.config.deployBlock;
  const topics = Object.keys(TRAIL_EVENTS).map((name) => state.iface.getEvent(name).topicHash);
  const logs = await core.getLogsInWindows(state.provider, { address: registry, topics: [topics, id] }, fromBlock, toBlock);
  const batchedTopic = state.iface.getEvent("PrescriptionBatched").topicHash;
  const roots = [...new Set(logs.filter((log) => log.topics[0] === batchedTopic).map((log) => log.topics[2].toLowerCase()))];
  const batches = new Map();
  if (roots.length) {
    const issued = await core.getLogsInWindows(state.provider, {
      address: registry, topics: [state.iface.getEvent("BatchIssued").topicHash, roots],
    }, fromBlock, toBlock);
    const hospitals = [...new Set(issued.map((log) => ethers.getAddress(ethers.dataSlice(log.topics[2], 12))))];
    const [records, withdrawals] = await Promise.all([
      Promise.all(issued.map((log) => readBatch(ethers.getAddress(ethers.dataSlice(log.topics[2], 12)), log.topics[1]))),
      core.getLogsInWindows(state.provider, {
        address: registry,
        topics: [state.iface.getEvent("BatchCancelled").topicHash, roots, hospitals.map((h) => ethers.zeroPadValue(h, 32))],
      }, fromBlock, toBlock),
    ]);
    issued.forEach((log, i) => batches.set(log.transactionHash, { ...records[i], block: log.blockNumber, txHash: log.transactionHash }));
    logs.push(...withdrawals);
  }
  logs.sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
  const steps = [];
  for (const log of logs) {
    const parsed = state.iface.parseLog(log);
    if (!parsed) continue;
    let step, actor;
    if (parsed.name === "BatchCancelled") {
      step = "batch cancelled";
      actor = parsed.args.by;
    } else if (parsed.name === "PrescriptionBatched") {
      step = TRAIL_EVENTS.PrescriptionBatched.step;
      actor = (batches.get(log.transactionHash) || {}).hospital || null;
    } else {
      const meta = TRAIL_EVENTS[parsed.name];
      step = meta.step;
      actor = parsed.args[meta.actor];
    }
    if (step === "delivered" && steps.length && steps[steps.length - 1].step === "redeemed") step = "handed over in store";
    steps.push({
      step,
      event: parsed.name,
      args: parsed.args,
      actor,
      blockNumber: log.blockNumber,
      time: await blockTime(log.blockNumber),
      txHash: log.transactionHash,
    });
  }
  return { steps, batches };
}

/**
 * The Merkle proof of prescription `id` in `batch`, rebuilt from the batch's PrescriptionBatched
 * events (its ids, in log order, in the block that issued it). {proof, ok}: ok when the ids rebuild
 * the batch's root and the proof leads from `id` to it.
 */
async function batchProof(id, batch) {
  let ids = state.batchIds.get(batch.txHash);
  if (!ids) {
    const logs = await state.provider.getLogs({
      address: state.config.registry,
      fromBlock: batch.block,
      toBlock: batch.block,
      topics: [state.iface.getEvent("PrescriptionBatched").topicHash, null, batch.root],
    });
    logs.sort((a, b) => a.index - b.index);
    ids = logs.filter((log) => log.transactionHash === batch.txHash).map((log) => log.topics[1].toLowerCase());
    if (ids.length && core.merkleRoot(ids) === batch.root) state.batchIds.set(batch.txHash, ids);
  }
  const index = ids.indexOf(id.toLowerCase());
  if (index < 0 || core.merkleRoot(ids) !== batch.root) return { proof: null, ok: false };
  const proof = core.merkleProof(ids, index);
  return { proof, ok: core.verifyProof(proof, batch.root, id) };
}

/** Re-reads the prescription, the registry and the account from the chain, and redraws. */
async function refresh() {
  const rx = state.rx;
  if (!rx) return;
  const id = rx.verified.id;
  const account = state.account ? state.account.address : null;
  // One snapshot: every read at the same block, asked of the node directly (ethers answers an identical
  // "latest" request from a short cache, which could pair a fresh record with an older trail).
  const head = Number(await state.provider.send("eth_blockNumber", []));
  const at = { blockTag: head };
  const [record, paused, latest, trail, member] = await Promise.all([
    state.registry.prescription(id, at),
    state.registry.paused(at),
    state.provider.getBlock(head),
    readTrail(id, head),
    account ? state.registry.member(account, at) : Promise.resolve(null),
  ]);
  const { steps, batches } = trail;
  rx.record = {
    custodian: record.custodian,
    issuedAt: Number(record.issuedAt),
    expiresAt: Number(record.expiresAt),
    status: core.STATUS[Number(record.status)] || `unknown (${record.status})`,
    fillsLeft: Number(record.fillsLeft),
    opened: true,
  };
  rx.paused = paused;
  rx.now = latest.timestamp;
  rx.steps = steps;
  rx.issued = steps.find((s) => s.event === "PrescriptionIssued") || null;
  // Issued in a batch: only the batches of the doctor's own hospital count (the registry opens it from
  // no other, whoever else announced the id); the newest live one, else the first (as the Python
  // client takes it).
  const doctor = await state.registry.member(rx.verified.doctor, at);
  const own = steps.filter((s) => s.event === "PrescriptionBatched" && s.actor && same(s.actor, doctor.hospital))
    .map((s) => batches.get(s.txHash));
  const live = own.filter((b) => !b.cancelled);
  rx.batch = live.length ? { ...live[live.length - 1] } : own.length ? { ...own[0] } : null;
  if (rx.batch && rx.record.status === "None") {
    // Nothing of it is stored until its first redemption opens it: it stands as its batch does.
    const batch = rx.batch;
    const opening = await batchProof(id, batch);
    batch.doctorOk = (Number(doctor.roles) & core.ROLE_BITS.doctor) !== 0 && same(doctor.hospital, batch.hospital);
    batch.proof = opening.proof;
    batch.proofOk = opening.ok;
    rx.record = {
      custodian: null,
      issuedAt: batch.issuedAt,
      expiresAt: batch.expiresAt,
      status: batch.cancelled ? "Cancelled" : "Active",
      fillsLeft: batch.fills,
      opened: false,
    };
  }
  if (member) state.member = { roles: Number(member.roles), validUntil: Number(member.validUntil) };
  const drawClaim = state.claims ? await state.claims.prepare(rx, state.account) : () => {};
  // The pharmacist may have cleared the code or pasted another one while this was loading: a stale
  // answer must not bring the old prescription back on screen.
  if (state.rx !== rx) return;
  rx.checks = evaluate(rx);
  render(rx);
  drawClaim();
}

/** Every condition redeeming needs, in the order a pharmacist should hear about them. */
function evaluate(rx) {
  const { record, verified, now, issued } = rx;
  const account = state.account ? state.account.address : null;
  const checks = [];
  const add = (key, ok, text, done = false) => checks.push({ key, ok, text, done });
  const redeemed = rx.steps.filter((step) => step.step === "redeemed");
  rx.redeemedBy = redeemed.length ? redeemed[redeemed.length - 1].actor : null;
  const byThisPharmacy = Boolean(account && rx.redeemedBy && same(rx.redeemedBy, account));

  const batch = rx.batch;
  const registered = record.status !== "None";
  add("registered", registered, !registered
    ? "This prescription is not registered on this registry; check the code with the patient or the prescriber."
    : batch
      ? "The prescription is registered on this registry, in a batch issued by its hospital."
      : "The prescription is registered on this registry.");

  if (registered) {
    if (batch && !record.opened) {
      // The id recomputed from the document and the claim key is the leaf the hospital committed.
      add("document", batch.proofOk, batch.proofOk
        ? "The patient's document matches a prescription the hospital committed in its batch."
        : "This prescription's batch could not be read back consistently from the chain; do not dispense yet, and try again.");
      add("doctor", batch.doctorOk, batch.doctorOk
        ? "The prescribing doctor is a doctor of the hospital that issued the batch."
        : `The prescribing doctor (${verified.doctor}) is not a doctor of the hospital that issued the batch (${batch.hospital}); do not dispense.`);
    } else if (batch) {
      // Opened by its first redemption: the registry checked the proof and the doctor then.
      add("document", true, "The patient's document matches a prescription the hospital committed in its batch.");
    } else {
      const documentOk = Boolean(issued)
        && issued.args.docHash === verified.docHash
        && same(issued.args.doctor, verified.doctor)
        && same(issued.args.designatedPharmacy, verified.pharmacy || core.ZERO_ADDRESS);
      add("document", documentOk, documentOk
        ? "The patient's document matches the hash the doctor registered."
        : "The patient's document does not match what the doctor registered; do not dispense.");
    }

    const cancelled = record.status === "Cancelled";
    let cancelledText = "This prescription was cancelled by the doctor or the regulator; do not dispense.";
    if (batch && !record.opened) {
      cancelledText = "The hospital or the regulator withdrew the whole batch this prescription was issued in; do not dispense.";
    } else if (batch) {
      cancelledText = "This prescription was cancelled by its hospital or the regulator; do not dispense.";
    }
    add("cancelled", !cancelled, cancelled ? cancelledText : "The prescription is not cancelled.");

    if (record.status !== "Cancelled") {
      const open = (record.status === "Active" || record.status === "Refillable") && record.fillsLeft > 0;
      if (open) {
        add("redeemable", true, `Not yet redeemed: ${record.fillsLeft} fill${record.fillsLeft === 1 ? "" : "s"} left.`);
      } else if (byThisPharmacy) {
        add("redeemable", false, "Already redeemed by this pharmacy; it cannot be filled again.", true);
      } else {
        add("redeemable", false, "This prescription has already been redeemed; it cannot be filled again.");
      }
    }

    const expired = now > record.expiresAt;
    add("expiry", !expired, expired
      ? `This prescription expired on ${timeText(record.expiresAt)}; the patient needs a new one.`
      : `Valid until ${timeText(record.expiresAt)} (${relative(record.expiresAt, now)}).`);
  }

  if (!verified.pharmacy) {
    add("pharmacy", true, "Any pharmacy may fill it.");
  } else if (account && same(verified.pharmacy, account)) {
    add("pharmacy", true, "It is designated for this pharmacy.");
  } else if (account) {
    add("pharmacy", false,
      `This prescription is designated for another pharmacy (${verified.pharmacy}); this pharmacy may not fill it.`);
  }

  if (rx.auth && account && (record.status === "Active" || record.status === "Refillable") && record.fillsLeft > 0) {
    try {
      handover.checkAuthorization(rx.auth, { pharmacy: account, fillsLeft: record.fillsLeft, now });
      add("authorization", true, rx.auth.isPaper
        ? `A paper fill slip for this fill, valid until ${timeText(rx.auth.deadline)}.`
        : `The patient authorised this pharmacy for this fill, until ${timeText(rx.auth.deadline)}.`);
    } catch (error) {
      add("authorization", false, error.message);
    }
  }

  if (!account) {
    add("account", false, "Choose the pharmacy's account first.");
  } else if (!state.member || (state.member.roles & core.ROLE_BITS.pharmacy) === 0) {
    add("account", false, `This account (${account}) is not a pharmacy of the consortium; it cannot redeem.`);
  } else if (now > state.member.validUntil) {
    add("account", false, `This account's pharmacy credential expired on ${timeText(state.member.validUntil)}; the regulator must renew it.`);
  } else {
    add("account", true, "This account is a pharmacy in good standing.");
  }

  add("paused", !rx.paused, rx.paused
    ? "The registry is paused by the regulator; nothing can be redeemed until it resumes."
    : "The registry is running.");
  return checks;
}

function render(rx) {
  const { record, verified, issued, checks, now } = rx;
  show($("rx-section"), true);

  const expired = now > record.expiresAt;
  const status = $("rx-status");
  const bad = ["Cancelled", "None"].includes(record.status) || (expired && ["Active", "Refillable"].includes(record.status));
  let statusText = core.STATUS_TEXT[record.status] || "";
  if (rx.batch && !record.opened) {
    statusText = record.status === "Cancelled"
      ? "its whole batch was withdrawn by the hospital or the regulator"
      : "issued in a batch, not yet redeemed";
  } else if (rx.batch && record.status === "Cancelled") {
    statusText = "withdrawn by its hospital or the regulator";
  }
  status.replaceChildren(el("span", { class: `badge ${bad ? "bad" : "ok"}`, text: record.status }), ` ${statusText}`);
  if (expired && ["Active", "Refillable"].includes(record.status)) status.append(el("strong", { text: " — expired" }));
  status.dataset.status = record.status;
  $("rx-id").textContent = verified.id;
  $("rx-doctor").replaceChildren(addressNode(verified.doctor));
  const hospital = issued ? issued.args.hospital : rx.batch ? rx.batch.hospital : null;
  $("rx-hospital").replaceChildren(hospital ? addressNode(hospital) : document.createTextNode("—"));
  $("rx-batch").replaceChildren(
    ...(rx.batch
      ? [
        "issued in batch ",
        el("span", { class: "mono", title: rx.batch.root, text: short(rx.batch.root) }),
        " by hospital ",
        addressNode(rx.batch.hospital),
      ]
      : [issued ? "not batched: issued by the doctor" : "—"]),
  );
  $("rx-batch").dataset.root = rx.batch ? rx.batch.root : "";
  $("rx-issued").replaceChildren(record.issuedAt ? timeNode(record.issuedAt) : document.createTextNode("—"));
  $("rx-expires").replaceChildren(
    record.expiresAt ? timeNode(record.expiresAt) : document.createTextNode("—"),
    record.expiresAt ? ` (${relative(record.expiresAt, now)})` : "",
  );
  $("rx-pharmacy").replaceChildren(verified.pharmacy ? addressNode(verified.pharmacy) : document.createTextNode("any pharmacy"));
  $("rx-fills").textContent = String(record.fillsLeft);
  const documentCheck = checks.find((c) => c.key === "document");
  $("rx-document").replaceChildren(
    documentCheck
      ? el("span", { class: `badge ${documentCheck.ok ? "ok" : "bad"}`, text: documentCheck.ok ? "matches the chain" : "does not match" })
      : document.createTextNode("not on chain"),
  );
  $("rx-custodian").replaceChildren(record.custodian && record.status !== "None" ? addressNode(record.custodian) : document.createTextNode("—"));

  $("rx-checks").replaceChildren(
    ...checks.map((check) =>
      el("li", { class: check.ok ? "ok" : check.done ? "done" : "bad", dataset: { check: check.key }, text: check.text }),
    ),
  );
  $("rx-meds").tBodies[0].replaceChildren(
    ...rx.meds.map((med) =>
      el(
        "tr",
        {},
        el("td", {}, el("strong", { text: med.drug }), med.emergency ? el("span", { class: "badge bad", text: " emergency" }) : null),
        el("td", { text: med.dosage }),
        el("td", { text: med.quantity }),
        el("td", { text: med.supplyDays ? `${med.supplyDays} days` : "" }),
      ),
    ),
  );

  const blocking = checks.find((check) => !check.ok);
  const redeem = $("redeem");
  redeem.disabled = state.busy || Boolean(blocking);
  const reason = $("redeem-reason");
  if (!blocking) reason.textContent = "Ready: redeeming records this fill on chain.";
  else reason.textContent = blocking.done ? blocking.text : `Cannot redeem: ${blocking.text}`;
  reason.className = blocking && !blocking.done ? "reason bad" : "reason";

  const verdict = $("rx-verdict");
  const redeemedBy = rx.redeemedBy;
  if (!blocking) {
    verdict.textContent = "Ready to redeem.";
    verdict.className = "verdict ok";
  } else if (blocking.done) {
    const next = {
      Dispensed: "hand the drugs over at the counter or dispatch them to a courier.",
      Dispatched: "the drugs are with the courier.",
      Delivered: "the drugs have been handed to the patient.",
      Completed: "the drugs have been handed to the patient.",
    }[record.status] || "nothing more to do here.";
    verdict.textContent = `Redeemed by this pharmacy: ${next}`;
    verdict.className = "verdict info";
  } else if (blocking.key === "redeemable" && redeemedBy) {
    verdict.textContent = `Do not dispense: this prescription was already redeemed by another pharmacy (${redeemedBy}).`;
    verdict.className = "verdict bad";
  } else {
    verdict.textContent = `Do not dispense: ${blocking.text}`;
    verdict.className = "verdict bad";
  }
  rx.verdict = verdict.textContent;

  renderHandover(rx);
  if (boxStep) boxStep.render(rx);
  renderTrail(rx.steps);
}

function renderHandover(rx) {
  const { record } = rx;
  const section = $("handover-section");
  const redeemedStates = ["Dispensed", "Dispatched", "Delivered", "Completed", "Refillable"];
  show(section, redeemedStates.includes(record.status) && rx.steps.some((s) => s.step === "redeemed"));
  const account = state.account ? state.account.address : null;
  let reason = "";
  let can = false;
  if (record.status === "Dispensed") {
    if (!account || !same(record.custodian, account)) {
      reason = `The drugs are held by another pharmacy (${record.custodian}); only it can hand them over.`;
    } else if (rx.paused) {
      reason = "The registry is paused by the regulator; nothing can be recorded until it resumes.";
    } else if (!state.member || (state.member.roles & core.ROLE_BITS.pharmacy) === 0 || rx.now > state.member.validUntil) {
      reason = "This account is not a pharmacy in good standing; it cannot record the handover.";
    } else {
      can = true;
      reason = "Dispatch the drugs to a courier for home delivery, or record that the patient took them at the counter.";
    }
  } else if (record.status === "Dispatched") {
    reason = `Dispatched to the courier ${record.custodian}; the courier records the delivery.`;
  } else if (["Delivered", "Completed", "Refillable"].includes(record.status)) {
    reason = "The drugs have been handed to the patient.";
  }
  $("handover-reason").textContent = reason;
  $("dispatch").disabled = state.busy || !can;
  $("deliver").disabled = state.busy || !can;
  show($("counter-receipt"), can);
  $("ask-receipt").disabled = state.busy || !can;
  $("deliver-receipt").disabled = state.busy || !can;
  if (!can) show($("delivery-request"), false);
  $("courier").disabled = !can;
  $("dev-courier").disabled = !can;
}

function renderTrail(steps) {
  show($("trail-section"), steps.length > 0);
  $("trail").tBodies[0].replaceChildren(
    ...steps.map((step) =>
      el(
        "tr",
        { dataset: { step: step.step } },
        el("td", {}, el("strong", { text: step.step })),
        el("td", {}, addressNode(step.actor)),
        el("td", { text: String(step.blockNumber) }),
        el("td", {}, timeNode(step.time)),
        el("td", {}, el("span", { class: "mono", title: step.txHash, text: short(step.txHash) })),
      ),
    ),
  );
}

// ------------------------------------------------------------------------------ transactions

/**
 * Estimates (a refusal is reported before anything is sent), then sends `method(args)` to the
 * registry as a free-gas legacy transaction and waits for its receipt. Returns
 * {hash, blockNumber, time}; throws {explained} on refusal.
 */
async function send(method, args) {
  const result = await core.sendAndWait({
    provider: state.provider,
    account: state.account,
    chainId: state.chainId,
    to: state.config.registry,
    data: state.iface.encodeFunctionData(method, args),
    explain: (error) => core.explainError(state.iface, error),
    onSent: (hash) => say(`Sent transaction ${short(hash)}; waiting for it to be mined…`),
    notMinedAdvice: "check the trail before trying again.",
    timeoutMs: RECEIPT_TIMEOUT_MS,
  });
  return { ...result, time: await blockTime(result.blockNumber) };
}

function refusal(box, what, failure) {
  const explained = failure && failure.explained ? failure.explained : core.explainError(state.iface, failure);
  const args = Object.entries(explained.args || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  message(box, "error", `${what} refused — ${explained.name}: ${explained.text}`, args ? `${explained.name}(${args})` : null);
  box.dataset.error = explained.name;
  say(`${what} refused: ${explained.name}. ${explained.text}`);
}

function success(box, text, result) {
  message(box, "ok", `${text} in block ${result.blockNumber} at ${timeText(result.time)}.`, `transaction ${result.hash}`);
  delete box.dataset.error;
  say(`${text} in block ${result.blockNumber} at ${timeText(result.time)}.`);
}

async function redeem() {
  const rx = state.rx;
  if (!rx || state.busy || !state.account) return;
  const box = $("redeem-outcome");
  show(box, false);
  let redeemed = false;
  setBusy(true);
  try {
    say(rx.auth ? "Checking the patient's authorization…" : "Authorizing with the patient's claim key…");
    const { id, doctor, docHash, pharmacy, claim } = rx.verified;
    const [record, latest] = await Promise.all([state.registry.prescription(id), state.provider.getBlock("latest")]);
    const domain = core.registryDomain(state.chainId, state.config.registry);
    // A batched prescription's first fill opens it with its batch's root and its proof; the claim key
    // then signs the batch's fills. Every later fill is a plain redeem of the record.
    const batch = Number(record.status) === 0 && rx.batch && rx.batch.proof ? rx.batch : null;
    const fillsLeft = batch ? (await state.registry.batch(batch.hospital, batch.root)).fills : record.fillsLeft;
    let args;
    if (rx.auth) {
      // The patient signed for one pharmacy, one fill, until a deadline: checked again on the latest
      // state, so that a code for another pharmacy or fill, or a stale one, is never sent.
      try {
        handover.checkAuthorization(rx.auth, { pharmacy: state.account.address, fillsLeft: Number(fillsLeft), now: latest.timestamp });
      } catch (error) {
        throw { explained: { name: "AuthorizationRefused", args: {}, text: `${error.message} Nothing was sent.` } };
      }
      args = [doctor, docHash, pharmacy || core.ZERO_ADDRESS, rx.auth.claimAddress, rx.auth.deadline, rx.auth.signature];
    } else {
      const deadline = latest.timestamp + SIGNATURE_TTL;
      const signature = await core.signRedeem(claim, domain, id, state.account.address, fillsLeft, deadline);
      args = [doctor, docHash, pharmacy || core.ZERO_ADDRESS, claim.address, deadline, signature];
    }
    say("Sending the redemption…");
    const result = batch ? await send("redeemBatched", [...args, batch.root, batch.proof]) : await send("redeem", args);
    success(box, "Redeemed", result);
    redeemed = true;
  } catch (failure) {
    refusal(box, "Redemption", failure);
  } finally {
    setBusy(false);
    await refresh().catch(() => {});
  }
  if (redeemed && !$("handover-section").hidden) $("handover-heading").focus();
}

async function dispatch(event) {
  event.preventDefault();
  const rx = state.rx;
  if (!rx || state.busy || !state.account) return;
  const box = $("handover-outcome");
  const courier = $("courier").value.trim();
  if (!ethers.isAddress(courier)) {
    $("courier").setAttribute("aria-invalid", "true");
    message(box, "error", "Enter the courier's account address: 0x followed by 40 hexadecimal digits.");
    $("courier").focus();
    return;
  }
  $("courier").removeAttribute("aria-invalid");
  setBusy(true);
  try {
    const role = await state.registry.COURIER_ROLE();
    if (!(await state.registry.hasRole(role, courier))) {
      message(box, "error", `${courier} is not a courier in good standing; choose another courier. Nothing was sent.`);
      say("Dispatch not sent: not a courier in good standing.");
      return;
    }
    say("Recording the dispatch…");
    const result = await send("dispatch", [rx.verified.id, ethers.getAddress(courier)]);
    success(box, "Dispatched to the courier", result);
  } catch (failure) {
    refusal(box, "Dispatch", failure);
  } finally {
    setBusy(false);
    await refresh().catch(() => {});
  }
}

async function deliver() {
  const rx = state.rx;
  if (!rx || state.busy || !state.account) return;
  const box = $("handover-outcome");
  setBusy(true);
  try {
    say("Recording the handover at the counter…");
    const result = await send("deliver", [rx.verified.id]);
    success(box, "Handed over at the counter", result);
  } catch (failure) {
    refusal(box, "Handover", failure);
  } finally {
    setBusy(false);
    await refresh().catch(() => {});
  }
}

/** The delivery request (RXD1) the patient's app signs a receipt for: this prescription, this fill, this pharmacy. */
async function askReceipt() {
  const rx = state.rx;
  if (!rx || state.busy || !state.account) return;
  const [record, latest] = await Promise.all([state.registry.prescription(rx.verified.id), state.provider.getBlock("latest")]);
  const code = handover.encodeDeliveryRequest({
    chainId: state.chainId, registry: state.config.registry, rxId: rx.verified.id, deliverer: state.account.address,
    fillsLeft: Number(record.fillsLeft), deadline: latest.timestamp + SIGNATURE_TTL,
  });
  $("delivery-code").value = code;
  drawQr($("delivery-qr"), code);
  show($("delivery-request"), true);
  say("Show the patient the delivery request; the patient's app shows back a receipt code.");
}

async function deliverWithReceipt(event) {
  event.preventDefault();
  const rx = state.rx;
  if (!rx || state.busy || !state.account) return;
  const box = $("handover-outcome");
  setBusy(true);
  try {
    let receipt;
    try {
      receipt = handover.decodeReceipt($("receipt-code").value, { chainId: state.chainId, registry: state.config.registry });
      if (receipt.rxId !== rx.verified.id.toLowerCase()) {
        throw new core.PayloadError("another-delivery", "The receipt is for another prescription than the one on screen.");
      }
      const [record, latest] = await Promise.all([state.registry.prescription(rx.verified.id), state.provider.getBlock("latest")]);
      handover.checkReceipt(receipt, { deliverer: state.account.address, fillsLeft: Number(record.fillsLeft), now: latest.timestamp });
    } catch (error) {
      if (!(error instanceof core.PayloadError)) throw error;
      throw { explained: { name: "ReceiptRefused", args: {}, text: `${error.message} Nothing was sent.` } };
    }
    say("Recording the hand-over with the patient's receipt…");
    const result = await send("deliverWithReceipt", [rx.verified.id, receipt.terms, receipt.deadline, receipt.signature]);
    success(box, "Handed over at the counter; the patient confirmed receipt", result);
    $("receipt-code").value = "";
  } catch (failure) {
    refusal(box, "Handover", failure);
  } finally {
    setBusy(false);
    await refresh().catch(() => {});
  }
}

// ------------------------------------------------------------------------------ wiring

function wireEvents() {
  $("code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    readCode($("payload").value);
  });
  $("payload").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("code-form").requestSubmit();
    }
  });
  $("clear-code").addEventListener("click", () => {
    $("payload").value = "";
    $("qr-file").value = "";
    $("payload").removeAttribute("aria-invalid");
    clearPrescription();
    say("Cleared. Paste or upload the next prescription code.");
    $("payload").focus();
  });
  $("qr-file").addEventListener("change", (event) => readQrPicture(event.target.files[0]));
  $("dev-account").addEventListener("change", (event) => useDevAccount(event.target.value));
  $("connect-wallet").addEventListener("click", connectWallet);
  $("redeem").addEventListener("click", redeem);
  $("dispatch-form").addEventListener("submit", dispatch);
  $("deliver").addEventListener("click", deliver);
  $("ask-receipt").addEventListener("click", () => askReceipt().catch((error) => say(core.explainError(state.iface, error).text)));
  $("receipt-form").addEventListener("submit", deliverWithReceipt);
  $("new-consent").addEventListener("click", () => renderConsent().catch((error) => say(core.explainError(state.iface, error).text)));
  $("dev-courier").addEventListener("change", (event) => {
    if (event.target.value) $("courier").value = event.target.value;
  });
  if (window.ethereum && typeof window.ethereum.on === "function") {
    window.ethereum.on("accountsChanged", () => {
      if (state.account && state.account.kind === "wallet") connectWallet();
    });
  }
}

// ------------------------------------------------------------------------------ boxes (dapp/boxstep.js, dapp/boxcheck.js)

/** The fill's boxes step (after redemption, before the hand-over) and the "Check a box" section. */
let boxStep = null;

function setUpBoxes() {
  boxStep = createBoxStep(state, { say, setBusy, refresh: () => refresh(), timeText });
  mountBoxCheck({ config: state.config, provider: state.provider, say });
}

start().catch((error) => fatal(`The page could not start: ${error && error.message ? error.message : error}`));
