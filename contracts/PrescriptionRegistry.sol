// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ConsortiumRoles} from "./ConsortiumRoles.sol";
import {IPrescriptionRegistry, Status} from "./interfaces/IPrescriptionRegistry.sol";
import {BatchRecord, BatchWord} from "./libraries/BatchRecord.sol";
import {PrescriptionRecord, RxRecord} from "./libraries/PrescriptionRecord.sol";

/// @title rxchain's prescription registry.
/// @notice Doctors issue prescriptions, pharmacies redeem each allowed fill once with the patient's
/// claim-key signature, and the drugs' way to the patient is stamped step by step. One storage word
/// per prescription; the facts an auditor needs are in the events.
/// @dev See {IPrescriptionRegistry} for the id scheme, the signed messages and every function's rules.
// Slither's incorrect-equality detector flags every `==` on a value read from storage, to catch
// balance checks an attacker can skew. Here such comparisons are the state machine itself: enum
// statuses and counters this contract alone writes, which nobody can move by sending ether or tokens.
// slither-disable-start incorrect-equality
contract PrescriptionRegistry is ConsortiumRoles, EIP712, IPrescriptionRegistry {
    using PrescriptionRecord for RxRecord;
    using BatchRecord for BatchWord;

    bytes32 private constant _REDEEM_TYPEHASH =
        keccak256("Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)");
    bytes32 private constant _RECEIPT_TYPEHASH = keccak256("Receipt(bytes32 rxId,uint256 fillsLeft,uint256 deadline)");

    uint32 private constant _MAX_VALIDITY_CAP = 366 days;
    uint8 private constant _MAX_FILLS_CAP = 12;
    uint256 private constant _MAX_BATCH = 1024;

    /// @dev Limits and the pause flag share one word: one read per call.
    struct Config {
        uint32 maxValiditySeconds;
        uint8 maxFills;
        bool paused;
    }

    Config private _config;
    mapping(bytes32 id => RxRecord) private _records;
    mapping(bytes32 root => BatchWord) private _batches;

    /// @param regulator the regulator's account (DEFAULT_ADMIN_ROLE)
    /// @param adminTransferDelay seconds a regulator handover waits before it can be accepted
    /// @param maxValiditySeconds the longest a prescription may stay redeemable (3 days by China's rules)
    /// @param maxFills the most fills one prescription may allow
    constructor(address regulator, uint48 adminTransferDelay, uint32 maxValiditySeconds, uint8 maxFills)
        ConsortiumRoles(regulator, adminTransferDelay)
        EIP712("rxchain PrescriptionRegistry", "1")
    {
        _setLimits(maxValiditySeconds, maxFills);
    }

    /// @dev A pause stops what creates obligations — new prescriptions and new fills — while drugs
    /// already dispensed still reach their patients and their trail is still recorded, and a
    /// prescription can still be withdrawn. Refusing to record a delivery that happens anyway would
    /// only lose the record.
    modifier whenNotPaused() {
        if (_config.paused) revert EnforcedPause();
        _;
    }

    // ----------------------------------------------------------------------------------- issue

    /// @inheritdoc IPrescriptionRegistry
    function issue(bytes32 docHash, address claimKey, address designatedPharmacy, uint40 expiresAt, uint8 fills)
        external
        returns (bytes32 id)
    {
        Config memory c = _config;
        if (c.paused) revert EnforcedPause();
        Member memory doctor = _requireMember(_msgSender(), DOCTOR_ROLE, _DOCTOR);
        if (docHash == bytes32(0)) revert ZeroDocumentHash();
        if (claimKey == address(0)) revert ZeroClaimKey();
        _checkExpiryAndFills(c, expiresAt, fills);
        if (designatedPharmacy != address(0) && !hasRole(PHARMACY_ROLE, designatedPharmacy)) {
            revert NotAPharmacy(designatedPharmacy);
        }

        id = _id(claimKey, _terms(_msgSender(), docHash, designatedPharmacy));
        if (!_records[id].isEmpty()) revert AlreadyIssued(id);
        _records[id] = PrescriptionRecord.pack(_msgSender(), uint40(block.timestamp), expiresAt, Status.Active, fills);

        emit PrescriptionIssued(id, _msgSender(), doctor.hospital, docHash, designatedPharmacy, expiresAt, fills);
    }

    /// @inheritdoc IPrescriptionRegistry
    function issueBatch(bytes32[] calldata ids, uint40 expiresAt, uint8 fills) external returns (bytes32 root) {
        Config memory c = _config;
        if (c.paused) revert EnforcedPause();
        _requireMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
        if (ids.length == 0 || ids.length > _MAX_BATCH) revert InvalidBatchSize(ids.length, _MAX_BATCH);
        _checkExpiryAndFills(c, expiresAt, fills);

        root = _merkleRoot(ids);
        if (!_batches[root].isEmpty()) revert AlreadyIssued(root);
        _batches[root] = BatchRecord.pack(_msgSender(), uint40(block.timestamp), expiresAt, fills);

        for (uint256 i = 0; i < ids.length; ++i) {
            emit PrescriptionBatched(ids[i], root);
        }
        emit BatchIssued(root, _msgSender(), expiresAt, fills, ids.length);
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancelBatched(bytes32 id, bytes32 root, bytes32[] calldata proof) external {
        RxRecord r = _records[id];
        if (!r.isEmpty()) {
            Status s = r.status();
            if (s == Status.Active || s == Status.Refillable) revert WrongStatus(id, s); // use cancel(id)
            _revertNotRedeemable(id, s);
        }
        BatchWord b = _openableBatch(id, root, proof);
        _checkBatchManager(b, id);

        _records[id] = PrescriptionRecord.pack(b.hospital(), b.issuedAt(), b.expiresAt(), Status.Cancelled, 0);
        emit PrescriptionCancelled(id, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancelBatch(bytes32 root) external {
        BatchWord b = _batches[root];
        if (b.isEmpty()) revert UnknownBatch(root);
        if (b.isCancelled()) revert BatchIsCancelled(root);
        _checkBatchManager(b, root);

        _batches[root] = b.cancelled();
        emit BatchCancelled(root, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancel(bytes32 id) external {
        RxRecord r = _records[id];
        Status s = r.status();
        if (s == Status.None) revert UnknownPrescription(id);
        if (s == Status.Cancelled) revert PrescriptionIsCancelled(id);

        if (s != Status.Active && s != Status.Refillable) revert AlreadyRedeemed(id);
        if (s == Status.Active && r.custodian() == _msgSender()) {
            _requireMember(_msgSender(), DOCTOR_ROLE, _DOCTOR); // its doctor, still licensed
        } else if (!hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            revert NotIssuer(id, _msgSender());
        }

        _records[id] = r.withStatus(Status.Cancelled);
        emit PrescriptionCancelled(id, _msgSender());
    }

    // ---------------------------------------------------------------------------------- redeem

    /// @inheritdoc IPrescriptionRegistry
    function redeem(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature
    ) external whenNotPaused returns (bytes32 id) {
        _requireMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        id = _id(claimKey, _terms(doctor, docHash, designatedPharmacy));
        _redeem(id, _records[id], designatedPharmacy, claimKey, deadline, claimSignature);
    }

    /// @inheritdoc IPrescriptionRegistry
    function redeemBatched(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature,
        bytes32 root,
        bytes32[] calldata proof
    ) external whenNotPaused returns (bytes32 id) {
        _requireMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        id = _id(claimKey, _terms(doctor, docHash, designatedPharmacy));
        RxRecord r = _records[id];
        if (r.isEmpty()) r = _openBatched(id, doctor, root, proof);
        _redeem(id, r, designatedPharmacy, claimKey, deadline, claimSignature);
    }

    // ------------------------------------------------------------------------- delivery trail

    /// @inheritdoc IPrescriptionRegistry
    function dispatch(bytes32 id, address courier) external {
        RxRecord r = _records[id];
        _requireStatus(id, r, Status.Dispensed);
        _requireCustodian(id, r);
        _requireMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        if (courier == address(0)) revert ZeroCourier();
        _requireMember(courier, COURIER_ROLE, _COURIER);

        _records[id] = r.handTo(courier, Status.Dispatched);
        emit PrescriptionDispatched(id, _msgSender(), courier);
    }

    /// @inheritdoc IPrescriptionRegistry
    function deliver(bytes32 id) external {
        RxRecord r = _records[id];
        _checkCanDeliver(id, r);
        _records[id] = r.withStatus(Status.Delivered);
        emit PrescriptionDelivered(id, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function deliverWithReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature)
        external
    {
        RxRecord r = _records[id];
        _checkCanDeliver(id, r);
        emit PrescriptionDelivered(id, _msgSender());
        _records[id] = _confirm(id, r, terms, deadline, receiptSignature);
    }

    /// @inheritdoc IPrescriptionRegistry
    function confirmReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature)
        external
    {
        RxRecord r = _records[id];
        _requireStatus(id, r, Status.Delivered);
        _records[id] = _confirm(id, r, terms, deadline, receiptSignature);
    }

    // ------------------------------------------------------------------------------ regulator

    /// @inheritdoc IPrescriptionRegistry
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_config.paused) revert EnforcedPause();
        _config.paused = true;
        emit Paused(_msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!_config.paused) revert ExpectedPause();
        _config.paused = false;
        emit Unpaused(_msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function setLimits(uint32 maxValiditySeconds, uint8 maxFills) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setLimits(maxValiditySeconds, maxFills);
    }

    // ---------------------------------------------------------------------------------- views

    /// @inheritdoc IPrescriptionRegistry
    function prescription(bytes32 id) external view returns (Prescription memory) {
        RxRecord r = _records[id];
        return Prescription(r.custodian(), r.issuedAt(), r.expiresAt(), r.status(), r.fillsLeft());
    }

    /// @inheritdoc IPrescriptionRegistry
    function computeId(address doctor, bytes32 docHash, address designatedPharmacy, address claimKey)
        external
        pure
        returns (bytes32 id, bytes32 terms)
    {
        terms = _terms(doctor, docHash, designatedPharmacy);
        id = _id(claimKey, terms);
    }

    /// @inheritdoc IPrescriptionRegistry
    function redeemDigest(bytes32 id, address pharmacy, uint256 fillsLeft, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _redeemDigest(id, pharmacy, fillsLeft, deadline);
    }

    /// @inheritdoc IPrescriptionRegistry
    function receiptDigest(bytes32 id, uint256 fillsLeft, uint256 deadline) external view returns (bytes32) {
        return _receiptDigest(id, fillsLeft, deadline);
    }

    /// @inheritdoc IPrescriptionRegistry
    function batch(bytes32 root)
        external
        view
        returns (address hospital, uint40 issuedAt, uint40 expiresAt, uint8 fills, bool cancelled)
    {
        BatchWord b = _batches[root];
        return (b.hospital(), b.issuedAt(), b.expiresAt(), b.fills(), b.isCancelled());
    }

    /// @inheritdoc IPrescriptionRegistry
    function limits() external view returns (uint32 maxValiditySeconds, uint8 maxFills, bool isPaused) {
        Config memory c = _config;
        return (c.maxValiditySeconds, c.maxFills, c.paused);
    }

    /// @inheritdoc IPrescriptionRegistry
    function paused() external view returns (bool) {
        return _config.paused;
    }

    // -------------------------------------------------------------------------------- helpers

    function _setLimits(uint32 maxValiditySeconds, uint8 maxFills) private {
        if (
            maxValiditySeconds == 0 || maxValiditySeconds > _MAX_VALIDITY_CAP || maxFills == 0
                || maxFills > _MAX_FILLS_CAP
        ) revert InvalidLimits(maxValiditySeconds, maxFills);
        _config.maxValiditySeconds = maxValiditySeconds;
        _config.maxFills = maxFills;
        emit LimitsChanged(maxValiditySeconds, maxFills);
    }

    /// @dev One fill of prescription `id` (record `r`, possibly just opened from a batch) for the caller.
    function _redeem(
        bytes32 id,
        RxRecord r,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature
    ) private {
        // Who before when: another pharmacy hears NotDesignatedPharmacy whatever the status.
        if (designatedPharmacy != address(0) && designatedPharmacy != _msgSender()) {
            revert NotDesignatedPharmacy(id, _msgSender());
        }
        Status s = r.status();
        if (s != Status.Active && s != Status.Refillable) _revertNotRedeemable(id, s);
        if (block.timestamp > r.expiresAt()) revert Expired(id, r.expiresAt());
        if (block.timestamp > deadline) revert SignatureDeadlinePassed(deadline);

        uint8 fillsLeft = r.fillsLeft();
        bytes32 digest = _redeemDigest(id, _msgSender(), fillsLeft, deadline);
        // A zero signer means an invalid signature: never a match, even for a zero claim key (a batch
        // cannot see inside its ids, so one may name none).
        address signer = _recover(digest, claimSignature);
        if (signer == address(0) || signer != claimKey) revert BadClaimSignature(id);

        _records[id] = r.takeFill(_msgSender());
        emit PrescriptionRedeemed(id, _msgSender(), fillsLeft - 1);
    }

    /// @dev The record a batched prescription starts from, once its proof and doctor check out.
    function _openBatched(bytes32 id, address doctor, bytes32 root, bytes32[] calldata proof)
        private
        view
        returns (RxRecord)
    {
        BatchWord b = _openableBatch(id, root, proof);
        // The single path checks the doctor's licence at issue; a batch cannot see its doctors until
        // now, so the licence must have been live when the batch was issued.
        Member memory m = _memberRecord(doctor);
        if (m.roles & _DOCTOR == 0 || m.hospital != b.hospital() || m.validUntil < b.issuedAt()) {
            revert NotBatchDoctor(id, doctor, b.hospital());
        }
        return PrescriptionRecord.pack(doctor, b.issuedAt(), b.expiresAt(), Status.Active, b.fills());
    }

    /// @dev The live batch `root`, after checking that `proof` shows `id` in it.
    function _openableBatch(bytes32 id, bytes32 root, bytes32[] calldata proof) private view returns (BatchWord b) {
        b = _batches[root];
        if (b.isEmpty()) revert UnknownBatch(root);
        if (b.isCancelled()) revert BatchIsCancelled(root);
        if (!MerkleProof.verifyCalldata(proof, root, id)) revert NotInBatch(id, root);
    }

    /// @dev Reverts unless the caller is the batch's hospital in good standing, or the regulator.
    function _checkBatchManager(BatchWord b, bytes32 subject) private view {
        if (hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) return;
        if (b.hospital() != _msgSender()) revert NotIssuer(subject, _msgSender());
        _requireMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
    }

    /// @dev The Merkle root of `ids`: sorted-pair keccak256 level by level, an odd last node carried up
    /// (any such tree verifies with OpenZeppelin's MerkleProof). A prescription id is itself the leaf:
    /// a leaf cannot pass for an inner node, as that would need an opening hashing to an inner node.
    function _merkleRoot(bytes32[] calldata ids) private pure returns (bytes32) {
        bytes32[] memory level = ids;
        uint256 n = level.length;
        while (n > 1) {
            uint256 half = n >> 1;
            for (uint256 i = 0; i < half; ++i) {
                level[i] = Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1]);
            }
            if (n & 1 == 1) {
                level[half] = level[n - 1];
                n = half + 1;
            } else {
                n = half;
            }
        }
        return level[0];
    }

    function _checkExpiryAndFills(Config memory c, uint40 expiresAt, uint8 fills) private view {
        uint256 latest = block.timestamp + c.maxValiditySeconds;
        if (expiresAt <= block.timestamp || expiresAt > latest) revert InvalidExpiry(expiresAt, latest);
        if (fills == 0 || fills > c.maxFills) revert InvalidFills(fills, c.maxFills);
    }

    /// @dev The courier of a Dispatched prescription or the pharmacy of a Dispensed one, in good standing.
    function _checkCanDeliver(bytes32 id, RxRecord r) private view {
        Status s = r.status();
        if (s == Status.Dispatched) {
            _requireCustodian(id, r);
            _requireMember(_msgSender(), COURIER_ROLE, _COURIER);
        } else if (s == Status.Dispensed) {
            _requireCustodian(id, r);
            _requireMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        } else {
            // Who before when: a courier that never held it hears NotCustodian, not the status.
            if (s == Status.Delivered || s == Status.Completed || s == Status.Refillable) _requireCustodian(id, r);
            _revertWrongStatus(id, s);
        }
    }

    /// @dev Checks the claim key's receipt signature and returns the record after receipt.
    function _confirm(bytes32 id, RxRecord r, bytes32 terms, uint256 deadline, bytes calldata signature)
        private
        returns (RxRecord)
    {
        if (block.timestamp > deadline) revert SignatureDeadlinePassed(deadline);
        uint8 fillsLeft = r.fillsLeft();
        address signer = _recover(_receiptDigest(id, fillsLeft, deadline), signature);
        if (signer == address(0) || _id(signer, terms) != id) revert BadClaimSignature(id);
        emit ReceiptConfirmed(id, _msgSender(), fillsLeft);
        return r.withStatus(fillsLeft == 0 ? Status.Completed : Status.Refillable);
    }

    function _requireStatus(bytes32 id, RxRecord r, Status expected) private pure {
        Status s = r.status();
        if (s != expected) _revertWrongStatus(id, s);
    }

    function _requireCustodian(bytes32 id, RxRecord r) private view {
        if (r.custodian() != _msgSender()) revert NotCustodian(id, _msgSender(), r.custodian());
    }

    function _revertWrongStatus(bytes32 id, Status s) private pure {
        if (s == Status.None) revert UnknownPrescription(id);
        revert WrongStatus(id, s);
    }

    function _revertNotRedeemable(bytes32 id, Status s) private pure {
        if (s == Status.None) revert UnknownPrescription(id);
        if (s == Status.Cancelled) revert PrescriptionIsCancelled(id);
        revert AlreadyRedeemed(id);
    }

    function _redeemDigest(bytes32 id, address pharmacy, uint256 fillsLeft, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(_REDEEM_TYPEHASH, id, pharmacy, fillsLeft, deadline)));
    }

    function _receiptDigest(bytes32 id, uint256 fillsLeft, uint256 deadline) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(_RECEIPT_TYPEHASH, id, fillsLeft, deadline)));
    }

    /// @dev The signer of `digest`, or zero for a malformed or malleable signature. Reads (r, s, v)
    /// straight from calldata: no copy to memory.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) return address(0);
        // The error and its argument are not needed: every failure returns the zero signer, which
        // the callers refuse as BadClaimSignature.
        // slither-disable-next-line unused-return
        (signer,,) = ECDSA.tryRecover(
            digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64])
        );
    }

    function _terms(address doctor, bytes32 docHash, address designatedPharmacy) private pure returns (bytes32) {
        return keccak256(abi.encode(doctor, docHash, designatedPharmacy));
    }

    function _id(address claimKey, bytes32 terms) private pure returns (bytes32 id) {
        // keccak256(abi.encode(claimKey, terms)), hashed in the scratch space (no memory expansion).
        assembly ("memory-safe") {
            mstore(0x00, and(claimKey, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, terms)
            id := keccak256(0x00, 0x40)
        }
    }
}
// slither-disable-end incorrect-equality
