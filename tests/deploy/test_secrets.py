"""Secrets stay out of the database and out of the environment when one wants: private
keys are files (a host stores a path, never key material), settings can come from files."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.db import DataError, transaction
from django.forms.models import model_to_dict
from django.test import RequestFactory

from drportal.settings import env_secret
from hosts.models import Host
from hosts.validators import validate_private_key_path


def a_private_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "value",
    [a_private_key(), a_private_key()[:200], "-----BEGIN RSA PRIVATE KEY-----", "/run/secrets/key\nMIIEow"],
    ids=["a whole key", "a key cut to fit", "a PEM header", "a path with key lines after it"],
)
def test_key_material_is_refused_where_a_key_path_belongs(value):
    with pytest.raises(ValidationError) as error:
        validate_private_key_path(value)
    assert error.value.code == "key_material"
    assert "not a path" in str(error.value.messages[0]) and "never stores a key" in error.value.messages[0]


def test_a_key_path_must_be_absolute_and_may_be_empty():
    validate_private_key_path("/run/secrets/drportal_ssh_key")
    validate_private_key_path("")  # the workers' default key, settings.DRPORTAL_SSH_KEY
    with pytest.raises(ValidationError, match="not an absolute path"):
        validate_private_key_path("secrets/drportal_ssh_key")


@pytest.mark.django_db
def test_the_host_admin_refuses_a_pasted_key_naming_the_field(reference_estate, admin_user):
    host = Host.objects.get(name="xenka01")
    request = RequestFactory().get("/")
    request.user = admin_user
    host_admin = admin.site._registry[Host]
    form_class = host_admin.get_form(request, host)

    pasted = form_class(data={**model_to_dict(host), "ssh_key_path": a_private_key()}, instance=host)
    assert not pasted.is_valid()
    assert any("never stores a key" in message for message in pasted.errors["ssh_key_path"])

    path = form_class(data={**model_to_dict(host), "ssh_key_path": "/run/secrets/xenka01"}, instance=host)
    path.is_valid()
    assert "ssh_key_path" not in path.errors


@pytest.mark.django_db
def test_the_database_cannot_hold_a_whole_private_key_in_a_key_path(reference_estate):
    with pytest.raises(DataError), transaction.atomic():
        Host.objects.filter(name="xenka01").update(ssh_key_path=a_private_key())


@pytest.mark.django_db
def test_enroll_host_refuses_key_material_before_it_connects(tmp_path):
    with pytest.raises(CommandError, match=r"bad argument: This is key material, not a path"):
        call_command(
            "enroll_host",
            "xenka01",
            "--site",
            "KA",
            "--address",
            "192.0.2.1",  # TEST-NET-1: nothing answers there; the refusal comes first
            "--key",
            a_private_key(),
            "--accept-fingerprint",
            "SHA256:" + "A" * 43,
        )
    assert not Host.objects.filter(name="xenka01").exists()


def test_a_setting_is_read_from_its_file_when_one_is_named(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("s3cret-from-a-file\n", encoding="utf-8")
    monkeypatch.delenv("DRPORTAL_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("DRPORTAL_METRICS_TOKEN_FILE", str(secret))
    assert env_secret("DRPORTAL_METRICS_TOKEN", "") == "s3cret-from-a-file"


def test_a_setting_given_twice_or_from_a_bad_file_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("DRPORTAL_METRICS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match=r"DRPORTAL_METRICS_TOKEN_FILE=.*missing.*cannot read it"):
        env_secret("DRPORTAL_METRICS_TOKEN", "")
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    monkeypatch.setenv("DRPORTAL_METRICS_TOKEN_FILE", str(empty))
    with pytest.raises(ImproperlyConfigured, match="the file is empty"):
        env_secret("DRPORTAL_METRICS_TOKEN", "")
    monkeypatch.setenv("DRPORTAL_METRICS_TOKEN", "also-here")
    with pytest.raises(ImproperlyConfigured, match="both set: set only one of them"):
        env_secret("DRPORTAL_METRICS_TOKEN", "")
