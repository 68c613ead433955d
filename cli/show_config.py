"""Handler for `facegate config show|init`. Torch-free."""
from __future__ import annotations

import sys

from facegate.context import context


def operating_point_now(args):
    """The operating point `facegate run` would start with: this config, bundle and store."""
    from facegate.edge_runtime.recognizer import Recognizer

    _, cfg, store, bundle = context(args, warn_stale=False)
    return Recognizer(bundle, cfg, store.templates(bundle.id, bundle.metric)).operating


def cmd_config(args) -> int:
    from facegate.edge_runtime.config import Config, load_config
    from facegate.edge_runtime.paths import config_path, data_home

    path = config_path(data_home(args.home))
    if args.config_command == "show":
        print(load_config(args.config or path, missing_ok=args.config is None).to_toml())
        print("# The door's operating point now (from [recognition], the model bundle and the people enrolled):")
        print("# " + operating_point_now(args).describe())
    elif args.config_command == "init":
        if path.exists() and not args.force:
            print(f"{path} exists; add --force to overwrite", file=sys.stderr)
            return 2
        path.write_text(Config().to_toml())
        print(f"wrote {path}")
    return 0
