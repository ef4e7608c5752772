// rxchain hand-over codes: what passes between the patient's app, the pharmacy and the courier so
// that the claim key stays with the patient (format and rules: src/rxchain/core/handover.py, which
// this module follows check for check; a test runs both on the same codes).
//
//   RXP1.  consent request    the pharmacy shows it:      {v, chainId, registry, pharmacy, deadline}
//   RXA1.  authorization      the patient shows it to that pharmacy:
//                             {v, chainId, registry, rxId, claimAddress (the key's ADDRESS), doc, pharmacy,
//                              fillsLeft, deadline, signature}   (EIP-712 Redeem by the claim key)
//   RXD1.  delivery request   the courier or the counter shows it:
//                             {v, chainId, registry, rxId, deliverer, fillsLeft, deadline}
//   RXR1.  receipt            the patient shows it to that deliverer:
//                             {v, chainId, registry, rxId, terms, deliverer, fillsLeft, deadline, signature}
//                             (EIP-712 Receipt by the claim key)
//
// Framing as the prescription code (rxcore.js): tag + "1." + base64url(zlib(RFC 8785 JSON) +
// keccak256(body)[:4]). zlib at level 9 (pako, a port of zlib, so the bytes and hence the text are
// those Python's zlib writes). Only the encoder's spelling is read; unknown keys are refused.
//
// Every refusal is a PayloadError whose `code` names the reason (as the Python exception class does)
// and whose `key` names the JSON key at fault, if one is; `message` is for people.

import { ethers } from "ethers";
import { deflate, Inflate } from "pako";
import {
  CHECKSUM_BYTES,
  MAX_JSON_BYTES,
  MAX_PAYLOAD_CHARS,
  PayloadError,
  RECEIPT_TYPES,
  REDEEM_TYPES,
  ZERO_ADDRESS,
  base64urlBytes,
  base64urlText,
  canonicalize,
  documentHash,
  isPlainObject,
  prescriptionId,
  prescriptionParties,
  registryDomain,
} from "./rxcore.js";

export const CONSENT_REQUEST_TAG = "RXP";
export const AUTHORIZATION_TAG = "RXA";
export const DELIVERY_REQUEST_TAG = "RXD";
export const RECEIPT_TAG = "RXR";
export const ANYONE = ZERO_ADDRESS;

const VERSION = 1;
const MAX_CHAIN_ID = Number.MAX_SAFE_INTEGER;
const MAX_UINT40 = 2 ** 40 - 1;
const HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
const HASH_RE = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE_RE = /^0x[0-9a-fA-F]{130}$/;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

/** What each code is called, for messages. */
const WHAT = Object.freeze({
  [CONSENT_REQUEST_TAG]: "pharmacy's consent request",
  [AUTHORIZATION_TAG]: "authorization code",
  [DELIVERY_REQUEST_TAG]: "delivery request",
  [RECEIPT_TAG]: "receipt code",
});

const KEYS = Object.freeze({
  [CONSENT_REQUEST_TAG]: ["chainId", "registry", "pharmacy", "deadline"],
  [AUTHORIZATION_TAG]: ["chainId", "registry", "rxId", "claimAddress", "doc", "pharmacy", "fillsLeft", "deadline", "signature"],
  [DELIVERY_REQUEST_TAG]: ["chainId", "registry", "rxId", "deliverer", "fillsLeft", "deadline"],
  [RECEIPT_TAG]: ["chainId", "registry", "rxId", "terms", "deliverer", "fillsLeft", "deadline", "signature"],
});

/** Which code a text is (by its tag), or null: lets one text box take any of them. */
export function kindOf(text) {
  const match = /^\s*(RX[PADR]?)\d{1,9}\./.exec(typeof text === "string" ? text : "");
  if (!match) return null;
  return { RX: "prescription", RXP: "consent", RXA: "authorization", RXD: "delivery", RXR: "receipt" }[match[1]];
}

// ------------------------------------------------------------------------------ framing

/** tag + "1." + base64url(zlib level 9 of the canonical JSON + keccak checksum): Python's `frame`. */
export function frame(obj, tag) {
  let canonical;
  try {
    canonical = ethers.toUtf8Bytes(canonicalize(obj));
  } catch {
    throw new PayloadError("malformed", "The code's content cannot be written as plain JSON.", "doc");
  }
  if (canonical.length > MAX_JSON_BYTES) throw new PayloadError("too-large", "The code's content is larger than any rxchain code holds.");
  const body = deflate(canonical, { level: 9 });
  const check = ethers.getBytes(ethers.keccak256(body)).slice(0, CHECKSUM_BYTES);
  const bytes = new Uint8Array(body.length + CHECKSUM_BYTES);
  bytes.set(body);
  bytes.set(check, body.length);
  const text = `${tag}${VERSION}.${base64urlText(bytes)}`;
  if (text.length > MAX_PAYLOAD_CHARS) throw new PayloadError("too-large", "The code is longer than any rxchain code may be.");
  return text;
}

function adler32(bytes) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length; i++) {
    a = (a + bytes[i]) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * What Python's zlib.decompressobj() makes of `bytes` (RFC 1950: a 2-byte header, a deflate stream,
 * the Adler-32 of the output): {error} for data zlib refuses, else {eof, tooLarge, total, chunks,
 * unused}: eof once the Adler-32 is read, unused = the bytes after it. The deflate stream is
 * inflated raw by pako (its zlib mode would read trailing bytes as a further stream).
 */
function zlibInflate(bytes) {
  if (bytes.length < 2) return { eof: false, tooLarge: false, total: 0, chunks: [], unused: 0 };
  const [cmf, flg] = bytes;
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0 || (flg & 0x20) !== 0) return { error: true };
  const inflater = new Inflate({ raw: true, chunkSize: 16 * 1024 });
  let total = 0;
  let tooLarge = false;
  let ended = null;
  const chunks = [];
  inflater.onData = (chunk) => {
    total += chunk.length;
    if (total > MAX_JSON_BYTES) tooLarge = true;
    else chunks.push(chunk.slice());
  };
  inflater.onEnd = (status) => {
    ended = status;
  };
  inflater.push(bytes.subarray(2), false);
  if (ended !== null && ended !== 0) return { error: true };
  if (tooLarge) return { eof: false, tooLarge, total, chunks, unused: 0 };
  if (ended === null) return { eof: false, tooLarge, total, chunks, unused: 0 };
  const rest = bytes.subarray(2 + inflater.strm.next_in);
  if (rest.length < 4) return { eof: false, tooLarge, total, chunks, unused: 0 };
  const output = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    output.set(chunk, at);
    at += chunk.length;
  }
  const check = ((rest[0] << 24) | (rest[1] << 16) | (rest[2] << 8) | rest[3]) >>> 0;
  if (check !== adler32(output)) return { error: true };
  return { eof: true, tooLarge, total, output, unused: rest.length - 4 };
}

/** Python's _looks_truncated: a zlib stream cut short, or a complete one followed by a partial checksum. */
function looksTruncated(raw) {
  const result = zlibInflate(raw);
  if (result.error || result.tooLarge) return false;
  if (!result.eof) return true;
  return result.unused < CHECKSUM_BYTES;
}

function article(what) {
  return /^[aeiou]/i.test(what) ? `an ${what}` : `a ${what}`;
}

function noun(tag) {
  return WHAT[tag] || "code";
}

/** Undoes `frame` for a code that must start with `tag`; returns the parsed JSON. Mirrors Python's `unframe`. */
export function unframe(input, tag) {
  const what = noun(tag);
  if (typeof input !== "string") throw new PayloadError("malformed", `Expected the text of a ${what}.`);
  if (input.length > MAX_PAYLOAD_CHARS) throw new PayloadError("too-large", `This text is far longer than any ${what}.`);
  const text = input.trim();
  if (!text) throw new PayloadError("malformed", `Paste or scan the ${what}: nothing was given.`);
  const prefix = new RegExp(`^${tag}(\\d{1,9})\\.`).exec(text);
  if (!prefix) {
    throw new PayloadError("not-a-payload", `This is not ${article(what)}: it does not start with ${tag}${VERSION}. Was another code scanned?`);
  }
  if (Number(prefix[1]) !== VERSION) {
    throw new PayloadError("version", `This ${what} is version ${Number(prefix[1])}; this page reads version ${VERSION}. Update the page.`);
  }
  const encoded = text.slice(prefix[0].length);
  if (!/^[A-Za-z0-9_-]*$/.test(encoded)) {
    throw new PayloadError("malformed", `The ${what} contains characters that cannot be in it. Copy or scan it again.`);
  }
  const dangling = encoded.length % 4 === 1; // impossible for a complete encoding
  const usable = dangling ? encoded.slice(0, -1) : encoded;
  const raw = base64urlBytes(usable);
  const truncated = () => new PayloadError("truncated", `The ${what} is incomplete: part of it was not scanned or copied. Scan or copy it again.`);
  if (raw.length <= CHECKSUM_BYTES + 2) throw truncated();
  const body = raw.slice(0, raw.length - CHECKSUM_BYTES);
  const given = raw.slice(raw.length - CHECKSUM_BYTES);
  const expected = ethers.getBytes(ethers.keccak256(body)).slice(0, CHECKSUM_BYTES);
  if (dangling || !expected.every((b, i) => b === given[i])) {
    if (looksTruncated(raw)) throw truncated();
    if (dangling) throw new PayloadError("malformed", `The ${what} has a length no code has. Copy or scan it again.`);
    throw new PayloadError("checksum", `The ${what} is damaged (its checksum does not match). Scan or copy it again.`);
  }
  if (base64urlText(raw) !== usable) {
    // base64 ignores the spare low bits of the last character: one code, one spelling.
    throw new PayloadError("checksum", `The ${what} is damaged in its last character. Scan or copy it again.`);
  }
  const inflated = zlibInflate(body);
  if (inflated.error) throw new PayloadError("malformed", `The ${what} is damaged (it does not unpack). Scan or copy it again.`);
  if (inflated.tooLarge) throw new PayloadError("too-large", `The ${what} unpacks to more data than any rxchain code holds.`);
  if (!inflated.eof) throw new PayloadError("malformed", `The ${what} is damaged (it ends inside its packed data). Scan or copy it again.`);
  if (inflated.unused > 0) throw new PayloadError("malformed", `The ${what} has bytes after its packed data; it is not one rxchain wrote.`);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(inflated.output));
  } catch {
    throw new PayloadError("malformed", `The ${what} does not contain readable data.`);
  }
}

// ------------------------------------------------------------------------------ keys and types

function bad(key, text) {
  return new PayloadError("malformed", text, key);
}

/** Python's is_valid_address: 0x + 40 hex digits, all lower case, all upper case, or a valid EIP-55 checksum. */
function isValidAddress(value) {
  return typeof value === "string" && ADDRESS_RE.test(value) && ethers.isAddress(value);
}

function checkObject(text, tag) {
  const what = noun(tag);
  const keys = KEYS[tag];
  const obj = unframe(text, tag);
  if (!isPlainObject(obj)) throw new PayloadError("malformed", `The ${what} does not contain ${article(what)}.`);
  if (typeof obj.v !== "number" || !Number.isInteger(obj.v)) throw bad("v", `The ${what} has no version number.`);
  if (obj.v !== VERSION) throw new PayloadError("version", `This ${what} has a version (${obj.v}) this page does not read.`);
  for (const key of keys) if (!(key in obj)) throw bad(key, `The ${what} has no ${key}.`);
  for (const key of Object.keys(obj)) {
    if (key !== "v" && !keys.includes(key)) throw bad(key, `The ${what} has a part this page does not know (${key}); it is not one rxchain wrote.`);
  }
  const out = { ...obj };
  if (!Number.isSafeInteger(obj.chainId) || obj.chainId <= 0) throw bad("chainId", `The ${what} names no valid chain.`);
  for (const key of ["registry", "pharmacy", "deliverer", "claimAddress"]) {
    if (!keys.includes(key)) continue;
    if (!isValidAddress(obj[key])) throw bad(key, `The ${what} has no valid ${key} address.`);
    out[key] = ethers.getAddress(obj[key]);
  }
  for (const key of ["rxId", "terms"]) {
    if (!keys.includes(key)) continue;
    if (typeof obj[key] !== "string" || !HASH_RE.test(obj[key])) throw bad(key, `The ${what} has no valid ${key} (0x and 64 hex digits).`);
    out[key] = obj[key].toLowerCase();
  }
  for (const [key, top] of [["fillsLeft", 255], ["deadline", MAX_UINT40]]) {
    if (!keys.includes(key)) continue;
    const value = obj[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > top) {
      throw bad(key, `The ${what}'s ${key} must be a whole number from 0 to ${top}.`);
    }
  }
  if (keys.includes("signature")) {
    if (typeof obj.signature !== "string" || !SIGNATURE_RE.test(obj.signature)) {
      throw bad("signature", `The ${what} has no valid signature (0x and 130 hex digits).`);
    }
    out.signature = obj.signature.toLowerCase();
  }
  if (keys.includes("doc") && !isPlainObject(obj.doc)) throw bad("doc", `The ${what} carries no prescription document.`);
  return out;
}

function checkExpected(code, what, expected) {
  if (!expected) return;
  if (expected.chainId != null && code.chainId !== Number(expected.chainId)) {
    throw new PayloadError("wrong-chain", `This ${what} is for chain ${code.chainId}; this page is connected to chain ${expected.chainId}.`);
  }
  if (expected.registry != null && code.registry !== ethers.getAddress(expected.registry)) {
    throw new PayloadError("wrong-registry", `This ${what} is for registry ${code.registry}; this page uses ${ethers.getAddress(expected.registry)}.`);
  }
}

/** The address that signed `digest` (low s, v 27/28, as the registry accepts), or null. */
export function signerOf(digest, signature) {
  const bytes = ethers.getBytes(signature);
  if (bytes.length !== 65 || (bytes[64] !== 27 && bytes[64] !== 28)) return null;
  if (BigInt(ethers.hexlify(bytes.slice(32, 64))) > HALF_ORDER) return null;
  try {
    return ethers.recoverAddress(digest, ethers.hexlify(bytes));
  } catch {
    return null;
  }
}

export function redeemDigest(chainId, registry, rxId, pharmacy, fillsLeft, deadline) {
  return ethers.TypedDataEncoder.hash(registryDomain(chainId, registry), REDEEM_TYPES, {
    rxId, pharmacy: ethers.getAddress(pharmacy), fillsLeft: BigInt(fillsLeft), deadline: BigInt(deadline),
  });
}

export function receiptDigest(chainId, registry, rxId, deliverer, fillsLeft, deadline) {
  return ethers.TypedDataEncoder.hash(registryDomain(chainId, registry), RECEIPT_TYPES, {
    rxId, deliverer: ethers.getAddress(deliverer), fillsLeft: BigInt(fillsLeft), deadline: BigInt(deadline),
  });
}

// ------------------------------------------------------------------------------ encoding

function address(value) {
  return ethers.getAddress(value);
}

/** RXP1 text of {chainId, registry, pharmacy, deadline}. */
export function encodeConsentRequest({ chainId, registry, pharmacy, deadline }) {
  return frame({ v: VERSION, chainId: Number(chainId), registry: address(registry), pharmacy: address(pharmacy), deadline: Number(deadline) },
    CONSENT_REQUEST_TAG);
}

/** RXD1 text of {chainId, registry, rxId, deliverer, fillsLeft, deadline}. */
export function encodeDeliveryRequest({ chainId, registry, rxId, deliverer, fillsLeft, deadline }) {
  return frame({
    v: VERSION, chainId: Number(chainId), registry: address(registry), rxId: rxId.toLowerCase(), deliverer: address(deliverer),
    fillsLeft: Number(fillsLeft), deadline: Number(deadline),
  }, DELIVERY_REQUEST_TAG);
}

/** RXA1 text of an authorization {chainId, registry, rxId, claimAddress (address), doc, pharmacy, fillsLeft, deadline, signature}. */
export function encodeAuthorization(auth) {
  return frame({
    v: VERSION, chainId: Number(auth.chainId), registry: address(auth.registry), rxId: auth.rxId.toLowerCase(),
    claimAddress: address(auth.claimAddress), doc: auth.doc, pharmacy: address(auth.pharmacy), fillsLeft: Number(auth.fillsLeft),
    deadline: Number(auth.deadline), signature: auth.signature.toLowerCase(),
  }, AUTHORIZATION_TAG);
}

/** RXR1 text of a receipt {chainId, registry, rxId, terms, deliverer, fillsLeft, deadline, signature}. */
export function encodeReceipt(receipt) {
  return frame({
    v: VERSION, chainId: Number(receipt.chainId), registry: address(receipt.registry), rxId: receipt.rxId.toLowerCase(),
    terms: receipt.terms.toLowerCase(), deliverer: address(receipt.deliverer), fillsLeft: Number(receipt.fillsLeft),
    deadline: Number(receipt.deadline), signature: receipt.signature.toLowerCase(),
  }, RECEIPT_TAG);
}

// ------------------------------------------------------------------------------ the patient's side

function checkDeployment(prescription, chainId, registry) {
  if (chainId !== prescription.chainId) {
    throw new PayloadError("wrong-chain", `The request is for chain ${chainId}; this prescription is on chain ${prescription.chainId}.`);
  }
  if (address(registry) !== address(prescription.registry)) {
    throw new PayloadError("wrong-registry", `The request is for registry ${address(registry)}; this prescription is in registry ${address(prescription.registry)}.`);
  }
}

/** The prescription's terms and parties: {doctor, pharmacy|null, docHash, terms}. */
export function prescriptionTerms(doc) {
  const { doctor, pharmacy } = prescriptionParties(doc);
  const docHash = documentHash(doc);
  const { terms } = prescriptionId(doctor, docHash, pharmacy, ZERO_ADDRESS);
  return { doctor, pharmacy, docHash, terms };
}

/**
 * The patient consents to `request`'s pharmacy filling the fill at `fillsLeft` (Python's `authorize`).
 * `prescription` is {chainId, registry, rxId, doc}; `claim` an ethers Wallet of the claim key. Returns the
 * authorization object (encode it with encodeAuthorization).
 */
export async function authorize(prescription, claim, request, fillsLeft) {
  checkDeployment(prescription, request.chainId, request.registry);
  if (address(request.pharmacy) === ANYONE) throw bad("pharmacy", "A pharmacy asking for consent must name itself.");
  const signature = await claim.signTypedData(registryDomain(prescription.chainId, prescription.registry), REDEEM_TYPES, {
    rxId: prescription.rxId, pharmacy: address(request.pharmacy), fillsLeft: BigInt(fillsLeft), deadline: BigInt(request.deadline),
  });
  return {
    chainId: prescription.chainId, registry: address(prescription.registry), rxId: prescription.rxId.toLowerCase(),
    claimAddress: claim.address, doc: prescription.doc, pharmacy: address(request.pharmacy), fillsLeft: Number(fillsLeft),
    deadline: Number(request.deadline), signature,
  };
}

/** The patient confirms receiving the fill `request` hands over, from `request`'s deliverer (Python's `sign_receipt_for`). */
export async function signReceiptFor(prescription, claim, request) {
  checkDeployment(prescription, request.chainId, request.registry);
  if (request.rxId.toLowerCase() !== prescription.rxId.toLowerCase()) {
    throw new PayloadError("another-delivery", `The receipt belongs to another hand-over: the deliverer shows prescription ${request.rxId}, this one is ${prescription.rxId}.`);
  }
  if (address(request.deliverer) === ANYONE) throw bad("deliverer", "A deliverer asking for a receipt must name itself.");
  const { terms } = prescriptionTerms(prescription.doc);
  const signature = await claim.signTypedData(registryDomain(prescription.chainId, prescription.registry), RECEIPT_TYPES, {
    rxId: prescription.rxId, deliverer: address(request.deliverer), fillsLeft: BigInt(request.fillsLeft), deadline: BigInt(request.deadline),
  });
  return {
    chainId: prescription.chainId, registry: address(prescription.registry), rxId: prescription.rxId.toLowerCase(), terms,
    deliverer: address(request.deliverer), fillsLeft: Number(request.fillsLeft), deadline: Number(request.deadline), signature,
  };
}

// ------------------------------------------------------------------------------ reading codes

export function decodeConsentRequest(text) {
  const obj = checkObject(text, CONSENT_REQUEST_TAG);
  return { chainId: obj.chainId, registry: obj.registry, pharmacy: obj.pharmacy, deadline: obj.deadline };
}

export function decodeDeliveryRequest(text) {
  const obj = checkObject(text, DELIVERY_REQUEST_TAG);
  return { chainId: obj.chainId, registry: obj.registry, rxId: obj.rxId, deliverer: obj.deliverer, fillsLeft: obj.fillsLeft, deadline: obj.deadline };
}

/**
 * Reads a patient's authorization (or a paper fill slip) and checks it is whole: its id opens to its
 * document and claim key, and the claim key signed it. `expected` = {chainId, registry} when known.
 * Returns {chainId, registry, rxId, claimAddress, doc, pharmacy, fillsLeft, deadline, signature, doctor,
 * designated, docHash, terms, isPaper}.
 */
export function decodeAuthorization(text, expected = null) {
  const what = noun(AUTHORIZATION_TAG);
  const obj = checkObject(text, AUTHORIZATION_TAG);
  checkExpected(obj, what, expected);
  let parties;
  try {
    parties = prescriptionTerms(obj.doc);
  } catch (error) {
    if (error instanceof PayloadError) throw bad("doc", error.message);
    throw bad("doc", "The prescription document in the authorization cannot be read as plain JSON.");
  }
  const { id } = prescriptionId(parties.doctor, parties.docHash, parties.pharmacy, obj.claimAddress);
  if (id !== obj.rxId) {
    throw new PayloadError("tampered", "The prescription in this authorization was altered: its content does not match its id. Do not dispense.");
  }
  const digest = redeemDigest(obj.chainId, obj.registry, obj.rxId, obj.pharmacy, obj.fillsLeft, obj.deadline);
  if (signerOf(digest, obj.signature) !== obj.claimAddress) {
    throw new PayloadError("bad-signature", "The authorization is not signed by the prescription's key: it was altered or made up.");
  }
  return {
    chainId: obj.chainId, registry: obj.registry, rxId: obj.rxId, claimAddress: obj.claimAddress, doc: obj.doc, pharmacy: obj.pharmacy,
    fillsLeft: obj.fillsLeft, deadline: obj.deadline, signature: obj.signature,
    doctor: parties.doctor, designated: parties.pharmacy, docHash: parties.docHash, terms: parties.terms, isPaper: obj.pharmacy === ANYONE,
  };
}

/** Reads a patient's receipt (or a paper receipt slip): the signer, with the terms, must open to the id. */
export function decodeReceipt(text, expected = null) {
  const obj = checkObject(text, RECEIPT_TAG);
  checkExpected(obj, noun(RECEIPT_TAG), expected);
  const digest = receiptDigest(obj.chainId, obj.registry, obj.rxId, obj.deliverer, obj.fillsLeft, obj.deadline);
  const signer = signerOf(digest, obj.signature);
  const coder = ethers.AbiCoder.defaultAbiCoder();
  if (signer === null || ethers.keccak256(coder.encode(["address", "bytes32"], [signer, obj.terms])) !== obj.rxId) {
    throw new PayloadError("bad-signature", "The receipt is not signed by the prescription's key: it was altered or made up.");
  }
  return {
    chainId: obj.chainId, registry: obj.registry, rxId: obj.rxId, terms: obj.terms, deliverer: obj.deliverer,
    fillsLeft: obj.fillsLeft, deadline: obj.deadline, signature: obj.signature, isPaper: obj.deliverer === ANYONE,
  };
}

// ------------------------------------------------------------------------------ before sending

/** What the pharmacy checks before it sends: the consent is for it, for this fill, and still live (Python's check_authorization). */
export function checkAuthorization(auth, { pharmacy, fillsLeft, now }) {
  if (!auth.isPaper && auth.pharmacy !== address(pharmacy)) {
    throw new PayloadError("another-pharmacy",
      `The patient authorised pharmacy ${auth.pharmacy}, not this one (${address(pharmacy)}): the patient must consent here.`);
  }
  if (auth.fillsLeft !== Number(fillsLeft)) {
    throw new PayloadError("another-fill",
      `The code is for the fill with ${auth.fillsLeft} fill(s) left; the prescription has ${fillsLeft} left: it was used already or belongs to another fill.`);
  }
  if (Number(now) > auth.deadline) {
    throw new PayloadError("expired", `The authorization expired at ${new Date(auth.deadline * 1000).toISOString()}: ask the patient for a fresh one.`);
  }
}

/** What the deliverer checks before it sends: the receipt is for its hand-over and still live (Python's check_receipt). */
export function checkReceipt(receipt, { deliverer, fillsLeft, now }) {
  if (!receipt.isPaper && receipt.deliverer !== address(deliverer)) {
    throw new PayloadError("another-delivery",
      `The receipt belongs to another hand-over: it names deliverer ${receipt.deliverer}, the drugs are with ${address(deliverer)}.`);
  }
  if (receipt.fillsLeft !== Number(fillsLeft)) {
    throw new PayloadError("another-delivery",
      `The receipt belongs to another hand-over: it is for the fill leaving ${receipt.fillsLeft} fill(s), this one leaves ${fillsLeft}.`);
  }
  if (Number(now) > receipt.deadline) {
    throw new PayloadError("expired", `The receipt expired at ${new Date(receipt.deadline * 1000).toISOString()}: ask the patient for a fresh one.`);
  }
}
