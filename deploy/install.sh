#!/usr/bin/env bash
# Install facegate as a service on a Raspberry Pi / Jetson (Debian-based). Run from the repo as root.
# Device install only: numpy, OpenCV (headless), onnxruntime, flask, waitress. No torch.
set -euo pipefail
cd "$(dirname "$0")/.."
id facegate >/dev/null 2>&1 || useradd --system --home /var/lib/facegate --shell /usr/sbin/nologin facegate
install -d -m 0755 /opt/facegate
python3 -m venv /opt/facegate/.venv
/opt/facegate/.venv/bin/pip install -q .
install -d -o facegate -g facegate -m 0700 /var/lib/facegate
[ -f /var/lib/facegate/config.toml ] || install -o facegate -g facegate -m 0600 deploy/config.example.toml /var/lib/facegate/config.toml
install -m 0644 deploy/facegate.service deploy/facegate-admin.service /etc/systemd/system/
systemctl daemon-reload
echo "Now: sudo -u facegate /opt/facegate/.venv/bin/facegate admin init --home /var/lib/facegate"
echo "then: systemctl enable --now facegate facegate-admin"
