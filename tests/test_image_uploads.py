"""The admin upload layer (uploads.read_photos): every photo sent is kept, in order, under a safe label."""
import io

import pytest
from flask import Flask

from facegate.edge_runtime.admin.uploads import MAX_LABEL_CHARS, UploadError, read_photos


@pytest.fixture
def app():
    app = Flask("uploads")
    app.config["MAX_PHOTOS"] = 3
    return app


def _read(app, parts, field="photos", **kw):
    data = {field: [(io.BytesIO(content), filename) for filename, content in parts]}
    with app.test_request_context("/", method="POST", content_type="multipart/form-data", data=data):
        return read_photos(field, **kw)


def test_a_photo_sent_without_a_file_name_is_kept(app):
    assert _read(app, [("a.jpg", b"AAAA"), ("", b"BBBB")]) == [("a.jpg", b"AAAA"), ("photo 2", b"BBBB")]


def test_an_empty_named_file_is_kept_for_decoding_to_refuse(app):
    assert _read(app, [("empty.jpg", b"")]) == [("empty.jpg", b"")]


def test_an_empty_file_input_is_no_photo(app):
    with pytest.raises(UploadError, match="choose at least one photo"):
        _read(app, [("", b"")])


def test_too_many_photos(app):
    with pytest.raises(UploadError, match="4 photos sent; at most 3"):
        _read(app, [(f"{i}.jpg", b"x") for i in range(4)])
    with pytest.raises(UploadError, match="2 photos sent; at most 1"):
        _read(app, [("a.jpg", b"x"), ("", b"y")], "photo", max_count=1)


def test_labels_are_printable_short_and_never_paths(app):
    names = ["../../etc/passwd", "a\x00b\x1b[31m.png", "\u202eevil.jpg", "x" * 300]
    labels = [lab for lab, _ in _read(app, [(n, b"x") for n in names[:3]])] + \
        [lab for lab, _ in _read(app, [(names[3], b"x")])]
    assert labels[:3] == [".._.._etc_passwd", "ab[31m.png", "evil.jpg"]
    assert len(labels[3]) == MAX_LABEL_CHARS and labels[3].endswith("…")
