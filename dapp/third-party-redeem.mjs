#!/usr/bin/env node
// A third-party pharmacy system redeeming an rxchain prescription with nothing but ethers, the
// registry's published interface ABI and the patient's QR payload. It shares no code with rxchain:
// it is the integration an outside developer writes from docs/dapp.md.
//
//   node dapp/third-party-redeem.mjs --rpc URL --registry ADDR --payload RX1... --key 0xPHARMACYKEY
//                                    [--abi FILE] [--deployment deployments/devnet.json] [--from-block N]
//   node dapp/third-party-redeem.mjs ... --authorization RXA1... --key 0xPHARMACYKEY
//
// --authorization is the patient's consent from the patient's app (or a paper fill slip): the
// document, the claim key's ADDRESS and its EIP-712 Redeem signature for this pharmacy (or, on paper,
// any pharmacy), this fill and a deadline. The script checks all three against the chain before it
// sends, and sends the patient's signature as it is: the claim key itself is never needed.
//
// --abi is the build manifest (.build/__local__.json; its IPrescriptionRegistry ABI is used) or a
// plain ABI JSON array; --deployment gives the RPC URL, registry and deploy block when --rpc,
// --registry and --from-block are not passed. --from-block is where the search for a batched
// prescription's batch starts (default: the deploy block, else 0). --payload - reads the payload
// from standard input. The pharmacy key may come from the environment variable
// RXCHAIN_PHARMACY_KEY instead of --key.
//
// A prescription a hospital issued in a batch has no on-chain record until its first redemption:
// the script finds its batch in the PrescriptionBatched events, rebuilds the Merkle proof from the
// batch's ids and redeems with redeemBatched (the claim key signs the batch's fills).
//
// Prints the prescription id, its batch's root (batched prescriptions only), the transaction hash,
// block number and block time. Exit codes: 0 redeemed; 1 the registry refused (named custom error);
// 2 usage; 3 node or files unavailable; 4 the payload is not valid for this registry.

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import { parseArgs } from "node:util";
import { ethers } from "ethers";

const HERE = dirname(fileURLToPath(import.meta.url));
const EXIT = { refused: 1, usage: 2, unavailable: 3, badPayload: 4 };

class Failure extends Error {
  constructor(code, text) {
    super(text);
    this.code = code;
  }
}

// --- RFC 8785 canonical JSON: sorted member names (UTF-16 order), ECMAScript number/string forms.
function canonical(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Failure(EXIT.badPayload, "document holds a non-finite number");
    if (value === undefined) throw new Failure(EXIT.badPayload, "document holds an undefined value");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
}

// --- Every code: tag + "1." + base64url(zlib(canonical JSON) + keccak256(zlib(...))[:4]).
function unframe(text, tag, what) {
  text = text.trim();
  if (!text.startsWith(`${tag}1.`)) throw new Failure(EXIT.badPayload, `not a version-1 ${what} (no ${tag}1. prefix)`);
  const b64 = text.slice(tag.length + 2);
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) throw new Failure(EXIT.badPayload, "the code has characters outside base64url");
  const raw = Buffer.from(b64, "base64url");
  if (raw.length < 8) throw new Failure(EXIT.badPayload, "the code is truncated");
  const body = raw.subarray(0, raw.length - 4);
  const check = ethers.getBytes(ethers.keccak256(body)).subarray(0, 4);
  if (!Buffer.from(check).equals(raw.subarray(raw.length - 4))) throw new Failure(EXIT.badPayload, "checksum mismatch: the code is damaged");
  // base64 ignores the spare bits of the last character: only the encoder's own spelling is one code.
  if (raw.toString("base64url") !== b64) throw new Failure(EXIT.badPayload, "the code is damaged in its last character");
  try {
    return JSON.parse(inflateSync(body, { maxOutputLength: 64 * 1024 }).toString("utf8"));
  } catch {
    throw new Failure(EXIT.badPayload, "the code does not unpack to JSON");
  }
}

// --- The QR payload (RX1): the claim key's private key and the document.
function decodePayload(text) {
  const obj = unframe(text, "RX", "prescription code");
  if (obj?.v !== 1 || typeof obj.doc !== "object" || !/^0x[0-9a-fA-F]{64}$/.test(obj.claimKey ?? "")) {
    throw new Failure(EXIT.badPayload, "the code lacks a version-1 prescription");
  }
  return obj;
}

// --- The patient's authorization (RXA1): no key, the claim key's address and its Redeem signature.
const AUTH_KEYS = ["v", "chainId", "registry", "rxId", "claimAddress", "doc", "pharmacy", "fillsLeft", "deadline", "signature"];
function decodeAuthorization(text) {
  const obj = unframe(text, "RXA", "authorization code");
  const keys = Object.keys(obj ?? {});
  if (obj?.v !== 1 || keys.length !== AUTH_KEYS.length || !AUTH_KEYS.every((k) => keys.includes(k))) {
    throw new Failure(EXIT.badPayload, "the code lacks a version-1 authorization (or carries other keys)");
  }
  const address = (v) => typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v) && ethers.isAddress(v);
  const whole = (v, top) => Number.isInteger(v) && v >= 0 && v <= top;
  if (!Number.isSafeInteger(obj.chainId) || obj.chainId <= 0 || !address(obj.registry) || !address(obj.claimAddress) || !address(obj.pharmacy)
      || !/^0x[0-9a-fA-F]{64}$/.test(obj.rxId) || !/^0x[0-9a-fA-F]{130}$/.test(obj.signature) || typeof obj.doc !== "object"
      || !whole(obj.fillsLeft, 255) || !whole(obj.deadline, 2 ** 40 - 1)) {
    throw new Failure(EXIT.badPayload, "the authorization has a malformed field");
  }
  return obj;
}

// --- The document's parties: requester and optional dispenseRequest.performer (urn:rxchain:account).
function parties(doc) {
  const account = (ref) => {
    const id = ref?.identifier;
    if (id?.system !== "urn:rxchain:account" || !ethers.isAddress(id.value)) throw new Failure(EXIT.badPayload, "document names no chain account");
    return ethers.getAddress(id.value);
  };
  const all = (doc.entry ?? []).map(({ resource }) => ({
    doctor: account(resource?.requester),
    pharmacy: resource?.dispenseRequest?.performer ? account(resource.dispenseRequest.performer) : ethers.ZeroAddress,
  }));
  if (!all.length || all.some((p) => p.doctor !== all[0].doctor || p.pharmacy !== all[0].pharmacy)) {
    throw new Failure(EXIT.badPayload, "document entries disagree on doctor or pharmacy");
  }
  return all[0];
}

// --- A hospital's batch: Merkle root of its ids in issue order; sorted-pair keccak256 (OpenZeppelin's
// commutative hash) level by level, an odd last node carried up unchanged.
function pair(a, b) {
  return BigInt(a) < BigInt(b) ? ethers.keccak256(ethers.concat([a, b])) : ethers.keccak256(ethers.concat([b, a]));
}

function up(level) {
  const next = [];
  for (let i = 0; i + 1 < level.length; i += 2) next.push(pair(level[i], level[i + 1]));
  if (level.length % 2) next.push(level[level.length - 1]);
  return next;
}

// The leaves are keccak256 of each id (32 bytes hashed, an inner node 64): neither passes for the other.
const leaf = (id) => ethers.keccak256(id);

function merkleRoot(ids) {
  let level = ids.map(leaf);
  while (level.length > 1) level = up(level);
  return level[0];
}

function merkleProof(ids, index) {
  let level = ids.map(leaf);
  const proof = [];
  while (level.length > 1) {
    if ((index ^ 1) < level.length) proof.push(level[index ^ 1]);
    index >>= 1;
    level = up(level);
  }
  return proof;
}

// --- eth_getLogs from `fromBlock` to the head in windows of at most 5,000 blocks, halving a window the
// node refuses as too large: Besu refuses a query whose toBlock - fromBlock exceeds its
// --rpc-max-logs-range (5,000 by default; error -32005).
async function logsInWindows(provider, filter, fromBlock, maxRange = 5000) {
  const last = await provider.getBlockNumber();
  const out = [];
  const tooLarge = (error) => /-32005|range|limit|too many|exceed|more than|too large/i.test(
    `${error.code} ${error.message} ${error.error && error.error.message} ${JSON.stringify(error.info || {})}`);
  const ask = async (start, end) => {
    try {
      out.push(...(await provider.getLogs({ ...filter, fromBlock: start, toBlock: end })));
    } catch (error) {
      if (end <= start || !tooLarge(error)) throw error;
      const middle = Math.floor((start + end) / 2);
      await ask(start, middle);
      await ask(middle + 1, end);
    }
  };
  for (let start = Number(fromBlock); start <= last; start += maxRange) await ask(start, Math.min(start + maxRange - 1, last));
  return out;
}

// --- The batch of `hospital` (the doctor's own: the only one the registry opens the prescription
// from) announcing prescription `id`: {root, proof}, or null when none does. PrescriptionBatched(id
// indexed, root indexed) gives the roots; BatchIssued(root indexed, hospital indexed) which of them are
// the hospital's, and the transaction whose announcements under the root are the batch's ids, in log
// order. Another member announcing the id, or the same root, in a batch of its own is never picked.
async function findBatch(provider, iface, registry, address, id, hospital, fromBlock) {
  const event = iface.getEvent("PrescriptionBatched");
  const issuedEvent = iface.getEvent("BatchIssued");
  if (!event || !issuedEvent) throw new Failure(EXIT.unavailable, "the ABI has no PrescriptionBatched/BatchIssued event: use the current interface ABI");
  const byOrder = (a, b) => a.blockNumber - b.blockNumber || a.index - b.index;
  const announced = await logsInWindows(provider, { address, topics: [event.topicHash, id] }, fromBlock);
  const roots = [...new Set(announced.map((log) => log.topics[2].toLowerCase()))];
  if (!roots.length) return null;
  const hospitalTopic = ethers.zeroPadValue(hospital, 32);
  const own = (await logsInWindows(provider, { address, topics: [issuedEvent.topicHash, roots, hospitalTopic] }, fromBlock)).sort(byOrder);
  if (!own.length) return null;
  // The newest live batch (a withdrawn batch may have been issued again), else the first.
  let chosen = own[0];
  for (const log of own) if (!(await registry.batch(hospital, log.topics[1])).cancelled) chosen = log;
  const { blockNumber, transactionHash } = chosen;
  const root = chosen.topics[1].toLowerCase();
  const batch = await provider.getLogs({ address, fromBlock: blockNumber, toBlock: blockNumber, topics: [event.topicHash, null, root] });
  const ids = batch.filter((log) => log.transactionHash === transactionHash).sort(byOrder).map((log) => log.topics[1].toLowerCase());
  if (!ids.includes(id) || merkleRoot(ids) !== root) {
    throw new Failure(EXIT.unavailable, `the node's events of batch ${root} do not rebuild its root`);
  }
  return { root, proof: merkleProof(ids, ids.indexOf(id)) };
}

function loadAbi(file) {
  const data = JSON.parse(readFileSync(file, "utf8"));
  if (Array.isArray(data)) return data;
  const abi = data?.contractTypes?.IPrescriptionRegistry?.abi;
  if (!abi) throw new Failure(EXIT.unavailable, `${file} has no IPrescriptionRegistry ABI (run ape compile)`);
  return abi;
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        rpc: { type: "string" },
        registry: { type: "string" },
        payload: { type: "string" },
        authorization: { type: "string" },
        key: { type: "string" },
        abi: { type: "string", default: resolve(HERE, "..", ".build", "__local__.json") },
        deployment: { type: "string" },
        "from-block": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    throw new Failure(EXIT.usage, error.message);
  }
  if (parsed.help) {
    console.log(
      "usage: node dapp/third-party-redeem.mjs --rpc URL --registry ADDR (--payload RX1... | --authorization RXA1...) --key 0xKEY [--abi FILE] [--deployment FILE] [--from-block N]",
    );
    process.exit(0);
  }
  if (parsed.deployment) {
    const record = JSON.parse(readFileSync(parsed.deployment, "utf8"));
    parsed.rpc ??= record.rpc_url;
    parsed.registry ??= record.registry;
    parsed["from-block"] ??= record.deploy_block == null ? undefined : String(record.deploy_block);
  }
  parsed.fromBlock = Number(parsed["from-block"] ?? 0);
  if (!Number.isSafeInteger(parsed.fromBlock) || parsed.fromBlock < 0) throw new Failure(EXIT.usage, "--from-block is not a block number");
  parsed.key ??= process.env.RXCHAIN_PHARMACY_KEY;
  if (parsed.payload === "-") parsed.payload = readFileSync(0, "utf8");
  if (parsed.authorization === "-") parsed.authorization = readFileSync(0, "utf8");
  if (parsed.payload && parsed.authorization) throw new Failure(EXIT.usage, "pass --payload or --authorization, not both");
  if (parsed.authorization) parsed.payload = parsed.authorization;
  for (const name of ["rpc", "registry", "payload", "key"]) {
    if (!parsed[name]) throw new Failure(EXIT.usage, `--${name} is required (see --help)`);
  }
  if (!ethers.isAddress(parsed.registry)) throw new Failure(EXIT.usage, "--registry is not an address");
  return parsed;
}

async function main() {
  const opts = options();
  const abi = loadAbi(opts.abi);
  const iface = new ethers.Interface(abi);
  const provider = new ethers.JsonRpcProvider(opts.rpc, undefined, { staticNetwork: true, pollingInterval: 250 });
  let chainId;
  try {
    chainId = (await provider.getNetwork()).chainId;
  } catch {
    throw new Failure(EXIT.unavailable, `the node at ${opts.rpc} does not answer`);
  }
  const registryAddress = ethers.getAddress(opts.registry);
  const registry = new ethers.Contract(registryAddress, iface, provider);
  const pharmacy = new ethers.Wallet(opts.key, provider);

  // 1. The payload, bound to this chain and registry, its id recomputed from the document.
  const auth = opts.authorization ? decodeAuthorization(opts.authorization) : null;
  const payload = auth ?? decodePayload(opts.payload);
  if (BigInt(payload.chainId) !== chainId) throw new Failure(EXIT.badPayload, `the prescription is for chain ${payload.chainId}, the node serves ${chainId}`);
  if (ethers.getAddress(payload.registry) !== registryAddress) throw new Failure(EXIT.badPayload, `the prescription is for registry ${payload.registry}`);
  const { doctor, pharmacy: designated } = parties(payload.doc);
  const docHash = ethers.keccak256(ethers.toUtf8Bytes(canonical(payload.doc)));
  const claim = auth ? { address: ethers.getAddress(auth.claimAddress) } : new ethers.Wallet(payload.claimKey);
  const coder = ethers.AbiCoder.defaultAbiCoder();
  const terms = ethers.keccak256(coder.encode(["address", "bytes32", "address"], [doctor, docHash, designated]));
  const id = ethers.keccak256(coder.encode(["address", "bytes32"], [claim.address, terms]));
  if (id !== payload.rxId.toLowerCase()) throw new Failure(EXIT.badPayload, "the document does not match the prescription id: altered");

  // 2. The on-chain record: fills left now (the signature binds to this fill). A prescription issued
  //    in a hospital's batch has none until its first redemption, which opens it with the batch's
  //    root and the id's Merkle proof; its fills are then the batch's.
  const record = await registry.prescription(id);
  let fillsLeft = record.fillsLeft;
  const hospital = record.status === 0n ? (await registry.member(doctor)).hospital : null;
  const batch = hospital && hospital !== ethers.ZeroAddress ? await findBatch(provider, iface, registry, registryAddress, id, hospital, opts.fromBlock) : null;
  if (batch) fillsLeft = (await registry.batch(hospital, batch.root)).fills;
  const latest = await provider.getBlock("latest");
  let deadline = BigInt(latest.timestamp) + 900n;

  // 3. The claim key authorizes this pharmacy (EIP-712, the registry's domain).
  const domain = { name: "rxchain PrescriptionRegistry", version: "1", chainId, verifyingContract: registryAddress };
  const types = {
    Redeem: [
      { name: "rxId", type: "bytes32" },
      { name: "pharmacy", type: "address" },
      { name: "fillsLeft", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  };
  let signature;
  if (auth) {
    // The patient signed for one pharmacy (zero: a paper slip, any), one fill, until a deadline:
    // checked here, so that a code for another pharmacy, another fill or a stale one is never sent.
    const signer = ethers.verifyTypedData(domain, types, { rxId: id, pharmacy: auth.pharmacy, fillsLeft: auth.fillsLeft, deadline: auth.deadline },
      auth.signature);
    if (signer !== claim.address) throw new Failure(EXIT.badPayload, "the authorization is not signed by the prescription's key");
    if (ethers.getAddress(auth.pharmacy) !== ethers.ZeroAddress && ethers.getAddress(auth.pharmacy) !== pharmacy.address) {
      throw new Failure(EXIT.badPayload, `the patient authorised pharmacy ${ethers.getAddress(auth.pharmacy)}, not ${pharmacy.address}`);
    }
    if (BigInt(auth.fillsLeft) !== BigInt(fillsLeft)) {
      throw new Failure(EXIT.badPayload, `the authorization is for the fill with ${auth.fillsLeft} fill(s) left; the prescription has ${fillsLeft}`);
    }
    if (BigInt(latest.timestamp) > BigInt(auth.deadline)) throw new Failure(EXIT.badPayload, `the authorization expired at ${auth.deadline}`);
    deadline = BigInt(auth.deadline);
    signature = auth.signature;
  } else {
    signature = await claim.signTypedData(domain, types, { rxId: id, pharmacy: pharmacy.address, fillsLeft, deadline });
  }

  // 4. A free-gas legacy transaction from the pharmacy; estimating first reports a refusal by name.
  const args = [doctor, docHash, designated, claim.address, deadline, signature];
  const data = batch ? iface.encodeFunctionData("redeemBatched", [...args, batch.root, batch.proof]) : iface.encodeFunctionData("redeem", args);
  let gas;
  try {
    gas = await provider.estimateGas({ from: pharmacy.address, to: registryAddress, data, gasPrice: 0n });
  } catch (error) {
    const revert = error?.data ? iface.parseError(error.data) : null;
    if (revert) {
      const values = revert.fragment.inputs.map((input, i) => `${input.name}=${revert.args[i]}`).join(", ");
      throw new Failure(EXIT.refused, `refused: ${revert.name}(${values})`);
    }
    throw new Failure(EXIT.refused, `refused: ${error.shortMessage ?? error.message}`);
  }
  const sent = await pharmacy.sendTransaction({ to: registryAddress, data, type: 0, gasPrice: 0n, gasLimit: (gas * 5n) / 4n + 20_000n });
  const receipt = await sent.wait(1, 120_000);
  if (receipt.status !== 1) throw new Failure(EXIT.refused, `transaction ${sent.hash} failed`);
  const block = await provider.getBlock(receipt.blockNumber);
  console.log(`redeemed ${id}`);
  if (batch) console.log(`batch ${batch.root}`);
  console.log(`tx ${sent.hash}`);
  console.log(`block ${receipt.blockNumber} at ${new Date(block.timestamp * 1000).toISOString()}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`third-party-redeem: ${error.message}`);
    process.exit(error instanceof Failure ? error.code : EXIT.unavailable);
  },
);
