// rxchain pharmacy dApp: the logic that does not touch the page.
//
// Reading the patient's QR payload (format in src/rxchain/core/payload.py), the document's canonical
// hash (RFC 8785, as src/rxchain/core/document.py computes it), the prescription id (as the registry
// and src/rxchain/core/ids.py compute it), the claim key's EIP-712 redeem authorization, the Merkle
// tree of batched prescriptions (as the registry and src/rxchain/core/batch.py build it), and the
// registry's custom errors in plain words. Runs in the browser (ethers from /vendor through the
// page's import map) and in node (ethers from node_modules), so the tests can compare it with the
// Python side.

import { ethers } from "ethers";

export const PAYLOAD_PREFIX = "RX1.";
export const CHECKSUM_BYTES = 4;
export const MAX_PAYLOAD_CHARS = 16 * 1024;
export const MAX_JSON_BYTES = 64 * 1024;
export const ACCOUNT_SYSTEM = "urn:rxchain:account";
export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

/** Chain ids on which development keys may be offered (the devnet, and anvil/ganache defaults). */
export const DEV_CHAIN_IDS = Object.freeze([31338, 1337, 31337]);

/** Role bits of IConsortiumRoles.member(account).roles. */
export const ROLE_BITS = Object.freeze({ doctor: 1, pharmacy: 2, courier: 4, auditor: 8, hospital: 16, manufacturer: 32, insurer: 64 });

/** The registry's Status enum, by value. */
export const STATUS = Object.freeze([
  "None", "Active", "Cancelled", "Dispensed", "Dispatched", "Delivered", "Completed", "Refillable",
]);

/** What each status means to the person at the counter. */
export const STATUS_TEXT = Object.freeze({
  None: "not registered on this registry",
  Active: "issued, not yet redeemed",
  Cancelled: "withdrawn by the doctor or the regulator",
  Dispensed: "redeemed; the drugs are held at the pharmacy",
  Dispatched: "handed to a courier for delivery",
  Delivered: "handed to the patient",
  Completed: "the patient confirmed receipt; no fills left",
  Refillable: "the patient confirmed receipt; another fill may be redeemed",
});

export const EIP712_DOMAIN_NAME = "rxchain PrescriptionRegistry";
export const EIP712_DOMAIN_VERSION = "1";
export const REDEEM_TYPES = Object.freeze({
  Redeem: [
    { name: "rxId", type: "bytes32" },
    { name: "pharmacy", type: "address" },
    { name: "fillsLeft", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
});

export const RECEIPT_TYPES = Object.freeze({
  Receipt: [
    { name: "rxId", type: "bytes32" },
    { name: "deliverer", type: "address" },
    { name: "fillsLeft", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
});

/** A reason a code is refused; `code` is stable, `message` is for people, `key` names the JSON key at fault (if one is). */
export class PayloadError extends Error {
  constructor(code, message, key = null) {
    super(message);
    this.name = "PayloadError";
    this.code = code;
    this.key = key;
  }
}

// ------------------------------------------------------------------------------ canonical JSON

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value.
 *
 * Object members sorted by their names' UTF-16 code units (what Array.prototype.sort does with
 * strings), no whitespace, strings and numbers serialised exactly as ECMAScript's JSON.stringify
 * does (which is what RFC 8785 specifies). Refuses what JSON cannot represent.
 */
export function canonicalize(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("JSON has no NaN or Infinity");
      return JSON.stringify(value);
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
      const names = Object.keys(value).sort();
      const members = names.map((name) => JSON.stringify(name) + ":" + canonicalize(value[name]));
      return "{" + members.join(",") + "}";
    }
    default:
      throw new TypeError(`a ${typeof value} is not a JSON value`);
  }
}

/** keccak256 of the document's canonical UTF-8 bytes: the docHash registered on chain. */
export function documentHash(doc) {
  return ethers.keccak256(ethers.toUtf8Bytes(canonicalize(doc)));
}

// ------------------------------------------------------------------------------ the QR payload

/** base64url without padding (RFC 4648 section 5): how every rxchain code writes its bytes. */
export function base64urlText(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of base64url text (no padding); throws PayloadError for characters or a length no encoder writes. */
export function base64urlBytes(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new PayloadError("malformed", "The code contains characters that cannot be in a prescription code. Copy or scan it again.");
  }
  if (text.length % 4 === 1) {
    throw new PayloadError("truncated", "The prescription code is incomplete: part of it was not scanned or copied. Scan or copy it again.");
  }
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function inflate(bytes, limit) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    let step;
    try {
      step = await reader.read();
    } catch {
      throw new PayloadError("malformed", "The prescription code is damaged (it does not unpack). Scan or copy it again.");
    }
    if (step.done) break;
    total += step.value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new PayloadError("too-large", "The code unpacks to more data than any prescription holds; it is not a prescription code.");
    }
    chunks.push(step.value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

const HEX32 = /^0x[0-9a-fA-F]{64}$/;

export function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Decodes QR text into {v, chainId, registry, rxId, claimKey, doc}; throws PayloadError.
 * Checks framing, checksum, size and field types only: see verifyPayload for the rest.
 */
export async function decodePayload(input) {
  if (typeof input !== "string") throw new PayloadError("malformed", "Expected the text of a prescription code.");
  if (input.length > MAX_PAYLOAD_CHARS) {
    throw new PayloadError("too-large", "This text is far longer than any prescription code.");
  }
  const text = input.trim();
  if (!text) throw new PayloadError("empty", "Paste the prescription code, or upload a picture of the QR code.");
  const version = /^RX(\d{1,9})\./.exec(text);
  if (!version) {
    throw new PayloadError("not-a-payload", "This is not a prescription code: it does not start with RX1. Was another QR code scanned?");
  }
  if (Number(version[1]) !== 1) {
    throw new PayloadError("version", `This prescription code is version ${Number(version[1])}; this page reads version 1. Update the page.`);
  }
  const encoded = text.slice(version[0].length);
  const bytes = base64urlBytes(encoded);
  if (bytes.length <= CHECKSUM_BYTES + 2) {
    throw new PayloadError("truncated", "The prescription code is incomplete: part of it was not scanned or copied. Scan or copy it again.");
  }
  const body = bytes.slice(0, bytes.length - CHECKSUM_BYTES);
  const check = ethers.getBytes(ethers.keccak256(body)).slice(0, CHECKSUM_BYTES);
  const given = bytes.slice(bytes.length - CHECKSUM_BYTES);
  if (!check.every((b, i) => b === given[i])) {
    throw new PayloadError(
      "checksum",
      "The prescription code is damaged or incomplete (its checksum does not match): part of it may not have been scanned or copied. Scan or copy it again.",
    );
  }
  // base64 ignores the spare low bits of the last character: a code spelled with them set reads as the
  // same bytes, so only the encoder's own spelling is accepted (one code, one spelling).
  if (base64urlText(bytes) !== encoded) {
    throw new PayloadError("checksum", "The prescription code is damaged in its last character. Scan or copy it again.");
  }
  const json = await inflate(body, MAX_JSON_BYTES);
  let obj;
  try {
    obj = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch {
    throw new PayloadError("malformed", "The prescription code does not contain readable data.");
  }
  if (!isPlainObject(obj)) throw new PayloadError("malformed", "The prescription code does not contain a prescription.");
  if (obj.v !== 1) throw new PayloadError("version", "This prescription code has a version this page does not read.");
  if (!Number.isSafeInteger(obj.chainId) || obj.chainId <= 0) {
    throw new PayloadError("malformed", "The prescription code names no valid chain.");
  }
  if (typeof obj.registry !== "string" || !ethers.isAddress(obj.registry)) {
    throw new PayloadError("malformed", "The prescription code names no valid registry address.");
  }
  if (typeof obj.rxId !== "string" || !HEX32.test(obj.rxId)) {
    throw new PayloadError("malformed", "The prescription code has no valid prescription id.");
  }
  if (typeof obj.claimKey !== "string" || !HEX32.test(obj.claimKey)) {
    throw new PayloadError("malformed", "The prescription code has no valid claim key.");
  }
  if (!isPlainObject(obj.doc)) throw new PayloadError("malformed", "The prescription code has no prescription document.");
  return {
    v: 1,
    chainId: obj.chainId,
    registry: ethers.getAddress(obj.registry),
    rxId: obj.rxId.toLowerCase(),
    claimKey: obj.claimKey,
    doc: obj.doc,
  };
}

function accountOf(reference, path) {
  const identifier = isPlainObject(reference) ? reference.identifier : undefined;
  if (!isPlainObject(identifier) || identifier.system !== ACCOUNT_SYSTEM) {
    throw new PayloadError("document", `The prescription document has no chain account at ${path}.`);
  }
  if (typeof identifier.value !== "string" || !ethers.isAddress(identifier.value)) {
    throw new PayloadError("document", `The prescription document has an invalid address at ${path}.`);
  }
  return ethers.getAddress(identifier.value);
}

function requests(doc) {
  if (doc.resourceType !== "Bundle" || !Array.isArray(doc.entry) || doc.entry.length === 0) {
    throw new PayloadError("document", "The prescription document is not a FHIR Bundle of medication requests.");
  }
  return doc.entry.map((entry, i) => {
    const resource = isPlainObject(entry) ? entry.resource : undefined;
    if (!isPlainObject(resource) || resource.resourceType !== "MedicationRequest") {
      throw new PayloadError("document", `Entry ${i + 1} of the prescription document is not a medication request.`);
    }
    return resource;
  });
}

/** {doctor, pharmacy|null}: the parties the prescription id commits to (every entry must agree). */
export function prescriptionParties(doc) {
  const parties = requests(doc).map((resource, i) => {
    const path = `entry[${i}].resource`;
    const doctor = accountOf(resource.requester, `${path}.requester`);
    const dispense = resource.dispenseRequest;
    if (!isPlainObject(dispense)) throw new PayloadError("document", `The prescription document has no ${path}.dispenseRequest.`);
    const pharmacy = dispense.performer == null ? null : accountOf(dispense.performer, `${path}.dispenseRequest.performer`);
    return { doctor, pharmacy };
  });
  const first = parties[0];
  if (parties.some((p) => p.doctor !== first.doctor || p.pharmacy !== first.pharmacy)) {
    throw new PayloadError("document", "The drugs of this prescription name different doctors or pharmacies.");
  }
  return first;
}

function text(value) {
  return typeof value === "string" ? value : value == null ? "" : String(value);
}

/** What to dispense, for display: one row per drug (strings only; never trusted as markup). */
export function medications(doc) {
  return requests(doc).map((resource) => {
    const med = isPlainObject(resource.medicationCodeableConcept) ? resource.medicationCodeableConcept : {};
    const coding = Array.isArray(med.coding) && isPlainObject(med.coding[0]) ? med.coding[0] : {};
    const dosage = Array.isArray(resource.dosageInstruction) && isPlainObject(resource.dosageInstruction[0]) ? resource.dosageInstruction[0] : {};
    const dispense = isPlainObject(resource.dispenseRequest) ? resource.dispenseRequest : {};
    const quantity = isPlainObject(dispense.quantity) ? dispense.quantity : {};
    const supply = isPlainObject(dispense.expectedSupplyDuration) ? dispense.expectedSupplyDuration : {};
    const validity = isPlainObject(dispense.validityPeriod) ? dispense.validityPeriod : {};
    return {
      drug: text(med.text || coding.display || coding.code),
      code: text(coding.code),
      dosage: text(dosage.text),
      quantity: [text(quantity.value), text(quantity.unit)].filter(Boolean).join(" "),
      supplyDays: text(supply.value),
      emergency: ["stat", "urgent", "asap"].includes(resource.priority),
      validFrom: text(validity.start),
      validTo: text(validity.end),
    };
  });
}

/** {terms, id} exactly as the registry computes them. */
export function prescriptionId(doctor, docHash, pharmacy, claimAddress) {
  const coder = ethers.AbiCoder.defaultAbiCoder();
  const terms = ethers.keccak256(coder.encode(["address", "bytes32", "address"], [doctor, docHash, pharmacy || ZERO_ADDRESS]));
  const id = ethers.keccak256(coder.encode(["address", "bytes32"], [claimAddress, terms]));
  return { terms, id };
}

/**
 * Checks a decoded payload against the chain and registry this page serves, and that its id opens
 * to its document and claim key. Returns everything redeeming needs; throws PayloadError.
 */
export function verifyPayload(payload, { chainId, registry }) {
  if (payload.chainId !== Number(chainId)) {
    throw new PayloadError(
      "wrong-chain",
      `This prescription belongs to another chain (chain ${payload.chainId}); this pharmacy is connected to chain ${chainId}. It cannot be redeemed here.`,
    );
  }
  if (payload.registry !== ethers.getAddress(registry)) {
    throw new PayloadError(
      "wrong-registry",
      `This prescription is registered in another registry (${payload.registry}); this page uses ${ethers.getAddress(registry)}. It cannot be redeemed here.`,
    );
  }
  const { doctor, pharmacy } = prescriptionParties(payload.doc);
  let docHash;
  try {
    docHash = documentHash(payload.doc);
  } catch {
    throw new PayloadError("document", "The prescription document cannot be read as plain JSON.");
  }
  let claim;
  try {
    claim = new ethers.Wallet(payload.claimKey);
  } catch {
    throw new PayloadError("malformed", "The claim key in this code is not a valid key.");
  }
  const { terms, id } = prescriptionId(doctor, docHash, pharmacy, claim.address);
  if (id !== payload.rxId) {
    throw new PayloadError(
      "tampered",
      "The prescription in this code was altered: its content does not match its id. Do not dispense; ask the patient to contact the prescriber.",
    );
  }
  return { id, terms, docHash, doctor, pharmacy, claim };
}

/** The EIP-712 domain of a deployed registry. */
export function registryDomain(chainId, registry) {
  return {
    name: EIP712_DOMAIN_NAME,
    version: EIP712_DOMAIN_VERSION,
    chainId: BigInt(chainId),
    verifyingContract: ethers.getAddress(registry),
  };
}

/** The claim key's signature letting `pharmacy` redeem the fill `fillsLeft` until `deadline`. */
export function signRedeem(claim, domain, id, pharmacy, fillsLeft, deadline) {
  return claim.signTypedData(domain, REDEEM_TYPES, {
    rxId: id,
    pharmacy: ethers.getAddress(pharmacy),
    fillsLeft: BigInt(fillsLeft),
    deadline: BigInt(deadline),
  });
}

// ------------------------------------------------------------------------------ batches (Merkle tree)
//
// A hospital's batch commits its prescription ids by the Merkle root the registry computes
// (src/rxchain/core/batch.py): the ids are the leaves in the order issued; each level hashes
// neighbouring pairs with the sorted-pair keccak256 of OpenZeppelin's Hashes.commutativeKeccak256
// and carries an odd last node up unchanged. A proof verifies with OpenZeppelin's MerkleProof.

function word(value) {
  if (typeof value !== "string" || !HEX32.test(value)) throw new TypeError(`not a 32-byte hex word: ${value}`);
  return value.toLowerCase();
}

/** keccak256 of the two words, smaller first (as uint256): OpenZeppelin's commutative hash. */
export function commutativeKeccak(a, b) {
  const [x, y] = [word(a), word(b)];
  return BigInt(x) < BigInt(y) ? ethers.keccak256(ethers.concat([x, y])) : ethers.keccak256(ethers.concat([y, x]));
}

function nextLevel(level) {
  const up = [];
  for (let i = 0; i + 1 < level.length; i += 2) up.push(commutativeKeccak(level[i], level[i + 1]));
  if (level.length % 2) up.push(level[level.length - 1]);
  return up;
}

/** The Merkle leaf of prescription `id`: keccak256 of its 32 bytes (an inner node hashes 64 bytes, so
 * neither can pass for the other). */
export function merkleLeaf(id) {
  return ethers.keccak256(word(id));
}

/** The root the registry computes for a batch of `ids` (in issue order). */
export function merkleRoot(ids) {
  if (!Array.isArray(ids) || ids.length === 0) throw new RangeError("a batch holds at least one prescription");
  let level = ids.map(merkleLeaf);
  while (level.length > 1) level = nextLevel(level);
  return level[0];
}

/** The sibling hashes from leaf `index` of `ids` up to the root. */
export function merkleProof(ids, index) {
  if (!Array.isArray(ids) || !Number.isInteger(index) || index < 0 || index >= ids.length) {
    throw new RangeError(`leaf ${index} is not in a batch of ${Array.isArray(ids) ? ids.length : 0}`);
  }
  let level = ids.map(merkleLeaf);
  const proof = [];
  while (level.length > 1) {
    const sibling = index ^ 1;
    if (sibling < level.length) proof.push(level[sibling]);
    index = Math.floor(index / 2);
    level = nextLevel(level);
  }
  return proof;
}

/** What the registry answers: does `proof` lead from the leaf of prescription `id` to `root`? */
export function verifyProof(proof, root, id) {
  let node = merkleLeaf(id);
  for (const sibling of proof) node = commutativeKeccak(node, sibling);
  return node === word(root);
}

// ------------------------------------------------------------------------------ log queries in windows

/** Besu's default --rpc-max-logs-range (the kit writes it into every node's config). */
export const MAX_LOGS_RANGE = 5000;

function refusedAsTooLarge(error) {
  const text = `${error && error.code} ${error && error.message} ${error && error.error && error.error.message} ${
    error && error.info && JSON.stringify(error.info)}`.toLowerCase();
  return ["-32005", "range", "limit", "too many", "exceed", "more than", "too large"].some((word) => text.includes(word));
}

/**
 * eth_getLogs over [fromBlock, toBlock] asked in windows of at most `maxRange` blocks, oldest first;
 * a window the node still refuses as too large is halved until it is answered. Besu refuses a query
 * whose toBlock - fromBlock exceeds --rpc-max-logs-range (5,000 by default, error -32005): a search
 * from the deploy block to the head fails about 1.5 hours after deployment otherwise.
 */
export async function getLogsInWindows(provider, filter, fromBlock, toBlock = "latest", maxRange = MAX_LOGS_RANGE) {
  const last = typeof toBlock === "number" ? toBlock : await provider.getBlockNumber();
  const out = [];
  const ask = async (start, end) => {
    try {
      out.push(...(await provider.getLogs({ ...filter, fromBlock: start, toBlock: end })));
    } catch (error) {
      if (end <= start || !refusedAsTooLarge(error)) throw error;
      const middle = Math.floor((start + end) / 2);
      await ask(start, middle);
      await ask(middle + 1, end);
    }
  };
  for (let start = Number(fromBlock); start <= last; start += maxRange) await ask(start, Math.min(start + maxRange - 1, last));
  return out;
}

// ------------------------------------------------------------------------------ errors in plain words

/** The registry's custom errors, in words a pharmacist can act on. */
export const ERROR_TEXT = Object.freeze({
  AlreadyRedeemed: "This prescription has already been redeemed; it cannot be filled again.",
  Expired: "This prescription has expired; the patient needs a new one.",
  PrescriptionIsCancelled: "This prescription was cancelled by the doctor or the regulator; do not dispense.",
  UnknownPrescription: "No prescription with this id is registered; check the code with the patient.",
  NotDesignatedPharmacy: "This prescription is for another pharmacy; this pharmacy may not fill it.",
  BadClaimSignature: "The patient's authorization in the code is not valid here (another code, pharmacy, fill, chain or registry).",
  SignatureDeadlinePassed: "The signed authorization expired before the transaction was mined; redeem again.",
  WrongStatus: "The prescription is not in a state where this step applies.",
  NotCustodian: "This account does not hold the prescription's drugs, so it cannot record this step.",
  ZeroCourier: "Enter the courier's address.",
  EnforcedPause: "The registry is paused by the regulator; nothing can be recorded until it resumes.",
  AccessControlUnauthorizedAccount: "This account does not hold the role this step needs.",
  CredentialExpired: "This account's credential has expired; the regulator must renew it.",
  NotAMember: "This account is not a member of the consortium.",
  NotAPharmacy: "The named pharmacy is not a pharmacy in good standing.",
  UnknownBatch: "No batch with this root is registered; check the code with the patient or the hospital.",
  BatchIsCancelled: "The hospital or the regulator withdrew the whole batch this prescription was issued in; do not dispense.",
  NotInBatch: "The prescription is not part of the batch named; the batch read from the chain does not match. Check the code again.",
  NotBatchDoctor: "The doctor named in this prescription is not a doctor of the hospital that issued its batch, or was not licensed when the batch was issued; do not dispense.",
  HospitalNotInGoodStanding: "The prescribing doctor's hospital has been revoked or its credential has ended; its batches cannot be dispensed. Do not dispense.",
  InvalidBatchSize: "A batch holds between one and the registry's maximum of prescriptions.",
});

function hexData(value) {
  return typeof value === "string" && /^0x([0-9a-fA-F]{2})*$/.test(value) && value.length >= 10 ? value : null;
}

function findRevertData(error, depth = 0) {
  if (!error || typeof error !== "object" || depth > 5) return null;
  const direct = hexData(error.data);
  if (direct) return direct;
  if (error.data && typeof error.data === "object") {
    const inner = hexData(error.data.data) || hexData(error.data.result);
    if (inner) return inner;
  }
  for (const key of ["error", "info", "cause", "originalError"]) {
    const found = findRevertData(error[key], depth + 1);
    if (found) return found;
  }
  return null;
}

function formatArg(value) {
  if (typeof value === "bigint") return value.toString();
  return String(value);
}

/**
 * Sends `data` to `to` as a free-gas legacy transaction from `account` ({address, signer}) and waits
 * for its receipt. A refusal at estimation comes back before anything is sent; a transaction mined
 * but reverted is replayed at its block for the reason. Errors are named by `explain(error)` (the
 * contract's own decoder). `onSent(hash)` runs once the node has the transaction; `notMinedAdvice`
 * ends the message when no receipt comes within `timeoutMs`. Returns {hash, blockNumber}; throws
 * {explained, hash?}.
 */
export async function sendAndWait({ provider, account, chainId, to, data, explain, onSent, notMinedAdvice, timeoutMs = 120_000 }) {
  let estimate;
  try {
    estimate = await provider.estimateGas({ from: account.address, to, data, gasPrice: 0n });
  } catch (error) {
    throw { explained: explain(error) };
  }
  const tx = { to, data, type: 0, gasPrice: 0n, gasLimit: (estimate * 125n) / 100n + 20_000n, chainId: BigInt(chainId) };
  let hash;
  try {
    hash = (await account.signer.sendTransaction(tx)).hash;
  } catch (error) {
    throw { explained: explain(error) };
  }
  if (onSent) onSent(hash);
  const deadline = Date.now() + timeoutMs;
  let receipt = null;
  while (!receipt) {
    receipt = await provider.getTransactionReceipt(hash);
    if (receipt) break;
    if (Date.now() > deadline) {
      const text = `The transaction ${hash} was not mined within ${Math.round(timeoutMs / 60_000)} minutes; ${notMinedAdvice || "check before trying again."}`;
      throw { hash, explained: { name: "NotMined", args: {}, text } };
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (receipt.status !== 1) {
    let explained = { name: "Reverted", args: {}, text: "The transaction was mined but failed." };
    try {
      await provider.call({ from: account.address, to, data, blockTag: receipt.blockNumber });
    } catch (error) {
      explained = explain(error);
    }
    throw { explained, hash };
  }
  return { hash, blockNumber: receipt.blockNumber };
}

/**
 * {name, args, text} for a failed call or transaction: the registry's custom error decoded with
 * the ABI (`iface` is an ethers Interface), or the node's own message when there is no revert data.
 */
export function explainError(iface, error) {
  let parsed = null;
  if (error && error.revert && error.revert.name) {
    parsed = { name: error.revert.name, args: Array.from(error.revert.args || []) };
  } else {
    const data = findRevertData(error);
    if (data) {
      try {
        const description = iface.parseError(data);
        if (description) parsed = { name: description.name, args: Array.from(description.args) };
      } catch {
        parsed = null;
      }
    }
  }
  if (parsed) {
    const fragment = iface.getError(parsed.name);
    const args = {};
    (fragment ? fragment.inputs : []).forEach((input, i) => {
      args[input.name || String(i)] = formatArg(parsed.args[i]);
    });
    return { name: parsed.name, args, text: ERROR_TEXT[parsed.name] || "The registry refused this step." };
  }
  if (error && (error.code === "ACTION_REJECTED" || error.code === 4001 || (error.info && error.info.error && error.info.error.code === 4001))) {
    return { name: "Rejected", args: {}, text: "The wallet rejected the request; nothing was sent." };
  }
  const message = (error && (error.shortMessage || error.message)) || String(error);
  if (/failed to fetch|network|ECONNREFUSED|does not answer/i.test(message)) {
    return { name: "NodeUnavailable", args: {}, text: "The chain's node does not answer; check the connection and try again." };
  }
  return { name: "Failed", args: {}, text: message };
}
