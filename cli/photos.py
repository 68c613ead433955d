"""`facegate photos ...`: the photo organiser (scan, watch, people, show, name, merge, move, forget,
forget-person, unforget, export, recluster; cmd_bench runs `facegate bench photos`). The progress display
lives here: tqdm when installed, else a plain counter line."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _library(args):
    from facegate.edge_runtime.paths import data_home
    from facegate.edge_runtime.photos.db import PhotoDB, photos_path

    return PhotoDB(photos_path(data_home(args.home)))


def progress_display(unit: str = "photo"):
    """(callback(done, total, path), close()) drawing progress on stderr: a tqdm bar with photos/s and ETA,
    or, without tqdm (the device install), one counter line rewritten in place."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _plain_progress(unit)
    bar = None

    def update(done: int, total: int, path: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    return update, lambda: bar is not None and bar.close()


def _plain_progress(unit: str):
    start = time.monotonic()

    def update(done: int, total: int, path: str) -> None:
        rate = done / max(time.monotonic() - start, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0
        print(f"\r{done}/{total} {unit}s, {rate:.1f}/s, ETA {eta:.0f} s", end="", file=sys.stderr, flush=True)

    return update, lambda: print(file=sys.stderr)


def open_pipeline(args):
    """(photo db, recognizer, door names, linkage threshold) for the commands that read photos. `door()` reads
    the door's names from the store each time it is called (before each sort): a person deleted at the door
    while `photos watch` runs never names anyone again."""
    from facegate.context import context
    from facegate.edge_runtime.photos.cluster import linkage_threshold
    from facegate.edge_runtime.photos.db import PhotoDB, PhotoLibraryError, photos_path
    from facegate.edge_runtime.photos.organize import DoorNames
    from facegate.edge_runtime.recognizer import Recognizer
    from facegate.edge_runtime.store import Store

    home, cfg, store, bundle = context(args)
    store_file, key = store.path, store.key
    store.close()
    if args.threshold is not None:
        threshold = args.threshold
    elif bundle.score_model is None:
        raise PhotoLibraryError(f"bundle {bundle.id} has no score model to derive the clustering threshold from; "
                                f"pass --threshold or run `facegate fit-operating-point`")
    else:
        threshold = linkage_threshold(bundle.score_model, args.false_merge_rate)

    def door() -> DoorNames:
        with Store(store_file, key=key) as s:
            templates = s.templates(bundle.id, bundle.metric)
        return DoorNames(templates, Recognizer(bundle, cfg, templates).threshold)

    door()                                  # a store that cannot be read stops here, before any scan
    return PhotoDB(photos_path(home)), Recognizer(bundle, cfg), door, threshold


def scan_and_sort(db, recognizer, door, threshold, roots, quiet: bool = False):
    """One scan of `roots` then placing the new faces (`door()`: the door's names now); prints a summary line."""
    from facegate.edge_runtime.photos.organize import organize
    from facegate.edge_runtime.photos.scan import scan

    update, close = (lambda *a: None, lambda: None) if quiet else progress_display()
    try:
        report = scan(db, recognizer, roots, update)
    finally:
        close()
    placed = organize(db, recognizer.bundle.id, recognizer.metric, threshold, door())
    for path, reason in report.problems:
        print(f"facegate photos: skipped {path}: {reason}", file=sys.stderr)
    print(f"{report.found} photos found: {report.read} read, {report.unchanged} unchanged, {report.removed} removed, "
          f"{len(report.problems)} skipped; {report.faces} faces; {placed.placed} placed, {placed.new_people} new "
          f"people, {placed.door_named} named from the door")
    return report


def cmd_scan(args) -> int:
    db, rec, door, threshold = open_pipeline(args)
    with db:
        scan_and_sort(db, rec, door, threshold, [str(d) for d in args.dirs], args.quiet)
    return 0


def cmd_watch(args) -> int:
    """Follow file events (watchdog) or, with --poll, scan again every --poll seconds; until Ctrl-C."""
    from facegate.edge_runtime.photos.watch import INSTALL_HINT, follow, poll, watchdog_available

    if args.poll is None and not watchdog_available():
        print(f"facegate photos watch: following new photos needs the watchdog library: {INSTALL_HINT}; "
              f"or scan again every S seconds with --poll S", file=sys.stderr)
        return 2
    db, rec, door, threshold = open_pipeline(args)
    roots = [str(d) for d in args.dirs]

    def scan_paths(paths):
        return scan_and_sort(db, rec, door, threshold, paths, quiet=True)

    def busy(e):
        print(f"facegate photos watch: {e}; trying again", file=sys.stderr)

    with db:
        if args.poll is not None:
            print(f"watching {', '.join(roots)}: a scan every {args.poll:g} s; Ctrl-C stops", file=sys.stderr)
            poll(lambda: scan_paths(roots), args.poll)
        else:
            print(f"watching {', '.join(roots)} for new and changed photos (file events, {args.debounce:g} s "
                  f"debounce); Ctrl-C stops", file=sys.stderr)
            follow(roots, scan_paths, debounce_s=args.debounce, on_busy=busy)
    return 0


def cmd_recluster(args) -> int:
    from facegate.edge_runtime.photos.organize import recluster

    db, rec, door, threshold = open_pipeline(args)
    with db:
        r = recluster(db, rec.bundle.id, rec.metric, threshold, door())
    print(f"{r.placed} faces grouped again; {r.new_people} new people; {r.door_named} named from the door")
    return 0


def cmd_people(args) -> int:
    from facegate.edge_runtime.photos.people import list_people

    with _library(args) as db:
        people = list_people(db)
        unsorted = db.read("SELECT count(*) FROM faces WHERE person_id IS NULL")[0][0]
    if args.json:
        print(json.dumps({"people": [p.to_json() for p in people], "unsorted_faces": unsorted}, indent=2))
        return 0
    print(f"{'id':>6}  {'faces':>5}  {'photos':>6}  name")
    for p in people:
        print(f"{p.id:>6}  {p.faces:>5}  {p.photos:>6}  {p.name or '-'}{' (door)' if p.name_source == 'door' else ''}")
    print(f"{len(people)} people; {unsorted} faces unsorted")
    return 0


def cmd_show(args) -> int:
    from facegate.edge_runtime.photos.people import find_person, person_faces

    with _library(args) as db:
        pid = find_person(db, args.person)
        name = db.read("SELECT name FROM people WHERE id = ?", (pid,))[0][0]
        faces = person_faces(db, pid)
    print(json.dumps({"id": pid, "name": name, "faces": [{"face": f, "photo": p, "box": list(b)}
                                                         for f, p, b in faces]}, indent=2))
    return 0


def cmd_edit(args) -> int:
    """name, merge, move: the user's changes (kept through every re-cluster)."""
    from facegate.edge_runtime.photos import people as pp

    with _library(args) as db:
        if args.photos_command == "name":
            pid = pp.find_person(db, args.person)
            pp.name_person(db, pid, args.name)
            print(f"person {pid} is now {args.name!r} (in the photo library only; the door is not changed)")
        elif args.photos_command == "merge":
            a, b = pp.find_person(db, args.a), pp.find_person(db, args.b)
            print(f"{pp.merge_people(db, a, b)} faces of person {b} moved into person {a}")
        else:
            dest = pp.move_face(db, args.face, args.person)
            print(f"face {args.face} moved to {'unsorted' if dest is None else f'person {dest}'}")
    return 0


def _on_folder(args, fn) -> int:
    """fn(library, absolute DIR) -> count, on the library of args."""
    import os

    with _library(args) as db:
        return fn(db, os.path.abspath(args.dir))


def cmd_forget(args) -> int:
    from facegate.edge_runtime.photos.people import forget_folder

    print(f"{_on_folder(args, forget_folder)} photos forgotten (the files are untouched)")
    return 0


def cmd_forget_person(args) -> int:
    """Erase one photo-library person (photos/erase.py): faces, embeddings, thumbnails, name; files untouched."""
    from facegate.edge_runtime.photos.erase import forget_person
    from facegate.edge_runtime.photos.people import find_person

    with _library(args) as db:
        pid = find_person(db, args.person)
        if not args.yes:
            print(f"facegate photos forget-person: this erases every face of person {pid} from the photo library "
                  f"(the photos stay); add --yes to confirm", file=sys.stderr)
            return 2
        out = forget_person(db, pid)
    print(f"person {out.person_id} forgotten: {out.faces} faces on {out.photos} photos erased (the photos are "
          f"untouched; later scans do not find those faces again: `facegate photos unforget DIR` undoes that)")
    return 0


def cmd_unforget(args) -> int:
    from facegate.edge_runtime.photos.erase import remember_faces

    print(f"{_on_folder(args, remember_faces)} forgotten faces will be found again by the next "
          "`facegate photos scan`")
    return 0


def cmd_export(args) -> int:
    from facegate.edge_runtime.photos.export import export_folders

    with _library(args) as db:
        data = export_folders(db, args.out, "copy" if args.copy else "link", args.json, xmp=args.xmp)
    sidecars = " with XMP face regions" if args.xmp else ""
    print(f"{len(data['people'])} people and {len(data['unsorted'])} unsorted photos exported to {args.out}{sidecars}")
    return 0


def cmd_bench(args) -> int:
    from facegate.edge_runtime.eval.photos_eval import run_bench

    report = run_bench(args, progress_display)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
