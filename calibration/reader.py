"""Calibration data for static int8 quantisation: real images through the runtime's own preprocessing.

The detector is calibrated on whole frames made by `FaceDetector.prepare` (shrunk like the runtime's
photos, [detector] max_side); an embedder on aligned chips made by `FaceEmbedder.align` + `.prepare` from
faces found by the fp32 ONNX detector (the face nearest the image centre, LFW's rule). Nothing here
normalises pixels itself, so calibration sees exactly what the device will feed the network.

By default the images are the LFW pictures of the people who appear in no pair of `pairs.txt`
(`facegate.edge_runtime.eval.lfw.calibration_photos`), so no image or person of the accuracy table is
seen by calibration.

Example:
    >>> images = calibration_images(limit=64)        # from the research data folder (paths.data_dir)
    >>> reader = EmbedderCalibrationReader("dlib_resnet.onnx", images, detector_path="retinaface.onnx")
    >>> for chunk in reader.chunks(32): ...      # CalibrationDataReader per chunk, for histogram methods
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from facegate.edge_runtime.config import DetectorConfig
from facegate.edge_runtime.contract import DetectorContract, EmbedderContract
from facegate.edge_runtime.detection import FaceDetector, central_face
from facegate.edge_runtime.embedding import FaceEmbedder
from facegate.edge_runtime.errors import FacegateError
from facegate.edge_runtime.eval.lfw import calibration_photos
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.paths import data_dir as research_data_dir
from facegate.edge_runtime.sessions import onnx_detector, open_session, read_contract

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class CalibrationDataError(FacegateError):
    """No usable calibration images or faces."""


def _lfw_images(data_dir: str | Path | None) -> list[Path]:
    """calibration_photos of `data_dir`/lfw (default: paths.data_dir()). Raises CalibrationDataError
    when that folder has no pairs.txt."""
    lfw = Path(data_dir if data_dir is not None else research_data_dir()) / "lfw"
    if not (lfw / "pairs.txt").is_file():
        raise CalibrationDataError(f"{lfw / 'pairs.txt'} not found: set FACEGATE_DATA to the shared data folder "
                                   "or name a calibration image folder")
    return calibration_photos(lfw)


def folder_images(folder: str | Path) -> list[Path]:
    """Every *.jpg / *.jpeg / *.png below `folder` (recursive, case-insensitive suffix), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationDataError(f"calibration folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def calibration_images(folder: str | Path | None = None, data_dir: str | Path | None = None,
                       limit: int | None = None) -> list[Path]:
    """Calibration images: those under `folder` if given, else the LFW calibration people's photos
    (people outside pairs.txt) of `data_dir` (default: the research data folder, paths.data_dir()).

    `limit` keeps an evenly spread subset (every k-th image), so a small set still covers many people.
    """
    images = folder_images(folder) if folder is not None else _lfw_images(data_dir)
    if not images:
        raise CalibrationDataError(f"no *.jpg/*.png images under {folder}")
    if limit is not None and 0 < limit < len(images):
        idx = np.linspace(0, len(images) - 1, limit).round().astype(int)
        images = [images[i] for i in idx]
    return images


class ListReader(CalibrationDataReader):
    """A CalibrationDataReader over a list of ready feeds ({input name: array})."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self.feeds = list(feeds)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.feeds):
            return None
        self._i += 1
        return self.feeds[self._i - 1]

    def rewind(self) -> None:
        self._i = 0

    def __len__(self) -> int:
        return len(self.feeds)


class _ImageReader(CalibrationDataReader):
    """Base: makes one model input per image, lazily (a full pass over every image stays small).

    Subclasses implement `make_input(path) -> float32 array or None` (None = skip the image).
    Attributes after a pass: `used` (inputs given), `skipped` (image paths with no input).
    """

    source = "images"

    def __init__(self, model_path: str | Path, images: Sequence[str | Path], limit: int | None = None):
        self.model_path = Path(model_path)
        self.images = [Path(p) for p in images]
        self.limit = limit
        s = open_session(self.model_path, threads=1)
        self.input_name = s.get_inputs()[0].name
        self.contract = read_contract(s)
        del s
        self.used = 0
        self.skipped: list[Path] = []
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def make_input(self, path: Path) -> np.ndarray | None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """One pass: {input name: float32 batch-1 input} per usable image, at most `limit`."""
        self.used, self.skipped = 0, []
        for p in self.images:
            if self.limit is not None and self.used >= self.limit:
                return
            x = self.make_input(p)
            if x is None:
                self.skipped.append(p)
                continue
            self.used += 1
            yield {self.input_name: x}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(self)
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:
        # Unknown before a pass (images without a face are skipped). TypeError, not onnxruntime's
        # NotImplementedError, so list(reader) and friends fall back to plain iteration.
        raise TypeError("a calibration image reader's length is known only after a pass (see .used)")

    def chunks(self, size: int) -> Iterator[ListReader]:
        """The whole pass cut into CalibrationDataReaders of at most `size` inputs of one shape each.

        Histogram calibrators keep every intermediate output of a `collect_data` call in memory and
        stack them per tensor, so they need bounded, same-shape chunks.
        """
        yield from chunk_feeds(iter(self), size)


def chunk_feeds(feeds: Iterable[dict[str, np.ndarray]], size: int) -> Iterator[ListReader]:
    """Group feeds into ListReaders of at most `size` consecutive feeds whose arrays share shapes."""
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    buf: list[dict[str, np.ndarray]] = []
    key = None
    for f in feeds:
        k = tuple((n, a.shape) for n, a in sorted(f.items()))
        if buf and (k != key or len(buf) >= size):
            yield ListReader(buf)
            buf = []
        buf.append(f)
        key = k
    if buf:
        yield ListReader(buf)


def drain(reader: CalibrationDataReader) -> Iterator[dict[str, np.ndarray]]:
    """Iterate any CalibrationDataReader by get_next() until it returns None."""
    while True:
        f = reader.get_next()
        if not f:
            return
        yield f


class DetectorCalibrationReader(_ImageReader):
    """Whole frames for a detector, made by `FaceDetector.prepare`: float32 (1, 3, h, w), the longer side
    shrunk to `max_side` (None: the default config's [detector] max_side, as the runtime's photos)."""

    def __init__(self, model_path: str | Path, images: Sequence[str | Path], limit: int | None = None,
                 max_side: int | None = None):
        super().__init__(model_path, images, limit)
        if not isinstance(self.contract, DetectorContract):
            raise CalibrationDataError(f"{self.model_path} is not a detector ({self.contract.kind})")
        side = max_side if max_side is not None else DetectorConfig().max_side
        self.detector = FaceDetector(_no_run, self.contract, max_side=side)
        self.source = "detector frames"

    def make_input(self, path: Path) -> np.ndarray | None:
        x, _ = self.detector.prepare(load_image(path))
        return x


class EmbedderCalibrationReader(_ImageReader):
    """Aligned chips for an embedder: fp32 ONNX detector, face nearest the centre, align + prepare.

    Images where the detector finds no face are skipped (listed in `skipped` after a pass).
    Chips are kept once made (uint8, S*S*3 bytes each), so later passes skip detection.
    """

    def __init__(self, model_path: str | Path, images: Sequence[str | Path], detector_path: str | Path,
                 limit: int | None = None, detector_threads: int = 2):
        super().__init__(model_path, images, limit)
        if not isinstance(self.contract, EmbedderContract):
            raise CalibrationDataError(f"{self.model_path} is not an embedder ({self.contract.kind})")
        self.detector_path = Path(detector_path)
        self.detector_threads = detector_threads
        self._detector: FaceDetector | None = None
        self.embedder = FaceEmbedder(_no_run, self.contract)
        self._chips: dict[Path, np.ndarray | None] = {}
        self.source = f"aligned {self.contract.name} chips"

    def chip(self, path: Path) -> np.ndarray | None:
        """uint8 RGB (S, S, 3) aligned chip of the face nearest the centre, or None."""
        if path not in self._chips:
            if self._detector is None:
                self._detector = onnx_detector(self.detector_path, threads=self.detector_threads)
            img = load_image(path)
            face = central_face(self._detector, img)
            self._chips[path] = None if face is None else self.embedder.align(img, face)
        return self._chips[path]

    def make_input(self, path: Path) -> np.ndarray | None:
        c = self.chip(path)
        return None if c is None else self.embedder.prepare(c)


def _no_run(x):
    raise RuntimeError("calibration readers only use the runtime's preprocessing")


def reader_for_model(model_path: str | Path, images: Sequence[str | Path] | None = None,
                     detector_path: str | Path | None = None, limit: int | None = None,
                     folder: str | Path | None = None,
                     data_dir: str | Path | None = None) -> DetectorCalibrationReader | EmbedderCalibrationReader:
    """The right reader for a model, judged by its contract metadata.

    Images: `images` if given, else `calibration_images(folder, data_dir, limit)` (an evenly spread
    subset when `limit` is set). An embedder needs `detector_path` (the fp32 ONNX detector) to find
    and align faces. `limit` also caps the inputs given per pass.
    """
    if images is None:
        images = calibration_images(folder, data_dir, limit)
        origin = f"folder {folder}" if folder is not None else "LFW people outside pairs.txt"
    else:
        origin = "given image list"
    s = open_session(model_path, threads=1)
    kind = read_contract(s).kind
    del s
    if kind == "detector":
        r = DetectorCalibrationReader(model_path, images, limit)
    else:
        if detector_path is None:
            raise CalibrationDataError("an embedder's calibration needs the fp32 ONNX detector (detector_path)")
        r = EmbedderCalibrationReader(model_path, images, detector_path, limit)
    r.source = f"{r.source} from {origin}"
    return r
