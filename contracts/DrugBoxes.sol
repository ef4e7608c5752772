// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IDrugBoxes, ClaimStatus, BoxState} from "./interfaces/IDrugBoxes.sol";
import {IPrescriptionRegistry, Status} from "./interfaces/IPrescriptionRegistry.sol";

/// @title rxchain's drug boxes and insurance claims, beside the prescription registry.
/// @notice One box, one sale: a manufacturer registers lots as Merkle roots, the pharmacy that holds a
/// dispensed prescription spends the fill's boxes once, for good; and one claim per fill, filed by that
/// pharmacy after the patient's receipt. Roles, members and prescriptions are the registry's: this
/// contract reads them and keeps only lots, their unsold-box bitmaps and one word per fill.
/// @dev See {IDrugBoxes} for the leaf scheme and every function's rules.
///
/// Why boxes and claims share one contract: a fill's boxes and its claim live in the same storage word
/// (written once at dispense, rewritten at the claim), so a claim costs a rewrite of a warm-able word
/// instead of a new one (20,000 gas); two contracts would need a new word per claim or a cross-contract
/// write. The registry itself is not touched: its bytecode is near the 24,576-byte limit.
// Slither's incorrect-equality detector flags `==` on storage values; here they are bit masks and
// statuses this contract alone writes.
// slither-disable-start incorrect-equality
contract DrugBoxes is IDrugBoxes {
    bytes32 private constant _DEFAULT_ADMIN_ROLE = bytes32(0);
    bytes32 private constant _PHARMACY_ROLE = keccak256("PHARMACY_ROLE");
    bytes32 private constant _MANUFACTURER_ROLE = keccak256("MANUFACTURER_ROLE");
    bytes32 private constant _INSURER_ROLE = keccak256("INSURER_ROLE");

    uint256 private constant _MAX_LOT = 65_536;
    uint256 private constant _MAX_BOXES = 255;

    // A fill's word: pharmacy [0..159], boxes [160..167], claim status [168..175], reason [176..183],
    // and [184..255] 72 bits: the digest of the fill's nullifiers until a claim is filed, then the tag
    // of the claim's insurer (the box check is done once, at filing).
    uint256 private constant _BOXES_SHIFT = 160;
    uint256 private constant _CLAIM_SHIFT = 168;
    uint256 private constant _REASON_SHIFT = 176;
    uint256 private constant _TAG_SHIFT = 184;
    uint256 private constant _LOW_184 = (1 << 184) - 1;
    uint256 private constant _LOW_168 = (1 << 168) - 1;

    IPrescriptionRegistry private immutable _registry;

    mapping(bytes32 lot => Lot) private _lots;
    /// @dev Per lot, bit (index % 256) of word (index / 256) is set while box `index` is unsold.
    mapping(bytes32 lot => mapping(uint256 word => uint256)) private _unsold;
    /// @dev Keyed by keccak256(abi.encode(rxId, fillsLeft)).
    mapping(bytes32 fillKey => uint256) private _fills;

    /// @param registry_ the PrescriptionRegistry whose members and prescriptions are read
    constructor(address registry_) {
        if (registry_ == address(0)) revert ZeroRegistryAddress();
        _registry = IPrescriptionRegistry(registry_);
    }

    // ------------------------------------------------------------------------------------ lots

    /// @inheritdoc IDrugBoxes
    function registerLot(bytes32 lot_, uint32 count, uint40 expiresAt) external {
        _checkRole(msg.sender, _MANUFACTURER_ROLE);
        if (lot_ == bytes32(0)) revert ZeroLotRoot();
        if (count == 0 || count > _MAX_LOT) revert InvalidLotSize(count, _MAX_LOT);
        if (expiresAt <= block.timestamp) revert InvalidLotExpiry(expiresAt, block.timestamp);
        Lot storage l = _lots[lot_];
        if (l.manufacturer != address(0)) revert LotAlreadyRegistered(lot_, l.manufacturer);

        uint8 depth = 0;
        while ((uint256(1) << depth) < count) ++depth;
        _lots[lot_] = Lot(msg.sender, expiresAt, count, depth, false);

        mapping(uint256 => uint256) storage bits = _unsold[lot_];
        uint256 full = count >> 8;
        for (uint256 w = 0; w < full; ++w) bits[w] = type(uint256).max;
        uint256 rest = count & 255;
        if (rest != 0) bits[full] = (uint256(1) << rest) - 1;

        emit LotRegistered(lot_, msg.sender, count, expiresAt);
    }

    /// @inheritdoc IDrugBoxes
    function recallLot(bytes32 lot_) external {
        Lot storage l = _lots[lot_];
        address manufacturer = l.manufacturer;
        if (manufacturer == address(0)) revert UnknownLot(lot_);
        if (!_registry.hasRole(_DEFAULT_ADMIN_ROLE, msg.sender)) {
            if (manufacturer != msg.sender || !_registry.hasRole(_MANUFACTURER_ROLE, msg.sender)) {
                revert NotLotManufacturer(lot_, msg.sender);
            }
        }
        if (l.recalled) revert LotIsRecalled(lot_);
        l.recalled = true;
        emit LotRecalled(lot_, msg.sender);
    }

    // -------------------------------------------------------------------------------- dispense

    /// @inheritdoc IDrugBoxes
    function dispense(bytes32 rxId, LotBoxes[] calldata lots) external {
        IPrescriptionRegistry.Prescription memory p = _registry.prescription(rxId);
        if (p.status == Status.None) revert UnknownPrescription(rxId);
        if (p.custodian != msg.sender) revert NotCustodian(rxId, msg.sender, p.custodian);
        if (p.status != Status.Dispensed) revert NotDispensed(rxId, p.status);
        _checkRole(msg.sender, _PHARMACY_ROLE);

        bytes32 key = _fillKey(rxId, p.fillsLeft);
        if (_fills[key] != 0) revert FillAlreadyRecorded(rxId, p.fillsLeft);

        uint256 total = 0;
        for (uint256 g = 0; g < lots.length; ++g) {
            total += lots[g].indexes.length;
        }
        if (total == 0 || total > _MAX_BOXES) revert InvalidBoxCount(total, _MAX_BOXES);

        // The digest of every nullifier, in order, built in memory as the boxes are spent.
        bytes32[] memory all = new bytes32[](total);
        uint256 n = 0;
        for (uint256 g = 0; g < lots.length; ++g) {
            n = _spend(lots[g], all, n);
        }
        uint256 digest = uint256(keccak256(abi.encodePacked(all))) >> _TAG_SHIFT;

        _fills[key] = uint256(uint160(msg.sender)) | (total << _BOXES_SHIFT) | (digest << _TAG_SHIFT);
        emit FillBoxesRecorded(rxId, msg.sender, p.fillsLeft, all);
    }

    /// @dev Spends the boxes of one lot: checks the lot, the indexes and the multiproof, clears each
    /// box's unsold bit (refusing one already clear), appends its nullifier to `all`.
    function _spend(LotBoxes calldata boxes, bytes32[] memory all, uint256 n)
        private
        returns (uint256)
    {
        _checkBoxes(boxes);
        bytes32 lot_ = boxes.lot;
        mapping(uint256 => uint256) storage bits = _unsold[lot_];
        uint256 wordIndex = type(uint256).max;
        uint256 word = 0;
        for (uint256 i = 0; i < boxes.indexes.length; ++i) {
            uint256 index = boxes.indexes[i];
            if (index >> 8 != wordIndex) {
                if (wordIndex != type(uint256).max) bits[wordIndex] = word;
                wordIndex = index >> 8;
                word = bits[wordIndex];
            }
            uint256 bit = uint256(1) << (index & 255);
            if (word & bit == 0) revert BoxAlreadyDispensed(boxes.nullifiers[i], lot_, index);
            word &= ~bit;
            all[n++] = boxes.nullifiers[i];
        }
        bits[wordIndex] = word;
        return n;
    }

    /// @dev Reverts unless the lot is live, the indexes strictly increase inside it, and the multiproof
    /// shows the boxes' leaves at those indexes.
    function _checkBoxes(LotBoxes calldata boxes) private view {
        bytes32 lot_ = boxes.lot;
        Lot memory l = _lots[lot_];
        if (l.manufacturer == address(0)) revert UnknownLot(lot_);
        if (l.recalled) revert LotIsRecalled(lot_);
        if (block.timestamp > l.expiresAt) revert LotExpired(lot_, l.expiresAt);
        uint256 count = boxes.indexes.length;
        if (count == 0) revert InvalidBoxCount(0, _MAX_BOXES); // a lot named with no box of it
        if (boxes.nullifiers.length != count) revert LengthMismatch(count, boxes.nullifiers.length);

        uint256[] memory positions = new uint256[](count);
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 index = boxes.indexes[i];
            if (index >= l.count || (i > 0 && index <= positions[i - 1])) revert BadBoxIndex(lot_, index, l.count);
            positions[i] = index;
            hashes[i] = _leaf(boxes.nullifiers[i]);
        }
        if (_root(l.depth, positions, hashes, boxes.proof) != lot_) revert NotInLot(lot_);
    }

    // ---------------------------------------------------------------------------------- claims

    /// @inheritdoc IDrugBoxes
    function fileClaim(bytes32 rxId, uint8 fillsLeft, bytes32[] calldata nullifiers, address insurer, bytes32 commitment)
        external
    {
        bytes32 key = _fillKey(rxId, fillsLeft);
        uint256 f = _fills[key];
        if (f == 0) revert NoBoxesRecorded(rxId, fillsLeft);
        address pharmacy = address(uint160(f));
        if (pharmacy != msg.sender) revert NotFillPharmacy(rxId, fillsLeft, msg.sender, pharmacy);
        ClaimStatus claim = ClaimStatus(uint8(f >> _CLAIM_SHIFT));
        if (claim == ClaimStatus.Void) revert FillIsVoid(rxId, fillsLeft);
        if (claim != ClaimStatus.None) revert ClaimAlreadyFiled(rxId, fillsLeft, claim);
        _checkRole(msg.sender, _PHARMACY_ROLE);
        if (uint256(keccak256(abi.encodePacked(nullifiers))) >> _TAG_SHIFT != f >> _TAG_SHIFT) {
            revert BoxesNotOfFill(rxId, fillsLeft);
        }
        IPrescriptionRegistry.Prescription memory p = _registry.prescription(rxId);
        // Fill `fillsLeft` was received when the registry shows its receipt (Completed or Refillable with
        // that many fills left), or a later fill was redeemed since (fewer left).
        bool received = p.fillsLeft < fillsLeft
            || (p.fillsLeft == fillsLeft && (p.status == Status.Completed || p.status == Status.Refillable));
        if (!received) revert FillNotReceived(rxId, fillsLeft, p.status, p.fillsLeft);
        _checkRole(insurer, _INSURER_ROLE);
        if (commitment == bytes32(0)) revert ZeroCommitment();

        _fills[key] = (f & _LOW_168) | (uint256(uint8(ClaimStatus.Filed)) << _CLAIM_SHIFT)
            | (_insurerTag(insurer) << _TAG_SHIFT);
        emit ClaimFiled(rxId, msg.sender, insurer, fillsLeft, commitment);
    }

    /// @inheritdoc IDrugBoxes
    function approveClaim(bytes32 rxId, uint8 fillsLeft, bytes32 paymentReference) external {
        bytes32 key = _fillKey(rxId, fillsLeft);
        uint256 f = _pendingClaim(rxId, fillsLeft, key);
        ClaimStatus next = paymentReference == bytes32(0) ? ClaimStatus.Approved : ClaimStatus.Paid;
        _fills[key] = (f & ~(uint256(0xff) << _CLAIM_SHIFT)) | (uint256(uint8(next)) << _CLAIM_SHIFT);
        emit ClaimApproved(rxId, msg.sender, fillsLeft, paymentReference);
        if (next == ClaimStatus.Paid) emit ClaimPaid(rxId, msg.sender, fillsLeft, paymentReference);
    }

    /// @inheritdoc IDrugBoxes
    function recordPayment(bytes32 rxId, uint8 fillsLeft, bytes32 paymentReference) external {
        if (paymentReference == bytes32(0)) revert ZeroPaymentReference();
        bytes32 key = _fillKey(rxId, fillsLeft);
        uint256 f = _fills[key];
        ClaimStatus claim = ClaimStatus(uint8(f >> _CLAIM_SHIFT));
        if (claim != ClaimStatus.Approved) revert ClaimNotApproved(rxId, fillsLeft, claim);
        if (f >> _TAG_SHIFT != _insurerTag(msg.sender)) revert NotClaimInsurer(rxId, fillsLeft, msg.sender);
        _checkRole(msg.sender, _INSURER_ROLE);
        _fills[key] = (f & ~(uint256(0xff) << _CLAIM_SHIFT)) | (uint256(uint8(ClaimStatus.Paid)) << _CLAIM_SHIFT);
        emit ClaimPaid(rxId, msg.sender, fillsLeft, paymentReference);
    }

    /// @inheritdoc IDrugBoxes
    function voidFill(bytes32 rxId, uint8 fillsLeft) external {
        _checkRole(msg.sender, _DEFAULT_ADMIN_ROLE);
        bytes32 key = _fillKey(rxId, fillsLeft);
        uint256 f = _fills[key];
        if (f == 0) revert NoBoxesRecorded(rxId, fillsLeft);
        ClaimStatus claim = ClaimStatus(uint8(f >> _CLAIM_SHIFT));
        if (claim != ClaimStatus.None) revert ClaimAlreadyFiled(rxId, fillsLeft, claim);
        _fills[key] = f | (uint256(uint8(ClaimStatus.Void)) << _CLAIM_SHIFT);
        emit FillVoided(rxId, msg.sender, fillsLeft);
    }

    // ------------------------------------------------------------------------------ duplicates

    /// @inheritdoc IDrugBoxes
    function reportDuplicate(bytes32 lot_, uint256 index, bytes32 nullifier, bytes32[] calldata proof) external {
        _checkRole(msg.sender, _PHARMACY_ROLE);
        Lot memory l = _lots[lot_];
        if (l.manufacturer == address(0)) revert UnknownLot(lot_);
        if (!_proven(l, lot_, index, nullifier, proof)) revert NotInLot(lot_);
        if (isUnsold(lot_, index)) revert BoxNotDispensed(lot_, index);
        emit DuplicateBoxScanned(lot_, msg.sender, index, nullifier);
    }

    /// @inheritdoc IDrugBoxes
    function rejectClaim(bytes32 rxId, uint8 fillsLeft, uint8 reason) external {
        if (reason == 0) revert ZeroReason();
        bytes32 key = _fillKey(rxId, fillsLeft);
        uint256 f = _pendingClaim(rxId, fillsLeft, key);
        _fills[key] = (f & ~(uint256(0xffff) << _CLAIM_SHIFT)) | (uint256(uint8(ClaimStatus.Rejected)) << _CLAIM_SHIFT)
            | (uint256(reason) << _REASON_SHIFT);
        emit ClaimRejected(rxId, msg.sender, fillsLeft, reason);
    }

    // ----------------------------------------------------------------------------------- views

    /// @inheritdoc IDrugBoxes
    function lot(bytes32 lot_) external view returns (Lot memory) {
        return _lots[lot_];
    }

    /// @inheritdoc IDrugBoxes
    function isUnsold(bytes32 lot_, uint256 index) public view returns (bool) {
        return _unsold[lot_][index >> 8] & (uint256(1) << (index & 255)) != 0;
    }

    /// @inheritdoc IDrugBoxes
    function boxState(bytes32 lot_, uint256 index, bytes32 nullifier, bytes32[] calldata proof)
        external
        view
        returns (BoxState)
    {
        Lot memory l = _lots[lot_];
        if (l.manufacturer == address(0) || !_proven(l, lot_, index, nullifier, proof)) return BoxState.Unknown;
        if (!isUnsold(lot_, index)) return BoxState.Dispensed;
        if (l.recalled) return BoxState.Recalled;
        if (block.timestamp > l.expiresAt) return BoxState.Expired;
        return BoxState.Unsold;
    }

    /// @inheritdoc IDrugBoxes
    function fill(bytes32 rxId, uint8 fillsLeft) external view returns (Fill memory) {
        uint256 f = _fills[_fillKey(rxId, fillsLeft)];
        return Fill(
            address(uint160(f)), uint8(f >> _BOXES_SHIFT), ClaimStatus(uint8(f >> _CLAIM_SHIFT)), uint8(f >> _REASON_SHIFT)
        );
    }

    /// @inheritdoc IDrugBoxes
    function registry() external view returns (address) {
        return address(_registry);
    }

    // --------------------------------------------------------------------------------- helpers

    /// @dev True when `proof` (siblings from the leaf up) shows `nullifier`'s leaf at `index` of lot `lot_`.
    function _proven(Lot memory l, bytes32 lot_, uint256 index, bytes32 nullifier, bytes32[] calldata proof)
        private
        pure
        returns (bool)
    {
        if (index >= l.count || proof.length != l.depth) return false;
        bytes32 node = _leaf(nullifier);
        for (uint256 d = 0; d < proof.length; ++d) {
            node = (index >> d) & 1 == 0 ? _hashPair(node, proof[d]) : _hashPair(proof[d], node);
        }
        return node == lot_;
    }

    function _checkRole(address account, bytes32 role) private view {
        if (!_registry.hasRole(role, account)) revert NotInGoodStanding(account, role);
    }

    /// @dev The word of a claim awaiting a decision by the caller, its insurer in good standing.
    function _pendingClaim(bytes32 rxId, uint8 fillsLeft, bytes32 key) private view returns (uint256 f) {
        f = _fills[key];
        ClaimStatus claim = ClaimStatus(uint8(f >> _CLAIM_SHIFT));
        if (claim != ClaimStatus.Filed) revert ClaimNotPending(rxId, fillsLeft, claim);
        if (f >> _TAG_SHIFT != _insurerTag(msg.sender)) revert NotClaimInsurer(rxId, fillsLeft, msg.sender);
        _checkRole(msg.sender, _INSURER_ROLE);
    }

    /// @dev 72 bits of keccak256(insurer): which insurer a claim was filed with.
    function _insurerTag(address insurer) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(insurer))) >> _TAG_SHIFT;
    }

    function _fillKey(bytes32 rxId, uint8 fillsLeft) private pure returns (bytes32) {
        return keccak256(abi.encode(rxId, fillsLeft));
    }

    /// @dev A box's leaf: keccak256 of its 32-byte nullifier (an inner node hashes 64 bytes).
    function _leaf(bytes32 nullifier) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            mstore(0x00, nullifier)
            leaf := keccak256(0x00, 0x20)
        }
    }

    function _hashPair(bytes32 left, bytes32 right) private pure returns (bytes32 node) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            node := keccak256(0x00, 0x40)
        }
    }

    /// @dev The root of a positional tree of depth `depth` computed from the leaves `hashes` at strictly
    /// increasing `positions`, taking each sibling not computed from them from `proof` in order (level by
    /// level, left to right). Reuses the two arrays in place. Returns zero when the proof is too short
    /// or too long.
    function _root(uint8 depth, uint256[] memory positions, bytes32[] memory hashes, bytes32[] calldata proof)
        private
        pure
        returns (bytes32)
    {
        uint256 n = positions.length;
        uint256 used = 0;
        for (uint256 level = 0; level < depth; ++level) {
            uint256 m = 0;
            uint256 i = 0;
            while (i < n) {
                uint256 pos = positions[i];
                bytes32 h = hashes[i];
                bytes32 parent;
                if (pos & 1 == 0) {
                    if (i + 1 < n && positions[i + 1] == pos + 1) {
                        parent = _hashPair(h, hashes[i + 1]);
                        i += 2;
                    } else {
                        if (used == proof.length) return bytes32(0);
                        parent = _hashPair(h, proof[used++]);
                        ++i;
                    }
                } else {
                    if (used == proof.length) return bytes32(0);
                    parent = _hashPair(proof[used++], h);
                    ++i;
                }
                positions[m] = pos >> 1;
                hashes[m] = parent;
                ++m;
            }
            n = m;
        }
        if (used != proof.length) return bytes32(0);
        return hashes[0];
    }
}
// slither-disable-end incorrect-equality
