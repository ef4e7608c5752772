// rxchain pharmacy dApp: insurance claims, without touching the page.
//
// A claim for one received fill puts only a salted commitment on chain (DrugBoxes.fileClaim); the
// amounts and the patient's insurance reference travel to the insurer off chain, in the claim's
// opening. This module makes the opening and its commitment byte for byte as
// src/rxchain/core/insurance.py does (ClaimOpening), writes the opening file in the shape
// `rx claim file` writes (so `rx claim approve --opening FILE` reads it), and checks on the chain's
// current state everything fileClaim would refuse, in DrugBoxes' order, by the contract's own error
// names. Runs in the browser (ethers from /vendor through the page's import map) and in node (ethers
// from node_modules), so the tests compare it with the Python side.
//
//     commitment = keccak256("rxchain-claim-v1:" ‖ salt (16 bytes) ‖ canonical JSON)
//     canonical JSON = json.dumps({"amounts": {...}, "insuranceReference": ...},
//                                 sort_keys=True, separators=(",", ":"), ensure_ascii=False), UTF-8
//
// Python's json.dumps sorts keys by code point (JavaScript's sort compares UTF-16 units: they differ
// for characters past U+FFFF), escapes only '"', '\' and the controls below U+0020 (as JSON.stringify
// does), and writes integers of any size (amounts here are BigInt, never rounded).

import { ethers } from "ethers";
import * as core from "./rxcore.js";

export const CLAIM_DOMAIN = "rxchain-claim-v1:";
export const SALT_BYTES = 16;

/** IDrugBoxes.ClaimStatus, by value. */
export const CLAIM_STATUS = Object.freeze(["None", "Filed", "Approved", "Rejected", "Paid", "Void"]);

/** Role ids as the registry computes them (keccak256 of the name). */
export const PHARMACY_ROLE = ethers.id("PHARMACY_ROLE");
export const INSURER_ROLE = ethers.id("INSURER_ROLE");

// ------------------------------------------------------------------------------ named input errors

/** A claim's input refused before anything is computed or sent; `code` is stable, `key` names the amount at fault. */
export class ClaimInputError extends Error {
  constructor(code, message, key = null) {
    super(message);
    this.name = "ClaimInputError";
    this.code = code;
    this.key = key;
  }
}

/** The patient's insurance reference is empty (or only spaces). */
export class EmptyInsuranceReference extends ClaimInputError {
  constructor() {
    super("empty-reference", "The patient's insurance reference is empty: give it as on the insurance card.");
    this.name = "EmptyInsuranceReference";
  }
}

/** An amount that is not a whole, non-negative number of the currency's smallest unit, or has no name. */
export class InvalidAmount extends ClaimInputError {
  constructor(message, key) {
    super("bad-amount", message, key);
    this.name = "InvalidAmount";
  }
}

/** No amount at all. */
export class NoAmounts extends ClaimInputError {
  constructor() {
    super("no-amounts", "A claim needs at least one amount (e.g. total = 12800 for 128.00).");
    this.name = "NoAmounts";
  }
}

/** Text JSON cannot carry as UTF-8 (a lone surrogate), or an opening file that is not one. */
export class NotAnOpening extends ClaimInputError {
  constructor(message, key = null) {
    super("not-an-opening", message, key);
    this.name = "NotAnOpening";
  }
}

// ------------------------------------------------------------------------------ the opening

/** Python's str.isspace() characters: what str.strip() removes (String.prototype.trim differs). */
const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** `text` without leading and trailing whitespace, as Python's str.strip() removes it. */
export function pyStrip(text) {
  const points = Array.from(text);
  let start = 0;
  let end = points.length;
  while (start < end && PY_SPACE.has(points[start].codePointAt(0))) start++;
  while (end > start && PY_SPACE.has(points[end - 1].codePointAt(0))) end--;
  return points.slice(start, end).join("");
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function wellFormed(text, what, key = null) {
  if (typeof text !== "string") throw new NotAnOpening(`${what} must be text.`, key);
  if (LONE_SURROGATE.test(text)) throw new NotAnOpening(`${what} holds a broken character (a lone UTF-16 surrogate).`, key);
  return text;
}

/** Compares two strings by Unicode code point, as Python sorts them. */
export function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** A whole non-negative amount as BigInt: a BigInt, a safe integer Number, or decimal digits as text. */
function amountValue(name, value) {
  const bad = (why) => new InvalidAmount(
    `Amount ${JSON.stringify(name)} must be a whole number of the currency's smallest unit (${why}).`, name,
  );
  if (typeof value === "bigint") {
    if (value < 0n) throw bad(`got ${value}, a negative amount`);
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw bad(`got ${value}`);
    if (value < 0) throw bad(`got ${value}, a negative amount`);
    if (!Number.isSafeInteger(value)) throw bad(`${value} is too large to be exact as a number: give it as text`);
    return BigInt(value);
  }
  if (typeof value === "string") {
    const text = value.trim();
    if (/^-\d+$/.test(text)) throw bad(`got ${text}, a negative amount`);
    if (!/^\d+$/.test(text)) throw bad(text ? `got ${JSON.stringify(text)}; 1280 for 12.80` : "it is empty");
    return BigInt(text);
  }
  throw bad(`got ${value === null ? "nothing" : typeof value}`);
}

function amountEntries(amounts) {
  if (amounts instanceof Map) return [...amounts.entries()];
  if (Array.isArray(amounts)) return amounts.map((pair) => (Array.isArray(pair) ? pair : [pair && pair.name, pair && pair.value]));
  if (core.isPlainObject(amounts)) return Object.entries(amounts);
  return [];
}

/** Fresh 16 bytes from the platform's CSPRNG. */
export function randomSalt() {
  return globalThis.crypto.getRandomValues(new Uint8Array(SALT_BYTES));
}

function saltBytes(salt) {
  let bytes;
  try {
    bytes = ethers.getBytes(salt);
  } catch {
    throw new NotAnOpening("A claim opening's salt is 0x and 32 hexadecimal digits.", "salt");
  }
  if (bytes.length !== SALT_BYTES) throw new NotAnOpening("A claim opening's salt is 16 bytes.", "salt");
  return Uint8Array.from(bytes);
}

/**
 * The opening of a new claim: `amounts` by name (an object, a Map, or [name, value] pairs; each a
 * whole non-negative number of the currency's smallest unit), the patient's `insuranceReference`
 * (stripped as Python strips it), and a fresh 16-byte salt (or `salt`, for tests). Refuses, in
 * Python's order: EmptyInsuranceReference, InvalidAmount, NoAmounts.
 * Returns {amounts: [[name, BigInt]] in the order given, insuranceReference, salt: Uint8Array}.
 */
export function newOpening(amounts, insuranceReference, salt = null) {
  wellFormed(insuranceReference, "The insurance reference");
  const reference = pyStrip(insuranceReference);
  if (!reference) throw new EmptyInsuranceReference();
  const entries = amountEntries(amounts);
  const seen = new Set();
  const out = [];
  for (const [name, value] of entries) {
    if (typeof name !== "string" || name === "") throw new InvalidAmount("Every amount needs a name (e.g. total, copay).", name ?? null);
    wellFormed(name, `Amount name ${JSON.stringify(name)}`, name);
    if (seen.has(name)) throw new InvalidAmount(`Amount ${JSON.stringify(name)} is given twice: give each amount once.`, name);
    seen.add(name);
    out.push([name, amountValue(name, value)]);
  }
  if (!out.length) throw new NoAmounts();
  return { amounts: out, insuranceReference: reference, salt: salt == null ? randomSalt() : saltBytes(salt) };
}

/** The canonical JSON text the commitment hashes (what Python's ClaimOpening.canonical() encodes). */
export function canonicalText(opening) {
  const members = [...opening.amounts]
    .sort((a, b) => byCodePoint(a[0], b[0]))
    .map(([name, value]) => `${JSON.stringify(name)}:${value.toString()}`);
  return `{"amounts":{${members.join(",")}},"insuranceReference":${JSON.stringify(opening.insuranceReference)}}`;
}

/** keccak256("rxchain-claim-v1:" ‖ salt ‖ canonical JSON as UTF-8): what fileClaim records. */
export function commitment(opening) {
  return ethers.keccak256(ethers.concat([ethers.toUtf8Bytes(CLAIM_DOMAIN), opening.salt, ethers.toUtf8Bytes(canonicalText(opening))]));
}

/** JSON string text with every character outside printable ASCII escaped, as Python's json.dumps (ensure_ascii) writes it. */
function asciiJson(text) {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The opening file for the insurer, as `rx claim file` writes it (json.dumps(..., indent=2) and a
 * newline): {id, fillsLeft, amounts, insuranceReference, salt, commitment}.
 */
export function openingFileText(rxId, fillsLeft, opening) {
  const amounts = opening.amounts.map(([name, value]) => `    ${asciiJson(name)}: ${value.toString()}`);
  return [
    "{",
    `  "id": ${asciiJson(ethers.hexlify(rxId).toLowerCase())},`,
    `  "fillsLeft": ${Number(fillsLeft)},`,
    `  "amounts": {\n${amounts.join(",\n")}\n  },`,
    `  "insuranceReference": ${asciiJson(opening.insuranceReference)},`,
    `  "salt": "${ethers.hexlify(opening.salt)}",`,
    `  "commitment": "${commitment(opening)}"`,
    "}",
    "",
  ].join("\n");
}

/** The file name `rx claim file` gives the opening: ID-FILLSLEFT.json. */
export function openingFileName(rxId, fillsLeft) {
  return `${ethers.hexlify(rxId).toLowerCase()}-${Number(fillsLeft)}.json`;
}

/**
 * An opening read back from its parsed JSON (what ClaimOpening.from_json reads: amounts, insuranceReference,
 * salt; amounts as integers or decimal text). The reference is taken as it is (not stripped). JSON.parse
 * reads a number past 2**53 inexactly: such an amount is refused (InvalidAmount), never hashed rounded.
 */
export function readOpening(data) {
  if (!core.isPlainObject(data) || !core.isPlainObject(data.amounts) || typeof data.insuranceReference !== "string") {
    throw new NotAnOpening("Not a claim opening: it has amounts, insuranceReference and salt.");
  }
  const amounts = Object.entries(data.amounts).map(([name, value]) => [wellFormed(name, "An amount's name", name), amountValue(name, value)]);
  return { amounts, insuranceReference: wellFormed(data.insuranceReference, "The insurance reference"), salt: saltBytes(data.salt) };
}

// ------------------------------------------------------------------------------ DrugBoxes' refusals in plain words

/** DrugBoxes' errors a claim can meet, in words a pharmacist can act on (`args` are the decoded arguments). */
export const CLAIM_ERROR_TEXT = Object.freeze({
  NoBoxesRecorded: () => "No boxes were recorded for this fill, so there is nothing to claim: a claim names the fill's boxes.",
  NotFillPharmacy: (a) => `Only the pharmacy that recorded this fill's boxes (${a.pharmacy}) may claim it; this account (${a.caller}) did not.`,
  FillNotReceived: (a) =>
    `The patient's receipt of this fill is not recorded: the prescription is ${statusName(a.current)} with ${a.currentFillsLeft} fill${
      Number(a.currentFillsLeft) === 1 ? "" : "s"} left. File the claim after the patient confirms receipt.`,
  ClaimAlreadyFiled: (a) => `A claim for this fill was filed already (it is ${claimName(a.claim).toLowerCase()}): one claim per fill, for good.`,
  FillIsVoid: () => "The regulator voided this fill (its pharmacy lost custody of the drugs): it can never be claimed.",
  NotInGoodStanding: (a) =>
    `${a.account} is not ${roleName(a.role)} in good standing (never admitted, revoked, or its credential ended).`,
  BoxesNotOfFill: () => "The boxes named are not the ones recorded for this fill (all of them, in the order recorded); reload and try again.",
  ZeroCommitment: () => "The claim's commitment is empty; nothing was sent.",
  UnknownPrescription: () => "No prescription with this id is registered.",
});

function statusName(value) {
  return core.STATUS[Number(value)] || `status ${value}`;
}

function claimName(value) {
  return CLAIM_STATUS[Number(value)] || `claim status ${value}`;
}

function roleName(role) {
  if (String(role).toLowerCase() === INSURER_ROLE) return "an insurer";
  if (String(role).toLowerCase() === PHARMACY_ROLE) return "a pharmacy";
  return `a holder of role ${role}`;
}

/** One refusal: {name, args, text}, as rxcore's explainError gives for a registry error. */
export function refusal(name, args) {
  const strings = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : String(v)]));
  const text = CLAIM_ERROR_TEXT[name] ? CLAIM_ERROR_TEXT[name](strings) : "DrugBoxes refused this step.";
  return { name, args: strings, text };
}

/** {name, args, text} for a failed call or transaction to DrugBoxes (or the registry it reads). */
export function explainClaimError(iface, error) {
  const explained = core.explainError(iface, error);
  if (CLAIM_ERROR_TEXT[explained.name]) return { ...explained, text: CLAIM_ERROR_TEXT[explained.name](explained.args) };
  return explained;
}

/** One ethers Interface for DrugBoxes' functions and events and both contracts' errors. */
export function claimsInterface(boxesAbi, registryAbi = []) {
  const errors = registryAbi.filter((item) => item.type === "error");
  return new ethers.Interface([...boxesAbi, ...errors]);
}

// ------------------------------------------------------------------------------ reading the chain

/**
 * Every fill of prescription `rxId` whose boxes were recorded, oldest first, from its
 * FillBoxesRecorded events (asked in windows a range-limited node answers):
 * [{fillsLeft, pharmacy, nullifiers, blockNumber, txHash}].
 */
export async function recordedFills(provider, iface, boxes, rxId, fromBlock, toBlock = "latest", maxRange = core.MAX_LOGS_RANGE) {
  const topic = iface.getEvent("FillBoxesRecorded").topicHash;
  const logs = await core.getLogsInWindows(provider, { address: boxes, topics: [topic, rxId] }, fromBlock, toBlock, maxRange);
  logs.sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
  return logs.map((log) => {
    const parsed = iface.parseLog(log);
    return {
      fillsLeft: Number(parsed.args.fillsLeft),
      pharmacy: parsed.args.pharmacy,
      nullifiers: Array.from(parsed.args.nullifiers, (n) => n.toLowerCase()),
      blockNumber: log.blockNumber,
      txHash: log.transactionHash,
    };
  });
}

/** The nullifiers recorded for fill `fillsLeft` of `rxId`, in the order recorded (what fileClaim names); null when none. */
export async function fillNullifiers(provider, iface, boxes, rxId, fillsLeft, fromBlock, toBlock = "latest", maxRange = core.MAX_LOGS_RANGE) {
  const fills = await recordedFills(provider, iface, boxes, rxId, fromBlock, toBlock, maxRange);
  const fill = fills.find((f) => f.fillsLeft === Number(fillsLeft));
  return fill ? fill.nullifiers : null;
}

/**
 * The claim's events for fill `fillsLeft` of `rxId`: {filed: {pharmacy, insurer, commitment, ...},
 * approved, paid: {paymentReference}, rejected: {reason}, voided}, each with blockNumber and txHash.
 */
export async function claimEvents(provider, iface, boxes, rxId, fillsLeft, fromBlock, toBlock = "latest", maxRange = core.MAX_LOGS_RANGE) {
  const names = { ClaimFiled: "filed", ClaimApproved: "approved", ClaimPaid: "paid", ClaimRejected: "rejected", FillVoided: "voided" };
  const topics = Object.keys(names).map((name) => iface.getEvent(name).topicHash);
  const logs = await core.getLogsInWindows(provider, { address: boxes, topics: [topics, rxId] }, fromBlock, toBlock, maxRange);
  logs.sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
  const out = {};
  for (const log of logs) {
    const parsed = iface.parseLog(log);
    if (!parsed || Number(parsed.args.fillsLeft) !== Number(fillsLeft)) continue;
    const args = {};
    parsed.fragment.inputs.forEach((input, i) => {
      if (input.name === "rxId" || input.name === "fillsLeft") return;
      const value = parsed.args[i];
      args[input.name] = input.name === "paymentReference" ? paymentReferenceText(value) : typeof value === "bigint" ? Number(value) : value;
    });
    out[names[parsed.name]] = { ...args, blockNumber: log.blockNumber, txHash: log.transactionHash };
  }
  return out;
}

/** A payment reference as stamped on chain (ASCII, right-padded with zeros) as text. */
export function paymentReferenceText(raw) {
  const bytes = ethers.getBytes(raw);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return Array.from(bytes.slice(0, end), (b) => (b < 0x80 ? String.fromCharCode(b) : "\ufffd")).join("");
}

/** DrugBoxes' record of fill `fillsLeft` of `rxId`: {pharmacy | null, boxes, claim (name), reason}. */
export async function readFill(boxesContract, rxId, fillsLeft, blockTag = "latest") {
  const fill = await boxesContract.fill(rxId, fillsLeft, { blockTag });
  return {
    pharmacy: fill.pharmacy === core.ZERO_ADDRESS ? null : fill.pharmacy,
    boxes: Number(fill.boxes),
    claim: claimName(fill.claim),
    reason: Number(fill.reason),
  };
}

/**
 * Everything fileClaim checks, on the chain's state at `blockTag`, in DrugBoxes' order: a list of
 * {key, ok, name, args, text}; a failed check carries the contract's error name and its arguments.
 * Without `insurer` the insurer's standing is not checked (it is chosen last).
 * The fill's boxes are checked against the contract's record, not re-hashed: the nullifiers come
 * from the fill's own event, and estimating the transaction reports BoxesNotOfFill by name.
 */
export async function claimChecks({ registry, boxes, rxId, fillsLeft, pharmacy, insurer = null, blockTag = "latest" }) {
  const at = { blockTag };
  const [fill, record, pharmacyOk, insurerOk] = await Promise.all([
    readFill(boxes, rxId, fillsLeft, blockTag),
    registry.prescription(rxId, at),
    registry.hasRole(PHARMACY_ROLE, pharmacy, at),
    insurer ? registry.hasRole(INSURER_ROLE, insurer, at) : Promise.resolve(null),
  ]);
  const id = ethers.hexlify(rxId).toLowerCase();
  const checks = [];
  const add = (key, ok, name, args, okText) =>
    checks.push(ok ? { key, ok: true, name: null, args: {}, text: okText } : { key, ok: false, ...refusal(name, args) });

  add("boxes", fill.pharmacy !== null, "NoBoxesRecorded", { id, fillsLeft },
    `${fill.boxes} box${fill.boxes === 1 ? "" : "es"} recorded for this fill.`);
  if (fill.pharmacy === null) return checks;
  add("pharmacy", fill.pharmacy.toLowerCase() === pharmacy.toLowerCase(), "NotFillPharmacy",
    { id, fillsLeft, caller: ethers.getAddress(pharmacy), pharmacy: fill.pharmacy },
    "This pharmacy recorded the fill's boxes.");
  add("void", fill.claim !== "Void", "FillIsVoid", { id, fillsLeft }, "The fill was not voided.");
  if (fill.claim !== "Void") {
    add("claim", fill.claim === "None", "ClaimAlreadyFiled", { id, fillsLeft, claim: CLAIM_STATUS.indexOf(fill.claim) },
      "No claim was filed for this fill yet.");
  }
  add("standing", pharmacyOk, "NotInGoodStanding", { account: ethers.getAddress(pharmacy), role: PHARMACY_ROLE },
    "This account is a pharmacy in good standing.");
  const current = Number(record.fillsLeft);
  const status = core.STATUS[Number(record.status)];
  const received = current < Number(fillsLeft) || (current === Number(fillsLeft) && (status === "Completed" || status === "Refillable"));
  add("received", received, "FillNotReceived", { id, fillsLeft, current: Number(record.status), currentFillsLeft: current },
    "The patient's receipt of this fill is recorded.");
  if (insurer) {
    add("insurer", insurerOk, "NotInGoodStanding", { account: ethers.getAddress(insurer), role: INSURER_ROLE },
      "The insurer is an insurer in good standing.");
  }
  return checks;
}

/** The first refusal of `claimChecks` (what fileClaim would revert with), or null when it would pass. */
export async function checkClaim(args) {
  return (await claimChecks(args)).find((check) => !check.ok) || null;
}

/** Insurers in good standing at `blockTag`: every account admitted with the insurer role (MemberAdmitted events), still holding it. */
export async function insurers(provider, registry, registryIface, registryAddress, fromBlock, toBlock = "latest", maxRange = core.MAX_LOGS_RANGE) {
  const topic = registryIface.getEvent("MemberAdmitted").topicHash;
  const logs = await core.getLogsInWindows(provider, { address: registryAddress, topics: [topic, null, INSURER_ROLE] }, fromBlock, toBlock, maxRange);
  const accounts = [...new Set(logs.map((log) => ethers.getAddress(ethers.dataSlice(log.topics[1], 12))))];
  const blockTag = typeof toBlock === "number" ? toBlock : "latest";
  const standing = await Promise.all(accounts.map((a) => registry.hasRole(INSURER_ROLE, a, { blockTag })));
  return accounts.filter((_, i) => standing[i]);
}
