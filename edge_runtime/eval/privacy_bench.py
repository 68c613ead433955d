"""What encryption at rest costs the door: load the gallery and identify, with and without a key.

Two stores of the same random templates (the bundle's embedding size and metric), one plain and one
sealed (crypto.py); for each: the time to open the store and load the gallery (what the door does at
start and after every enrollment), the time to identify one probe against it, the time to enroll one
person, and the file size. The gallery in memory is plain either way, so identify itself should not
change; loading pays one AES-GCM open per template.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from ..crypto import write_new_key
from ..store import Store
from .speed import random_templates


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_privacy(workdir: str | Path, bundle_id: str, metric, dim: int, templates: int = 10_000,
                  per_person: int = 5, load_repeats: int = 5, identify_repeats: int = 200,
                  images: int = 0) -> dict:
    """The report: {"templates", "people", "dim", "runs": {"plain"|"encrypted": {"load_ms", "identify_ms",
    "enroll_person_ms", "db_bytes"}}, "load_ratio", "identify_ratio"}.

    Args:
        workdir: an empty folder for the two stores and the key (deleted by the caller).
        bundle_id, metric, dim: the bundle's id, TemplateGallery metric and embedding size.
        templates: gallery size; per_person templates per person.
        images: kept crops of ~6 KB stored for the first `images` people (they are not loaded by
            identify; 0 = none).
    """
    workdir = Path(workdir)
    vecs = random_templates(templates, dim, metric, seed=7)
    probe = random_templates(1, dim, metric, seed=99)
    crop = b"\xff\xd8\xff" + os.urandom(6000)
    key = write_new_key(workdir / "bench.key")
    runs, galleries = {}, {}
    for label, k in (("plain", None), ("encrypted", key)):
        db = workdir / f"{label}.db"
        with Store(db, key=k) as s:
            for p in range(0, templates, per_person):
                chunk = vecs[p:p + per_person]
                s.enroll(f"person {p // per_person}", chunk, bundle_id, "bench",
                         images=[crop] * len(chunk) if p // per_person < images else None)
            s.checkpoint()
            extra = random_templates(per_person, dim, metric, seed=5)
            n = [0]

            def enroll_one():
                n[0] += 1
                s.enroll(f"extra {n[0]}", extra, bundle_id, "bench")
            enroll_ms = _median_ms(enroll_one, 20)

        def load():
            with Store(db, key=k) as s2:
                return s2.templates(bundle_id, metric)
        galleries[label] = load()
        np.testing.assert_array_equal(galleries[label].matrix[:templates], vecs)   # both read the same gallery
        runs[label] = {"load_ms": round(_median_ms(load, load_repeats), 2), "enroll_person_ms": round(enroll_ms, 2),
                       "db_bytes": db.stat().st_size}
    times = {label: [] for label in galleries}
    for _ in range(identify_repeats):              # interleaved, so a busy machine slows both alike
        for label, g in galleries.items():
            t0 = time.perf_counter()
            g.nearest(probe)
            times[label].append((time.perf_counter() - t0) * 1000)
    for label, t in times.items():
        runs[label]["identify_ms"] = round(statistics.median(t), 3)
    plain, enc = runs["plain"], runs["encrypted"]
    return {"templates": templates, "people": templates // per_person, "dim": dim, "bundle_id": bundle_id,
            "images": images, "runs": runs, "load_ratio": round(enc["load_ms"] / plain["load_ms"], 2),
            "identify_ratio": round(enc["identify_ms"] / plain["identify_ms"], 2)}
