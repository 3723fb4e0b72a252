"""PESEL, proof sniffing and the service's configuration, without a database."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.fernet import Fernet

from cloud.applications.config import ApplicationsConfig, ApplicationsConfigError
from cloud.applications.pesel import pesel_birth_date, pesel_check_digit, pesel_problem
from cloud.applications.service import sniff_proof_type
from tests.smog_api.conftest import PDF, PNG


def test_pesel_checksum_and_birth_date() -> None:
    assert pesel_problem("44051401359") is None
    assert pesel_check_digit("4405140135") == 9
    assert pesel_birth_date("44051401359") == date(1944, 5, 14)
    assert pesel_birth_date("02270803624") == date(2002, 7, 8)  # month + 20: 2000s
    assert pesel_problem("02270803624") is None
    assert pesel_birth_date("99922912345") == date(1899, 12, 29)  # month + 80: 1800s
    assert "cyfra kontrolna" in (pesel_problem("44051401358") or "")
    assert "daty urodzenia" in (pesel_problem("01023012347") or "")  # 30 February
    assert "daty urodzenia" in (pesel_problem("01130112341") or "")  # month 13
    assert "11 cyfr" in (pesel_problem("4405140135a") or "")
    assert "11 cyfr" in (pesel_problem("٤٤٠٥١٤٠١٣٥٩") or "")  # Arabic-Indic digits are not ASCII


def test_proof_types_are_sniffed() -> None:
    assert sniff_proof_type(PNG) == "image/png"
    assert sniff_proof_type(PDF) == "application/pdf"
    assert sniff_proof_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert sniff_proof_type(b"<html>") is None


def test_configuration_refuses_to_start_without_a_key_outside_development() -> None:
    with pytest.raises(ApplicationsConfigError, match="LOKALNIE_APPLICATIONS_KEY"):
        ApplicationsConfig.from_environment({"LOKALNIE_ENV": "production"})
    assert len(ApplicationsConfig.from_environment({}).keys) == 1  # development, as cloud.settings
    with pytest.raises(ApplicationsConfigError, match="not a Fernet key"):
        ApplicationsConfig.from_environment({"LOKALNIE_APPLICATIONS_KEY": "secret"})
    assert len(ApplicationsConfig.from_environment({"LOKALNIE_ENV": "development"}).keys) == 1
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    config = ApplicationsConfig.from_environment(
        {"LOKALNIE_APPLICATIONS_KEY": f"{new},{old}", "LOKALNIE_APPLICATIONS_MAX_PROOF_BYTES": "1000"}
    )
    assert config.max_proof_bytes == 1000 and config.keys == (new.encode(), old.encode())
    assert config.cipher().decrypt(Fernet(old.encode()).encrypt(b"x")) == b"x"  # rotated keys still read
    with pytest.raises(ApplicationsConfigError, match="RETENTION"):
        ApplicationsConfig.from_environment(
            {"LOKALNIE_ENV": "development", "LOKALNIE_APPLICATIONS_RETENTION_DAYS": "0"}
        )
