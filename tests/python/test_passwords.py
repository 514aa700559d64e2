"""Passwords: RabbitMQ's salted SHA-256 or Argon2id hashes, from the config file or
the admin API, checked on every protocol; `switchboard hash-password` makes them;
the data directory never holds a plain password."""

from __future__ import annotations

import os
import subprocess

import pika
import pytest
import stomp

import mqttutil
import support
from conftest import _switchboard_bin, start_switchboard, stop_switchboard
from test_admin_api import Api

pytestmark = support.requires_switchboard("starts brokers with their own users")


def hash_password(password: str, *flags: str) -> str:
    r = subprocess.run([str(_switchboard_bin()), "hash-password", password, *flags],
                       capture_output=True, text=True, timeout=30, check=True)
    return r.stdout.strip()


def amqp_login(b, user, password):
    host, port = b.ports["amqp"]
    pika.BlockingConnection(pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials(user, password))).close()


def test_hashed_users_from_the_config_log_in(tmp_path):
    argon = hash_password("argon-pw", "--argon2")
    rabbit = hash_password("rabbit-pw")
    assert argon.startswith("$argon2id$") and not rabbit.startswith("$")
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text(
        '[[users]]\nname = "guest"\npassword = "guest"\ntags = ["administrator"]\n'
        f'[[users]]\nname = "a"\npassword_hash = "{argon}"\n'
        f'[[users]]\nname = "r"\npassword_hash = "{rabbit}"\n')
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        amqp_login(b, "a", "argon-pw")
        amqp_login(b, "r", "rabbit-pw")
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            amqp_login(b, "a", "rabbit-pw")
        m = mqttutil.Client(mqttutil.endpoint_from_ports(b.ports), version=5,
                            username="a", password="argon-pw")
        assert m.connect().rc == 0
        m.close()
        users = {u["name"]: u for u in Api(*b.ports["admin"]).get("/api/users")}
        assert users["a"]["hashing_algorithm"] == "argon2id"
        assert users["r"]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    finally:
        stop_switchboard(b)


def test_a_bad_hash_in_the_config_stops_the_start(tmp_path):
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text('[[users]]\nname = "x"\npassword_hash = "$argon2id$broken"\n')
    r = subprocess.run([str(_switchboard_bin()), "--config", str(cfg), "--data-dir",
                        str(tmp_path / "d"), "--amqp-port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "user 'x': password_hash is neither" in r.stderr


def test_api_users_are_stored_hashed_and_argon2_hashes_accepted(tmp_path):
    b = start_switchboard()
    try:
        api = Api(*b.ports["admin"])
        assert api.call("PUT", "/api/users/plain",
                        {"password": "very-plain-secret-1", "tags": ""})[0] == 201
        argon = hash_password("argon-secret-2", "--argon2")
        assert api.call("PUT", "/api/users/argon",
                        {"password_hash": argon, "hashing_algorithm": "argon2id",
                         "tags": ""})[0] == 201
        assert api.call("PUT", "/api/users/bad",
                        {"password_hash": "x", "hashing_algorithm": "argon2id"})[0] == 400
        for user in ("plain", "argon"):
            assert api.call("PUT", f"/api/permissions/%2F/{user}",
                            {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
        amqp_login(b, "plain", "very-plain-secret-1")
        host, port = b.ports["stomp"]
        s = stomp.Connection12([(host, port)], heartbeats=(0, 0))
        s.connect("argon", "argon-secret-2", wait=True)
        s.disconnect()
        # Nothing in the data directory holds a plain password.
        for root, _, files in os.walk(b.data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                assert b"very-plain-secret-1" not in data, f
                assert b"argon-secret-2" not in data, f
    finally:
        stop_switchboard(b)
