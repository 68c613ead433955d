"""Handler for `facegate doctor` (edge_runtime/ops/doctor.py). Torch-free."""
from __future__ import annotations

import json


def cmd_doctor(args) -> int:
    """One line per check (or --json); exit 1 when any check failed."""
    from facegate.edge_runtime.ops.doctor import failed, run_checks, summary
    from facegate.edge_runtime.paths import config_path, data_home

    home = data_home(args.home)
    config_file = args.config if args.config is not None else config_path(home)
    checks = run_checks(home, config_file, args.bundle, args.threads, tuple(args.skip))
    if args.json:
        print(json.dumps({"home": str(home), "ok": not failed(checks), "checks": [c.to_json() for c in checks]},
                         ensure_ascii=False, indent=1))
    else:
        for c in checks:
            print(c.line())
        print(summary(checks))
    return 1 if failed(checks) else 0
