"""Encryption at rest: templates and kept crops sealed with AES-256-GCM under a key file outside the data
home; a missing or wrong key is a clear error (never an empty gallery); key rotation in one transaction."""
import base64
import os
import stat
import sys

import numpy as np
import pytest

pytest.importorskip("cryptography")

from facegate.edge_runtime.config import load_config  # noqa: E402
from facegate.edge_runtime.crypto import KeyFileError, SealedDataError, key_id_of, load_key, write_new_key  # noqa: E402
from facegate.edge_runtime.store import Store, StoreLockedError  # noqa: E402
from facegate.main import main  # noqa: E402

JPEG_MARK = b"\xff\xd8\xff" + b"SECRET-FACE-CROP" * 30


def _emb(n, d=64, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _raw(db):
    return b"".join(open(f, "rb").read() for f in (str(db), str(db) + "-wal") if os.path.exists(f))


@pytest.fixture()
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return write_new_key(d / "a.key"), write_new_key(d / "b.key")


def test_key_files_are_written_private_and_refused_when_not(tmp_path, keys):
    a, _ = keys
    path = tmp_path / "keys" / "a.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert load_key(path).key == a.key and len(a.key) == 32 and a.id == key_id_of(a.key) and len(a.id) == 16
    assert a.key not in path.read_bytes()                                  # base64 text
    with pytest.raises(KeyFileError, match="exists; a key file is never overwritten"):
        write_new_key(path)
    raw = tmp_path / "raw.key"
    raw.write_bytes(os.urandom(32))
    os.chmod(raw, 0o600)
    assert len(load_key(raw).key) == 32                                    # 32 raw bytes work too
    os.chmod(raw, 0o640)
    with pytest.raises(KeyFileError, match="mode 640: group or others may read it; run chmod 400"):
        load_key(raw)
    short = tmp_path / "short.key"
    short.write_bytes(base64.b64encode(os.urandom(16)))
    os.chmod(short, 0o400)
    with pytest.raises(KeyFileError, match="does not hold a key: expected 32 random bytes"):
        load_key(short)
    with pytest.raises(KeyFileError, match="does not exist; the templates cannot be read without it"):
        load_key(tmp_path / "gone.key")
    home = tmp_path / "home"
    home.mkdir()
    inside = write_new_key(home / "k")
    with pytest.raises(KeyFileError, match="inside the data home"):
        load_key(inside.source, home)


def test_sealed_store_holds_no_plain_template_or_crop_and_reads_them_back(tmp_path, keys):
    a, _ = keys
    db, emb = tmp_path / "store.db", _emb(3)
    with Store(db, key=a) as s:
        s.enroll("Alice", emb, "b", "sface", images=[JPEG_MARK] * 3)
        s.enroll("Bob", _emb(2, seed=1), "b", "sface")
        g = s.templates("b")
        assert g.names == ("Alice",) * 3 + ("Bob",) * 2
        np.testing.assert_array_equal(g.matrix[:3], emb)                   # the gallery in memory is plain
        assert s.images("Alice") == [JPEG_MARK] * 3
        s.checkpoint()
    raw = _raw(db)
    assert b"SECRET-FACE-CROP" not in raw
    assert all(emb[i].tobytes()[:64] not in raw for i in range(3))
    assert raw.count(b"FGE1" + bytes.fromhex(a.id)) >= 8                  # 5 templates + 3 crops, key id in each


def test_missing_or_wrong_key_is_a_clear_error_never_an_empty_gallery(tmp_path, keys):
    a, b = keys
    db = tmp_path / "store.db"
    with Store(db, key=a) as s:
        s.enroll("Alice", _emb(2), "b", "sface", images=[JPEG_MARK] * 2)
    with Store(db) as s:
        with pytest.raises(StoreLockedError, match=f"encrypted .*key {a.id}.* no key is configured"):
            s.templates("b")
        assert [p.name for p in s.people()] == ["Alice"]                   # names and counts stay readable
    with Store(db, key=b) as s:
        with pytest.raises(StoreLockedError, match=f"encrypted with key {a.id}, but the key file .*b.key holds key "
                                                   f"{b.id}"):
            s.templates("b")
        with pytest.raises(StoreLockedError, match=f"key {a.id}"):
            s.images("Alice")


def test_a_blob_copied_onto_another_row_does_not_open(tmp_path, keys):
    a, _ = keys
    db = tmp_path / "store.db"
    with Store(db, key=a) as s:
        s.enroll("Alice", _emb(1), "b", "sface")
        s.enroll("Mallory", _emb(1, seed=5), "b", "sface")
        alice = s.conn.execute("SELECT sealed FROM templates WHERE person_id = 1").fetchone()[0]
        s.conn.execute("UPDATE templates SET sealed = ? WHERE person_id = 2", (alice,))
        with pytest.raises(StoreLockedError, match="template 2 of person 2 does not open .*copied from another row"):
            s.templates("b")
        with pytest.raises(SealedDataError, match="altered"):
            a.open(alice[:-1] + bytes([alice[-1] ^ 1]), "template 1 of person 1")


def test_rotate_key_through_the_cli_re_encrypts_everything_in_one_go(tmp_path, keys, capsys):
    a, b = keys
    home = tmp_path / "home"
    home.mkdir()
    db, emb = home / "store.db", _emb(4)
    with Store(db) as s:                                                   # a plain store, from before
        s.enroll("Alice", emb, "b", "sface", images=[JPEG_MARK] * 4)
    assert main(["privacy", "rotate-key", "--home", str(home), "--new", a.source]) == 0
    assert "4 templates and 4 face crops are now encrypted with key " + a.id in capsys.readouterr().out
    assert b"SECRET-FACE-CROP" not in _raw(db)
    assert main(["privacy", "rotate-key", "--home", str(home), "--old", b.source, "--new", a.source]) == 1
    assert f"encrypted with key {a.id}, but the key file" in capsys.readouterr().err   # wrong --old: nothing changed
    assert main(["privacy", "rotate-key", "--home", str(home), "--old", a.source, "--new", b.source]) == 0
    with Store(db, key=b) as s:
        np.testing.assert_array_equal(s.templates("b").matrix, emb)
        assert s.images("Alice") == [JPEG_MARK] * 4
        assert [(r.event, r.details["from"], r.details["to"]) for r in s.audit(event="rekey")] == \
            [("rekey", a.id, b.id), ("rekey", None, a.id)]
    assert b"FGE1" + bytes.fromhex(a.id) not in _raw(db)                  # no blob left sealed under a
    # the config names the key; people export / identify open the store with it
    (home / "config.toml").write_text(f'[privacy]\nkey_file = "{b.source}"\n')
    assert load_config(home / "config.toml").privacy.key_file == b.source
    assert main(["people", "export", "Alice", str(tmp_path / "out"), "--home", str(home)]) == 0
    assert (tmp_path / "out" / "crops").is_dir() and len(list((tmp_path / "out" / "crops").iterdir())) == 4
    (home / "config.toml").write_text(f'[privacy]\nkey_file = "{tmp_path / "lost.key"}"\n')
    assert main(["people", "export", "Alice", str(tmp_path / "out2"), "--home", str(home)]) == 1
    assert "lost.key ([privacy] key_file) does not exist" in capsys.readouterr().err
    assert main(["privacy", "rotate-key", "--home", str(home), "--old", b.source]) == 0    # back to plain
    with Store(db) as s:
        np.testing.assert_array_equal(s.templates("b").matrix, emb)


def test_init_key_through_the_cli(tmp_path, capsys):
    assert main(["privacy", "init-key", str(tmp_path / "k")]) == 0
    key = load_key(tmp_path / "k")
    assert f"wrote a new key {key.id}" in capsys.readouterr().out
    assert main(["privacy", "init-key", str(tmp_path / "k")]) == 1


def test_without_the_cryptography_package_a_key_says_what_to_install(tmp_path, keys, monkeypatch):
    a, _ = keys
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(KeyFileError, match=r"needs the cryptography package: pip install 'facegate\[crypto\]'"):
        with Store(tmp_path / "s.db", key=a) as s:
            s.enroll("Alice", _emb(1), "b", "sface")


def test_privacy_bench_reads_the_same_gallery_both_ways(tmp_path):
    from facegate.edge_runtime.eval.privacy_bench import bench_privacy

    r = bench_privacy(tmp_path, "b", "cosine", 16, templates=40, images=2, load_repeats=1, identify_repeats=3)
    assert (r["templates"], r["people"], r["dim"]) == (40, 8, 16)
    assert set(r["runs"]) == {"plain", "encrypted"}
    assert all(v["load_ms"] > 0 and v["identify_ms"] > 0 for v in r["runs"].values())
    assert r["runs"]["encrypted"]["db_bytes"] > r["runs"]["plain"]["db_bytes"]


def test_the_door_audit_writer_seals_the_templates_it_adds_and_skips_what_the_key_cannot_open(tmp_path, keys):
    from facegate.edge_runtime.door.audit import AuditWriter

    a, b = keys
    db, learnt = tmp_path / "store.db", _emb(1, seed=3)[0]
    with Store(db, key=a) as s:
        s.enroll("Alice", _emb(2), "b", "sface")
    w = AuditWriter(db, key=a, retry_s=0.05)
    w.call("template_added", "Alice", lambda st: st.add_auto_template("Alice", learnt, "b", "sface"))
    w.log("after", None)
    assert w.flush(10.0) and w.close(1.0) == 0
    with Store(db, key=a) as s:
        assert s.conn.execute("SELECT count(*) FROM templates WHERE sealed IS NULL").fetchone()[0] == 0
        np.testing.assert_array_equal(s.templates("b").matrix[2], learnt)
    wrong = AuditWriter(db, key=b, retry_s=0.05)                   # a wrong key: skipped, the rows behind it go on
    wrong.call("template_added", "Alice", lambda st: st.person_templates("Alice", "b"))
    wrong.log("still written", None)
    assert wrong.flush(10.0) and wrong.close(1.0) == 0
    with Store(db) as s:
        assert [r.event for r in s.audit(limit=2)] == ["still written", "after"]


def test_a_person_can_be_deleted_without_the_key(tmp_path, keys, capsys):
    a, _ = keys
    home = tmp_path / "home"
    home.mkdir()
    with Store(home / "store.db", key=a) as s:
        s.enroll("Alice", _emb(1), "b", "sface", images=[JPEG_MARK])
    (home / "config.toml").write_text(f'[privacy]\nkey_file = "{tmp_path / "lost.key"}"\n')
    assert main(["people", "export", "Alice", str(tmp_path / "out"), "--home", str(home)]) == 1
    assert main(["people", "list", "--home", str(home)]) == 0 and "Alice" in capsys.readouterr().out
    assert main(["people", "delete", "Alice", "--yes", "--home", str(home)]) == 0
    with Store(home / "store.db") as s:
        assert s.people() == [] and s.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0
