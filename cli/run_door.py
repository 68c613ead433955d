"""Handler for `facegate run`: camera -> recognise -> k-of-n decision -> door. Torch-free."""
from __future__ import annotations

import logging
import signal
import sys
import threading

from facegate.context import context


def cmd_run(args) -> int:
    """`facegate run`: exit code 0 when the source ends or on Ctrl-C; door and store failures do not end it."""
    from facegate.edge_runtime.door.camera import FrameSource

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    home, cfg, store, bundle = context(args)
    cam = cfg.camera
    if args.source is not None:
        import dataclasses
        cam = dataclasses.replace(cam, source=args.source)
    source = FrameSource.from_config(cam, realtime=args.realtime)
    events = _event_log(home, cfg, args.events) if args.events else sys.stdout
    try:
        stats = _run(cfg, store, bundle, source, events, args)
    finally:
        source.close()
        if args.events:
            events.close()
    print(summary(stats), file=sys.stderr)
    return 0


def _run(cfg, store, bundle, source, events, args):
    """Build the door and the runner, run until the source ends (or Ctrl-C); the door is closed either way."""
    from facegate.edge_runtime.door.actuators import make_door
    from facegate.edge_runtime.door.decision import DoorDecider
    from facegate.edge_runtime.door.home_assistant import EventTee, ReportingDoor
    from facegate.edge_runtime.door.runner import Runner
    from facegate.edge_runtime.door.systemd_notify import SystemdNotifier
    from facegate.edge_runtime.recognizer import Recognizer

    door = make_door(cfg.door)
    ha = None
    try:
        ha = _home_assistant(cfg)
        if ha is not None:                                     # the door's state and events, told to Home Assistant
            door, events = ReportingDoor(door, ha), EventTee(events, ha)
        runner = Runner(Recognizer(bundle, cfg), store, door, DoorDecider.from_config(cfg.decision), events,
                        keep_audit_days=cfg.privacy.keep_audit_days)
    except BaseException:
        door.close()
        if ha is not None:
            ha.close()
        raise
    notifier = SystemdNotifier()
    main = threading.current_thread() is threading.main_thread()   # signal handlers live in the main thread
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None   # `systemctl stop` = Ctrl-C
    try:
        return runner.run(source.frames(), show=args.show, record=args.record, notifier=notifier)
    except KeyboardInterrupt:
        return runner.close()
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if ha is not None:
            ha.close()                                          # "offline", after the runner locked the door


def _home_assistant(cfg):
    """The Home Assistant publisher when [home_assistant] enabled = true, else None."""
    if not cfg.home_assistant.enabled:
        return None
    from facegate import __version__
    from facegate.edge_runtime.door.home_assistant import HomeAssistant

    return HomeAssistant.from_config(cfg, __version__)


def _interrupt(signum, frame):
    """SIGTERM handler: end the frame loop the way Ctrl-C does (the runner locks the door and closes)."""
    raise KeyboardInterrupt(f"signal {signum}")


def _event_log(home, cfg, path):
    """The --events file, rotated and aged out by [privacy], listed in the data home for erasures."""
    from facegate.edge_runtime.event_log import EventLog, register

    log = EventLog.from_config(path, cfg.privacy)
    register(home, log.path)
    return log


def summary(stats) -> str:
    """The one-line run summary: frames, openings delivered, openings that failed, audit rows lost."""
    line = (f"facegate run: {stats.frames} frames, {stats.frames_with_face} with a face, {stats.opens} openings, "
            f"{stats.failed_opens} failed openings (door command not delivered)")
    if stats.audit_lost:
        line += f", {stats.audit_lost} audit rows lost"
    return line + f", {stats.seconds:.1f} s"
