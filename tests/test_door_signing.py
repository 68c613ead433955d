"""The receiver's side of a signed door message: signature, expiry, replay (edge_runtime/door/signing.py)."""
import json
import os

import pytest

from facegate.edge_runtime.door import signing
from facegate.edge_runtime.door.signing import ReplayGuard, SecretError, SignatureError, verify, verify_mqtt

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0


def _signed(event="open", person="Zoë", now=NOW, valid_s=2.0):
    data = signing.message(event, person, "3 matching frames", 3.0, valid_s, now=now)
    return data, signing.sign(data, SECRET)


def test_a_fresh_signed_message_verifies_once():
    data, sig = _signed()
    guard = ReplayGuard()
    msg = verify(data, sig, SECRET, replay=guard, now=NOW + 0.5)
    assert {k: msg[k] for k in ("v", "event", "person", "reason", "open_s", "ts", "expires")} == {
        "v": 1, "event": "open", "person": "Zoë", "reason": "3 matching frames", "open_s": 3.0, "ts": NOW,
        "expires": NOW + 2.0}
    assert len(msg["nonce"]) == 32 and sig.startswith("sha256=") and len(sig) == 7 + 64
    with pytest.raises(SignatureError, match="replayed"):
        verify(data, sig, SECRET, replay=guard, now=NOW + 0.6)
    other, other_sig = _signed()                                     # same content, new nonce: accepted
    assert verify(other, other_sig, SECRET, replay=guard, now=NOW + 0.6)["nonce"] != msg["nonce"]


@pytest.mark.parametrize("tamper", [
    lambda d, s: (d.replace(b'"open"', b'"lock"'), s),               # another event
    lambda d, s: (d.replace(b"3.0", b"60.0"), s),                    # a longer opening
    lambda d, s: (d + b" ", s),                                      # one byte more
    lambda d, s: (d, signing.sign(d, b"x" * 32)),                    # another secret
    lambda d, s: (d, s.upper()),
    lambda d, s: (d, ""),
    lambda d, s: (d, None),
])
def test_any_change_to_the_bytes_or_the_signature_is_rejected(tamper):
    data, sig = tamper(*_signed())
    with pytest.raises(SignatureError, match="signature does not match"):
        verify(data, sig, SECRET, replay=ReplayGuard(), now=NOW)


@pytest.mark.parametrize("now,error", [
    (NOW + 2.0 + 1.01, "expired"),                                   # past expires + the allowed skew
    (NOW - 1.01, "in the future"),
])
def test_stale_or_future_messages_are_rejected(now, error):
    data, sig = _signed()
    with pytest.raises(SignatureError, match=error):
        verify(data, sig, SECRET, replay=ReplayGuard(), now=now)
    assert verify(data, sig, SECRET, replay=ReplayGuard(), now=NOW + 2.0 + 0.99)   # within the skew


def test_signed_but_malformed_messages_are_rejected():
    for body in (b"[1]", b"not json", json.dumps({"v": 2, "event": "open"}).encode(),
                 json.dumps({"v": 1, "event": "unlock", "person": None, "reason": "", "open_s": 1.0, "ts": NOW,
                             "expires": NOW + 1, "nonce": "n"}).encode()):
        with pytest.raises(SignatureError):
            verify(body, signing.sign(body, SECRET), SECRET, replay=ReplayGuard(), now=NOW)


def test_the_mqtt_payload_carries_the_exact_message_and_its_signature():
    data, sig = _signed(event="lock", person=None)
    payload = signing.mqtt_payload(data, SECRET)
    outer = json.loads(payload)
    assert outer == {"message": data.decode(), "signature": sig}
    assert verify_mqtt(payload, SECRET, replay=ReplayGuard(), now=NOW)["event"] == "lock"
    forged = json.dumps({"message": data.decode().replace("lock", "open"), "signature": sig}).encode()
    with pytest.raises(SignatureError, match="signature"):
        verify_mqtt(forged, SECRET, replay=ReplayGuard(), now=NOW)
    for junk in (b"", b"{}", b'{"message": 1, "signature": "x"}', b"\xff"):
        with pytest.raises(SignatureError, match="not a facegate door payload"):
            verify_mqtt(junk, SECRET, replay=ReplayGuard(), now=NOW)


def test_messages_are_ascii_json_and_refuse_bad_arguments():
    data, _ = _signed(person="Zoë")
    assert data.isascii() and json.loads(data)["person"] == "Zoë"
    with pytest.raises(ValueError, match="event"):
        signing.message("unlock", None, "", 3.0, 2.0)
    with pytest.raises(ValueError, match="valid_s"):
        signing.message("open", "A", "", 3.0, 0.0)
    with pytest.raises(SecretError, match="at least 32"):
        signing.sign(data, b"short")


def test_the_replay_guard_forgets_expired_nonces():
    guard = ReplayGuard()
    guard.accept("a", NOW + 1, NOW)
    guard.accept("b", NOW + 5, NOW + 2)                              # "a" is forgotten now
    assert set(guard._seen) == {"b"}
    guard.accept("a", NOW + 6, NOW + 3)                              # only its expiry protects "a" then


def test_secret_files_are_private_and_long_enough(tmp_path):
    path = signing.new_secret_file(tmp_path / "door.key")
    assert os.stat(path).st_mode & 0o777 == 0o600 and len(signing.read_secret(path)) >= signing.MIN_SECRET_BYTES
    with pytest.raises(FileExistsError):
        signing.new_secret_file(path)                                # never overwrites a secret
    os.chmod(path, 0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        signing.read_secret(path)
    short = tmp_path / "short.key"
    short.write_bytes(b"  abc \n")
    os.chmod(short, 0o600)
    with pytest.raises(SecretError, match="holds 3 bytes"):
        signing.read_secret(short)
    with pytest.raises(SecretError, match="cannot read"):
        signing.read_secret(tmp_path / "missing.key")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(SecretError, match="not a regular file"):
        signing.read_secret(tmp_path)
