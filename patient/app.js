// rxchain patient's app: the page on the patient's phone that holds the prescription's claim key.
//
// Take a prescription home: the hospital's RX1 code is read once; the document is kept, the claim
// key only encrypted with the patient's PIN (WebCrypto: PBKDF2-SHA256 derives an AES-256-GCM key;
// the prescription id is the cipher's associated data), and the RX1 text itself is never stored.
// Consent: a pharmacy shows its RXP1 request; on the patient's tap and PIN the page shows an RXA1
// authorization for THAT pharmacy and the current fill (read from the registry). Receive: the courier
// or the counter shows an RXD1 request; on tap and PIN the page shows the RXR1 receipt for it. The
// claim key is decrypted only for the one signature and never shown. Formats: dapp/handover.js.

import { ethers } from "ethers";
import * as core from "./rxcore.js";
import * as handover from "./handover.js";
import { drawQr, readQrFile } from "./qrcodes.js";
import { mountBoxCheck } from "./boxcheck.js";

const $ = (id) => document.getElementById(id);
const STORE = "rxchain.patient.v1";
const PBKDF2_ITERATIONS = 600_000;
const MIN_PIN = 6;
const READ_TIMEOUT_MS = 8000;

const state = {
  config: null,
  provider: null,
  registry: null,
  selected: null, // rxId of the prescription on screen
  request: null, // {kind: "consent" | "delivery", request, fillsLeft}
  busy: false,
};

// ------------------------------------------------------------------------------ small helpers

function say(text) {
  $("status").textContent = text;
}

function show(element, visible) {
  element.hidden = !visible;
}

function error(box, text) {
  box.textContent = text;
  show(box, Boolean(text));
}

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" });

function timeText(seconds) {
  return DATE_FORMAT.format(new Date(Number(seconds) * 1000));
}

function b64(bytes) {
  return core.base64urlText(bytes);
}

function unb64(text) {
  return core.base64urlBytes(text);
}

/** `promise`, or a rejection after `ms` (a node that does not answer must not hang the page). */
function within(promise, ms = READ_TIMEOUT_MS) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), ms))]);
}

// ------------------------------------------------------------------------------ what the phone keeps

/** {prescriptions: [{rxId, chainId, registry, doc, claimAddress, lock}]} from localStorage. */
function load() {
  try {
    const data = JSON.parse(localStorage.getItem(STORE) || "null");
    if (data && data.version === 1 && Array.isArray(data.prescriptions)) return data;
  } catch {
    // an unreadable store is treated as empty (and overwritten by the next import)
  }
  return { version: 1, prescriptions: [] };
}

function save(data) {
  localStorage.setItem(STORE, JSON.stringify(data));
}

function stored(rxId) {
  return load().prescriptions.find((p) => p.rxId === rxId) || null;
}

async function pinKey(pin, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", new TextEncoder().encode(pin), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, base, { name: "AES-GCM", length: 256 }, false,
    ["encrypt", "decrypt"]);
}

/** The claim key encrypted with the PIN (AES-256-GCM, key from PBKDF2-SHA256), bound to the prescription id. */
async function lockClaimKey(privateKey, pin, rxId) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await pinKey(pin, salt, PBKDF2_ITERATIONS);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: ethers.getBytes(rxId) }, key, ethers.getBytes(privateKey));
  return { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS, salt: b64(salt), cipher: "AES-256-GCM", iv: b64(iv), sealed: b64(new Uint8Array(sealed)) };
}

/** The claim key as an ethers Wallet, or null for a wrong PIN. */
async function unlockClaimKey(entry, pin) {
  const { lock } = entry;
  try {
    const key = await pinKey(pin, unb64(lock.salt), lock.iterations);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(lock.iv), additionalData: ethers.getBytes(entry.rxId) }, key, unb64(lock.sealed));
    const wallet = new ethers.Wallet(ethers.hexlify(new Uint8Array(plain)));
    return wallet.address === entry.claimAddress ? wallet : null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------------------ the chain (reads only)

async function chainNow() {
  const block = await within(state.provider.getBlock("latest"));
  return Number(block.timestamp);
}

async function readRecord(rxId) {
  const record = await within(state.registry.prescription(rxId));
  return {
    custodian: record.custodian,
    expiresAt: Number(record.expiresAt),
    status: core.STATUS[Number(record.status)] || "None",
    fillsLeft: Number(record.fillsLeft),
  };
}

/**
 * A prescription issued in a hospital's batch has no record until its first fill: it stands as its
 * batch does. The batch is the newest live one that the doctor's own hospital issued announcing this
 * id (PrescriptionBatched, then BatchIssued by that hospital), as the pharmacy's dApp finds it.
 * Returns a record like readRecord's, or the plain record when there is no such batch.
 */
async function readRecordOrBatch(entry) {
  const record = await readRecord(entry.rxId);
  if (record.status !== "None") return record;
  const iface = state.registry.interface;
  const fromBlock = Number(state.config.deployBlock || 0);
  const { doctor } = core.prescriptionParties(entry.doc);
  const hospital = (await within(state.registry.member(doctor))).hospital;
  const announced = await within(core.getLogsInWindows(state.provider,
    { address: state.config.registry, topics: [iface.getEvent("PrescriptionBatched").topicHash, entry.rxId] }, fromBlock));
  const roots = [...new Set(announced.map((log) => log.topics[2].toLowerCase()))];
  if (!roots.length || hospital === core.ZERO_ADDRESS) return record;
  const issued = await within(core.getLogsInWindows(state.provider, {
    address: state.config.registry, topics: [iface.getEvent("BatchIssued").topicHash, roots, ethers.zeroPadValue(hospital, 32)],
  }, fromBlock));
  let chosen = null;
  for (const log of issued) {
    const batch = await within(state.registry.batch(hospital, log.topics[1]));
    if (!chosen || !batch.cancelled) chosen = batch;
  }
  if (!chosen) return record;
  return {
    custodian: core.ZERO_ADDRESS,
    expiresAt: Number(chosen.expiresAt),
    status: chosen.cancelled ? "Cancelled" : "Active",
    fillsLeft: Number(chosen.fills),
    batched: true,
  };
}

async function readMember(address) {
  const member = await within(state.registry.member(address));
  return { roles: Number(member.roles), validUntil: Number(member.validUntil) };
}

function online() {
  return Boolean(state.registry);
}

// ------------------------------------------------------------------------------ start-up

async function start() {
  wire();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch(() => {});
  }
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.config = await response.json();
  } catch {
    state.config = null;
  }
  if (state.config) {
    const rpc = new URL(state.config.rpcUrl, location.href).href;
    const network = ethers.Network.from(Number(state.config.chainId));
    state.provider = new ethers.JsonRpcProvider(rpc, network, { staticNetwork: network, batchMaxCount: 1 });
    state.registry = new ethers.Contract(state.config.registry, state.config.abi, state.provider);
    $("network").textContent = `${state.config.network} · chain ${state.config.chainId}`;
  } else {
    $("network").textContent = "offline";
  }
  mountBoxCheck({ config: state.config, provider: state.provider, say }); // "Check a box" (dapp/boxcheck.js)
  const data = load();
  state.selected = data.prescriptions.length ? data.prescriptions[data.prescriptions.length - 1].rxId : null;
  await renderList();
  say(data.prescriptions.length
    ? "Ready. Scan the code the pharmacy or the courier shows you."
    : "Ready. Take a prescription home: scan or paste the code the hospital gave you.");
  document.body.dataset.ready = "true";
}

// ------------------------------------------------------------------------------ the prescriptions

async function renderList() {
  const data = load();
  const has = data.prescriptions.length > 0;
  show($("list-section"), has);
  show($("request-section"), has);
  if (!has) return;
  if (!data.prescriptions.some((p) => p.rxId === state.selected)) state.selected = data.prescriptions[0].rxId;
  const select = $("rx-select");
  select.replaceChildren(...data.prescriptions.map((p) => {
    const option = document.createElement("option");
    option.value = p.rxId;
    option.textContent = `${core.medications(p.doc).map((m) => m.drug).join(", ")} (${short(p.rxId)})`;
    return option;
  }));
  select.value = state.selected;
  show($("choose-row"), data.prescriptions.length > 1);
  await renderPrescription(stored(state.selected));
}

async function renderPrescription(entry) {
  const meds = core.medications(entry.doc);
  $("rx-drugs").textContent = meds.map((m) => m.drug).join("; ");
  $("rx-dosage").textContent = meds.map((m) => m.dosage).filter(Boolean).join("; ") || "—";
  $("rx-quantity").textContent = meds.map((m) => [m.quantity, m.supplyDays ? `for ${m.supplyDays} days` : ""].filter(Boolean).join(" ")).join("; ") || "—";
  const validTo = meds[0] && meds[0].validTo ? Date.parse(meds[0].validTo) / 1000 : null;
  $("rx-expiry").textContent = validTo ? timeText(validTo) : "—";
  const { pharmacy } = core.prescriptionParties(entry.doc);
  $("rx-pharmacy").textContent = pharmacy ? `only pharmacy ${pharmacy}` : "any pharmacy";
  $("rx-id").textContent = entry.rxId;
  $("rx-fills").textContent = "…";
  $("rx-state").textContent = "…";
  if (!online()) {
    $("rx-fills").textContent = "unknown (offline)";
    $("rx-state").textContent = "unknown (offline)";
    return;
  }
  try {
    const record = await readRecordOrBatch(entry);
    if (state.selected !== entry.rxId) return;
    $("rx-fills").textContent = record.status === "None" ? "—" : String(record.fillsLeft);
    $("rx-state").textContent = record.status === "None"
      ? "not found on the registry (issued on another network?)"
      : `${record.status}: ${core.STATUS_TEXT[record.status] || ""}`;
    $("rx-state").dataset.status = record.status;
    if (record.expiresAt) $("rx-expiry").textContent = timeText(record.expiresAt);
  } catch {
    $("rx-fills").textContent = "unknown (the registry cannot be reached: offline?)";
    $("rx-state").textContent = "unknown (offline)";
  }
}

async function importPrescription(event) {
  event.preventDefault();
  if (state.busy) return;
  const box = $("import-error");
  error(box, "");
  const pin = $("new-pin").value;
  if (pin.length < MIN_PIN) {
    $("new-pin").focus();
    return error(box, `Choose a PIN of at least ${MIN_PIN} digits or characters.`);
  }
  if (pin !== $("new-pin-again").value) {
    $("new-pin-again").focus();
    return error(box, "The two PINs differ. Enter the same PIN twice.");
  }
  state.busy = true;
  say("Reading the prescription code…");
  try {
    const payload = await core.decodePayload($("rx-code").value);
    const expected = state.config ? { chainId: state.config.chainId, registry: state.config.registry } : payload;
    const verified = core.verifyPayload(payload, expected);
    const data = load();
    if (data.prescriptions.some((p) => p.rxId === verified.id)) {
      throw new core.PayloadError("duplicate", "This prescription is already on this phone.");
    }
    say("Locking the prescription's key with your PIN…");
    const lock = await lockClaimKey(payload.claimKey, pin, verified.id);
    data.prescriptions.push({
      rxId: verified.id, chainId: payload.chainId, registry: payload.registry, doc: payload.doc, claimAddress: verified.claim.address, lock,
    });
    save(data);
    state.selected = verified.id;
    for (const id of ["rx-code", "new-pin", "new-pin-again", "rx-file"]) $(id).value = "";
    await renderList();
    say(`Kept on this phone: ${core.medications(payload.doc).map((m) => m.drug).join(", ")}. The hospital's code can now be thrown away.`);
    $("list-heading").focus();
  } catch (failure) {
    const text = failure instanceof core.PayloadError ? failure.message : "The prescription code could not be read. Scan or copy it again.";
    error(box, text);
    say(`Not kept: ${text}`);
  } finally {
    state.busy = false;
  }
}

function forget() {
  const entry = stored(state.selected);
  if (!entry) return;
  const data = load();
  data.prescriptions = data.prescriptions.filter((p) => p.rxId !== entry.rxId);
  save(data);
  state.selected = null;
  resetRequest();
  renderList().then(() => say("Removed from this phone."));
}

// ------------------------------------------------------------------------------ a pharmacy's or courier's code

function resetRequest() {
  state.request = null;
  show($("ask"), false);
  show($("answer"), false);
  error($("request-error"), "");
  error($("sign-error"), "");
  $("pin").value = "";
  $("answer-code").value = "";
}

function refuse(text) {
  error($("request-error"), text);
  $("request-code").setAttribute("aria-invalid", "true");
  say(`Code refused: ${text}`);
}

async function readRequest(text) {
  if (state.busy) return;
  resetRequest();
  $("request-code").removeAttribute("aria-invalid");
  const kind = handover.kindOf(text);
  if (kind === "prescription") return refuse("This is a prescription code from the hospital: use “Take a prescription home” below.");
  if (kind === "authorization" || kind === "receipt") return refuse("This is a code the patient shows, not one to read here.");
  if (kind !== "consent" && kind !== "delivery") {
    return refuse("This is not a pharmacy's or courier's code: it should start with RXP1. or RXD1. Was another code scanned?");
  }
  state.busy = true;
  say("Reading the code…");
  try {
    if (kind === "consent") await readConsentRequest(text);
    else await readDeliveryRequest(text);
  } catch (failure) {
    refuse(failure instanceof core.PayloadError ? failure.message : `The code could not be read: ${failure.message || failure}`);
  } finally {
    state.busy = false;
  }
}

function checkDeployment(entry, request) {
  if (request.chainId !== entry.chainId) {
    throw new core.PayloadError("wrong-chain", `This code is for another chain (${request.chainId}); your prescription is on chain ${entry.chainId}. Do not agree.`);
  }
  if (request.registry !== ethers.getAddress(entry.registry)) {
    throw new core.PayloadError("wrong-registry", `This code is for another registry (${request.registry}); your prescription is in ${entry.registry}. Do not agree.`);
  }
}

async function now() {
  if (online()) {
    try {
      return { time: await chainNow(), online: true };
    } catch {
      // offline: the phone's clock will do for a deadline
    }
  }
  return { time: Math.floor(Date.now() / 1000), online: false };
}

function memberText(member, role, time) {
  if (!member) return "not checked (offline)";
  if ((member.roles & core.ROLE_BITS[role]) === 0) return `NOT a ${role} of the consortium`;
  if (time > member.validUntil) return `a ${role} whose credential expired on ${timeText(member.validUntil)}`;
  return `a ${role} in good standing (until ${timeText(member.validUntil)})`;
}

async function readConsentRequest(text) {
  const request = handover.decodeConsentRequest(text);
  const entry = stored(state.selected);
  checkDeployment(entry, request);
  if (request.pharmacy === handover.ANYONE) throw new core.PayloadError("malformed", "The pharmacy's code names no pharmacy.", "pharmacy");
  const { time, online: reached } = await now();
  if (time > request.deadline) {
    throw new core.PayloadError("expired", `The pharmacy's code expired at ${timeText(request.deadline)}: ask the pharmacy to show a fresh one.`);
  }
  if (!reached) {
    throw new core.PayloadError("offline", "This phone cannot reach the registry (offline?), so it cannot tell which fill the pharmacy may fill. Connect and scan again.");
  }
  const { pharmacy: designated } = core.prescriptionParties(entry.doc);
  if (designated && designated !== request.pharmacy) {
    throw new core.PayloadError("another-pharmacy", `Your prescription may only be filled at pharmacy ${designated}; this is ${request.pharmacy}. Do not agree.`);
  }
  const [record, member] = await Promise.all([readRecordOrBatch(entry), readMember(request.pharmacy).catch(() => null)]);
  if (record.status === "None") {
    throw new core.PayloadError("unknown", "The registry does not know this prescription: it may have been issued on another network. Ask the hospital.");
  }
  if (!["Active", "Refillable"].includes(record.status) || record.fillsLeft === 0) {
    throw new core.PayloadError("not-fillable", `There is nothing to fill: the prescription is ${record.status} (${core.STATUS_TEXT[record.status] || ""}).`);
  }
  if (time > record.expiresAt) throw new core.PayloadError("expired", `Your prescription expired on ${timeText(record.expiresAt)}.`);
  state.request = { kind: "consent", request, fillsLeft: record.fillsLeft, rxId: entry.rxId };
  $("ask-text").textContent = `Pharmacy ${request.pharmacy} asks to fill your prescription (${core.medications(entry.doc).map((m) => m.drug).join(", ")}).`;
  $("ask-who-label").textContent = "Pharmacy";
  $("ask-who").textContent = request.pharmacy;
  $("ask-member").textContent = memberText(member, "pharmacy", time);
  $("ask-fill").textContent = `this fill only (${record.fillsLeft} left before it)`;
  $("ask-deadline").textContent = timeText(request.deadline);
  $("sign").textContent = "Agree: let this pharmacy fill it";
  showAsk();
}

async function readDeliveryRequest(text) {
  const request = handover.decodeDeliveryRequest(text);
  const entry = stored(request.rxId);
  if (!entry) throw new core.PayloadError("another-delivery", "This hand-over is for a prescription that is not on this phone. Do not confirm.");
  state.selected = entry.rxId;
  $("rx-select").value = entry.rxId;
  checkDeployment(entry, request);
  if (request.deliverer === handover.ANYONE) throw new core.PayloadError("malformed", "The code names nobody handing over.", "deliverer");
  const { time, online: reached } = await now();
  if (time > request.deadline) {
    throw new core.PayloadError("expired", `The code expired at ${timeText(request.deadline)}: ask for a fresh one.`);
  }
  let member = null;
  if (reached) {
    const [record, who] = await Promise.all([readRecord(entry.rxId), readMember(request.deliverer).catch(() => null)]);
    member = who;
    if (record.custodian !== request.deliverer || !["Dispensed", "Dispatched"].includes(record.status)) {
      throw new core.PayloadError("another-delivery",
        `The registry does not record ${request.deliverer} as holding your drugs (${record.status}, held by ${record.custodian}). Do not confirm.`);
    }
  }
  const role = member && (member.roles & core.ROLE_BITS.courier) !== 0 ? "courier" : "pharmacy";
  state.request = { kind: "delivery", request, rxId: entry.rxId };
  $("ask-text").textContent = `${role === "courier" ? "Courier" : "Pharmacy"} ${request.deliverer} is handing over your prescription (${core.medications(entry.doc).map((m) => m.drug).join(", ")}). Confirm only once the drugs are in your hands.`;
  $("ask-who-label").textContent = "Handing over";
  $("ask-who").textContent = request.deliverer;
  $("ask-member").textContent = reached ? memberText(member, role, time) : "not checked (offline)";
  $("ask-fill").textContent = `the fill leaving ${request.fillsLeft} fill(s)`;
  $("ask-deadline").textContent = timeText(request.deadline);
  $("sign").textContent = "I have received the drugs";
  await renderPrescription(entry);
  showAsk();
}

function showAsk() {
  show($("ask"), true);
  say(`${$("ask-text").textContent} Enter your PIN to agree.`);
  $("pin").focus();
}

async function sign(event) {
  event.preventDefault();
  const pending = state.request;
  if (!pending || state.busy) return;
  const box = $("sign-error");
  error(box, "");
  const entry = stored(pending.rxId);
  state.busy = true;
  $("sign").disabled = true;
  say("Unlocking the prescription's key…");
  try {
    const claim = await unlockClaimKey(entry, $("pin").value);
    $("pin").value = "";
    if (!claim) {
      error(box, "Wrong PIN. Nothing was signed.");
      say("Wrong PIN. Nothing was signed.");
      $("pin").focus();
      return;
    }
    const prescription = { chainId: entry.chainId, registry: entry.registry, rxId: entry.rxId, doc: entry.doc };
    let code, text;
    if (pending.kind === "consent") {
      const auth = await handover.authorize(prescription, claim, pending.request, pending.fillsLeft);
      code = handover.encodeAuthorization(auth);
      text = `Show this to pharmacy ${pending.request.pharmacy}. It lets that pharmacy, and no other, fill this fill until ${timeText(auth.deadline)}.`;
    } else {
      const receipt = await handover.signReceiptFor(prescription, claim, pending.request);
      code = handover.encodeReceipt(receipt);
      text = `Show this to ${pending.request.deliverer}. It confirms that you received the drugs from them.`;
    }
    state.request = null;
    show($("ask"), false);
    $("answer-text").textContent = text;
    $("answer-code").value = code;
    drawQr($("answer-qr"), code, 3);
    $("answer-qr").setAttribute("aria-label", `QR code: ${pending.kind === "consent" ? "your consent for this pharmacy" : "your receipt"}`);
    show($("answer"), true);
    $("answer").dataset.kind = pending.kind === "consent" ? "authorization" : "receipt";
    say(text);
    $("answer-heading").focus();
  } catch (failure) {
    const message = failure instanceof core.PayloadError ? failure.message : `Could not sign: ${failure.message || failure}`;
    error(box, message);
    say(message);
  } finally {
    state.busy = false;
    $("sign").disabled = false;
  }
}

// ------------------------------------------------------------------------------ wiring

async function fileCode(file, target, then) {
  if (!file) return;
  try {
    const text = await readQrFile(file);
    if (!text) return say("No QR code was found in this picture. Take the photo again, straight on and in focus, or paste the code.");
    $(target).value = text;
    await then(text);
  } catch (failure) {
    say(failure.message || "This file is not a picture this browser can open.");
  }
}

function wire() {
  $("import-form").addEventListener("submit", importPrescription);
  $("rx-file").addEventListener("change", (event) => fileCode(event.target.files[0], "rx-code", () => $("new-pin").focus()));
  $("request-form").addEventListener("submit", (event) => {
    event.preventDefault();
    readRequest($("request-code").value);
  });
  $("request-file").addEventListener("change", (event) => fileCode(event.target.files[0], "request-code", readRequest));
  $("sign-form").addEventListener("submit", sign);
  $("decline").addEventListener("click", () => {
    resetRequest();
    say("Nothing was signed.");
  });
  $("done").addEventListener("click", () => {
    resetRequest();
    $("request-code").value = "";
    renderList().then(() => say("Done."));
  });
  $("copy-answer").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("answer-code").value);
      say("Copied.");
    } catch {
      $("answer-code").select();
      say("Select the code and copy it.");
    }
  });
  $("rx-select").addEventListener("change", (event) => {
    state.selected = event.target.value;
    resetRequest();
    renderPrescription(stored(state.selected));
  });
  const confirmForget = (open) => {
    show($("forget-confirm"), open);
    $("forget").setAttribute("aria-expanded", String(open));
    if (open) $("forget-no").focus();
  };
  $("forget").addEventListener("click", () => confirmForget(true));
  $("forget-no").addEventListener("click", () => confirmForget(false));
  $("forget-yes").addEventListener("click", () => {
    confirmForget(false);
    forget();
  });
}

start().catch((failure) => {
  const box = $("fatal");
  box.textContent = `The page could not start: ${failure && failure.message ? failure.message : failure}`;
  show(box, true);
});
