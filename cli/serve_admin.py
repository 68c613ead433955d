"""`facegate admin init | serve | token create|list|revoke`."""
from __future__ import annotations

import getpass
import ipaddress
import logging
import sys
import time

from facegate.edge_runtime.admin.db import AdminDB, AdminDBError, admin_db_path
from facegate.edge_runtime.paths import data_home

log = logging.getLogger("facegate.admin")

COOKIE_SECURE = {"auto": "auto", "always": True, "never": False}
PROXY_HEADERS = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"}


def cmd_admin(args) -> int:
    return {"init": cmd_init, "serve": cmd_serve, "token": cmd_token}[args.admin_command](args)


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin (--password-stdin) or typed twice at a terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AdminDBError("--password-stdin: stdin is empty; pipe the password in, e.g. "
                               "`printf '%s\\n' \"$PW\" | facegate admin init --password-stdin`")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AdminDBError("no terminal to ask for the password; pipe it in with --password-stdin")
    first = getpass.getpass("New admin password (at least 10 characters): ")
    if first != getpass.getpass("Again: "):
        raise AdminDBError("the two passwords differ; nothing was changed")
    return first


def cmd_init(args) -> int:
    """Create the first (or another) administrator, or with --reset set a new password for one."""
    path = admin_db_path(data_home(args.home))
    password = read_password(args.password_stdin)
    with AdminDB(path) as db:
        if args.reset:
            admin = db.set_password(args.username, password)
            print(f"new password set for {admin.username}; their sessions were logged out ({path})")
        else:
            admin = db.create_admin(args.username, password)
            print(f"administrator {admin.username} created ({path}); log in at /login")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    """Serve the admin page with waitress (binds to 127.0.0.1 unless --host says otherwise)."""
    import waitress

    from facegate.edge_runtime.admin import create_app
    from facegate.edge_runtime.admin.services import EXTENSION

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    app = create_app({"HOME": args.home, "BUNDLE": args.bundle, "CONFIG_FILE": args.config,
                      "THREADS": args.threads, "SESSION_COOKIE_SECURE": COOKIE_SECURE[args.secure_cookies]})
    svc = app.extensions[EXTENSION]
    url = f"http://{args.host if ':' not in args.host else '[' + args.host + ']'}:{args.port}"
    if not _is_loopback(args.host) and not args.trusted_proxy:
        log.warning("serving plain HTTP on %s: passwords and face photos cross the network unencrypted. Put a TLS "
                    "reverse proxy in front (docs/security.md, 'Admin page on the LAN') and serve on 127.0.0.1",
                    args.host)
    if svc.setup_token:
        log.warning("first run: open %s/setup and enter the setup token printed above", url)
    kwargs = {}
    if args.trusted_proxy:
        kwargs = {"trusted_proxy": args.trusted_proxy, "trusted_proxy_headers": PROXY_HEADERS,
                  "clear_untrusted_proxy_headers": True}
    log.info("admin page on %s (data folder %s, bundle %s)", url, svc.home, svc.bundle.id)
    waitress.serve(app, host=args.host, port=args.port, threads=args.serve_threads, ident="facegate", **kwargs)
    return 0


def cmd_token(args) -> int:
    """Create, list or revoke API tokens from the device's shell."""
    with AdminDB(admin_db_path(data_home(args.home))) as db:
        if args.token_command == "create":
            token, t = db.create_token(args.name, "cli")
            print(f"API token {t.id} ({t.name}); copy it now, it is not shown again:", file=sys.stderr)
            print(token)
        elif args.token_command == "list":
            for t in db.tokens():
                state = "active" if t.active else "revoked " + time.strftime("%Y-%m-%d %H:%M",
                                                                              time.localtime(t.revoked_at))
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(t.last_used_at)) if t.last_used_at else "never"
                print(f"{t.id}\t{t.hint}…\t{t.name}\t{state}\tlast used {used}")
        elif args.token_command == "revoke":
            t = db.revoke_token(args.id)
            print(f"revoked token {t.id} ({t.name})")
    return 0
