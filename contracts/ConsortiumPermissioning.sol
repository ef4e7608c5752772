// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {IAccountPermissioning} from "./interfaces/IAccountPermissioning.sol";
import {IConsortiumRoles} from "./interfaces/IConsortiumRoles.sol";

/// @title Besu account permissioning backed by the consortium's role registry.
/// @notice Who may transact on the consortium's chain follows membership at once:
/// - the regulator may send anything, including contract creations (deployments);
/// - the pending regulator of a two-step handover may call the registry's acceptDefaultAdminTransfer,
///   and nothing else (so the handover completes on a chain that enforces this contract);
/// - a member in good standing (any role, credential not ended) may call existing contracts; a doctor
///   only while its hospital is in good standing too;
/// - an expired or revoked member, a doctor of a revoked or lapsed hospital, or a stranger, may not
///   transact at all.
/// @dev Stateless: every answer is read from the registry, so admitting, renewing or revoking a
/// member there changes what this contract allows in the same block.
/// Besu versions: only Besu up to 25.5 calls a contract like this one (the
/// --permissions-accounts-contract-* options, deprecated in 24.11/24.12, removed in 25.6.0). On
/// current Besu the same rules hold through local allowlists kept in step by `rx network follow`.
contract ConsortiumPermissioning is IAccountPermissioning {
    bytes32 private constant _REGULATOR_ROLE = 0x00;
    uint8 private constant _DOCTOR = 1;
    uint8 private constant _HOSPITAL = 16;

    /// @notice The role registry (the PrescriptionRegistry deployment) this contract reads.
    IConsortiumRoles public immutable registry;

    /// @notice The registry address must not be zero.
    error ZeroRegistry();

    constructor(IConsortiumRoles registry_) {
        if (address(registry_) == address(0)) revert ZeroRegistry();
        registry = registry_;
    }

    /// @inheritdoc IAccountPermissioning
    function transactionAllowed(address sender, address target, uint256, uint256, uint256, bytes calldata data)
        external
        view
        returns (bool)
    {
        if (registry.hasRole(_REGULATOR_ROLE, sender)) return true;
        if (target == address(0)) return false;
        if (target == address(registry) && data.length >= 4
                && bytes4(data[:4]) == IAccessControlDefaultAdminRules.acceptDefaultAdminTransfer.selector) {
            // The schedule is not needed: before it, the registry itself refuses the acceptance.
            // slither-disable-next-line unused-return
            (address pending,) = IAccessControlDefaultAdminRules(address(registry)).pendingDefaultAdmin();
            if (pending != address(0) && sender == pending) return true;
        }
        IConsortiumRoles.Member memory m = registry.member(sender);
        if (m.roles == 0 || block.timestamp > m.validUntil) return false;
        if (m.roles != _DOCTOR) return true; // another role the regulator granted
        // A doctor's standing is its hospital's too: a revoked hospital's doctors stop at once.
        IConsortiumRoles.Member memory h = registry.member(m.hospital);
        return h.roles & _HOSPITAL != 0 && block.timestamp <= h.validUntil;
    }
}
