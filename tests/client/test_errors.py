"""Every custom error the registry can raise has a named Python exception with a readable message."""

from __future__ import annotations

import requests

from rxchain import errors
from rxchain.chain.deployment import load_abi
from rxchain.dev.publish import DEPLOYED, UNREACHABLE


def test_every_reachable_abi_error_has_a_python_class():
    names = {item["name"] for contract in DEPLOYED for item in load_abi(contract) if item["type"] == "error"}

    missing = names - set(errors.BY_NAME) - UNREACHABLE
    assert not missing, f"add classes to rxchain/errors.py for {sorted(missing)}"


def test_every_python_error_class_names_an_abi_error_and_formats():
    abi_errors = {item["name"]: item for contract in DEPLOYED for item in load_abi(contract) if item["type"] == "error"}

    for name, cls in errors.BY_NAME.items():
        assert name in abi_errors, f"{name} is not an error of the registry, the permissioning contract or DrugBoxes"
        sample = {i["name"]: (b"\x01" * 32 if i["type"].startswith("bytes") else 1) for i in abi_errors[name]["inputs"]}
        message = str(cls(name, sample))
        assert message.startswith(name + ": ") and "{" not in message


def test_every_error_of_the_package_sits_under_exactly_one_category():
    """The CLI reads ``exit_code`` and nothing else: every named error must carry its category's."""
    import importlib
    import pkgutil

    import rxchain

    for module in pkgutil.walk_packages(rxchain.__path__, "rxchain."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    def every(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from every(sub)

    named = set(every(errors.RxError)) - set(errors.CATEGORIES)
    assert len(named) > 60
    for cls in named:
        categories = [c for c in errors.CATEGORIES if issubclass(cls, c)]
        assert len(categories) == 1, f"{cls.__module__}.{cls.__qualname__} is under {categories}"
        assert cls.exit_code == categories[0].exit_code, f"{cls.__qualname__} overrides its category's exit code"


def test_time_arguments_are_shown_as_dates_too():
    refusal = errors.Expired("Expired", {"id": b"\x11" * 32, "expiresAt": 1795827484})

    assert "expired at 1795827484 (2026-11-28 " in str(refusal) and "UTC)" in str(refusal)


def test_file_and_database_errors_become_one_line_with_a_category():
    import sqlite3

    missing = FileNotFoundError(2, "No such file or directory", "/no/such.rxqr")
    assert errors.exit_code_of(missing) == errors.BadInput.exit_code
    assert errors.one_line(missing) == "/no/such.rxqr: no such file or folder"
    assert errors.exit_code_of(IsADirectoryError(21, "Is a directory", "/tmp")) == 4
    assert errors.exit_code_of(sqlite3.DatabaseError("file is not a database")) == errors.Unavailable.exit_code
    assert errors.exit_code_of(ConnectionRefusedError()) == errors.Unavailable.exit_code
    assert errors.exit_code_of(requests.exceptions.ConnectionError("refused")) == errors.Unavailable.exit_code
    assert errors.exit_code_of(requests.exceptions.ReadTimeout("slow")) == errors.Unavailable.exit_code
    assert errors.exit_code_of(KeyError("a bug")) is None
