// rxchain drug boxes: the formats and the chain checks the box pages share (no page code here).
//
// Each box carries its 20-digit traceability code (printed) and a 20-digit secret under a scratch
// panel; the panel's DataMatrix holds "RXS1:<code>:<secret>". Exactly as src/rxchain/core/boxes.py:
//
//     nullifier = keccak256("rxchain-box-v1:" + code + ":" + secret)      ASCII
//     leaf      = keccak256(nullifier)                                     32 bytes hashed
//     node      = keccak256(left + right)                                  64 bytes hashed, by position
//
// A lot is the root of a positional Merkle tree over its boxes' leaves (box i is leaf i, padded with
// zero leaves to a power of two); a proof lists the siblings from the leaf up, a multiproof the
// siblings not computed from the boxes themselves, level by level, left to right (DrugBoxes._root).
//
// checkBox and checkForDispense ask the chain (DrugBoxes) and trust nothing else: the web server only
// says where a leaf is (api/lots/locate) and serves the public lot files (api/lots/<root>).
// Runs in the browser (ethers through the page's import map) and in node (the tests compare it with
// the Python side).

import { ethers } from "ethers";
import { getLogsInWindows } from "./rxcore.js";

export const SCRATCH_PREFIX = "RXS1:";
export const CODE_DIGITS = 20;
export const SECRET_DIGITS = 20;
export const MAX_LOT = 65_536;
export const LOT_FORMAT = "rxchain-lot-1";
const DOMAIN = "rxchain-box-v1:";
const ZERO_WORD = "0x" + "00".repeat(32);
const HEX32 = /^0x[0-9a-fA-F]{64}$/;

/** IDrugBoxes.BoxState, by value. */
export const BOX_STATES = Object.freeze(["unknown", "unsold", "dispensed", "recalled", "expired"]);

/** A box's input refused; `code` is stable: "bad-code", "bad-secret", "not-a-scratch-code", "bad-lot", "bad-index". */
export class BoxError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "BoxError";
    this.code = code;
  }
}

// ------------------------------------------------------------------------------ codes and secrets

/** `code` without spaces, if it is a 20-digit traceability code; else BoxError "bad-code". */
export function checkCode(code) {
  const text = String(code).trim().replaceAll(" ", "");
  if (!/^[0-9]{20}$/.test(text)) {
    throw new BoxError("bad-code", `“${text}” is not a ${CODE_DIGITS}-digit traceability code: scan or type the code on the box.`);
  }
  return text;
}

/** `secret` without spaces or dashes, if it is a 20-digit scratch-panel secret; else BoxError "bad-secret". */
export function checkSecret(secret) {
  const text = String(secret).trim().replaceAll(" ", "").replaceAll("-", "");
  if (!/^[0-9]{20}$/.test(text)) {
    throw new BoxError("bad-secret", `The secret must be the ${SECRET_DIGITS} digits under the box's scratch panel (got ${[...text].length} characters).`);
  }
  return text;
}

/** {code, secret} from a scanned scratch-panel code "RXS1:CODE:SECRET" (as rxchain.core.labels reads it). */
export function readScratchCode(text) {
  const scanned = String(text).trim();
  if (!scanned.startsWith(SCRATCH_PREFIX) || scanned.split(":").length !== 3) {
    throw new BoxError("not-a-scratch-code", `This is not a box's scratch-panel code (it starts ${SCRATCH_PREFIX}): scan the code under the panel.`);
  }
  const [, code, secret] = scanned.split(":");
  return { code: checkCode(code), secret: checkSecret(secret) };
}

/** {code, secret} from what was scanned or typed: a scratch-panel code, or the code and the secret apart. */
export function readBox(scanned, code = "", secret = "") {
  if (String(scanned || "").trim()) return readScratchCode(scanned);
  return { code: checkCode(code), secret: checkSecret(secret) };
}

/** The box's nullifier (what a dispense spends; reveals neither code nor secret), as 0x hex. */
export function nullifier(code, secret) {
  return ethers.keccak256(ethers.toUtf8Bytes(`${DOMAIN}${checkCode(code)}:${checkSecret(secret)}`));
}

function word(value, what = "a 32-byte word") {
  if (typeof value !== "string" || !HEX32.test(value)) throw new BoxError("bad-lot", `not ${what}: ${value}`);
  return value.toLowerCase();
}

/** A box's Merkle leaf: keccak256 of its 32-byte nullifier. */
export function boxLeaf(nullifierHex) {
  return ethers.keccak256(word(nullifierHex, "a nullifier (32 bytes)"));
}

// ------------------------------------------------------------------------------ lots

/** A lot's public side: its leaves (index order), root and expiry; proofs for its boxes. */
export class Lot {
  constructor(leaves, expiresAt = 0) {
    if (!Array.isArray(leaves) || leaves.length < 1 || leaves.length > MAX_LOT) {
      throw new BoxError("bad-lot", `a lot holds 1 to ${MAX_LOT} boxes (${Array.isArray(leaves) ? leaves.length : 0} given)`);
    }
    this.leaves = leaves.map((leaf) => word(leaf, "a leaf"));
    this.expiresAt = Number(expiresAt);
    this.indexOfLeaf = new Map(this.leaves.map((leaf, i) => [leaf, i]));
    if (this.indexOfLeaf.size !== this.leaves.length) {
      throw new BoxError("bad-lot", "two boxes of the lot have the same code and secret: every box must be unique");
    }
    const width = 2 ** this.depth;
    let level = this.leaves.map((leaf) => ethers.getBytes(leaf));
    while (level.length < width) level.push(new Uint8Array(32));
    this.levels = [level];
    while (level.length > 1) {
      const up = [];
      const pair = new Uint8Array(64);
      for (let i = 0; i < level.length; i += 2) {
        pair.set(level[i], 0);
        pair.set(level[i + 1], 32);
        up.push(ethers.getBytes(ethers.keccak256(pair)));
      }
      level = up;
      this.levels.push(level);
    }
  }

  get count() {
    return this.leaves.length;
  }

  get depth() {
    return this.leaves.length === 1 ? 0 : (this.leaves.length - 1).toString(2).length;
  }

  get root() {
    return ethers.hexlify(this.levels[this.levels.length - 1][0]);
  }

  /** The index of the box with this nullifier, or null when it is not in the lot. */
  indexOf(nullifierHex) {
    const index = this.indexOfLeaf.get(boxLeaf(nullifierHex));
    return index === undefined ? null : index;
  }

  /** The siblings of box `index` from its leaf up (what boxState and reportDuplicate check). */
  proof(index) {
    return this.multiproof([index]);
  }

  /** The siblings dispense needs for the boxes at `indexes` (strictly increasing): level by level, left to
   * right, those not computed from the boxes themselves. */
  multiproof(indexes) {
    const bad = !Array.isArray(indexes) || indexes.length === 0 || !indexes.every(Number.isInteger)
      || indexes.some((b, i) => i > 0 && b <= indexes[i - 1]) || indexes[0] < 0 || indexes[indexes.length - 1] >= this.count;
    if (bad) throw new BoxError("bad-index", "box indexes must be strictly increasing and inside the lot");
    const proof = [];
    let known = [...indexes];
    for (const level of this.levels.slice(0, -1)) {
      const parents = [];
      let i = 0;
      while (i < known.length) {
        const pos = known[i];
        if (pos % 2 === 0 && i + 1 < known.length && known[i + 1] === pos + 1) {
          i += 2;
        } else {
          proof.push(ethers.hexlify(level[pos ^ 1]));
          i += 1;
        }
        parents.push(pos >> 1);
      }
      known = parents;
    }
    return proof;
  }

  /** The public lot file, byte for byte as rxchain.core.boxes.Lot.to_json writes it. */
  toJson() {
    return JSON.stringify({ format: LOT_FORMAT, lot: this.root, count: this.count, expiresAt: this.expiresAt, leaves: this.leaves }, null, 1) + "\n";
  }

  /** A lot file read back; BoxError "bad-lot" when it is not one, or its leaves do not make the root it names. */
  static fromJson(input) {
    let data;
    try {
      data = typeof input === "string" ? JSON.parse(input) : input;
    } catch {
      throw new BoxError("bad-lot", "not an rxchain lot file (not JSON)");
    }
    if (!data || typeof data !== "object" || !Array.isArray(data.leaves) || typeof data.lot !== "string") {
      throw new BoxError("bad-lot", "not an rxchain lot file (no lot or leaves)");
    }
    const lot = new Lot(data.leaves, Number(data.expiresAt || 0));
    if (lot.root !== word(data.lot, "a lot root")) {
      throw new BoxError("bad-lot", `the lot file is damaged: its leaves do not make the root it names (${data.lot})`);
    }
    return lot;
  }
}

/** The root a proof (siblings from the leaf up) leads to from box `index`'s leaf (DrugBoxes._proven). */
export function proofRoot(nullifierHex, index, proof) {
  let node = ethers.getBytes(boxLeaf(nullifierHex));
  proof.forEach((sibling, d) => {
    const s = ethers.getBytes(word(sibling, "a proof node"));
    node = ethers.getBytes(ethers.keccak256(((index >> d) & 1) === 0 ? ethers.concat([node, s]) : ethers.concat([s, node])));
  });
  return ethers.hexlify(node);
}

/**
 * The multiproof of boxes [{index, proof}] of one lot (any order) from their single proofs (siblings from the
 * leaf up, all of the lot's depth): what Lot.multiproof gives, without the lot's leaves — at each level the
 * sibling of a node the boxes do not compute is in the proof of any box below that node.
 */
export function multiproofFromProofs(items) {
  const sorted = [...items].sort((a, b) => a.index - b.index);
  if (!sorted.length || sorted.some((b, i) => !Number.isInteger(b.index) || b.index < 0 || (i > 0 && b.index === sorted[i - 1].index))) {
    throw new BoxError("bad-index", "box indexes must be distinct and not negative");
  }
  const depth = sorted[0].proof.length;
  if (sorted.some((b) => b.proof.length !== depth)) throw new BoxError("bad-lot", "the boxes' proofs are of different depths: not one lot");
  const out = [];
  let known = sorted.map((b) => ({ pos: b.index, proof: b.proof }));
  for (let d = 0; d < depth; d++) {
    const parents = [];
    let i = 0;
    while (i < known.length) {
      const { pos, proof } = known[i];
      if (pos % 2 === 0 && i + 1 < known.length && known[i + 1].pos === pos + 1) {
        i += 2;
      } else {
        out.push(word(proof[d], "a proof node"));
        i += 1;
      }
      parents.push({ pos: pos >> 1, proof });
    }
    known = parents;
  }
  return out;
}

/** dispense()'s LotBoxes for located boxes [{root, index, nullifier, proof}]: one per lot (first-seen order),
 * boxes by index, each lot with its multiproof (built from the boxes' proofs). */
export function dispenseArgs(located) {
  const groups = new Map();
  for (const box of located) {
    const root = box.root.toLowerCase();
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root).push(box);
  }
  return [...groups.entries()].map(([root, members]) => {
    const sorted = [...members].sort((a, b) => a.index - b.index);
    return [root, sorted.map((b) => b.index), sorted.map((b) => b.nullifier.toLowerCase()), multiproofFromProofs(sorted)];
  });
}

// ------------------------------------------------------------------------------ the server's lot index

/** {lot, index, proof} for `leaf` from the web server's lot index, or null (404: no lot file holds it). */
export async function locate(leaf, base = "") {
  const response = await fetch(`${base}api/lots/locate?leaf=${word(leaf, "a leaf")}`, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`the lot index answered HTTP ${response.status}`);
  return response.json();
}

/** The public lot file of `root` from the web server, checked (its leaves make `root`); null when it has none. */
export async function fetchLot(root, base = "") {
  const response = await fetch(`${base}api/lots/${word(root, "a lot root")}`, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`the lot index answered HTTP ${response.status}`);
  const lot = Lot.fromJson(await response.text());
  if (lot.root !== root.toLowerCase()) throw new BoxError("bad-lot", `the server sent another lot than ${root}`);
  return lot;
}

// ------------------------------------------------------------------------------ the chain

/** When, at which pharmacy and for which prescription the box with `nullifierHex` was dispensed (its
 * FillBoxesRecorded event, read in windows a range-limited node answers); null when it never was. */
export async function soldRecord(provider, boxes, nullifierHex, fromBlock) {
  const event = boxes.interface.getEvent("FillBoxesRecorded");
  const logs = await getLogsInWindows(provider, { address: await boxes.getAddress(), topics: [event.topicHash] }, Number(fromBlock || 0));
  const wanted = nullifierHex.toLowerCase();
  for (const log of logs) {
    const parsed = boxes.interface.parseLog(log);
    if (!parsed.args.nullifiers.some((n) => n.toLowerCase() === wanted)) continue;
    const block = await provider.getBlock(log.blockNumber);
    return {
      rxId: parsed.args.rxId.toLowerCase(),
      pharmacy: parsed.args.pharmacy,
      fillsLeft: Number(parsed.args.fillsLeft),
      block: log.blockNumber,
      time: Number(block.timestamp),
      tx: log.transactionHash,
    };
  }
  return null;
}

/** The lot's on-chain record: {exists, manufacturer, expiresAt, count, recalled}. */
export async function lotState(boxes, root) {
  const lot = await boxes.lot(root);
  return {
    exists: lot.manufacturer !== ethers.ZeroAddress,
    manufacturer: lot.manufacturer,
    expiresAt: Number(lot.expiresAt),
    count: Number(lot.count),
    recalled: lot.recalled,
  };
}

/**
 * A box's check by anyone, as BoxesClient.check_box: {state, code, nullifier, lot, index, proof, lotInfo,
 * sold}. The server locates the leaf; the chain decides (boxState). A box no lot file holds is still
 * found once sold, from the events.
 */
export async function checkBox({ provider, boxes, fromBlock, base = "" }, code, secret) {
  const n = nullifier(code, secret);
  const out = { state: "unknown", code: checkCode(code), nullifier: n, lot: null, index: null, proof: null, lotInfo: null, sold: null };
  const found = await locate(boxLeaf(n), base);
  if (found) {
    const state = BOX_STATES[Number(await boxes.boxState(found.lot, found.index, n, found.proof))] || "unknown";
    if (state !== "unknown") {
      Object.assign(out, { state, lot: found.lot.toLowerCase(), index: Number(found.index), proof: found.proof });
      out.lotInfo = await lotState(boxes, found.lot);
    }
  }
  if (out.state === "dispensed" || out.state === "unknown") {
    out.sold = await soldRecord(provider, boxes, n, fromBlock);
    if (out.sold) out.state = "dispensed";
  }
  return out;
}

/** DrugBoxes' refusals in words a pharmacist can act on. */
export const BOX_ERROR_TEXT = Object.freeze({
  UnknownBox: "This box matches no registered lot (its code and secret are in no lot file): re-scan the code and the secret; if they are right, the box is not genuine. Do not dispense it.",
  UnknownLot: "The box's lot is not registered on chain: do not dispense it.",
  NotInLot: "The chain does not show this box in its lot (a forged or mistyped code or secret): do not dispense it.",
  LotIsRecalled: "The box's lot was recalled: do not dispense it.",
  LotExpired: "The box's lot is past its expiry: do not dispense it.",
  BoxAlreadyDispensed: "This box was sold already: a counterfeit copy or a resold box. Do not dispense it.",
  DuplicateScan: "This box is in the list already: scan each box once.",
  InvalidBoxCount: "A fill records 1 to 255 boxes.",
  FillAlreadyRecorded: "The boxes of this fill were recorded already.",
  NotDispensed: "Boxes are recorded while the prescription is Dispensed (after redemption, before the hand-over).",
  NotCustodian: "This pharmacy does not hold this prescription.",
  NotInGoodStanding: "This account is not a pharmacy in good standing.",
  UnknownPrescription: "No prescription with this id is registered.",
  BadBoxIndex: "The box's position in its lot is not valid.",
  LengthMismatch: "Each box needs its nullifier.",
  BoxNotDispensed: "The box was never sold: there is no duplicate to report.",
});

/** A refusal named like the contract's error: {name, args, text}. */
export function refusal(name, args = {}) {
  return { name, args, text: BOX_ERROR_TEXT[name] || "DrugBoxes refused this step." };
}

/**
 * Everything dispense() would refuse one located box for, on the chain's current state: a refusal
 * ({name, args, text}) or null. `now` is the head's block time.
 */
export async function boxRefusal(boxes, box, now) {
  const lot = await lotState(boxes, box.root);
  if (!lot.exists) return refusal("UnknownLot", { lot: box.root });
  const state = BOX_STATES[Number(await boxes.boxState(box.root, box.index, box.nullifier, box.proof))];
  if (state === "unknown") return refusal("NotInLot", { lot: box.root });
  if (state === "dispensed") return refusal("BoxAlreadyDispensed", { nullifier: box.nullifier, lot: box.root, index: String(box.index) });
  if (lot.recalled) return refusal("LotIsRecalled", { lot: box.root });
  if (now > lot.expiresAt) return refusal("LotExpired", { lot: box.root, expiresAt: String(lot.expiresAt) });
  if (!(await boxes.isUnsold(box.root, box.index))) {
    return refusal("BoxAlreadyDispensed", { nullifier: box.nullifier, lot: box.root, index: String(box.index) });
  }
  return null;
}
