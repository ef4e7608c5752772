// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsortiumRoles} from "./IConsortiumRoles.sol";

/// @notice Where a prescription stands. Statuses only move forward for each fill:
/// Active -> Dispensed -> [Dispatched ->] Delivered -> Completed (or Refillable, which is Active
/// again for the next fill); Active -> Cancelled.
enum Status {
    None, //        never issued
    Active, //      issued, not yet redeemed
    Cancelled, //   withdrawn before it was redeemed
    Dispensed, //   redeemed: the pharmacy has filled it and holds the drugs
    Dispatched, //  handed to a courier for home delivery
    Delivered, //   handed to the patient (at the door, or over the counter in store)
    Completed, //   the patient's receipt is confirmed; no fills left
    Refillable //   the patient's receipt is confirmed; more fills may be redeemed
}

/// @title The prescription registry: issue, one-time redemption and a timestamped delivery trail.
/// @notice No patient data is on chain. A prescription's id commits to the off-chain document's hash,
/// the issuing doctor, the designated pharmacy (or none) and the address of a fresh claim key whose
/// private key travels only in the patient's QR code:
///
///     terms = keccak256(abi.encode(doctor, docHash, designatedPharmacy))
///     id    = keccak256(abi.encode(claimKey, terms))
///
/// Redeeming needs an EIP-712 signature by the claim key over (id, pharmacy, fillsLeft, deadline);
/// confirming receipt needs one over (id, deliverer, fillsLeft, deadline). Each step is stamped with
/// the block time in its event.
///
/// Who holds the claim key is the deployment's hand-over mode (docs/patient-app.md): the patient's
/// app (it signs one fill for one pharmacy, and the receipt for one hand-over, and never shows the
/// key); paper (the hospital signs each fill's slip and each receipt slip with pharmacy = 0 and
/// deliverer = 0, "whoever presents this slip", then forgets the key); or the single QR code that
/// holds the key itself (the weaker mode: whoever scanned it can sign anything).
interface IPrescriptionRegistry is IConsortiumRoles {
    /// @notice A prescription's on-chain state.
    struct Prescription {
        address custodian; // the doctor while Active (first fill), then the pharmacy, then the courier
        uint40 issuedAt;
        uint40 expiresAt;
        Status status;
        uint8 fillsLeft;
    }

    /// @notice A doctor issued prescription `id` for `fills` fills, redeemable until `expiresAt`.
    event PrescriptionIssued(
        bytes32 indexed id,
        address indexed doctor,
        address indexed hospital,
        bytes32 docHash,
        address designatedPharmacy,
        uint40 expiresAt,
        uint8 fills
    );

    /// @notice A hospital issued a batch of `count` prescriptions for its doctors, committed by the
    /// Merkle root of their ids' leaves; each prescription is also announced by {PrescriptionBatched}.
    /// A batch is `hospital`'s batch `root`: another hospital's batch with the same root is another batch.
    event BatchIssued(bytes32 indexed root, address indexed hospital, uint40 expiresAt, uint8 fills, uint256 count);

    /// @notice Prescription `id` was issued in the batch with Merkle root `root` (the {BatchIssued} of the
    /// same transaction names its hospital).
    event PrescriptionBatched(bytes32 indexed id, bytes32 indexed root);

    /// @notice Batched prescription `id` of `doctor` got its storage record from `hospital`'s batch
    /// `root`: at its first redemption, or when it was cancelled before one. With {PrescriptionBatched}
    /// and {BatchIssued}, the logs alone name every batched prescription's doctor, hospital and batch.
    event PrescriptionOpened(bytes32 indexed id, address indexed doctor, address indexed hospital, bytes32 root);

    /// @notice `hospital`'s whole batch `root` was withdrawn by `by`: its unredeemed prescriptions are void.
    event BatchCancelled(bytes32 indexed root, address indexed hospital, address indexed by);

    /// @notice Prescription `id` was cancelled by `by`.
    event PrescriptionCancelled(bytes32 indexed id, address indexed by);

    /// @notice `pharmacy` redeemed (filled) prescription `id`; `fillsLeft` fills remain.
    event PrescriptionRedeemed(bytes32 indexed id, address indexed pharmacy, uint8 fillsLeft);

    /// @notice `pharmacy` handed prescription `id`'s drugs to `courier` for delivery.
    event PrescriptionDispatched(bytes32 indexed id, address indexed pharmacy, address indexed courier);

    /// @notice `by` (the courier, or the pharmacy over the counter) handed the drugs to the patient.
    event PrescriptionDelivered(bytes32 indexed id, address indexed by);

    /// @notice The patient's receipt (a claim-key signature) was recorded, relayed by `relayer`.
    event ReceiptConfirmed(bytes32 indexed id, address indexed relayer, uint8 fillsLeft);

    /// @notice The regulator (`by`) moved prescription `id`'s drugs from `from`, a pharmacy or courier no
    /// longer in good standing, to `to`, a member in good standing of the same role.
    event CustodyReassigned(bytes32 indexed id, address indexed from, address indexed to, address by);

    /// @notice The regulator (`by`) voided the fill that `custodian`, a pharmacy or courier no longer in
    /// good standing, held of prescription `id`; `fillsLeft` fills stay redeemable (Refillable), or
    /// none (Cancelled).
    event CustodyVoided(bytes32 indexed id, address indexed custodian, address by, uint8 fillsLeft);

    /// @notice The regulator changed the limits.
    event LimitsChanged(uint32 maxValiditySeconds, uint8 maxFills);

    /// @notice The registry is paused: issuing and redeeming are refused.
    event Paused(address account);

    /// @notice The registry runs again.
    event Unpaused(address account);

    /// @notice A prescription with this id exists already (a retried issue).
    error AlreadyIssued(bytes32 id);
    /// @notice No prescription has this id.
    error UnknownPrescription(bytes32 id);
    /// @notice `expiresAt` must be after now and no later than `latestAllowed`.
    error InvalidExpiry(uint40 expiresAt, uint256 latestAllowed);
    /// @notice `fills` must be between 1 and `maxFills`.
    error InvalidFills(uint8 fills, uint8 maxFills);
    /// @notice The document hash must not be zero.
    error ZeroDocumentHash();
    /// @notice The claim key address must not be zero.
    error ZeroClaimKey();
    /// @notice The designated pharmacy is not a pharmacy in good standing.
    error NotAPharmacy(address pharmacy);
    /// @notice The courier must not be the zero address.
    error ZeroCourier();
    /// @notice Prescription `id` expired at `expiresAt`.
    error Expired(bytes32 id, uint40 expiresAt);
    /// @notice Prescription `id` was cancelled.
    error PrescriptionIsCancelled(bytes32 id);
    /// @notice Prescription `id` has been redeemed and has no fill that can be redeemed now.
    error AlreadyRedeemed(bytes32 id);
    /// @notice Prescription `id` names another pharmacy; `pharmacy` may not fill it.
    error NotDesignatedPharmacy(bytes32 id, address pharmacy);
    /// @notice The claim-key signature for prescription `id` is invalid (wrong key, pharmacy, fill or chain).
    error BadClaimSignature(bytes32 id);
    /// @notice The signed authorization's deadline `deadline` has passed.
    error SignatureDeadlinePassed(uint256 deadline);
    /// @notice Prescription `id` is `current`; this step needs another status.
    error WrongStatus(bytes32 id, Status current);
    /// @notice `caller` does not hold prescription `id`; `custodian` does.
    error NotCustodian(bytes32 id, address caller, address custodian);
    /// @notice `caller` may not cancel prescription `id`.
    error NotIssuer(bytes32 id, address caller);
    /// @notice Limits out of range.
    error InvalidLimits(uint32 maxValiditySeconds, uint8 maxFills);
    /// @notice A batch holds 1 to `maximum` prescriptions; `count` were given.
    error InvalidBatchSize(uint256 count, uint256 maximum);
    /// @notice The hospital in question (the named doctor's, or the one given) has no batch with Merkle
    /// root `root`.
    error UnknownBatch(bytes32 root);
    /// @notice The batch `root` was cancelled.
    error BatchIsCancelled(bytes32 root);
    /// @notice `hospital` issued batch `root` already (a retried issueBatch); nothing was changed.
    error BatchAlreadyIssued(address hospital, bytes32 root);
    /// @notice `caller` is neither the hospital that issued batch `root` (in good standing) nor the
    /// regulator, so it may not cancel the batch or a prescription in it.
    error NotBatchHospital(bytes32 root, address caller);
    /// @notice The proof does not show prescription `id` in batch `root`.
    error NotInBatch(bytes32 id, bytes32 root);
    /// @notice `doctor` is not a doctor of `hospital`, whose batch was opened, or its licence was not
    /// live when the batch was issued.
    error NotBatchDoctor(bytes32 id, address doctor, address hospital);
    /// @notice Prescription `id`'s holder `custodian` is in good standing: it keeps what it holds (revoke
    /// it first to reassign or void it).
    error CustodianInGoodStanding(bytes32 id, address custodian);
    /// @notice The registry is paused: no issuing or redeeming until the regulator resumes it.
    error EnforcedPause();
    /// @notice The registry is not paused.
    error ExpectedPause();

    /// @notice Issues a prescription; returns its id.
    /// @dev The id is deterministic: issuing the same (doctor, document, claim key, pharmacy) again
    /// reverts with {AlreadyIssued}, so a retried transaction is detected, not duplicated.
    ///
    /// Requirements:
    /// - the caller is a doctor in good standing; the registry is not paused;
    /// - `docHash` and `claimKey` are not zero; `designatedPharmacy` is zero or a pharmacy in good standing;
    /// - now < `expiresAt` <= now + maxValidity; 1 <= `fills` <= maxFills.
    ///
    /// Emits {PrescriptionIssued}.
    function issue(bytes32 docHash, address claimKey, address designatedPharmacy, uint40 expiresAt, uint8 fills)
        external
        returns (bytes32 id);

    /// @notice Issues a batch of prescriptions for the caller's doctors in one transaction; returns
    /// the Merkle root of `ids` that keys the batch.
    /// @dev Each id is computed off chain exactly as for {issue} (it names the doctor). Nothing per
    /// prescription is stored: its one storage word is written at first use, when the redeeming
    /// pharmacy shows the id's Merkle proof, and the named doctor must then be a doctor of this
    /// hospital. The tree's leaves are keccak256(id) (32 bytes hashed), its inner nodes sorted-pair
    /// keccak256 (64 bytes hashed, OpenZeppelin's MerkleProof), an odd last node carried up: a leaf
    /// and an inner node cannot be confused, so the root commits to exactly the ids announced. The
    /// batch is keyed by (caller, root): no other hospital can occupy, cancel or shadow it.
    ///
    /// Requirements: the caller is a hospital in good standing; not paused; 1 <= ids.length <= 1024;
    /// expiry and fills as for {issue}; the caller did not issue the same batch before.
    ///
    /// Emits {PrescriptionBatched} for each id, then {BatchIssued}.
    function issueBatch(bytes32[] calldata ids, uint40 expiresAt, uint8 fills) external returns (bytes32 root);

    /// @notice Redeems a batched prescription (the first fill opens it with `proof`; later fills may
    /// use {redeem}). Rules, signature and event as {redeem}.
    /// @dev The batch looked up is the doctor's own hospital's batch `root`, whoever else announced the
    /// same root. Opening emits {PrescriptionOpened} before {PrescriptionRedeemed}.
    function redeemBatched(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature,
        bytes32 root,
        bytes32[] calldata proof
    ) external returns (bytes32 id);

    /// @notice Cancels one unredeemed batched prescription, given its openings (as {redeem}) and its
    /// Merkle proof in batch `root` of the doctor's hospital; returns its id.
    /// @dev Only the hospital of the prescription's doctor, in good standing, or the regulator: the
    /// id commits to its doctor, so no other hospital can cancel it through a batch of its own.
    /// Emits {PrescriptionOpened} and {PrescriptionCancelled}.
    function cancelBatched(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        bytes32 root,
        bytes32[] calldata proof
    ) external returns (bytes32 id);

    /// @notice Withdraws `hospital`'s whole batch `root`: its unredeemed prescriptions can no longer be
    /// redeemed.
    /// @dev The caller is `hospital` in good standing, or the regulator. Emits {BatchCancelled}.
    function cancelBatch(address hospital, bytes32 root) external;

    /// @notice `hospital`'s batch `root`: issue and expiry times, fills, and whether it was cancelled
    /// (all zero when that hospital issued no such batch).
    function batch(address hospital, bytes32 root)
        external
        view
        returns (uint40 issuedAt, uint40 expiresAt, uint8 fills, bool cancelled);

    /// @notice Cancels prescription `id`.
    /// @dev Requirements: status Active and the caller is the issuing doctor in good standing, or
    /// status Active/Refillable and the caller is the regulator (also while paused).
    /// Emits {PrescriptionCancelled}.
    function cancel(bytes32 id) external;

    /// @notice Redeems (fills) a prescription: succeeds once per allowed fill, never again.
    /// @dev The caller passes the openings of the id and the claim key's EIP-712 signature of
    /// `Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)` with
    /// pharmacy = the caller (or 0: a paper fill slip, valid at any pharmacy that may fill it) and
    /// fillsLeft = the fills left before this redemption.
    ///
    /// Requirements:
    /// - the caller is a pharmacy in good standing; not paused;
    /// - the prescription is Active or Refillable with fills left, and not past its expiry;
    /// - the caller is the designated pharmacy when one was named;
    /// - `deadline` has not passed and the signature is by `claimKey`.
    ///
    /// Emits {PrescriptionRedeemed}.
    function redeem(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature
    ) external returns (bytes32 id);

    /// @notice The pharmacy that filled prescription `id` hands the drugs to `courier`.
    /// @dev Requirements: status Dispensed, the caller is its custodian and a pharmacy in good
    /// standing (also while paused). Emits {PrescriptionDispatched}.
    function dispatch(bytes32 id, address courier) external;

    /// @notice The holder of the drugs hands them to the patient.
    /// @dev The courier of a Dispatched prescription, or the pharmacy of a Dispensed one (over the
    /// counter), in good standing and custodian (also while paused). Emits {PrescriptionDelivered}.
    function deliver(bytes32 id) external;

    /// @notice Delivers and records the patient's receipt in one transaction.
    /// @dev As {deliver}, then as {confirmReceipt}. Emits {PrescriptionDelivered} and {ReceiptConfirmed}.
    function deliverWithReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature)
        external;

    /// @notice Records the patient's receipt of a Delivered prescription; anyone may relay it.
    /// @dev `terms` opens the id (id = keccak256(abi.encode(claimKey, terms))); the signature is the
    /// claim key's EIP-712 signature of
    /// `Receipt(bytes32 rxId,address deliverer,uint256 fillsLeft,uint256 deadline)` with deliverer =
    /// the custodian who hands the drugs over (the courier, or the pharmacy at the counter), or 0 (a
    /// paper receipt slip), and fillsLeft = the fills left after this fill.
    /// Moves to Completed, or Refillable when fills are left (also while paused). Emits {ReceiptConfirmed}.
    function confirmReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature) external;

    /// @notice Moves the drugs of a Dispensed or Dispatched prescription from a holder that is no longer
    /// in good standing (revoked or lapsed) to `to`, a pharmacy (Dispensed) or courier (Dispatched) in
    /// good standing; the status stays. Regulator only (also while paused).
    /// @dev Without it, revoking the pharmacy or courier that holds a prescription would strand it:
    /// every next step needs the holder in good standing. Reverts {CustodianInGoodStanding} while the
    /// holder is in good standing, {WrongStatus} in another status. Emits {CustodyReassigned}.
    function reassignCustody(bytes32 id, address to) external;

    /// @notice Voids the fill held by a pharmacy or courier no longer in good standing: the prescription
    /// becomes Refillable when fills are left (redeemable at another pharmacy), else Cancelled.
    /// Regulator only (also while paused).
    /// @dev Requirements as {reassignCustody}. Emits {CustodyVoided}.
    function voidCustody(bytes32 id) external;

    /// @notice Pauses issuing and redeeming (single and batched). Regulator only. Emits {Paused}.
    /// @dev The delivery trail of drugs already dispensed (dispatch, deliver, receipt) and
    /// cancellations still work while paused: the drugs move anyway, and the record must follow.
    function pause() external;

    /// @notice Resumes. Regulator only. Emits {Unpaused}.
    function unpause() external;

    /// @notice Sets the maximum validity (seconds from issue) and the maximum number of fills.
    /// @dev Regulator only. Emits {LimitsChanged}.
    function setLimits(uint32 maxValiditySeconds, uint8 maxFills) external;

    /// @notice The state of prescription `id` (all zero when unknown).
    function prescription(bytes32 id) external view returns (Prescription memory);

    /// @notice The id and terms of a prescription, computed as the registry does.
    function computeId(address doctor, bytes32 docHash, address designatedPharmacy, address claimKey)
        external
        pure
        returns (bytes32 id, bytes32 terms);

    /// @notice The EIP-712 digest a claim key signs to let `pharmacy` redeem.
    function redeemDigest(bytes32 id, address pharmacy, uint256 fillsLeft, uint256 deadline)
        external
        view
        returns (bytes32);

    /// @notice The EIP-712 digest a claim key signs to confirm receipt of the drugs `deliverer` hands over.
    function receiptDigest(bytes32 id, address deliverer, uint256 fillsLeft, uint256 deadline)
        external
        view
        returns (bytes32);

    /// @notice The current limits and pause state.
    function limits() external view returns (uint32 maxValiditySeconds, uint8 maxFills, bool isPaused);

    /// @notice True while paused.
    function paused() external view returns (bool);
}
