"""Handlers for `facegate bundle ...`: change a copy of a model bundle (needs facegate[train])."""
from __future__ import annotations

import time


def cmd_add_liveness(args) -> int:
    from facegate.edge_runtime.bundle import read_manifest
    from facegate.export.liveness_export import add_liveness

    t0 = time.perf_counter()
    out = add_liveness(args.weights, args.out, args.bundle, args.images)
    m = read_manifest(out)
    names = ", ".join(f"{e.name} ({e.precision}, crop x{e.scale:g})" for e in m.liveness.models)
    print(f"{out}: bundle {m.id} with liveness models {names}; recommended threshold {m.liveness.threshold:g}; "
          f"{time.perf_counter() - t0:.1f} s")
    source = m.raw["notes"]["liveness"]["source_bundle"]
    print(f"use it with --bundle {out}; people enrolled with the source bundle ({source}) are matched again after "
          f"`facegate people reembed --bundle {out}` (a new bundle id)")
    return 0


def cmd_liveness_int8(args) -> int:
    from facegate.export.liveness_int8 import int8_trial, markdown, write_report

    report = int8_trial(args.bundle, args.work)
    print(markdown(report))
    write_report(report, args.json, args.markdown)
    return 0
