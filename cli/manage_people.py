"""Handlers for `facegate enroll`, `facegate people ...` and `facegate identify`. Torch-free."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facegate.context import context


def cmd_enroll(args) -> int:
    from facegate.edge_runtime.enrollment import (
        check_photos,
        enroll_checked,
        liveness_details,
        refuse_attacks,
        refuse_lookalikes,
    )
    from facegate.edge_runtime.recognizer import Recognizer
    from facegate.edge_runtime.store import normalize_name

    args.name = normalize_name(args.name)          # a refused name costs no model run
    _, cfg, store, bundle = context(args)
    rec = Recognizer(bundle, cfg, store.templates(bundle.id, bundle.metric))
    results = check_photos(rec, [(str(p), Path(p)) for p in args.images])
    if args.liveness:
        results = refuse_attacks(rec, results)
    if not args.force:
        results = refuse_lookalikes(rec, args.name, results)
    for r in results:
        print(f"{r.source}: {'ok' if r.ok else 'refused: ' + r.reason}", file=sys.stderr)
    done = enroll_checked(store, bundle, args.name, results, keep_images=args.keep_images)
    if done.person is None:
        print(f"facegate enroll: no usable photo of {args.name}; nothing stored", file=sys.stderr)
        return 1
    person = done.person
    if not args.liveness and rec.liveness_on:
        store.log("liveness_skipped", person.name, photos=len(done.kept), by="facegate enroll --no-liveness",
                  **liveness_details(rec, False, done.kept))
    print(f"enrolled {person.name}: {len(done.kept)} new templates ({person.templates} in all), "
          f"{len(done.refused)} photos refused")
    return 0 if not done.refused else 3


def cmd_people(args) -> int:
    # list, show, rename, delete and undo-update never open sealed templates: they work without the [privacy]
    # key, so a person can be erased even when the key file is lost
    _, _, store, _ = context(args, need_bundle=False, use_key=False)
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
    elif args.people_command == "undo-update":
        ids = store.undo_auto_templates(args.name, all_of_them=args.all_updates)
        print(f"{args.name}: removed {len(ids)} template{'' if len(ids) == 1 else 's'} added by the door"
              if ids else f"{args.name}: the door has added no template")
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


def liveness_report(r, threshold: float) -> dict:
    """The identify JSON's liveness fields of one analysed face: "liveness", the probability (0..1) that it is
    real, and "live", whether that reaches [liveness] threshold; both None when liveness was not checked (no
    liveness model in the bundle, liveness disabled, or the face unusable)."""
    if r.liveness is None:
        return {"liveness": None, "live": None}
    return {"liveness": round(float(r.liveness), 4), "live": bool(r.liveness >= threshold)}


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
            print(f"facegate identify: {e}", file=sys.stderr)      # the message names the file
            failed += 1
            continue
        faces = [{**face_report(r), **liveness_report(r, cfg.liveness.threshold)} for r in results]
        out.append({"file": str(p), "faces": faces, "threshold": rec.threshold,
                    "operating_point": rec.operating.to_json()})
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        for item in out:
            if "faces" in item and not item["faces"]:
                print(f"{item['file']}: no face")
            for f in item.get("faces", []):
                who = f["person"] if f["person"] else "unusable (" + ", ".join(f["problems"]) + ")"
                score = f" {f['score']:.3f}" if f["score"] is not None else ""
                live = "" if f["live"] is None else f", {'live' if f['live'] else 'ATTACK'} {f['liveness']:.3f}"
                print(f"{item['file']}: {who}{score}{live}")
    return 1 if failed else 0
