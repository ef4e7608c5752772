// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The account-permissioning interface a Hyperledger Besu node calls before it accepts a transaction.
/// @notice Besu (with --permissions-accounts-contract-enabled) calls this as a view for every
/// transaction it would add to its pool or a block. Besu has deprecated contract permissioning; the
/// consortium kit also generates local allowlist files from the same registry (see docs/).
interface IAccountPermissioning {
    /// @notice True if `sender` may send this transaction (`target` zero: a contract creation).
    function transactionAllowed(
        address sender,
        address target,
        uint256 value,
        uint256 gasPrice,
        uint256 gasLimit,
        bytes calldata payload
    ) external view returns (bool);
}
