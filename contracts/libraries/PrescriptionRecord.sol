// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Status} from "../interfaces/IPrescriptionRegistry.sol";

/// @dev One prescription's on-chain state, packed into a single storage word.
///
/// The prescription's id commits to everything else (document hash, claim key, designated pharmacy,
/// issuing doctor); the openings travel as calldata when needed and in events for auditors.
///
/// Layout (bit 0 = least significant):
///   [  0..159] custodian  the account that holds the prescription now: the issuing doctor while
///                         unredeemed, then the pharmacy that filled it, then the courier
///   [160..199] issuedAt   block time of issue (uint40)
///   [200..239] expiresAt  last second at which it can be redeemed (uint40)
///   [240..247] status     {Status}
///   [248..255] fillsLeft  fills that may still be redeemed
///
/// A zero word means "never issued"; every issued record has a non-zero expiresAt.
type RxRecord is uint256;

/// @dev The only code that knows the bit layout of {RxRecord}.
library PrescriptionRecord {
    uint256 private constant _ADDRESS_MASK = (1 << 160) - 1;
    uint256 private constant _UINT40_MASK = (1 << 40) - 1;
    uint256 private constant _UINT8_MASK = 0xff;

    uint256 private constant _ISSUED_AT_SHIFT = 160;
    uint256 private constant _EXPIRES_AT_SHIFT = 200;
    uint256 private constant _STATUS_SHIFT = 240;
    uint256 private constant _FILLS_SHIFT = 248;

    /// @dev Packs a whole record.
    function pack(address custodian_, uint40 issuedAt_, uint40 expiresAt_, Status status_, uint8 fillsLeft_)
        internal
        pure
        returns (RxRecord)
    {
        return RxRecord.wrap(
            uint256(uint160(custodian_)) | (uint256(issuedAt_) << _ISSUED_AT_SHIFT)
                | (uint256(expiresAt_) << _EXPIRES_AT_SHIFT) | (uint256(uint8(status_)) << _STATUS_SHIFT)
                | (uint256(fillsLeft_) << _FILLS_SHIFT)
        );
    }

    function isEmpty(RxRecord self) internal pure returns (bool) {
        return RxRecord.unwrap(self) == 0;
    }

    function custodian(RxRecord self) internal pure returns (address) {
        return address(uint160(RxRecord.unwrap(self) & _ADDRESS_MASK));
    }

    function issuedAt(RxRecord self) internal pure returns (uint40) {
        return uint40((RxRecord.unwrap(self) >> _ISSUED_AT_SHIFT) & _UINT40_MASK);
    }

    function expiresAt(RxRecord self) internal pure returns (uint40) {
        return uint40((RxRecord.unwrap(self) >> _EXPIRES_AT_SHIFT) & _UINT40_MASK);
    }

    function status(RxRecord self) internal pure returns (Status) {
        return Status((RxRecord.unwrap(self) >> _STATUS_SHIFT) & _UINT8_MASK);
    }

    function fillsLeft(RxRecord self) internal pure returns (uint8) {
        return uint8(RxRecord.unwrap(self) >> _FILLS_SHIFT);
    }

    /// @dev Returns the record with a new custodian and status; times and fills unchanged.
    function handTo(RxRecord self, address custodian_, Status status_) internal pure returns (RxRecord) {
        uint256 keep = RxRecord.unwrap(self) & ~(_ADDRESS_MASK | (_UINT8_MASK << _STATUS_SHIFT));
        return RxRecord.wrap(keep | uint256(uint160(custodian_)) | (uint256(uint8(status_)) << _STATUS_SHIFT));
    }

    /// @dev Returns the record with a new status; everything else unchanged.
    function withStatus(RxRecord self, Status status_) internal pure returns (RxRecord) {
        uint256 keep = RxRecord.unwrap(self) & ~(_UINT8_MASK << _STATUS_SHIFT);
        return RxRecord.wrap(keep | (uint256(uint8(status_)) << _STATUS_SHIFT));
    }

    /// @dev Returns the record with one fill taken: custodian `pharmacy`, status Dispensed.
    /// The caller has checked that fillsLeft > 0.
    function takeFill(RxRecord self, address pharmacy) internal pure returns (RxRecord) {
        uint256 word = RxRecord.unwrap(self) - (1 << _FILLS_SHIFT);
        return handTo(RxRecord.wrap(word), pharmacy, Status.Dispensed);
    }
}
