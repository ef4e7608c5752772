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
/// Member roles (doctor, pharmacy, courier, auditor, hospital, manufacturer, insurer) keep AccessControl's API and events
/// (hasRole, revokeRole, renounceRole, onlyRole, RoleGranted, RoleRevoked), but their state lives in
/// one packed word per member — role bits, credential end date, and the admitting hospital — so
/// that every guarded call checks role and credential with a single storage read.
// Slither's incorrect-equality detector flags `==` on values read from storage in functions that also
// read the block time, to catch balance checks an attacker can skew. Here the compared values are role
// bit masks this contract alone writes (`roles == 0`: no role; `roles & bit == 0`: not that role),
// which nobody can move by sending ether or tokens.
// slither-disable-start incorrect-equality
abstract contract ConsortiumRoles is AccessControlDefaultAdminRules, IConsortiumRoles {
    /// @notice Role ids (keccak256 of their names).
    bytes32 public constant DOCTOR_ROLE = keccak256("DOCTOR_ROLE");
    bytes32 public constant PHARMACY_ROLE = keccak256("PHARMACY_ROLE");
    bytes32 public constant COURIER_ROLE = keccak256("COURIER_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    bytes32 public constant HOSPITAL_ROLE = keccak256("HOSPITAL_ROLE");
    bytes32 public constant MANUFACTURER_ROLE = keccak256("MANUFACTURER_ROLE");
    bytes32 public constant INSURER_ROLE = keccak256("INSURER_ROLE");

    // Role bits in Member.roles.
    uint8 internal constant _DOCTOR = 1;
    uint8 internal constant _PHARMACY = 2;
    uint8 internal constant _COURIER = 4;
    uint8 internal constant _AUDITOR = 8;
    uint8 internal constant _HOSPITAL = 16;
    uint8 internal constant _MANUFACTURER = 32;
    uint8 internal constant _INSURER = 64;

    /// @dev A member's one storage word: its {IConsortiumRoles-Member} record, plus when its current
    /// uninterrupted credential began (`since`) and whether the regulator barred it (`barred`: a
    /// hospital cannot re-admit it until the regulator allows it back). 8 + 40 + 160 + 40 + 8 bits.
    struct Credential {
        uint8 roles;
        uint40 validUntil;
        address hospital;
        uint40 since;
        bool barred;
    }

    mapping(address account => Credential) private _members;

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

        Credential memory m = _members[account];
        if (bit == _DOCTOR) {
            uint40 hospitalEnd = _validUntilOf(_checkMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL));
            if (m.barred) revert BarredByRegulator(account);
            if (m.roles & ~_DOCTOR != 0) revert HoldsOtherRoles(account, m.roles);
            if (m.roles & _DOCTOR != 0 && m.hospital != _msgSender()) {
                revert NotDoctorsHospital(_msgSender(), account);
            }
            if (validUntil > hospitalEnd) {
                revert CredentialOutlivesHospital(account, validUntil, _msgSender(), hospitalEnd);
            }
            m.hospital = _msgSender();
        } else {
            _checkRole(DEFAULT_ADMIN_ROLE);
            m.barred = false; // the regulator's own admission lets a barred member back
        }
        // A new role, or a credential that had lapsed, starts a new uninterrupted credential.
        if (m.roles & bit == 0 || m.validUntil < block.timestamp) m.since = uint40(block.timestamp);
        m.roles |= bit;
        m.validUntil = validUntil;
        _members[account] = m;

        emit RoleGranted(role, account, _msgSender());
        emit MemberAdmitted(account, role, _msgSender(), m.hospital, validUntil);
    }

    /// @inheritdoc IConsortiumRoles
    function renewMember(address account, uint40 validUntil) external {
        Credential memory m = _members[account];
        if (m.roles == 0) revert NotAMember(account);
        if (validUntil <= block.timestamp) revert InvalidCredentialEnd(validUntil, block.timestamp);
        if (!hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            _checkDoctorsHospital(account, m);
            // One end date covers all of a member's roles: the hospital may move it only for a doctor alone.
            if (m.roles != _DOCTOR) revert HoldsOtherRoles(account, m.roles);
        }
        if (m.roles & _DOCTOR != 0) {
            // Not even the regulator gives a doctor a licence longer than its hospital's.
            uint40 hospitalEnd = _members[m.hospital].validUntil;
            if (validUntil > hospitalEnd) revert CredentialOutlivesHospital(account, validUntil, m.hospital, hospitalEnd);
        }

        if (m.validUntil < block.timestamp) m.since = uint40(block.timestamp); // lapsed: a new credential
        m.validUntil = validUntil;
        _members[account] = m;
        emit CredentialRenewed(account, _msgSender(), validUntil);
    }

    /// @notice Revokes `role` from `account` at once.
    /// @dev The regulator revokes any role, and a member role it revokes bars the account: no hospital
    /// can admit it again until the regulator does, or allows it back ({allowReadmission}). A hospital
    /// in good standing revokes its own doctors (no bar: it may admit them again).
    /// The regulator's revocation of the doctor role bars an account that was ever a doctor even when
    /// it no longer holds the role: a hospital that saw the revocation pending and removed its doctor
    /// first (or a doctor that renounced) must not be left free to admit it again.
    /// Emits {IAccessControl-RoleRevoked}, and {MemberBarred} when the regulator revokes a member role.
    function revokeRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == DOCTOR_ROLE && !hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            _checkDoctorsHospital(account, _members[account]);
            _revokeRole(role, account);
            return;
        }
        Credential memory before = _members[account];
        super.revokeRole(role, account);
        if (_members[account].roles != before.roles || (role == DOCTOR_ROLE && before.hospital != address(0))) {
            // A member role the regulator took away: the account stays out until the regulator says so.
            _members[account].barred = true;
            emit MemberBarred(account, _msgSender());
        }
    }

    /// @inheritdoc IConsortiumRoles
    function allowReadmission(address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!_members[account].barred) revert NotBarred(account);
        _members[account].barred = false;
        emit ReadmissionAllowed(account, _msgSender());
    }

    /// @inheritdoc IConsortiumRoles
    function member(address account) external view returns (Member memory) {
        Credential memory m = _members[account];
        return Member(m.roles, m.validUntil, m.hospital);
    }

    /// @inheritdoc IConsortiumRoles
    function admission(address account) external view returns (uint40 since, bool barred) {
        Credential memory m = _members[account];
        return (m.since, m.barred);
    }

    /// @inheritdoc IConsortiumRoles
    function isMemberInGoodStanding(address account, bytes32 role) external view returns (bool) {
        return hasRole(role, account);
    }

    /// @notice True if `account` holds `role`; for member roles, only while its credential lasts, and
    /// for a doctor only while its hospital's lasts too.
    function hasRole(bytes32 role, address account)
        public
        view
        override(AccessControl, IAccessControl)
        returns (bool)
    {
        if (role == DEFAULT_ADMIN_ROLE) return super.hasRole(role, account);
        uint8 bit = _roleBitOrZero(role);
        if (bit == 0) return false;
        Credential memory m = _members[account];
        if (m.roles & bit == 0 || block.timestamp > m.validUntil) return false;
        return bit != _DOCTOR || _isLiveHospital(m.hospital);
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
        Credential storage m = _members[account];
        if (m.roles & bit == 0) return false;
        m.roles &= ~bit;
        emit RoleRevoked(role, account, _msgSender());
        return true;
    }

    /// @dev The member record of `account`.
    function _memberRecord(address account) internal view returns (Credential memory) {
        return _members[account];
    }

    /// @dev Reverts unless `account` holds `role` (bit `bit`) with a live credential; returns its
    /// {Credential} storage word, read once (the guarded calls' hot path: no unpacking into memory).
    function _checkMember(address account, bytes32 role, uint8 bit) internal view returns (uint256 word) {
        word = _word(account);
        if (uint8(word) & bit == 0) revert AccessControlUnauthorizedAccount(account, role);
        uint40 validUntil = _validUntilOf(word);
        if (block.timestamp > validUntil) revert CredentialExpired(account, role, validUntil);
    }

    /// @dev Reverts unless `account` is a doctor with a live licence whose hospital is in good standing
    /// (a revoked or lapsed hospital's doctors are refused at once); returns its hospital.
    function _checkDoctor(address account) internal view returns (address hospital) {
        hospital = _hospitalOf(_checkMember(account, DOCTOR_ROLE, _DOCTOR));
        _checkLiveHospital(account, hospital);
    }

    /// @dev Reverts unless `hospital`, the hospital of `doctor`, holds the hospital role with a live credential.
    function _checkLiveHospital(address doctor, address hospital) internal view {
        if (!_isLiveHospital(hospital)) revert HospitalNotInGoodStanding(doctor, hospital);
    }

    function _isLiveHospital(address hospital) private view returns (bool) {
        uint256 word = _word(hospital);
        return uint8(word) & _HOSPITAL != 0 && block.timestamp <= _validUntilOf(word);
    }

    /// @dev The raw storage word of `account`'s {Credential}: roles in bits 0..7, validUntil 8..47,
    /// hospital 48..207, since 208..247, barred 248..255 (Solidity's packing of the struct).
    function _word(address account) private view returns (uint256 word) {
        Credential storage m = _members[account];
        assembly ("memory-safe") {
            word := sload(m.slot)
        }
    }

    function _validUntilOf(uint256 word) private pure returns (uint40) {
        return uint40(word >> 8);
    }

    function _hospitalOf(uint256 word) private pure returns (address) {
        return address(uint160(word >> 48));
    }

    /// @dev Reverts unless the caller is `doctor`'s hospital, in good standing.
    function _checkDoctorsHospital(address doctor, Credential memory m) private view {
        if (m.roles & _DOCTOR == 0 || m.hospital != _msgSender()) revert NotDoctorsHospital(_msgSender(), doctor);
        _checkMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
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
        if (role == MANUFACTURER_ROLE) return _MANUFACTURER;
        if (role == INSURER_ROLE) return _INSURER;
        return 0;
    }
}
// slither-disable-end incorrect-equality
