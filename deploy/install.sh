#!/usr/bin/env bash
# Install (or update, or remove) facegate as two systemd services on a Raspberry Pi / Jetson / Debian box.
# Run from a checkout of the repository, as root. The guide: docs/deploy.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/install.sh [--dry-run] [--root DIR] [--python PY] [--wheel FILE] [--no-deps] [--uninstall [--purge]]

Installs the device build (numpy, opencv-python-headless, onnxruntime, flask, waitress; no torch) into
/opt/facegate/.venv, the data home /var/lib/facegate (mode 0700, owned by the system user facegate) with
a default config.toml, the backups folder /var/backups/facegate (0700), and the units facegate.service (the
door), facegate-admin.service and facegate-backup.service/.timer (nightly backups, enabled by you).
Running it again updates facegate and changes nothing else (config and data are kept).

  --dry-run      print every step, change nothing
  --root DIR     install under DIR (a staging root: no user is created, systemd is not touched)
  --python PY    the Python to build the venv with (default python3; 3.11 or newer)
  --wheel FILE   install this facegate wheel instead of building the checkout (an offline device: build it
                 elsewhere with `pip wheel --no-deps . -w dist`)
  --no-deps      install facegate itself only, without the package index (its dependencies are already in
                 the venv, or installed from your own wheels); needs --wheel
  --uninstall    stop and remove the services and /opt/facegate; the data home is kept
  --purge        with --uninstall: also delete the data home, the backups and the facegate user
  -h, --help     this text
EOF
}

DRY=0 ROOT="" PY="${PYTHON:-python3}" WHEEL="" NODEPS=0 UNINSTALL=0 PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT="${2%/}"; shift ;;
    --root=*) ROOT="${1#--root=}"; ROOT="${ROOT%/}" ;;
    --python) [ $# -ge 2 ] || { echo "install.sh: --python needs a program" >&2; exit 2; }; PY="$2"; shift ;;
    --wheel) [ $# -ge 2 ] || { echo "install.sh: --wheel needs a file" >&2; exit 2; }; WHEEL="$2"; shift ;;
    --no-deps) NODEPS=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
  echo "install.sh: --purge only goes with --uninstall" >&2; exit 2
fi
if [ "$NODEPS" = 1 ] && [ -z "$WHEEL" ]; then
  echo "install.sh: --no-deps needs --wheel FILE (building the checkout needs the package index)" >&2; exit 2
fi
if [ -n "$WHEEL" ] && [ ! -f "$WHEEL" ]; then
  echo "install.sh: --wheel $WHEEL: no such file" >&2; exit 2
fi

SRC="$(cd "$(dirname "$0")/.." && pwd)"
OPT="$ROOT/opt/facegate" VENV="$ROOT/opt/facegate/.venv" HOME_DIR="$ROOT/var/lib/facegate"
BACKUPS="$ROOT/var/backups/facegate"
UNIT_FILES=(facegate.service facegate-admin.service facegate-backup.service facegate-backup.timer)
UNITS="$ROOT/etc/systemd/system"
STAGING=0; [ -n "$ROOT" ] && STAGING=1

say() { echo "install.sh: $*"; }
run() {  # print a step; do it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}
fail() { echo "install.sh: $*" >&2; exit 1; }

# --- checks: OS, architecture, Python -------------------------------------------------------------
check_platform() {
  [ "$(uname -s)" = Linux ] || fail "facegate's services need Linux with systemd; this is $(uname -s)"
  local arch="${FACEGATE_INSTALL_ARCH:-$(uname -m)}"
  case "$arch" in
    aarch64|x86_64) ;;
    armv7l|armv6l)
      fail "architecture $arch: onnxruntime publishes no wheel for 32-bit ARM on PyPI, so the device install
cannot work here. Install the 64-bit Raspberry Pi OS (aarch64; any Pi 3, 4, 5 or Zero 2 W runs it), or build
onnxruntime for $arch yourself, install it into $VENV and run again with --no-deps." ;;
    *) fail "architecture $arch is not supported (aarch64, x86_64; 32-bit ARM has no onnxruntime wheel)" ;;
  esac
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
      *" debian "*|*" ubuntu "*) ;;
      *) say "warning: tested on Debian, Raspberry Pi OS and Ubuntu (JetPack); this is ${PRETTY_NAME:-unknown}" ;;
    esac
  else
    say "warning: /etc/os-release is missing; cannot tell the distribution"
  fi
  command -v "$PY" >/dev/null 2>&1 || fail "no Python '$PY' (install python3, or pass --python)"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "$("$PY" -V 2>&1) is too old: facegate needs Python 3.11 or newer (--python PY to choose another)"
  "$PY" -c 'import venv, ensurepip' 2>/dev/null \
    || fail "$PY cannot make a virtual environment: apt install python3-venv"
  if [ "$STAGING" = 0 ] && [ "$DRY" = 0 ]; then
    [ "$(id -u)" = 0 ] || fail "run as root (sudo deploy/install.sh), or use --root DIR / --dry-run"
    command -v systemctl >/dev/null 2>&1 || fail "systemctl not found: the services need systemd"
  fi
  say "platform: $arch, $("$PY" -V 2>&1), ${PRETTY_NAME:-unknown OS}"
}

# --- install -------------------------------------------------------------------------------------
UNITS_CHANGED=0
install_unit() {  # copy a unit only when it differs (a second run changes nothing)
  local src="$SRC/deploy/$1" dst="$UNITS/$1"
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    say "$dst is up to date"
  else
    run install -D -m 0644 "$src" "$dst"
    UNITS_CHANGED=1
  fi
}

do_install() {
  if [ "$STAGING" = 1 ]; then
    say "staging root $ROOT: not creating the user facegate"
  elif id facegate >/dev/null 2>&1; then
    say "user facegate exists"
  else
    run useradd --system --home-dir /var/lib/facegate --shell /usr/sbin/nologin facegate
  fi
  run install -d -m 0755 "$OPT"
  if [ -x "$VENV/bin/python" ]; then
    say "$VENV exists; updating facegate in it"
  else
    run "$PY" -m venv "$VENV"
  fi
  local what="$SRC" how=(--upgrade)
  [ -z "$WHEEL" ] || what="$WHEEL"
  [ "$NODEPS" = 0 ] || how=(--force-reinstall --no-deps --no-index)
  run "$VENV/bin/pip" install -q "${how[@]}" "$what"
  local owner=()
  [ "$STAGING" = 1 ] || owner=(-o facegate -g facegate)
  run install -d "${owner[@]}" -m 0700 "$HOME_DIR"
  if [ -e "$HOME_DIR/config.toml" ]; then
    say "$HOME_DIR/config.toml exists; kept"
  else
    run install "${owner[@]}" -m 0600 "$SRC/deploy/config.example.toml" "$HOME_DIR/config.toml"
  fi
  run install -d "${owner[@]}" -m 0700 "$BACKUPS"
  for unit in "${UNIT_FILES[@]}"; do install_unit "$unit"; done
  if [ "$STAGING" = 1 ]; then
    say "staging root: not reloading systemd"
  elif [ "$UNITS_CHANGED" = 1 ]; then
    run systemctl daemon-reload
  fi
  say "done. Next (docs/deploy.md):"
  echo "  sudo -u facegate $VENV/bin/facegate admin init --home /var/lib/facegate"
  echo "  sudo -u facegate $VENV/bin/facegate doctor --home /var/lib/facegate"
  echo "  sudo systemctl enable --now facegate facegate-admin facegate-backup.timer"
}

do_uninstall() {
  if [ "$STAGING" = 0 ]; then
    for unit in facegate.service facegate-admin.service facegate-backup.timer; do
      if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
        run systemctl disable --now "$unit" || true
      fi
    done
  fi
  for unit in "${UNIT_FILES[@]}"; do
    [ ! -e "$UNITS/$unit" ] || run rm -f "$UNITS/$unit"
  done
  [ "$STAGING" = 1 ] || run systemctl daemon-reload
  [ ! -e "$OPT" ] || run rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    say "--purge: deleting the data home (templates, photos, events), the backups and the user"
    [ ! -e "$HOME_DIR" ] || run rm -rf "$HOME_DIR"
    [ ! -e "$BACKUPS" ] || run rm -rf "$BACKUPS"
    if [ "$STAGING" = 0 ] && id facegate >/dev/null 2>&1; then run userdel facegate; fi
  else
    say "kept the data home $HOME_DIR (enrolled people, events) and $BACKUPS; --uninstall --purge deletes them"
  fi
}

[ "$DRY" = 0 ] || say "dry run: printing the steps, changing nothing"
if [ "$UNINSTALL" = 1 ]; then
  do_uninstall
else
  check_platform
  do_install
fi
