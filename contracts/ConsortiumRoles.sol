// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IConsortiumRoles} from "./interfaces/IConsortiumRoles.sol";

/// @title The consortium's roles and credentials, on OpenZeppelin AccessControl.
/// @dev The regulator is OpenZeppelin's DEFAULT_ADMIN_ROLE with AccessControlDefaultAdminRules (one
/// admin, transferred in two steps after a delay): the one key that could break everything.
///
/// Member roles (doctor, pharmacy, courier, auditor, hospital) keep AccessControl's API and events
/// (hasRole, revokeRole, renounceRole, onlyRole, RoleGranted, RoleRevoked), but their state lives in
/// one packed word per member — role bits, credential end date, and the admitting hospital — so
/// that every guarded call checks role and credential with a single storage read.
abstract contract ConsortiumRoles is AccessControlDefaultAdminRules, IConsortiumRoles {
    /// @notice Role ids (keccak256 of their names).
    bytes32 public constant DOCTOR_ROLE = keccak256("DOCTOR_ROLE");
    bytes32 public constant PHARMACY_ROLE = keccak256("PHARMACY_ROLE");
    bytes32 public constant COURIER_ROLE = keccak256("COURIER_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    bytes32 public constant HOSPITAL_ROLE = keccak256("HOSPITAL_ROLE");

    // Role bits in Member.roles.
    uint8 internal constant _DOCTOR = 1;
    uint8 internal constant _PHARMACY = 2;
    uint8 internal constant _COURIER = 4;
    uint8 internal constant _AUDITOR = 8;
    uint8 internal constant _HOSPITAL = 16;

    mapping(address account => Member) private _members;

    /// @param regulator the first regulator (DEFAULT_ADMIN_ROLE)
    /// @param adminTransferDelay seconds a regulator handover waits before it can be accepted
    constructor(address regulator, uint48 adminTransferDelay)
        AccessControlDefaultAdminRules(adminTransferDelay, regulator)
    {}

    /// @inheritdoc IConsortiumRoles
    function admitMember(address account, bytes32 role, uint40 validUntil) external {
        uint8 bit = _roleBit(role);
        if (account == address(0)) revert ZeroAddressMember();
        if (validUntil <= block.timestamp) revert InvalidCredentialEnd(validUntil, block.timestamp);

        Member memory m = _members[account];
        if (bit == _DOCTOR) {
            _requireMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
            if (m.roles & ~_DOCTOR != 0) revert HoldsOtherRoles(account, m.roles);
            if (m.roles & _DOCTOR != 0 && m.hospital != _msgSender()) {
                revert NotDoctorsHospital(_msgSender(), account);
            }
            m.hospital = _msgSender();
        } else {
            _checkRole(DEFAULT_ADMIN_ROLE);
        }
        m.roles |= bit;
        m.validUntil = validUntil;
        _members[account] = m;

        emit RoleGranted(role, account, _msgSender());
        emit MemberAdmitted(account, role, _msgSender(), m.hospital, validUntil);
    }

    /// @inheritdoc IConsortiumRoles
    function renewMember(address account, uint40 validUntil) external {
        Member memory m = _members[account];
        if (m.roles == 0) revert NotAMember(account);
        if (validUntil <= block.timestamp) revert InvalidCredentialEnd(validUntil, block.timestamp);
        if (!hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            _checkDoctorsHospital(account, m);
            // One end date covers all of a member's roles: the hospital may move it only for a doctor alone.
            if (m.roles != _DOCTOR) revert HoldsOtherRoles(account, m.roles);
        }

        _members[account].validUntil = validUntil;
        emit CredentialRenewed(account, _msgSender(), validUntil);
    }

    /// @notice Revokes `role` from `account` at once.
    /// @dev The regulator revokes any role; a hospital in good standing revokes its own doctors.
    /// Emits {IAccessControl-RoleRevoked}.
    function revokeRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == DOCTOR_ROLE && !hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            _checkDoctorsHospital(account, _members[account]);
            _revokeRole(role, account);
            return;
        }
        super.revokeRole(role, account);
    }

    /// @inheritdoc IConsortiumRoles
    function member(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @inheritdoc IConsortiumRoles
    function isMemberInGoodStanding(address account, bytes32 role) external view returns (bool) {
        return hasRole(role, account);
    }

    /// @notice True if `account` holds `role`; for member roles, only while its credential lasts.
    function hasRole(bytes32 role, address account)
        public
        view
        override(AccessControl, IAccessControl)
        returns (bool)
    {
        if (role == DEFAULT_ADMIN_ROLE) return super.hasRole(role, account);
        uint8 bit = _roleBitOrZero(role);
        if (bit == 0) return false;
        Member memory m = _members[account];
        return m.roles & bit != 0 && block.timestamp <= m.validUntil;
    }

    /// @dev Member roles are granted only with a credential end date, through {admitMember}.
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if (role != DEFAULT_ADMIN_ROLE) revert UseAdmitMember(role);
        return super._grantRole(role, account);
    }

    /// @dev Clears a member role bit (or revokes the regulator role through OpenZeppelin's rules).
    function _revokeRole(bytes32 role, address account) internal override returns (bool) {
        if (role == DEFAULT_ADMIN_ROLE) return super._revokeRole(role, account);
        uint8 bit = _roleBit(role);
        Member storage m = _members[account];
        if (m.roles & bit == 0) return false;
        m.roles &= ~bit;
        emit RoleRevoked(role, account, _msgSender());
        return true;
    }

    /// @dev The member record of `account`.
    function _memberRecord(address account) internal view returns (Member memory) {
        return _members[account];
    }

    /// @dev Reverts unless `account` holds `role` (bit `bit`) with a live credential; returns its record.
    function _requireMember(address account, bytes32 role, uint8 bit) internal view returns (Member memory m) {
        m = _members[account];
        if (m.roles & bit == 0) revert AccessControlUnauthorizedAccount(account, role);
        if (block.timestamp > m.validUntil) revert CredentialExpired(account, role, m.validUntil);
    }

    /// @dev Reverts unless the caller is `doctor`'s hospital, in good standing.
    function _checkDoctorsHospital(address doctor, Member memory m) private view {
        if (m.roles & _DOCTOR == 0 || m.hospital != _msgSender()) revert NotDoctorsHospital(_msgSender(), doctor);
        _requireMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
    }

    function _roleBit(bytes32 role) private pure returns (uint8 bit) {
        bit = _roleBitOrZero(role);
        if (bit == 0) revert UnknownRole(role);
    }

    function _roleBitOrZero(bytes32 role) private pure returns (uint8) {
        if (role == DOCTOR_ROLE) return _DOCTOR;
        if (role == PHARMACY_ROLE) return _PHARMACY;
        if (role == COURIER_ROLE) return _COURIER;
        if (role == AUDITOR_ROLE) return _AUDITOR;
        if (role == HOSPITAL_ROLE) return _HOSPITAL;
        return 0;
    }
}
