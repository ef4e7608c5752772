"""The off-chain prescription document: build, validate, canonicalise, hash.

Only the keccak256 hash of this document goes on chain; the document itself
travels to the patient inside the QR payload (see :mod:`rxchain.core.payload`).

Representation
==============

A prescription is a FHIR R4 ``Bundle`` of ``type: "collection"`` holding one
``MedicationRequest`` per drug (1..N entries, N capped by
:class:`PrescriptionLimits`). One request per drug is how FHIR itself models a
multi-drug prescription: every drug then carries its own medication code,
dosage, quantity and supply duration, while the facts that belong to the
prescription as a whole are repeated in every entry and must agree (checked by
:func:`validate`, :class:`InconsistentItems` otherwise). Structure is checked
with the ``fhir.resources`` R4B models (schema-compatible with R4 for every
element used here); at the API edges the document is always a plain JSON
``dict``, because that dict is what gets canonicalised and hashed.

Bundle level::

    {"resourceType": "Bundle", "type": "collection",
     "identifier": {"system": "urn:rxchain:salt", "value": "<32 lowercase hex digits>"},
     "entry": [{"resource": <MedicationRequest>}, ...]}

The identifier is the SALT: 128 random bits that make the document hash
impossible to dictionary-attack (the drugs, dosages and the doctor's address
are guessable; the salt is not). It doubles as a unique document id.

Each ``MedicationRequest``::

    status "active", intent "order"
    priority                    "routine", or "stat" for an emergency prescription
                                ("urgent" and "asap" are also read as emergency)
    medicationCodeableConcept   {"coding": [{"system", "code", "display"?}], "text"}
    subject                     {"identifier": {"system": "urn:rxchain:pseudonym", "value": <token>}}
                                pseudonymous patient: no display, no reference, no name
    authoredOn                  the start of the validity period
    requester                   {"identifier": {"system": "urn:rxchain:account", "value": <doctor address>}}
    dosageInstruction[0]        {"text", "timing": {"repeat": {"frequency", "period", "periodUnit"}}}
    dispenseRequest
      validityPeriod            {"start", "end"}  FHIR dateTimes with a UTC offset
      quantity                  {"value", "unit"}
      expectedSupplyDuration    {"value": <days>, "unit": "days", "system": UCUM, "code": "d"}
      performer?                {"identifier": {"system": "urn:rxchain:account", "value": <pharmacy address>}}
                                present only when the prescription is for one designated pharmacy

The emergency flag is the FHIR ``priority`` rather than an extension: it is a
standard element every FHIR reader understands, and an emergency prescription
is exactly a request that must be acted on immediately.

Hashing
=======

:func:`canonical_bytes` is the RFC 8785 (JSON Canonicalization Scheme)
serialisation of the dict and :func:`document_hash` its keccak256. Key order
and whitespace never change the hash; any change of content does. Numbers are
compared as JSON numbers, so ``10`` and ``10.0`` are the same value.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError

from rxchain.core.strictjson import MAX_JSON_DEPTH, loads_strict
from rxchain.core.ids import is_valid_address
from rxchain.errors import BadInput

__all__ = [
    "ACCOUNT_SYSTEM",
    "DEFAULT_LIMITS",
    "EMERGENCY_PRIORITIES",
    "MAX_JSON_DEPTH",
    "PSEUDONYM_SYSTEM",
    "SALT_SYSTEM",
    "UCUM_SYSTEM",
    "DocumentError",
    "InconsistentItems",
    "InvalidAddress",
    "InvalidField",
    "InvalidSalt",
    "InvalidValidityPeriod",
    "MedicationSpec",
    "MissingField",
    "NotAPrescription",
    "NotPlainJSON",
    "PatientDataInDocument",
    "PrescriptionLimits",
    "SupplyTooLong",
    "TooManyDrugs",
    "ValidatedMedication",
    "ValidatedPrescription",
    "ValidityTooLong",
    "build_prescription",
    "canonical_bytes",
    "document_hash",
    "dump_document",
    "load_document",
    "new_patient_pseudonym",
    "prescription_parties",
    "validate",
]

ACCOUNT_SYSTEM = "urn:rxchain:account"
"""Identifier system of a chain account (doctor, pharmacy); the value is the 0x address."""

PSEUDONYM_SYSTEM = "urn:rxchain:pseudonym"
"""Identifier system of the pseudonymous patient token."""

SALT_SYSTEM = "urn:rxchain:salt"
"""Identifier system of the Bundle's 128-bit random salt."""

UCUM_SYSTEM = "http://unitsofmeasure.org"
"""UCUM, the unit system of the supply duration."""

EMERGENCY_PRIORITIES = frozenset({"urgent", "asap", "stat"})
"""FHIR request priorities read as an emergency prescription (build writes "stat")."""

_ROUTINE = "routine"
_EMERGENCY = "stat"
_SALT_BYTES = 16


# --------------------------------------------------------------------------- exceptions


class DocumentError(BadInput, ValueError):
    """Base class of every problem found in a prescription document."""


class NotAPrescription(DocumentError):
    """The input is not a prescription document (wrong resourceType, not parseable, bad FHIR structure)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not a prescription document: {reason}")


class NotPlainJSON(DocumentError):
    """The document holds values JSON cannot represent canonically (NaN, huge integers, non-string keys...)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the document cannot be canonicalised as JSON: {reason}")


class MissingField(DocumentError):
    """A required element is absent; ``field`` is its path, e.g. ``entry[0].resource.dispenseRequest.quantity``."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"required field missing: {field}")


class InvalidField(DocumentError):
    """An element is present but has the wrong type or an unacceptable value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field} ({_short_repr(value)}): {reason}")


class InvalidAddress(InvalidField):
    """A chain address (doctor, pharmacy) is not a valid 0x address."""

    def __init__(self, field: str, value: Any) -> None:
        super().__init__(
            field, value, "expected a 0x address of 40 hex digits (a mixed-case address must have a valid checksum)"
        )


class InvalidSalt(InvalidField):
    """The salt is not 128 random bits written as 32 lowercase hex digits."""

    def __init__(self, value: Any) -> None:
        super().__init__("identifier.value", value, "the salt must be 32 lowercase hex digits (128 bits)")


class TooManyDrugs(DocumentError):
    """The prescription lists more drugs than the limit allows."""

    def __init__(self, count: int, maximum: int) -> None:
        self.count = count
        self.maximum = maximum
        super().__init__(
            f"a prescription may list at most {maximum} drugs, this one lists {count}:"
            " split it into several prescriptions"
        )


class SupplyTooLong(DocumentError):
    """A drug's supply duration exceeds the limit (the emergency limit for an emergency prescription)."""

    def __init__(self, days: int | float, maximum: int, emergency: bool, field: str = "") -> None:
        self.days = days
        self.maximum = maximum
        self.emergency = emergency
        self.field = field
        kind = "an emergency prescription" if emergency else "a prescription"
        super().__init__(f"{kind} may supply at most {maximum} days, {field or 'a drug'} supplies {days} days")


class ValidityTooLong(DocumentError):
    """The validity period is longer than the limit allows."""

    def __init__(self, days: int, maximum: int) -> None:
        self.days = days
        self.maximum = maximum
        super().__init__(f"a prescription may be valid for at most {maximum} days, this one is valid for {days} days")


class InvalidValidityPeriod(DocumentError):
    """The validity period is malformed: unparseable dates, no UTC offset, or end not after start."""

    def __init__(self, start: Any, end: Any, reason: str) -> None:
        self.start = start
        self.end = end
        self.reason = reason
        super().__init__(f"invalid validity period ({_short_repr(start)} to {_short_repr(end)}): {reason}")


class InconsistentItems(DocumentError):
    """The drugs of one prescription disagree on a prescription-wide fact (doctor, patient, dates...)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"all drugs of one prescription must have the same {field}")


class ElementNotAllowed(NotAPrescription):
    """The document carries an element the closed profile does not list (the QR is read by every
    pharmacy and courier: only what they need may travel in it). The value is not repeated."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: this element is not part of rxchain's prescription profile (drugs, dosage, quantity, supply, "
            "validity, requester, performer, a pseudonym, the salt and the diagnosis); remove it"
        )


class PatientDataInDocument(DocumentError):
    """The subject identifies the patient (name, national id...) instead of carrying a pseudonym.

    The offending value is deliberately not repeated in the message.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(
            f"{field}: {reason}; the document must identify the patient only by a pseudonymous token"
            " (rx issue --drug makes one; in Python, rxchain.core.document.new_patient_pseudonym())"
        )


# --------------------------------------------------------------------------- public types


class PrescriptionLimits(BaseModel):
    """Prescription limits; the defaults follow China's prescription administration rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_drugs: PositiveInt = 5
    """Most drugs on one prescription."""
    max_supply_days: PositiveInt = 7
    """Longest supply of any drug on a routine prescription, in days."""
    max_supply_days_emergency: PositiveInt = 3
    """Longest supply of any drug on an emergency prescription, in days."""
    max_validity_days: PositiveInt = 3
    """Longest validity period, in days."""

    def supply_limit(self, emergency: bool) -> int:
        """Return the supply-day limit that applies to a routine or emergency prescription."""
        return self.max_supply_days_emergency if emergency else self.max_supply_days


DEFAULT_LIMITS = PrescriptionLimits()
"""The default :class:`PrescriptionLimits`."""


@dataclass(frozen=True)
class MedicationSpec:
    """One drug to prescribe, as given to :func:`build_prescription`.

    ``frequency`` times per ``period`` ``period_unit`` (a FHIR/UCUM unit such
    as ``"d"`` or ``"h"``) is the structured timing behind ``dosage_text``.
    """

    code: str
    system: str
    text: str
    dosage_text: str
    quantity: int | float
    unit: str
    supply_days: int
    display: str | None = None
    frequency: int = 1
    period: int | float = 1
    period_unit: str = "d"


@dataclass(frozen=True)
class ValidatedMedication:
    """One drug of a validated prescription."""

    system: str
    code: str
    text: str
    dosage_text: str
    quantity: int | float
    unit: str
    supply_days: int


@dataclass(frozen=True)
class ValidatedPrescription:
    """Typed summary of a document that passed :func:`validate`."""

    doctor: str
    """Checksummed address of the prescribing doctor."""
    designated_pharmacy: str | None
    """Checksummed address of the designated pharmacy, or ``None`` for any pharmacy."""
    patient_pseudonym: str
    medications: tuple[ValidatedMedication, ...]
    supply_days: int
    """Longest supply duration of any drug, in days."""
    valid_from: datetime
    valid_until: datetime
    emergency: bool
    salt: str
    doc_hash: bytes
    """keccak256 of the canonical document, as registered on chain."""

    @property
    def medication_count(self) -> int:
        """Number of drugs on the prescription."""
        return len(self.medications)


# --------------------------------------------------------------------------- public functions


def new_patient_pseudonym() -> str:
    """Return a fresh random patient pseudonym (128 bits, URL-safe base64, 22 characters), drawn again
    in the rare case that it happens to look like a name, a date or a number (see :func:`validate`)."""
    while True:
        value = secrets.token_urlsafe(16)
        if _identifying_shape(value) is None:
            return value


def build_prescription(
    *,
    doctor: str,
    patient_pseudonym: str,
    medications: Sequence[MedicationSpec | Mapping[str, Any]],
    valid_from: datetime,
    valid_days: int = 1,
    designated_pharmacy: str | None = None,
    emergency: bool = False,
    salt: bytes | str | None = None,
    limits: PrescriptionLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Build a prescription document and check it with :func:`validate` before returning it.

    ``medications`` items are :class:`MedicationSpec` or mappings with the same
    keys. ``valid_from`` must carry a timezone; microseconds are dropped. The
    document is valid from ``valid_from`` for ``valid_days`` days. ``salt`` is
    16 bytes or 32 hex digits; a fresh random one is drawn when ``None``.
    Raises the same :class:`DocumentError` subclasses as :func:`validate`.
    """
    if not medications:
        raise MissingField("medications")
    specs = [_medication_spec(item, f"medications[{i}]") for i, item in enumerate(medications)]
    if not isinstance(valid_from, datetime) or valid_from.utcoffset() is None:
        raise InvalidValidityPeriod(valid_from, None, "valid_from must be a datetime with a timezone")
    if isinstance(valid_days, bool) or not isinstance(valid_days, int):
        raise InvalidValidityPeriod(valid_from, None, f"valid_days must be a whole number of days, got {valid_days!r}")
    start = valid_from.replace(microsecond=0)
    try:
        end = start + timedelta(days=valid_days)
    except OverflowError as exc:
        raise InvalidValidityPeriod(valid_from, None, f"valid_days {valid_days} is out of range") from exc
    start_text, end_text = start.isoformat(), end.isoformat()

    requester = _account_reference(_checked_address("doctor", doctor))
    subject = {"identifier": {"system": PSEUDONYM_SYSTEM, "value": patient_pseudonym}}
    performer = None
    if designated_pharmacy is not None:
        performer = _account_reference(_checked_address("designated_pharmacy", designated_pharmacy))

    entries = []
    for spec in specs:
        coding: dict[str, Any] = {"system": spec.system, "code": spec.code}
        if spec.display is not None:
            coding["display"] = spec.display
        dispense: dict[str, Any] = {
            "validityPeriod": {"start": start_text, "end": end_text},
            "quantity": {"value": spec.quantity, "unit": spec.unit},
            "expectedSupplyDuration": {"value": spec.supply_days, "unit": "days", "system": UCUM_SYSTEM, "code": "d"},
        }
        if performer is not None:
            dispense["performer"] = copy.deepcopy(performer)
        request = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "priority": _EMERGENCY if emergency else _ROUTINE,
            "medicationCodeableConcept": {"coding": [coding], "text": spec.text},
            "subject": copy.deepcopy(subject),
            "authoredOn": start_text,
            "requester": copy.deepcopy(requester),
            "dosageInstruction": [
                {
                    "text": spec.dosage_text,
                    "timing": {
                        "repeat": {"frequency": spec.frequency, "period": spec.period, "periodUnit": spec.period_unit}
                    },
                }
            ],
            "dispenseRequest": dispense,
        }
        entries.append({"resource": request})

    doc = {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"system": SALT_SYSTEM, "value": _salt_hex(salt)},
        "entry": entries,
    }
    validate(doc, limits)
    return doc


def validate(doc: Mapping[str, Any], limits: PrescriptionLimits = DEFAULT_LIMITS) -> ValidatedPrescription:
    """Check a prescription document against the format and the limits; return its typed summary.

    Checks, in order: it is a ``Bundle`` collection; the salt; the number of
    drugs; every drug's required fields, addresses and pseudonym; agreement of
    the prescription-wide facts across drugs; supply durations; the validity
    period; finally the full FHIR R4 structure (unknown or mistyped elements).
    Raises a :class:`DocumentError` subclass describing the first problem.
    """
    if not isinstance(doc, Mapping):
        raise NotAPrescription(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("resourceType") != "Bundle":
        raise NotAPrescription(f"resourceType is {_short_repr(doc.get('resourceType'))}, expected 'Bundle'")
    if _get(doc, "type", "type") != "collection":
        raise NotAPrescription(f"Bundle type is {_short_repr(doc.get('type'))}, expected 'collection'")

    identifier = _obj(_get(doc, "identifier", "identifier"), "identifier")
    if identifier.get("system") != SALT_SYSTEM:
        raise InvalidField(
            "identifier.system", identifier.get("system"), f"the salt identifier system is {SALT_SYSTEM}"
        )
    salt = _get(identifier, "value", "identifier.value")
    if not isinstance(salt, str) or not _SALT_RE.fullmatch(salt):
        raise InvalidSalt(salt)

    entries = _entries(doc)
    if len(entries) > limits.max_drugs:
        raise TooManyDrugs(len(entries), limits.max_drugs)
    items = [_read_item(resource, path) for path, resource in entries]

    first = items[0]
    for label, attr in (
        ("requester", "doctor"),
        ("dispenseRequest.performer", "pharmacy"),
        ("subject", "pseudonym"),
        ("priority", "priority"),
        ("dispenseRequest.validityPeriod", "validity"),
    ):
        if any(getattr(item, attr) != getattr(first, attr) for item in items[1:]):
            raise InconsistentItems(label)

    emergency = first.priority in EMERGENCY_PRIORITIES
    maximum = limits.supply_limit(emergency)
    for item in items:
        if item.medication.supply_days > maximum:
            raise SupplyTooLong(item.medication.supply_days, maximum, emergency, item.supply_field)

    start_text, end_text = first.validity
    valid_from = _parse_datetime(start_text, start_text, end_text)
    valid_until = _parse_datetime(end_text, start_text, end_text)
    if valid_until <= valid_from:
        raise InvalidValidityPeriod(start_text, end_text, "the end must be after the start")
    duration = valid_until - valid_from
    if duration > timedelta(days=limits.max_validity_days):
        raise ValidityTooLong(math.ceil(duration / timedelta(days=1)), limits.max_validity_days)

    _check_closed_profile(doc, _PROFILE, "")
    _check_fhir_structure(doc)

    return ValidatedPrescription(
        doctor=first.doctor,
        designated_pharmacy=first.pharmacy,
        patient_pseudonym=first.pseudonym,
        medications=tuple(item.medication for item in items),
        supply_days=max(item.medication.supply_days for item in items),
        valid_from=valid_from,
        valid_until=valid_until,
        emergency=emergency,
        salt=salt,
        doc_hash=document_hash(doc),
    )


def prescription_parties(doc: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return ``(doctor, designated_pharmacy or None)`` as checksummed addresses.

    A light read of only what the prescription id depends on, without the
    limits or the FHIR structure check; every drug must agree on both.
    Raises :class:`DocumentError` subclasses.
    """
    if not isinstance(doc, Mapping) or doc.get("resourceType") != "Bundle":
        raise NotAPrescription("expected a FHIR Bundle")
    parties = []
    for path, resource in _entries(doc):
        doctor = _account(_get(resource, "requester", f"{path}.requester"), f"{path}.requester")
        dispense = _obj(_get(resource, "dispenseRequest", f"{path}.dispenseRequest"), f"{path}.dispenseRequest")
        performer = dispense.get("performer")
        pharmacy = None if performer is None else _account(performer, f"{path}.dispenseRequest.performer")
        parties.append((doctor, pharmacy))
    if any(p[0] != parties[0][0] for p in parties):
        raise InconsistentItems("requester")
    if any(p[1] != parties[0][1] for p in parties):
        raise InconsistentItems("dispenseRequest.performer")
    return parties[0]


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """Return the RFC 8785 canonical JSON serialisation (UTF-8) of the document.

    Raises :class:`NotPlainJSON` for values JSON cannot represent canonically.
    """
    if not isinstance(doc, Mapping):
        raise NotAPrescription(f"expected a JSON object, got {type(doc).__name__}")
    try:
        return rfc8785.dumps(dict(doc))
    except rfc8785.CanonicalizationError as exc:
        raise NotPlainJSON(str(exc) or type(exc).__name__) from exc
    except RecursionError as exc:
        raise NotPlainJSON("nested too deeply") from exc


def document_hash(doc: Mapping[str, Any]) -> bytes:
    """Return keccak256 of :func:`canonical_bytes` (32 bytes): the ``docHash`` registered on chain."""
    return keccak(canonical_bytes(doc))


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a document from a JSON file (no validation; call :func:`validate` for that).

    Raises :class:`NotAPrescription` for invalid UTF-8 or JSON, duplicate keys,
    NaN or Infinity, nesting deeper than :data:`MAX_JSON_DEPTH`, or a top level
    that is not an object; ``OSError`` if unreadable.
    """
    data = Path(path).read_bytes()
    try:
        doc = loads_strict(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, duplicate keys, constants, depth
        raise NotAPrescription(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise NotAPrescription(f"{path}: the top level must be a JSON object")
    return doc


def dump_document(doc: Mapping[str, Any], path: str | Path) -> None:
    """Write a document as pretty, sorted, UTF-8 JSON; formatting never affects its hash.

    Raises :class:`NotPlainJSON` (and writes nothing) if the document cannot be hashed.
    """
    canonical_bytes(doc)
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- helpers

_SALT_RE = re.compile(r"[0-9a-f]{32}")
_HEX_SALT_INPUT_RE = re.compile(r"(0x)?[0-9a-fA-F]{32}")
_PSEUDONYM_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_NATIONAL_ID_RE = re.compile(r"\d{15}|\d{17}[\dXx]")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_PATIENT_RESOURCES = frozenset({"Patient", "Person", "RelatedPerson"})


@dataclass(frozen=True)
class _Item:
    """What :func:`validate` reads from one MedicationRequest."""

    medication: ValidatedMedication
    supply_field: str
    doctor: str
    pharmacy: str | None
    pseudonym: str
    priority: str
    validity: tuple[str, str]


def _short_repr(value: Any, limit: int = 80) -> str:
    """Return a repr cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_one_of(value: Any, options: frozenset[str]) -> bool:
    """True if ``value`` is one of the strings in ``options`` (safe for unhashable JSON values)."""
    return isinstance(value, str) and value in options


def _get(obj: Mapping[str, Any], key: str, path: str) -> Any:
    """Return ``obj[key]``, raising MissingField(path) when absent or null."""
    value = obj.get(key)
    if value is None:
        raise MissingField(path)
    return value


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else raise InvalidField."""
    if not isinstance(value, Mapping):
        raise InvalidField(path, value, "expected a JSON object")
    return value


def _nonempty_list(value: Any, path: str) -> Sequence[Any]:
    """Return ``value`` if it is a non-empty JSON array."""
    if not isinstance(value, list):
        raise InvalidField(path, value, "expected a JSON array")
    if not value:
        raise MissingField(f"{path}[0]")
    return value


def _text(obj: Mapping[str, Any], key: str, path: str) -> str:
    """Return ``obj[key]`` as a non-blank string."""
    value = _get(obj, key, path)
    if not isinstance(value, str):
        raise InvalidField(path, value, "expected text")
    if not value.strip():
        raise MissingField(path)
    return value


def _positive_number(obj: Mapping[str, Any], key: str, path: str) -> int | float:
    """Return ``obj[key]`` as a finite positive JSON number."""
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidField(path, value, "expected a number")
    if value <= 0:
        raise InvalidField(path, value, "must be greater than zero")
    return value


def _entries(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Return ``(path, MedicationRequest)`` for every Bundle entry."""
    result = []
    for i, entry in enumerate(_nonempty_list(_get(doc, "entry", "entry"), "entry")):
        path = f"entry[{i}].resource"
        resource = _obj(_get(_obj(entry, f"entry[{i}]"), "resource", path), path)
        kind = resource.get("resourceType")
        if _is_one_of(kind, _PATIENT_RESOURCES):
            raise PatientDataInDocument(path, f"the document contains a {kind} resource")
        if kind != "MedicationRequest":
            raise NotAPrescription(f"{path} is a {_short_repr(kind)}, expected 'MedicationRequest'")
        result.append((path, resource))
    return result


def _account(reference: Any, path: str) -> str:
    """Return the checksummed address of an ``urn:rxchain:account`` reference."""
    identifier = _obj(_get(_obj(reference, path), "identifier", f"{path}.identifier"), f"{path}.identifier")
    system = identifier.get("system")
    if system != ACCOUNT_SYSTEM:
        raise InvalidField(f"{path}.identifier.system", system, f"a chain account is identified with {ACCOUNT_SYSTEM}")
    return _checked_address(f"{path}.identifier.value", _get(identifier, "value", f"{path}.identifier.value"))


def _checked_address(field: str, value: Any) -> str:
    """Return ``value`` checksummed, or raise InvalidAddress."""
    if not is_valid_address(value):
        raise InvalidAddress(field, value)
    return to_checksum_address(value)


def _account_reference(address: str) -> dict[str, Any]:
    """Return a FHIR Reference to a chain account."""
    return {"identifier": {"system": ACCOUNT_SYSTEM, "value": address}}


def _pseudonym(subject: Any, path: str) -> str:
    """Return the patient pseudonym, refusing anything that identifies the patient."""
    subject = _obj(subject, path)
    for key in ("display", "reference"):
        if key in subject:
            raise PatientDataInDocument(f"{path}.{key}", f"the subject must not carry a {key}")
    identifier = _obj(_get(subject, "identifier", f"{path}.identifier"), f"{path}.identifier")
    for key in identifier:
        if key not in ("system", "value"):
            raise PatientDataInDocument(
                f"{path}.identifier.{key}", "the subject identifier may only have a system and a value"
            )
    if identifier.get("system") != PSEUDONYM_SYSTEM:
        raise PatientDataInDocument(
            f"{path}.identifier.system", f"the subject identifier system must be {PSEUDONYM_SYSTEM}"
        )
    value = _get(identifier, "value", f"{path}.identifier.value")
    if not isinstance(value, str):
        raise InvalidField(f"{path}.identifier.value", value, "expected text")
    if value.isdigit() or _NATIONAL_ID_RE.fullmatch(value):
        raise PatientDataInDocument(f"{path}.identifier.value", "the value looks like an identity or phone number")
    if "@" in value or any(c.isspace() for c in value):
        raise PatientDataInDocument(f"{path}.identifier.value", "the value looks like a name or an e-mail address")
    if not _PSEUDONYM_RE.fullmatch(value):
        raise InvalidField(f"{path}.identifier.value", value, "a pseudonym is 16 to 128 characters of A-Z a-z 0-9 _ -")
    shape = _identifying_shape(value)
    if shape is not None:
        raise PatientDataInDocument(f"{path}.identifier.value", f"the value looks like {shape}")
    return value


def _read_item(resource: Mapping[str, Any], path: str) -> _Item:
    """Read and check one MedicationRequest."""
    status = _get(resource, "status", f"{path}.status")
    if status != "active":
        raise InvalidField(f"{path}.status", status, "a new prescription has status 'active'")
    intent = _get(resource, "intent", f"{path}.intent")
    if intent != "order":
        raise InvalidField(f"{path}.intent", intent, "a prescription has intent 'order'")
    priority = _get(resource, "priority", f"{path}.priority")
    if priority != _ROUTINE and not _is_one_of(priority, EMERGENCY_PRIORITIES):
        raise InvalidField(f"{path}.priority", priority, "expected 'routine', or 'stat' for an emergency")

    contained_resources = resource.get("contained")
    for i, contained in enumerate(contained_resources if isinstance(contained_resources, list) else []):
        if isinstance(contained, Mapping) and _is_one_of(contained.get("resourceType"), _PATIENT_RESOURCES):
            raise PatientDataInDocument(f"{path}.contained[{i}]", "the document must not contain patient resources")
    pseudonym = _pseudonym(_get(resource, "subject", f"{path}.subject"), f"{path}.subject")
    doctor = _account(_get(resource, "requester", f"{path}.requester"), f"{path}.requester")

    if "medicationReference" in resource:
        raise InvalidField(
            f"{path}.medicationReference", resource["medicationReference"], "give the drug as medicationCodeableConcept"
        )
    med_path = f"{path}.medicationCodeableConcept"
    medication = _obj(_get(resource, "medicationCodeableConcept", med_path), med_path)
    codings = _nonempty_list(_get(medication, "coding", f"{med_path}.coding"), f"{med_path}.coding")
    coding = _obj(codings[0], f"{med_path}.coding[0]")
    system = _text(coding, "system", f"{med_path}.coding[0].system")
    code = _text(coding, "code", f"{med_path}.coding[0].code")
    med_text = _text(medication, "text", f"{med_path}.text")

    dosage_path = f"{path}.dosageInstruction"
    dosage = _obj(_nonempty_list(_get(resource, "dosageInstruction", dosage_path), dosage_path)[0], f"{dosage_path}[0]")
    dosage_text = _text(dosage, "text", f"{dosage_path}[0].text")
    _obj(_get(dosage, "timing", f"{dosage_path}[0].timing"), f"{dosage_path}[0].timing")

    dispense_path = f"{path}.dispenseRequest"
    dispense = _obj(_get(resource, "dispenseRequest", dispense_path), dispense_path)
    quantity = _obj(_get(dispense, "quantity", f"{dispense_path}.quantity"), f"{dispense_path}.quantity")
    amount = _positive_number(quantity, "value", f"{dispense_path}.quantity.value")
    unit = _text(quantity, "unit", f"{dispense_path}.quantity.unit")

    supply_path = f"{dispense_path}.expectedSupplyDuration"
    supply = _obj(_get(dispense, "expectedSupplyDuration", supply_path), supply_path)
    days = _positive_number(supply, "value", f"{supply_path}.value")
    if isinstance(days, float) and not days.is_integer():
        raise InvalidField(f"{supply_path}.value", days, "the supply duration is a whole number of days")
    if supply.get("code") != "d" or supply.get("system") != UCUM_SYSTEM:
        raise InvalidField(
            f"{supply_path}.code",
            supply.get("code"),
            f"the supply duration is given in days (system {UCUM_SYSTEM}, code 'd')",
        )

    validity_path = f"{dispense_path}.validityPeriod"
    validity = _obj(_get(dispense, "validityPeriod", validity_path), validity_path)
    start = _get(validity, "start", f"{validity_path}.start")
    end = _get(validity, "end", f"{validity_path}.end")
    if not isinstance(start, str) or not isinstance(end, str):
        raise InvalidValidityPeriod(start, end, "start and end must be FHIR dateTime strings")

    performer = dispense.get("performer")
    pharmacy = None if performer is None else _account(performer, f"{dispense_path}.performer")

    return _Item(
        medication=ValidatedMedication(
            system=system,
            code=code,
            text=med_text,
            dosage_text=dosage_text,
            quantity=amount,
            unit=unit,
            supply_days=int(days),
        ),
        supply_field=f"{supply_path}.value",
        doctor=doctor,
        pharmacy=pharmacy,
        pseudonym=pseudonym,
        priority=priority,
        validity=(start, end),
    )


def _parse_datetime(value: str, start: Any, end: Any) -> datetime:
    """Parse a FHIR dateTime that has a time and a UTC offset."""
    if not _DATETIME_RE.fullmatch(value):
        raise InvalidValidityPeriod(
            start, end, f"{value!r} is not a date and time with a UTC offset, e.g. 2025-01-31T08:00:00+08:00"
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidValidityPeriod(start, end, f"{value!r} is not a real date and time") from exc


# ------------------------------------------------------------------------- the closed profile

# Every element a prescription document may carry: what a pharmacist and a courier need, and nothing
# that could carry the patient's identity. A dict lists an object's allowed keys (``str``: a scalar the
# reader checks against a fixed value or shape; ``_TEXT``: free text, checked for identifying shapes;
# ``_CODE``: a code or code system, checked for mobile and identity numbers and name-like tokens only);
# a one-element list, a list of such items.
_TEXT = "free text"
_CODE = "code"
_CODING = [{"system": _CODE, "code": _CODE, "display": _TEXT}]
_ACCOUNT = {"identifier": {"system": str, "value": str}}
_QUANTITY = {"value": str, "unit": _TEXT, "system": _CODE, "code": _CODE}
_MEDICATION_REQUEST = {
    "resourceType": str,
    "status": str,
    "intent": str,
    "priority": str,
    "authoredOn": str,
    "medicationCodeableConcept": {"coding": _CODING, "text": _TEXT},
    "subject": {"identifier": {"system": str, "value": str}},  # the pseudonym, checked by _pseudonym
    "requester": _ACCOUNT,
    "reasonCode": [{"coding": _CODING, "text": _TEXT}],  # the clinical diagnosis a Chinese prescription carries
    "dosageInstruction": [
        {"text": _TEXT, "timing": {"repeat": {"frequency": str, "period": str, "periodUnit": _CODE}}}
    ],
    "dispenseRequest": {
        "validityPeriod": {"start": str, "end": str},
        "quantity": _QUANTITY,
        "expectedSupplyDuration": _QUANTITY,
        "performer": _ACCOUNT,
    },
}
_PROFILE = {
    "resourceType": str,
    "type": str,
    "identifier": {"system": str, "value": str},
    "entry": [{"resource": _MEDICATION_REQUEST}],
}

# A birth date (YYYYMMDD), a mobile number, an 18- or 15-digit identity number, set off from other digits.
_DATE_PHONE_OR_ID_RE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|1[3-9]\d{9}|\d{17}[\dXx]|\d{15})(?!\d)"
)
_PHONE_OR_ID_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(?:1[3-9]\d{9}|\d{17}[\dXx]|\d{15}|0\d{2,3}-?\d{7,8})(?!\d)")
# In a code only a mobile or identity number: a landline's shape is common inside drug codes.
_MOBILE_OR_ID_RE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|\d{17}[\dXx]|\d{15})(?!\d)")
_LONG_NUMBER_RE = re.compile(r"\d{7,}")
_LETTER_RUN_RE = re.compile(r"[a-z]{6,}")
_PINYIN_INITIALS = (
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "zh",
    "ch",
    "sh",
    "r",
    "z",
    "c",
    "s",
    "y",
    "w",
    "",
)
_PINYIN_FINALS = (
    "a",
    "o",
    "e",
    "i",
    "u",
    "v",
    "ai",
    "ei",
    "ui",
    "ao",
    "ou",
    "iu",
    "ie",
    "ue",
    "ve",
    "er",
    "an",
    "en",
    "in",
    "un",
    "ang",
    "eng",
    "ing",
    "ong",
    "ia",
    "iao",
    "ian",
    "iang",
    "iong",
    "ua",
    "uo",
    "uai",
    "uan",
    "uang",
)
_PINYIN = frozenset(i + f for i in _PINYIN_INITIALS for f in _PINYIN_FINALS)


def _is_pinyin_name(run: str) -> bool:
    """True if ``run`` (lower-case letters) splits wholly into two or more pinyin syllables, as a romanized
    Chinese name does (zhangxiaoming = zhang xiao ming)."""
    best = [0] + [-1] * len(run)  # best[i]: most syllables covering run[:i] (-1: none)
    for i in range(1, len(run) + 1):
        for j in range(max(0, i - 6), i):
            if best[j] >= 0 and run[j:i] in _PINYIN:
                best[i] = max(best[i], best[j] + 1)
    return best[-1] >= 2


def _identifying_shape(value: str) -> str | None:
    """What a pseudonym looks like when it identifies the patient: None when it looks random."""
    if _DATE_PHONE_OR_ID_RE.search(value):
        return "a birth date, an identity or a phone number"
    if any(_is_pinyin_name(run) for run in _LETTER_RUN_RE.findall(value.lower())):
        return "a romanized name"
    return None


def _check_free_text(value: str, path: str, *, code: bool = False) -> None:
    """Refuse ``value`` (at ``path``) when it carries an identity or phone number, a name-like or
    number-like token, or any other run of seven digits; a ``code`` only a mobile or identity number
    and such tokens (drug codes and OIDs hold long runs of digits)."""
    if _MOBILE_OR_ID_RE.search(value) if code else (_PHONE_OR_ID_RE.search(value) or _LONG_NUMBER_RE.search(value)):
        raise PatientDataInDocument(path, "free text must not carry an identity, phone or other long number")
    for token in re.findall(r"[A-Za-z0-9_-]{16,}", value):  # a pseudonym-like token: the patient's own?
        if _identifying_shape(token) is not None:
            raise PatientDataInDocument(path, "free text must not carry a name-like or number-like token")


def _check_closed_profile(value: Any, profile: Any, path: str) -> None:
    """Refuse any element the profile does not list, naming its path; check free text."""
    if isinstance(profile, dict):
        if not isinstance(value, Mapping):
            return  # the structure check names a wrong type
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in profile:
                raise ElementNotAllowed(where)
            _check_closed_profile(item, profile[key], where)
    elif isinstance(profile, list):
        for i, item in enumerate(value if isinstance(value, list) else []):
            _check_closed_profile(item, profile[0], f"{path}[{i}]")
    elif profile in (_TEXT, _CODE) and isinstance(value, str):
        _check_free_text(value, path, code=profile is _CODE)


def _check_fhir_structure(doc: Mapping[str, Any]) -> None:
    """Validate the whole Bundle against the FHIR R4B models."""
    from fhir.resources.R4B.bundle import Bundle  # imported lazily: loading the FHIR models takes a while

    try:
        Bundle.model_validate(copy.deepcopy(dict(doc)))
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": str(exc), "type": ""}
        path = _loc_path(first.get("loc", ()))
        if str(first.get("type", "")).endswith("missing"):
            raise MissingField(path) from exc
        raise NotAPrescription(f"{path}: {first.get('msg', '')}") from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise NotAPrescription(f"invalid FHIR structure: {exc}") from exc


def _loc_path(loc: Sequence[Any]) -> str:
    """Format a pydantic error location as ``entry[0].resource.status``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(document)"


def _medication_spec(item: MedicationSpec | Mapping[str, Any], path: str) -> MedicationSpec:
    """Coerce a medication given as a mapping into a MedicationSpec."""
    if isinstance(item, MedicationSpec):
        return item
    if isinstance(item, Mapping):
        try:
            return MedicationSpec(**item)
        except TypeError as exc:
            raise InvalidField(path, item, f"not a medication spec: {exc}") from exc
    raise InvalidField(path, item, "expected a MedicationSpec or a mapping with its fields")


def _salt_hex(salt: bytes | str | None) -> str:
    """Return the salt as 32 lowercase hex digits, drawing a random one when None."""
    if salt is None:
        return secrets.token_hex(_SALT_BYTES)
    if isinstance(salt, (bytes, bytearray)) and len(salt) == _SALT_BYTES:
        return bytes(salt).hex()
    if isinstance(salt, str) and _HEX_SALT_INPUT_RE.fullmatch(salt):
        return salt.removeprefix("0x").lower()
    raise InvalidSalt(salt)
