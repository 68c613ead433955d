"""Handler for `facegate fit-liveness`: the liveness threshold read off real frames of the door's camera
(edge_runtime/door/liveness_fit.py). Torch-free."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facegate.context import context


def cmd_fit_liveness(args) -> int:
    """Score the door's face in real frames of --source; print (and with --json write) the threshold giving
    BPCER --bpcer on them. Changes nothing: the user puts the threshold into the config."""
    import dataclasses
    import itertools

    from facegate.edge_runtime.door.camera import FrameSource
    from facegate.edge_runtime.door.liveness_fit import fit_liveness
    from facegate.edge_runtime.recognizer import Recognizer

    home, cfg, store, bundle = context(args, warn_stale=False)
    store.close()
    cam = cfg.camera if args.source is None else dataclasses.replace(cfg.camera, source=args.source)
    source = FrameSource.from_config(cam)
    try:
        frames = (f for _, f in itertools.islice(source.frames(), args.max_read))
        fit = fit_liveness(Recognizer(bundle, cfg), frames, args.frames, args.bpcer)
    except ValueError as e:
        print(f"facegate fit-liveness: {e}", file=sys.stderr)
        return 2
    finally:
        source.close()
    s = fit.summary()
    q = s["score_quantiles"]
    print(f"{s['frames_scored']} frames with a face (of {s['frames_read']} read): liveness min {q['min']:.3f}, "
          f"5% {q['q05']:.3f}, median {q['median']:.3f}")
    print(f"threshold at BPCER {100 * fit.bpcer:g}% on these frames: {fit.threshold:.3f} (the configured "
          f"{fit.configured:g} refuses {100 * fit.refused_at_configured:.1f}% of them)")
    print(f"to use it: [liveness] threshold = {fit.threshold:.3f} in the config. Only real faces may be shown while "
          "fitting; a lower threshold also lets more attacks through: check them with `facegate bench liveness`")
    if args.json:
        Path(args.json).write_text(json.dumps({**s, "source": str(cam.source), "bundle": bundle.id,
                                               "scores": [round(float(x), 6) for x in fit.scores]}, indent=1))
    return 0
