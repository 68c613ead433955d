"""What every device command opens first: the data home, the config, the store and the model bundle."""
from __future__ import annotations

import sys


def context(args, need_bundle: bool = True, warn_stale: bool = True, use_key: bool = True):
    """(home, config, store, bundle) from --home/FACEGATE_HOME, --config, --bundle; the store opened with
    the [privacy] key_file unless `use_key` is False."""
    from facegate.edge_runtime.config import load_config
    from facegate.edge_runtime.crypto import key_for
    from facegate.edge_runtime.enrollment import open_bundle
    from facegate.edge_runtime.paths import config_path, data_home, store_path
    from facegate.edge_runtime.store import Store, stale_templates_message

    home = data_home(args.home)
    cfg = load_config(args.config, missing_ok=False) if getattr(args, "config", None) else \
        load_config(config_path(home))
    store = Store(store_path(home), key=key_for(cfg.privacy, home) if use_key else None)
    bundle = None
    if need_bundle:
        bundle = open_bundle(cfg, args.bundle, args.threads)
        stale = store.stale_templates(bundle.id) if warn_stale else {}
        if stale:
            print(f"facegate: {stale_templates_message(stale)}", file=sys.stderr)
    return home, cfg, store, bundle
