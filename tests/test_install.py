"""deploy/install.sh in a staging root: refuses what it does not know, --dry-run changes nothing, a second
run changes nothing, --uninstall keeps the data unless --purge; the units are hardened and the device
dependencies have aarch64 wheels for Python 3.11."""
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "install.sh"
UNITS = ("facegate.service", "facegate-admin.service", "facegate-backup.service", "facegate-backup.timer")
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def install(*args, env=None, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (the venv left out) -> (mode, mtime_ns)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("opt/facegate/.venv/"):
            continue
        st = p.stat()
        out[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def test_unknown_options_are_refused_before_anything_happens(tmp_path):
    for args in (["--dry-rn"], ["--root", str(tmp_path), "--yes"], ["--purge"], ["--root"], ["--no-deps"],
                 ["--wheel", str(tmp_path / "missing.whl")]):
        r = install(*args)
        assert r.returncode == 2, args
        assert "install.sh:" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    r = install("--dry-run", "--root", str(tmp_path), "--python", str(BASE_PYTHON))
    assert r.returncode == 0, r.stderr
    steps = [line for line in r.stdout.splitlines() if line.startswith("+ ")]
    assert any("-m venv" in s for s in steps) and any("pip install" in s for s in steps)
    assert all(any(unit in s for s in steps) for unit in UNITS)
    assert any("config.toml" in s for s in steps)
    assert list(tmp_path.iterdir()) == [], "a dry run created files"


def test_32_bit_arm_gets_a_clear_message(tmp_path):
    r = install("--root", str(tmp_path), env={"FACEGATE_INSTALL_ARCH": "armv7l"})
    assert r.returncode == 1
    assert "onnxruntime publishes no wheel for 32-bit ARM" in r.stderr and "64-bit" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_old_python_is_refused(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.9.2" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    stage = tmp_path / "stage"
    r = install("--root", str(stage), "--python", str(fake))
    assert r.returncode == 1
    assert "Python 3.9.2 is too old" in r.stderr and "3.11" in r.stderr
    assert not stage.exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """facegate built as a wheel from this checkout (what an offline device is given)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    return next(out.glob("facegate-*.whl"))


def test_install_update_uninstall_purge_in_a_staging_root(tmp_path, wheel):
    root = tmp_path / "root"
    offline = ("--root", str(root), "--python", str(BASE_PYTHON), "--wheel", str(wheel), "--no-deps")
    r = install(*offline)
    assert r.returncode == 0, r.stdout + r.stderr
    home = root / "var/lib/facegate"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "config.toml").stat().st_mode) == 0o600
    assert (home / "config.toml").read_text() == (REPO / "deploy/config.example.toml").read_text()
    for unit in UNITS:
        assert (root / "etc/systemd/system" / unit).read_text() == (REPO / "deploy" / unit).read_text()
    assert stat.S_IMODE((root / "var/backups/facegate").stat().st_mode) == 0o700
    venv = root / "opt/facegate/.venv"
    assert (venv / "bin/facegate").is_file()
    installed = subprocess.run([str(venv / "bin/python"), "-c", "import importlib.metadata as m; "
                                "print(m.version('facegate'))"], capture_output=True, text=True)
    assert installed.stdout.strip() == metadata.version("facegate")

    (home / "config.toml").write_text("[door]\nkind = \"log\"\n")          # the operator's own settings
    before = tree(root)
    again = install(*offline)
    assert again.returncode == 0, again.stderr
    assert "config.toml exists; kept" in again.stdout and "is up to date" in again.stdout
    assert tree(root) == before, "a second run changed files besides facegate itself"

    (home / "store.db").write_bytes(b"enrolled people")
    gone = install("--uninstall", "--root", str(root))
    assert gone.returncode == 0, gone.stderr
    assert not (root / "opt/facegate").exists() and not (root / "etc/systemd/system/facegate.service").exists()
    assert (home / "store.db").read_bytes() == b"enrolled people" and "kept the data home" in gone.stdout
    assert not any((root / "etc/systemd/system" / unit).exists() for unit in UNITS)
    assert (root / "var/backups/facegate").is_dir()
    purged = install("--uninstall", "--purge", "--root", str(root))
    assert purged.returncode == 0, purged.stderr
    assert not home.exists() and not (root / "var/backups/facegate").exists()


@pytest.mark.parametrize("unit", [u for u in UNITS if u.endswith(".service")])
def test_units_are_rated_ok_or_better_by_systemd_analyze(unit):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    r = subprocess.run([exe, "security", "--offline=true", str(REPO / "deploy" / unit)], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
    if m is None and "--offline" in r.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {r.stderr.strip()[:100]}")
    assert m, r.stdout[-500:] + r.stderr
    assert float(m.group(1)) < 5.0 and m.group(2) in ("OK", "SAFE"), m.group(0)


def test_door_unit_is_notify_with_a_watchdog():
    text = (REPO / "deploy/facegate.service").read_text()
    assert "Type=notify" in text and re.search(r"^WatchdogSec=\d+", text, re.M)
    watchdog = int(re.search(r"^WatchdogSec=(\d+)", text, re.M).group(1))
    from facegate.edge_runtime.config import CameraConfig
    assert watchdog > CameraConfig().reconnect_max_s, "a reconnecting camera must not look hung"


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_device_dependencies_have_aarch64_wheels_for_python_311(tmp_path):
    if not _pypi_reachable():
        pytest.skip("no network: cannot ask the package index for aarch64 wheels")
    device = [r.split(";")[0].strip() for r in metadata.requires("facegate") or () if "extra ==" not in r]
    assert any(r.startswith("onnxruntime") for r in device)
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--only-binary=:all:", "--platform", "manylinux_2_28_aarch64", "--python-version", "3.11",
                        "--implementation", "cp", "--target", str(tmp_path / "t"), "--report", str(report),
                        *device], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheels = {i["metadata"]["name"].lower(): i["download_info"]["url"].rsplit("/", 1)[1]
              for i in json.loads(report.read_text())["install"]}
    for name in ("numpy", "onnxruntime", "opencv-python-headless"):
        assert name in wheels and wheels[name].endswith(".whl")
        assert "aarch64" in wheels[name] or "any" in wheels[name], wheels[name]
