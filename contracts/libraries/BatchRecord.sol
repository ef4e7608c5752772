// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @dev One batch of prescriptions issued together, packed into a single storage word, keyed by the
/// Merkle root of the batch's prescription ids.
///
/// Layout (bit 0 = least significant):
///   [  0..159] hospital   the hospital that issued the batch for its doctors
///   [160..199] issuedAt   block time of issue (uint40)
///   [200..239] expiresAt  last second at which its prescriptions can be redeemed (uint40)
///   [240..247] fills      fills each prescription allows
///   [248..255] cancelled  1 once the whole batch was withdrawn
///
/// A zero word means "no such batch".
type BatchWord is uint256;

/// @dev The only code that knows the bit layout of {BatchWord}.
library BatchRecord {
    uint256 private constant _ISSUED_AT_SHIFT = 160;
    uint256 private constant _EXPIRES_AT_SHIFT = 200;
    uint256 private constant _FILLS_SHIFT = 240;
    uint256 private constant _CANCELLED_SHIFT = 248;
    uint256 private constant _ADDRESS_MASK = (1 << 160) - 1;
    uint256 private constant _UINT40_MASK = (1 << 40) - 1;

    function pack(address hospital_, uint40 issuedAt_, uint40 expiresAt_, uint8 fills_) internal pure returns (BatchWord) {
        return BatchWord.wrap(
            uint256(uint160(hospital_)) | (uint256(issuedAt_) << _ISSUED_AT_SHIFT) | (uint256(expiresAt_) << _EXPIRES_AT_SHIFT)
                | (uint256(fills_) << _FILLS_SHIFT)
        );
    }

    function isEmpty(BatchWord self) internal pure returns (bool) {
        return BatchWord.unwrap(self) == 0;
    }

    function hospital(BatchWord self) internal pure returns (address) {
        return address(uint160(BatchWord.unwrap(self) & _ADDRESS_MASK));
    }

    function issuedAt(BatchWord self) internal pure returns (uint40) {
        return uint40((BatchWord.unwrap(self) >> _ISSUED_AT_SHIFT) & _UINT40_MASK);
    }

    function expiresAt(BatchWord self) internal pure returns (uint40) {
        return uint40((BatchWord.unwrap(self) >> _EXPIRES_AT_SHIFT) & _UINT40_MASK);
    }

    function fills(BatchWord self) internal pure returns (uint8) {
        return uint8(BatchWord.unwrap(self) >> _FILLS_SHIFT);
    }

    function isCancelled(BatchWord self) internal pure returns (bool) {
        return BatchWord.unwrap(self) >> _CANCELLED_SHIFT != 0;
    }

    function cancelled(BatchWord self) internal pure returns (BatchWord) {
        return BatchWord.wrap(BatchWord.unwrap(self) | (uint256(1) << _CANCELLED_SHIFT));
    }
}
