"""Handlers for `facegate people export` and `facegate privacy init-key|rotate-key`. Torch-free."""
from __future__ import annotations

import sys

from facegate.context import context


def cmd_people_export(args) -> int:
    """Everything stored about one person into a new folder (subject-access request)."""
    from facegate.edge_runtime.subject_access import export_person

    home, _, store, _ = context(args, need_bundle=False)
    n = export_person(store, home, args.name, args.out)
    print(f"exported {args.name} to {args.out}: {n['templates']} templates, {n['images']} face crops, "
          f"{n['audit']} audit rows, {n['events']} door events (person.json, crops/); it holds biometric "
          f"data: hand it over securely and delete it after")
    return 0


def cmd_privacy(args) -> int:
    from facegate.edge_runtime.crypto import load_key, write_new_key

    if args.privacy_command == "init-key":
        key = write_new_key(args.file)
        print(f"wrote a new key {key.id} to {args.file} (mode 0400); set [privacy] key_file = \"{args.file}\" "
              f"and keep a copy apart from the data home's backups: without it the templates cannot be read")
        return 0
    home, cfg, store, _ = context(args, need_bundle=False, use_key=False)
    old = load_key(args.old, home) if args.old else None
    new = load_key(args.new, home) if args.new else None
    if old is None and new is None:
        print("facegate privacy rotate-key: give --new KEY (encrypt), --old KEY (decrypt) or both (re-encrypt)",
              file=sys.stderr)
        return 2
    t, i = store.rekey(old, new)
    what = f"encrypted with key {new.id}" if new else "stored plain (not encrypted)"
    print(f"{t} templates and {i} face crops are now {what}")
    want = str(args.new) if args.new else None
    if cfg.privacy.key_file != want:
        print(f"facegate privacy rotate-key: now set [privacy] key_file = \"{want}\" in the config" if want else
              "facegate privacy rotate-key: now remove [privacy] key_file from the config", file=sys.stderr)
    return 0


def cmd_bench_privacy(args) -> int:
    """`facegate bench privacy`: load and identify at N templates with and without encryption at rest."""
    import json
    import tempfile

    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.eval.privacy_bench import bench_privacy

    bundle = load_bundle(args.bundle, threads=1)
    with tempfile.TemporaryDirectory(prefix="facegate-bench-privacy-") as work:
        r = bench_privacy(work, bundle.id, bundle.metric, bundle.embedder.embedding_size, templates=args.templates,
                          images=args.images)
    print(f"{r['templates']} templates ({r['people']} people, {r['dim']} values, {bundle.id}):")
    for label, run in r["runs"].items():
        print(f"  {label:9s}  load {run['load_ms']:8.1f} ms   identify {run['identify_ms']:7.3f} ms   "
              f"enroll a person {run['enroll_person_ms']:6.2f} ms   store {run['db_bytes'] / 1e6:6.1f} MB")
    print(f"  encrypted / plain: load x{r['load_ratio']}, identify x{r['identify_ratio']}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0
