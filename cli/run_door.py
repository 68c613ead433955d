"""Handler for `facegate run`: camera -> recognise -> k-of-n decision -> door. Torch-free."""
from __future__ import annotations

import logging
import sys

from facegate.context import context


def cmd_run(args) -> int:
    from facegate.edge_runtime.door.actuators import make_door
    from facegate.edge_runtime.door.camera import FrameSource
    from facegate.edge_runtime.door.decision import DoorDecider
    from facegate.edge_runtime.door.runner import Runner
    from facegate.edge_runtime.recognizer import Recognizer

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
