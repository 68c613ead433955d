"""Enrollment photos are checked for liveness: an attack photo is refused with a clear reason, `--no-liveness`
(a scanned ID photo) skips the check and says so in the audit log, and a bundle without liveness changes nothing."""
import dataclasses

import numpy as np
import pytest

from facegate.edge_runtime.config import Config
from facegate.edge_runtime.enrollment import (
    attack_reason,
    check_photos,
    enroll_checked,
    liveness_details,
    open_bundle,
    refuse_attacks,
)
from facegate.edge_runtime.paths import store_path
from facegate.edge_runtime.recognizer import Recognizer
from facegate.edge_runtime.store import Store
from facegate.main import main


class FixedLiveness:
    """Stands in for the bundle's liveness models: every face gets the same probability of being real."""

    def __init__(self, p):
        self.p = p

    def score_many(self, image_rgb, faces):
        return np.full(len(faces), self.p, np.float32)


@pytest.fixture(scope="module")
def shipped():
    return open_bundle(Config())


def photo(data_dir):
    return data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


def test_the_reason_names_the_score_the_threshold_and_the_way_out():
    assert attack_reason(0.12, 0.5) == ("presentation attack suspected (liveness 0.12 < 0.50): use a live photo "
                                        "taken by the camera, or --no-liveness for a scanned ID photo")


T = Config().liveness.threshold


@pytest.mark.parametrize("p, ok", [(0.12, False), (T - 0.01, False), (T, True), (0.97, True)])
def test_attack_photos_are_refused_at_the_threshold(shipped, data_dir, p, ok):
    rec = Recognizer(dataclasses.replace(shipped, liveness=FixedLiveness(p)), Config())
    assert rec.liveness_on
    checked = check_photos(rec, [("a", photo(data_dir))])
    assert checked[0].ok and checked[0].liveness == pytest.approx(p)
    r, = refuse_attacks(rec, checked)
    assert r.ok is ok
    if not ok:
        assert r.reason == attack_reason(p, T) and r.embedding is None


def test_a_photo_whose_liveness_was_not_checked_is_refused(shipped, data_dir):
    rec = Recognizer(dataclasses.replace(shipped, liveness=FixedLiveness(0.9)), Config())
    r, = check_photos(rec, [("a", photo(data_dir))])
    r, = refuse_attacks(rec, [dataclasses.replace(r, liveness=None)])
    assert not r.ok and "liveness could not be checked" in r.reason


def test_without_a_liveness_model_or_disabled_nothing_is_refused(shipped, data_dir):
    for rec in (Recognizer(shipped, Config()),
                Recognizer(dataclasses.replace(shipped, liveness=FixedLiveness(0.01)),
                           Config.from_dict({"liveness": {"enabled": False}}))):
        assert not rec.liveness_on
        r, = refuse_attacks(rec, check_photos(rec, [("a", photo(data_dir))]))
        assert r.ok and r.liveness is None
        assert liveness_details(rec, True, [r]) == {"liveness": "off"}


def test_skipped_check_is_stored_with_its_scores(shipped, data_dir, tmp_path):
    rec = Recognizer(dataclasses.replace(shipped, liveness=FixedLiveness(0.2)), Config())
    results = check_photos(rec, [("a", photo(data_dir))])          # --no-liveness: refuse_attacks not called
    with Store(tmp_path / "store.db") as s:
        done = enroll_checked(s, rec.bundle, "Aaron Eckhart", results)
        assert done.person.templates == 1
        assert liveness_details(rec, False, done.kept) == {"liveness": "skipped", "liveness_scores": [0.2]}


def test_cli_no_liveness_on_a_bundle_without_liveness_logs_nothing_extra(tmp_path, data_dir, capsys):
    home = tmp_path / "home"
    assert main(["enroll", "--home", str(home), "--name", "Aaron Eckhart", "--no-liveness", str(photo(data_dir))]) == 0
    with Store(store_path(home)) as s:
        assert [a.event for a in s.audit()] == ["enroll"]
