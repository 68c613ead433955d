"""Handlers for the device commands: enroll, people, identify, run, config. Torch-free."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def context(args, need_bundle: bool = True, warn_stale: bool = True):
    """(home, config, store, bundle) from --home/FACEGATE_HOME, --config, --bundle."""
    from facegate.edge_runtime.config import load_config
    from facegate.edge_runtime.enrollment import open_bundle
    from facegate.edge_runtime.paths import config_path, data_home, store_path
    from facegate.edge_runtime.store import Store

    home = data_home(args.home)
    cfg = load_config(args.config, missing_ok=False) if getattr(args, "config", None) else \
        load_config(config_path(home))
    store = Store(store_path(home))
    bundle = None
    if need_bundle:
        bundle = open_bundle(cfg, args.bundle, args.threads)
        stale = store.stale_templates(bundle.id) if warn_stale else {}
        if stale:
            print(f"facegate: {len(stale)} people have templates from another model bundle and cannot be "
                  f"matched: {', '.join(sorted(stale))}; run `facegate people reembed` (uses the kept face "
                  f"crops) or re-enroll them", file=sys.stderr)
    return home, cfg, store, bundle


def cmd_enroll(args) -> int:
    from facegate.edge_runtime.enrollment import check_photos, enroll_checked
    from facegate.edge_runtime.recognizer import Recognizer

    _, cfg, store, bundle = context(args)
    results = check_photos(Recognizer(bundle, cfg), [(str(p), Path(p)) for p in args.images])
    for r in results:
        print(f"{r.source}: {'ok' if r.ok else 'refused: ' + r.reason}", file=sys.stderr)
    done = enroll_checked(store, bundle, args.name, results, keep_images=args.keep_images)
    if done.person is None:
        print(f"facegate enroll: no usable photo of {args.name}; nothing stored", file=sys.stderr)
        return 1
    person = done.person
    print(f"enrolled {person.name}: {len(done.kept)} new templates ({person.templates} in all), "
          f"{len(done.refused)} photos refused")
    return 0 if not done.refused else 3


def cmd_people(args) -> int:
    _, _, store, _ = context(args, need_bundle=False)
    if args.people_command == "list":
        people = store.people()
        if args.json:
            print(json.dumps([p.__dict__ for p in people], ensure_ascii=False, indent=1))
        else:
            for p in people:
                print(f"{p.name}\t{p.templates} templates\t{p.images} images")
    elif args.people_command == "show":
        p = store.person(args.name)
        print(json.dumps(p.__dict__, ensure_ascii=False, indent=1))
    elif args.people_command == "delete":
        if not args.yes:
            print(f"facegate people delete: this removes every template and image of {args.name}; "
                  "add --yes to confirm", file=sys.stderr)
            return 2
        store.delete(args.name)
        print(f"deleted {args.name}")
    elif args.people_command == "rename":
        p = store.rename(args.name, args.new_name)
        print(f"renamed {args.name} -> {p.name}")
    return 0


def cmd_reembed(args) -> int:
    """Templates of another bundle -> this bundle's, from the kept aligned crops; names those left."""
    from facegate.edge_runtime.enrollment import reembed_kept

    _, _, store, bundle = context(args, warn_stale=False)
    out = reembed_kept(store, bundle)
    for name, n in sorted(out.done.items()):
        print(f"{name}: {n} templates re-embedded with {bundle.id}")
    for name, n in sorted(out.left.items()):
        print(f"{name}: {n} templates left (no kept face crop, or made by another embedder): re-enroll",
              file=sys.stderr)
    if not out.done and not out.left:
        print(f"every template already belongs to {bundle.id}")
    return 1 if out.left else 0


def cmd_identify(args) -> int:
    from facegate.edge_runtime.enrollment import face_report
    from facegate.edge_runtime.errors import ImageError
    from facegate.edge_runtime.imageio import load_image
    from facegate.edge_runtime.recognizer import Recognizer

    _, cfg, store, bundle = context(args)
    rec = Recognizer(bundle, cfg, store.templates(bundle.id, bundle.metric))
    out, failed = [], 0
    for p in args.images:
        try:
            results = rec.analyze(load_image(p))
        except ImageError as e:
            out.append({"file": str(p), "error": str(e)})
            failed += 1
            continue
        faces = [face_report(r) for r in results]
        out.append({"file": str(p), "faces": faces, "threshold": rec.threshold,
                    "operating_point": rec.operating.to_json()})
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        for item in out:
            if "error" in item:
                print(f"{item['file']}: error: {item['error']}")
            elif not item["faces"]:
                print(f"{item['file']}: no face")
            for f in item.get("faces", []):
                who = f["person"] if f["person"] else "unusable (" + ", ".join(f["problems"]) + ")"
                score = f" {f['score']:.3f}" if f["score"] is not None else ""
                print(f"{item['file']}: {who}{score}")
    return 1 if failed else 0


def cmd_run(args) -> int:
    from facegate.edge_runtime.camera import FrameSource
    from facegate.edge_runtime.decision import DoorDecider
    from facegate.edge_runtime.door import make_door
    from facegate.edge_runtime.recognizer import Recognizer
    from facegate.edge_runtime.runner import Runner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    _, cfg, store, bundle = context(args)
    cam = cfg.camera
    if args.source is not None:
        import dataclasses
        cam = dataclasses.replace(cam, source=args.source)
    source = FrameSource.from_config(cam, realtime=args.realtime)
    events = open(args.events, "a", encoding="utf-8") if args.events else sys.stdout
    door = make_door(cfg.door)
    runner = Runner(Recognizer(bundle, cfg), store, door, DoorDecider.from_config(cfg.decision), events)
    try:
        stats = runner.run(source.frames(), show=args.show, record=args.record)
    except KeyboardInterrupt:
        stats = runner.stats
    finally:
        source.close()
        if args.events:
            events.close()
    print(f"facegate run: {stats.frames} frames, {stats.frames_with_face} with a face, "
          f"{stats.opens} openings, {stats.seconds:.1f} s", file=sys.stderr)
    return 0


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
