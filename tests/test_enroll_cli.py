"""The enroll / identify / people commands: what they refuse, where they write, what --help shows."""
import pytest

from facegate.edge_runtime.paths import store_path
from facegate.edge_runtime.store import Store
from facegate.main import main


def _enroll(home, name, *photos, force=False):
    return main(["enroll", "--home", str(home), "--name", name, *map(str, photos), *(["--force"] if force else [])])


def test_the_same_face_under_a_second_name_needs_force(tmp_path, data_dir, capsys):
    home, lfw = tmp_path / "home", data_dir / "lfw"
    bush = [lfw / f"George_W_Bush/George_W_Bush_{i:04d}.jpg" for i in (1, 2)]
    assert _enroll(home, "George W Bush", bush[0]) == 0
    capsys.readouterr()
    # his other photo under another name: refused, nothing stored, the reason names him
    assert _enroll(home, "Someone Else", bush[1]) == 1
    err = capsys.readouterr().err
    assert "already enrolled as George W Bush" in err and "--force" in err
    with Store(store_path(home)) as s:
        assert [p.name for p in s.people()] == ["George W Bush"]
    # more photos of the same person under his own name are fine
    assert _enroll(home, "George W Bush", bush[1]) == 0
    # someone else entirely is fine
    assert _enroll(home, "Aaron Eckhart", lfw / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg") == 0
    # and the admin may override for people who really are different
    assert _enroll(home, "Someone Else", lfw / "George_W_Bush/George_W_Bush_0003.jpg", force=True) == 0
    with Store(store_path(home)) as s:
        assert sorted(p.name for p in s.people()) == ["Aaron Eckhart", "George W Bush", "Someone Else"]


def test_identify_reports_a_bad_file_once_on_stderr(tmp_path, data_dir, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    good = data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    assert main(["identify", "--home", str(tmp_path / "home"), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert str(bad) not in out and f"{good}: " in out
    assert err.count(str(bad)) == 1 and err.startswith("facegate identify: ")


def test_people_help_lists_every_action(capsys):
    with pytest.raises(SystemExit):
        main(["people", "--help"])
    out = capsys.readouterr().out
    for action in ("list", "show", "delete", "rename", "reembed"):
        assert f"    {action} " in out, action
