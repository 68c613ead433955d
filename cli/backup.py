"""Handlers for `facegate backup FILE` and `facegate restore FILE` (edge_runtime/ops/backup.py). Torch-free.
`facegate backup FOLDER` also deletes the backups in FOLDER older than [privacy] keep_backups_days."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path


def cmd_backup(args) -> int:
    from facegate import __version__
    from facegate.edge_runtime.config import ConfigError, load_config
    from facegate.edge_runtime.ops.backup import create_backup, prune_backups
    from facegate.edge_runtime.paths import config_path, data_home

    home = data_home(args.home)
    if args.config is not None and not Path(args.config).is_file():
        raise ConfigError("config file not found", None, args.config)
    keep_days = load_config(args.config or config_path(home)).privacy.keep_backups_days   # a bad config stops here
    out, manifest = create_backup(home, args.file, facegate_version=__version__, config_file=args.config,
                                  overwrite=args.force)
    print(f"backup written to {out} (mode 600: it holds biometric data)")
    for line in describe(manifest):
        print(f"  {line}")
    if Path(args.file).is_dir():                 # a backups folder (the nightly backup): apply the retention
        gone = prune_backups(Path(args.file), keep_days, manifest.created)
        print(f"deleted {len(gone)} backup{'' if len(gone) == 1 else 's'} older than {keep_days} days "
              f"([privacy] keep_backups_days){': ' if gone else ''}{', '.join(p.name for p in gone)}")
    return 0


def describe(manifest) -> list[str]:
    """One line per backed-up file (rows per table, sha256 prefix), then the templates' bundle ids."""
    out = []
    for m in manifest.members:
        rows = ", ".join(f"{n} {t}" for t, n in (m.counts or {}).items())
        out.append(f"{m.name}: {m.size} bytes{', ' + rows if rows else ''}, sha256 {m.sha256[:16]}...")
    bundles = ", ".join(f"{b} ({n} templates)" for b, n in manifest.bundle_ids.items()) or "none"
    out.append(f"templates made with: {bundles}")
    return out


def configured_bundle_id(cfg, bundle: Path | None) -> str:
    """The Bundle.id the door will use with `cfg` and --bundle, read from bundle.json (no model is loaded)."""
    from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, read_manifest

    root = Path(bundle) if bundle is not None else default_bundle_dir()
    m = read_manifest(root)
    name = cfg.recognition.embedder or m.default_embedder
    if name not in m.choices:
        raise BundleError(f"bundle {root} has no embedder {name!r} ([recognition] embedder); it has "
                          f"{', '.join(m.choices)}")
    return f"{m.id}:{name}"


def cmd_restore(args) -> int:
    from facegate.edge_runtime.config import load_config
    from facegate.edge_runtime.ops.backup import (
        CONFIG_FILE,
        apply_restore,
        plan_restore,
        reapply_erasures,
        unpack_checked,
    )
    from facegate.edge_runtime.paths import config_path, data_home, store_path

    home = data_home(args.home)
    policy = "re-embed" if args.re_embed else "keep-stale" if args.keep_stale else "refuse"
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))       # same file system: renames are atomic
    try:
        manifest = unpack_checked(args.file, staging)
        # the config in force after the restore decides which bundle the templates must belong to
        if args.config is not None:
            cfg = load_config(args.config, missing_ok=False)
        elif manifest.member(CONFIG_FILE) is not None:
            cfg = load_config(staging / CONFIG_FILE, missing_ok=False)
        else:
            cfg = load_config(config_path(home))
        plan = plan_restore(args.file, manifest, staging, home, bundle_id=configured_bundle_id(cfg, args.bundle),
                            force=args.force, stale=policy)
        bundle, key = None, None
        if plan.stale:                       # before anything changes: a bad bundle or key file stops here
            from facegate.edge_runtime.crypto import key_for
            key = key_for(cfg.privacy, home)
            if policy == "re-embed":
                from facegate.edge_runtime.enrollment import open_bundle
                bundle = open_bundle(cfg, args.bundle, args.threads)
        # in the unpacked copy, before anything moves: nobody erased comes back
        again = reapply_erasures(plan, current_ledger=not args.without_current_ledger)
        kept = apply_restore(plan)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"restored {', '.join(m.name for m in manifest.members)} into {home}")
    for k in kept:
        print(f"  kept the file it replaced as {k}")
    n = len(again.erasures)
    print(f"  re-applied {n} erasure{'' if n == 1 else 's'} made after this backup (the erasure ledger holds "
          f"{again.ledger})")
    if again.photo_faces:
        print(f"  forgot {again.photo_faces} photo-library faces again (`facegate photos forget-person` after this "
              f"backup)")
    return _after_restore(plan, bundle, store_path(home), key)


def _after_restore(plan, bundle, store_file: Path, key) -> int:
    """Re-embed (with --re-embed) and report templates of another bundle; 1 when some are left stale.
    `key`: the [privacy] key of the config in force after the restore (None: the store is not encrypted)."""
    from facegate.edge_runtime.enrollment import reembed_kept
    from facegate.edge_runtime.store import Store, stale_templates_message

    if not plan.stale:
        return 0
    with Store(store_file, key=key) as store:
        if bundle is None:                       # --keep-stale
            print(f"facegate restore: {stale_templates_message(store.stale_templates(plan.bundle_id))}",
                  file=sys.stderr)
            return 0
        out = reembed_kept(store, bundle)
        for name, n in sorted(out.done.items()):
            print(f"  {name}: {n} templates re-embedded with {bundle.id}")
        if out.left:
            print(f"facegate restore: {stale_templates_message(out.left)}", file=sys.stderr)
            return 1
    return 0
