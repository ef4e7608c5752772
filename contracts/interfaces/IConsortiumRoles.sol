// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @title The consortium's membership: roles with credentials that expire.
/// @notice The regulator (OpenZeppelin's DEFAULT_ADMIN_ROLE, transferred in two steps with a delay)
/// admits hospitals, pharmacies, couriers, auditors, drug manufacturers and insurers; a hospital admits and removes its own
/// doctors. Every member's credential (a licence) has an end date: an expired or revoked member is
/// refused at once, and {IAccessControl-hasRole} answers false for it.
interface IConsortiumRoles is IAccessControl {
    /// @notice A member's record: the roles it holds (bit mask), its credential end date, and for a
    /// doctor the hospital that admitted it.
    struct Member {
        uint8 roles;
        uint40 validUntil;
        address hospital;
    }

    /// @notice `account` was admitted to `role` (or its credential renewed through a new admission).
    event MemberAdmitted(
        address indexed account, bytes32 indexed role, address indexed admittedBy, address hospital, uint40 validUntil
    );

    /// @notice `account`'s credential now ends at `validUntil`.
    event CredentialRenewed(address indexed account, address indexed renewedBy, uint40 validUntil);

    /// @notice The regulator revoked a role of `account` (`by`, the regulator): no hospital may admit it
    /// again until the regulator lets it back.
    event MemberBarred(address indexed account, address indexed by);

    /// @notice The regulator (`by`) lifted the bar on `account`: its hospital may admit it again.
    event ReadmissionAllowed(address indexed account, address indexed by);

    /// @notice `role` is not one of the consortium's member roles.
    error UnknownRole(bytes32 role);

    /// @notice A credential must end in the future: `validUntil` is not after `nowTime`.
    error InvalidCredentialEnd(uint40 validUntil, uint256 nowTime);

    /// @notice `account` holds `role`, but its credential ended at `validUntil`.
    error CredentialExpired(address account, bytes32 role, uint40 validUntil);

    /// @notice `account` holds no member role.
    error NotAMember(address account);

    /// @notice The zero address cannot be a member.
    error ZeroAddressMember();

    /// @notice Only the doctor's own hospital (or the regulator) may manage doctor `doctor`.
    error NotDoctorsHospital(address caller, address doctor);

    /// @notice A hospital manages doctors only: `account` holds other roles (mask `roles`), whose
    /// credential only the regulator may change.
    error HoldsOtherRoles(address account, uint8 roles);

    /// @notice Member roles carry a credential end date: use {admitMember} instead of grantRole.
    error UseAdmitMember(bytes32 role);

    /// @notice Doctor `doctor`'s hospital `hospital` is revoked or its credential ended: its doctors
    /// (and its batches) are refused until the regulator restores it.
    error HospitalNotInGoodStanding(address doctor, address hospital);

    /// @notice Doctor `account`'s licence would end at `validUntil`, after its hospital `hospital`'s
    /// credential (`hospitalValidUntil`): no doctor's licence outlives its hospital's.
    error CredentialOutlivesHospital(address account, uint40 validUntil, address hospital, uint40 hospitalValidUntil);

    /// @notice The regulator revoked `account`: only the regulator may let it back ({allowReadmission}).
    error BarredByRegulator(address account);

    /// @notice `account` is not barred: there is nothing to allow.
    error NotBarred(address account);

    /// @notice Admits `account` to `role` until `validUntil` (a unix time).
    /// @dev The regulator admits hospitals, pharmacies, couriers, auditors, manufacturers and insurers (and so lifts a bar it
    /// set); a hospital in good standing admits doctors, which then belong to it (never an account
    /// holding another role: one credential end date covers all of a member's roles), never one the
    /// regulator barred ({BarredByRegulator}), and never beyond its own credential's end
    /// ({CredentialOutlivesHospital}). Re-admitting an existing member adds the role and replaces the
    /// credential end date. A new role, or a lapsed credential, starts a new uninterrupted credential
    /// ({admission}: `since`).
    ///
    /// Requirements:
    /// - the caller is the regulator, or a hospital in good standing when `role` is DOCTOR_ROLE;
    /// - `role` is a member role, `account` is not zero, `validUntil` is in the future.
    ///
    /// Emits {MemberAdmitted} and {IAccessControl-RoleGranted}.
    function admitMember(address account, bytes32 role, uint40 validUntil) external;

    /// @notice Moves `account`'s credential end date to `validUntil`.
    /// @dev Requirements: the caller is the regulator, or the doctor's own hospital in good standing;
    /// `validUntil` is in the future, and for a doctor not after its hospital's credential ends.
    /// Renewing a lapsed credential starts a new uninterrupted one. Emits {CredentialRenewed}.
    function renewMember(address account, uint40 validUntil) external;

    /// @notice Lets a member the regulator barred (by revoking a role) be admitted by its hospital again.
    /// @dev Regulator only; reverts with {NotBarred} when `account` is not barred. Emits {ReadmissionAllowed}.
    function allowReadmission(address account) external;

    /// @notice The member record of `account` (zero when it never was one).
    function member(address account) external view returns (Member memory);

    /// @notice When `account`'s current uninterrupted credential began (`since`: a batch names a doctor
    /// only if this is no later than the batch), and whether the regulator barred it.
    function admission(address account) external view returns (uint40 since, bool barred);

    /// @notice True if `account` holds `role` and its credential has not ended (for a doctor: nor its
    /// hospital's).
    function isMemberInGoodStanding(address account, bytes32 role) external view returns (bool);

    /// @notice The role ids.
    function DOCTOR_ROLE() external view returns (bytes32);
    function PHARMACY_ROLE() external view returns (bytes32);
    function COURIER_ROLE() external view returns (bytes32);
    function AUDITOR_ROLE() external view returns (bytes32);
    function HOSPITAL_ROLE() external view returns (bytes32);
    function MANUFACTURER_ROLE() external view returns (bytes32);
    function INSURER_ROLE() external view returns (bytes32);
}
