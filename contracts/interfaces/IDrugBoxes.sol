// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Status} from "./IPrescriptionRegistry.sol";

/// @notice Where an insurance claim for one fill stands.
enum ClaimStatus {
    None, //     no claim filed for the fill
    Filed, //    filed by the pharmacy that dispensed the fill, awaiting the insurer
    Approved, // approved, its payment not yet stamped
    Rejected, // rejected with a reason code; a fill is claimed once, for good
    Paid, //     approved and paid: the off-chain payment's reference is in {IDrugBoxes-ClaimPaid}
    Void //      the regulator voided the fill (its pharmacy lost custody): it can never be claimed
}

/// @notice What a box's check says (see {IDrugBoxes-boxState}).
enum BoxState {
    Unknown, //   no registered lot, or the proof does not show the box in the lot
    Unsold, //    genuine and not yet dispensed
    Dispensed, // genuine and dispensed once (the events say when, where and for which prescription)
    Recalled, //  genuine, not dispensed, but its lot was recalled
    Expired //    genuine, not dispensed, but its lot is past its expiry
}

/// @title Drug boxes (one box, one sale) and insurance claims (one claim per fill).
/// @notice A manufacturer registers a production lot as the Merkle root over its boxes' leaves; nothing
/// on chain names the drug. Each box carries a 20-digit traceability code and a secret under a scratch
/// panel; off chain:
///
///     nullifier = keccak256("rxchain-box-v1:" ‖ code ‖ ":" ‖ secret)      (ASCII)
///     leaf      = keccak256(nullifier)                                     (32 bytes hashed)
///     node      = keccak256(left ‖ right)                                  (64 bytes hashed, by position)
///
/// The tree is positional: leaf i is the box at index i of the lot, the tree padded with zero leaves to
/// a power of two; so a proof fixes the box's index, and a lot's spent boxes are one bit each in a
/// bitmap per lot. The pharmacy that holds a dispensed prescription records the fill's boxes in one
/// transaction ({dispense}): each box's nullifier (which reveals neither code nor secret) with a
/// multiproof; a box is spent once, for good.
///
/// A fill is named by the prescription id and the fills left after it (`fillsLeft`, as in the
/// registry's PrescriptionRedeemed and ReceiptConfirmed events). After the patient's receipt of the
/// fill, the pharmacy that recorded its boxes files one claim with an insurer ({fileClaim}); the claim
/// commits to the amounts and the patient's insurance reference as a salted hash. The insurer approves
/// it (stamping the payment reference then or later, {recordPayment}) or rejects it with a reason code.
/// A pharmacy that scans a box already dispensed reports it ({reportDuplicate}): the "returned drug"
/// alarm the regulator reads.
interface IDrugBoxes {
    /// @notice A lot: who registered it, until when its boxes may be dispensed, how many boxes, the
    /// depth of its tree, and whether it was recalled.
    struct Lot {
        address manufacturer;
        uint40 expiresAt;
        uint32 count;
        uint8 depth;
        bool recalled;
    }

    /// @notice The boxes of one lot in a fill: their indexes in the lot (strictly increasing), their
    /// nullifiers (same order), and the multiproof of their leaves ({multiproof} order: level by
    /// level, left to right, the siblings not computed from the boxes themselves).
    struct LotBoxes {
        bytes32 lot;
        uint256[] indexes;
        bytes32[] nullifiers;
        bytes32[] proof;
    }

    /// @notice A fill's record: the pharmacy that recorded its boxes, how many, and its claim.
    struct Fill {
        address pharmacy;
        uint8 boxes;
        ClaimStatus claim;
        uint8 reason;
    }

    /// @notice `manufacturer` registered lot `lot` (a Merkle root) of `count` boxes, dispensable until `expiresAt`.
    event LotRegistered(bytes32 indexed lot, address indexed manufacturer, uint32 count, uint40 expiresAt);

    /// @notice Lot `lot` was recalled by `by` (its manufacturer or the regulator): its boxes are refused.
    event LotRecalled(bytes32 indexed lot, address indexed by);

    /// @notice `pharmacy` recorded the boxes of prescription `rxId`'s fill `fillsLeft`: their
    /// nullifiers, in the order recorded (one event per fill: a log per box would cost 1,500 gas more
    /// per box; a box's check finds its fill by scanning these).
    event FillBoxesRecorded(bytes32 indexed rxId, address indexed pharmacy, uint8 fillsLeft, bytes32[] nullifiers);

    /// @notice `pharmacy` filed a claim with `insurer` for fill `fillsLeft` of prescription `rxId`;
    /// `commitment` is the salted hash of the amounts and the patient's insurance reference.
    event ClaimFiled(
        bytes32 indexed rxId, address indexed pharmacy, address indexed insurer, uint8 fillsLeft, bytes32 commitment
    );

    /// @notice `insurer` approved the claim for fill `fillsLeft` of `rxId`; `paymentReference` names the
    /// off-chain payment (zero: to follow, see {ClaimPaid}).
    event ClaimApproved(bytes32 indexed rxId, address indexed insurer, uint8 fillsLeft, bytes32 paymentReference);

    /// @notice `insurer` paid the claim for fill `fillsLeft` of `rxId`; `paymentReference` names the
    /// off-chain payment. Emitted by an approval that stamps a reference, or by {recordPayment}.
    event ClaimPaid(bytes32 indexed rxId, address indexed insurer, uint8 fillsLeft, bytes32 paymentReference);

    /// @notice The regulator voided fill `fillsLeft` of `rxId` (its pharmacy lost custody): no claim.
    event FillVoided(bytes32 indexed rxId, address indexed by, uint8 fillsLeft);

    /// @notice `pharmacy` scanned box `index` of lot `lot` (nullifier `nullifier`) after it had been
    /// dispensed: a counterfeit copy or a resold ("returned") box. The first sale's fill is the
    /// {FillBoxesRecorded} that lists the same nullifier.
    event DuplicateBoxScanned(bytes32 indexed lot, address indexed pharmacy, uint256 index, bytes32 nullifier);

    /// @notice `insurer` rejected the claim for fill `fillsLeft` of `rxId` with reason code `reason`.
    event ClaimRejected(bytes32 indexed rxId, address indexed insurer, uint8 fillsLeft, uint8 reason);

    /// @notice The registry's address must not be zero.
    error ZeroRegistryAddress();
    /// @notice `account` does not hold `role` with a live credential.
    error NotInGoodStanding(address account, bytes32 role);
    /// @notice A lot's root must not be zero.
    error ZeroLotRoot();
    /// @notice A lot holds 1 to `maximum` boxes; `count` were given.
    error InvalidLotSize(uint256 count, uint256 maximum);
    /// @notice A lot's expiry `expiresAt` must be after now (`nowTime`).
    error InvalidLotExpiry(uint40 expiresAt, uint256 nowTime);
    /// @notice Lot `lot` is registered already (by `manufacturer`); nothing was changed.
    error LotAlreadyRegistered(bytes32 lot, address manufacturer);
    /// @notice No lot has root `lot`.
    error UnknownLot(bytes32 lot);
    /// @notice Lot `lot` was recalled.
    error LotIsRecalled(bytes32 lot);
    /// @notice Lot `lot` expired at `expiresAt`.
    error LotExpired(bytes32 lot, uint40 expiresAt);
    /// @notice `caller` is neither lot `lot`'s manufacturer in good standing nor the regulator.
    error NotLotManufacturer(bytes32 lot, address caller);
    /// @notice The proof does not show these boxes in lot `lot` (a forged or mistyped code or secret).
    error NotInLot(bytes32 lot);
    /// @notice Box indexes must be strictly increasing and below the lot's size `count`: `index` is not.
    error BadBoxIndex(bytes32 lot, uint256 index, uint32 count);
    /// @notice Each box needs its nullifier: `indexes` and `nullifiers` differ in length.
    error LengthMismatch(uint256 indexes, uint256 nullifiers);
    /// @notice The box at `index` of lot `lot` (nullifier `nullifier`) was dispensed already.
    error BoxAlreadyDispensed(bytes32 nullifier, bytes32 lot, uint256 index);
    /// @notice A fill records 1 to `maximum` boxes, and each lot it names at least one: `count` were given.
    error InvalidBoxCount(uint256 count, uint256 maximum);
    /// @notice No prescription has id `id`.
    error UnknownPrescription(bytes32 id);
    /// @notice `caller` does not hold prescription `id`; `custodian` does.
    error NotCustodian(bytes32 id, address caller, address custodian);
    /// @notice Prescription `id` is `current`: boxes are recorded while it is Dispensed.
    error NotDispensed(bytes32 id, Status current);
    /// @notice The boxes of prescription `id`'s fill `fillsLeft` were recorded already.
    error FillAlreadyRecorded(bytes32 id, uint8 fillsLeft);
    /// @notice No boxes were recorded for prescription `id`'s fill `fillsLeft`.
    error NoBoxesRecorded(bytes32 id, uint8 fillsLeft);
    /// @notice `caller` did not dispense prescription `id`'s fill `fillsLeft`; `pharmacy` did.
    error NotFillPharmacy(bytes32 id, uint8 fillsLeft, address caller, address pharmacy);
    /// @notice The boxes given are not the ones recorded for prescription `id`'s fill `fillsLeft`.
    error BoxesNotOfFill(bytes32 id, uint8 fillsLeft);
    /// @notice The registry does not show the patient's receipt of prescription `id`'s fill
    /// `fillsLeft`: it is `current` with `currentFillsLeft` fills left.
    error FillNotReceived(bytes32 id, uint8 fillsLeft, Status current, uint8 currentFillsLeft);
    /// @notice A claim for prescription `id`'s fill `fillsLeft` was filed already (it is `claim`).
    error ClaimAlreadyFiled(bytes32 id, uint8 fillsLeft, ClaimStatus claim);
    /// @notice A claim's commitment must not be zero.
    error ZeroCommitment();
    /// @notice The claim for prescription `id`'s fill `fillsLeft` is `claim`, not awaiting a decision.
    error ClaimNotPending(bytes32 id, uint8 fillsLeft, ClaimStatus claim);
    /// @notice `caller` is not the insurer the claim for prescription `id`'s fill `fillsLeft` was filed with.
    error NotClaimInsurer(bytes32 id, uint8 fillsLeft, address caller);
    /// @notice A rejection needs a reason code (1 to 255).
    error ZeroReason();
    /// @notice A payment needs a non-zero reference.
    error ZeroPaymentReference();
    /// @notice The claim for fill `fillsLeft` of `id` is `claim`, not Approved: nothing to pay.
    error ClaimNotApproved(bytes32 id, uint8 fillsLeft, ClaimStatus claim);
    /// @notice Fill `fillsLeft` of `id` was voided by the regulator: it can never be claimed.
    error FillIsVoid(bytes32 id, uint8 fillsLeft);
    /// @notice Box `index` of lot `lot` was never dispensed: there is no duplicate to report.
    error BoxNotDispensed(bytes32 lot, uint256 index);

    /// @notice Registers lot `lot` of `count` boxes, dispensable until `expiresAt`.
    /// @dev Caller: a manufacturer in good standing. 1 <= count <= 65,536; expiry in the future; the
    /// root not registered before. Marks every box unsold (one storage word per 256 boxes, paid here
    /// so that a dispense rewrites a word rather than creating one). Emits {LotRegistered}.
    function registerLot(bytes32 lot, uint32 count, uint40 expiresAt) external;

    /// @notice Recalls lot `lot`: its unsold boxes can no longer be dispensed.
    /// @dev Caller: the lot's manufacturer in good standing, or the regulator. Emits {LotRecalled}.
    function recallLot(bytes32 lot) external;

    /// @notice Records the boxes of the fill the caller holds of prescription `rxId`: each spent once,
    /// for good.
    /// @dev Requirements: the prescription is Dispensed and the caller its custodian, a pharmacy in good
    /// standing; this fill's boxes not recorded before; 1 to 255 boxes; each lot registered, not recalled,
    /// not expired; indexes strictly increasing within a lot; the multiproof shows the boxes in their lot;
    /// no box dispensed before. Emits {FillBoxesRecorded}.
    function dispense(bytes32 rxId, LotBoxes[] calldata lots) external;

    /// @notice Files the claim for fill `fillsLeft` of prescription `rxId` with `insurer`.
    /// @dev Requirements: the caller is the pharmacy that recorded the fill's boxes, in good standing;
    /// `nullifiers` are exactly those boxes, in the order they were recorded; the registry shows the
    /// fill received (Completed or Refillable with `fillsLeft` fills left, or fewer fills left: a later
    /// fill was redeemed); no claim for the fill before; `insurer` an insurer in good standing; the
    /// commitment not zero. Emits {ClaimFiled}.
    function fileClaim(bytes32 rxId, uint8 fillsLeft, bytes32[] calldata nullifiers, address insurer, bytes32 commitment)
        external;

    /// @notice Approves the pending claim for fill `fillsLeft` of `rxId`; a non-zero `paymentReference`
    /// stamps the payment at once (status Paid), zero leaves it Approved until {recordPayment}.
    /// @dev Caller: the claim's insurer, in good standing. Emits {ClaimApproved}, and {ClaimPaid} with a
    /// reference.
    function approveClaim(bytes32 rxId, uint8 fillsLeft, bytes32 paymentReference) external;

    /// @notice Stamps the off-chain payment's reference on the approved claim for fill `fillsLeft` of `rxId`.
    /// @dev Caller: the claim's insurer, in good standing; the claim Approved; the reference non-zero.
    /// Emits {ClaimPaid}.
    function recordPayment(bytes32 rxId, uint8 fillsLeft, bytes32 paymentReference) external;

    /// @notice Voids fill `fillsLeft` of `rxId`, whose boxes were recorded by a pharmacy that then lost
    /// custody ({IPrescriptionRegistry-voidCustody}): the fill is never claimed.
    /// @dev Caller: the regulator. The fill's boxes recorded, no claim filed. Emits {FillVoided}.
    function voidFill(bytes32 rxId, uint8 fillsLeft) external;

    /// @notice Reports a scan of a box already dispensed (genuine: the proof shows it in its lot).
    /// @dev Caller: a pharmacy in good standing. `proof` runs from the leaf up, as for {boxState}.
    /// Emits {DuplicateBoxScanned}; nothing else changes.
    function reportDuplicate(bytes32 lot, uint256 index, bytes32 nullifier, bytes32[] calldata proof) external;

    /// @notice Rejects the pending claim for fill `fillsLeft` of `rxId` with reason code `reason` (1..255).
    /// @dev Caller: the claim's insurer, in good standing. Emits {ClaimRejected}.
    function rejectClaim(bytes32 rxId, uint8 fillsLeft, uint8 reason) external;

    /// @notice The lot with root `lot` (all zero when none).
    function lot(bytes32 lot) external view returns (Lot memory);

    /// @notice True while the box at `index` of lot `lot` is unsold (false once dispensed, and for an
    /// index outside every registered lot).
    function isUnsold(bytes32 lot, uint256 index) external view returns (bool);

    /// @notice What a check of the box with `nullifier` at `index` of lot `lot` says, given its proof
    /// (the siblings from the leaf up).
    function boxState(bytes32 lot, uint256 index, bytes32 nullifier, bytes32[] calldata proof)
        external
        view
        returns (BoxState);

    /// @notice The record of prescription `rxId`'s fill `fillsLeft` (all zero when no boxes were recorded).
    function fill(bytes32 rxId, uint8 fillsLeft) external view returns (Fill memory);

    /// @notice The registry whose prescriptions and members this contract reads.
    function registry() external view returns (address);
}
