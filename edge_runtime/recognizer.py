"""Detect -> quality gate -> align -> embed -> match, for a frame, an enrollment photo or a probe photo."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .config import Config
from .errors import FaceNotFoundError, ImageError, ManyFacesError
from .face import Face
from .imageio import decode_image, encode_jpeg, load_image
from .matching import Match, TemplateGallery
from .operating_point import operating_point
from .quality import face_quality
from .quality_model import QualityModel, low_quality_problem

KEPT_CROP_JPEG_QUALITY = 90     # the aligned crop kept with a template (re-embedding source, admin thumbnail)


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One face of one image after the whole pipeline.

    Attributes:
        face: the detection, carrying its embedding when it passed the quality gate.
        problems: reasons the face is unusable ("too small", "too blurry", ...); empty = good.
        chips: every uint8 RGB (S, S, 3) aligned crop the embedder needs (one per part of a fused
            embedder; `chip` is the first, the one the quality gate looked at).
        match: best enrolled person (name None = unknown), or None when the face was not usable.
        quality: the bundle's quality model's score of the face (higher = more usable for recognition;
            below the bundle's threshold the face gets a "quality too low" problem), or None when not
            scored (no quality model, or the face failed the hand-made gate first).
        liveness: probability (0..1) that the face is real (the bundle's liveness models), or None when it
            was not checked (no liveness model, liveness disabled, or the face not usable).
    """

    face: Face
    problems: tuple[str, ...]
    chips: tuple[np.ndarray, ...]
    match: Match | None = None
    liveness: float | None = None
    quality: float | None = None

    @property
    def chip(self) -> np.ndarray:
        return self.chips[0]

    @property
    def usable(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PhotoResult:
    """Outcome of one enrollment photo: ok with its embedding, or the reason it was refused."""

    source: str
    ok: bool
    reason: str = ""
    embedding: np.ndarray | None = None
    chip_jpeg: bytes | None = None
    liveness: float | None = None       # the face's liveness score (probability real), None when not checked


class Recognizer:
    """The face pipeline over a loaded bundle and the enrolled templates it searches."""

    def __init__(self, bundle: Bundle, config: Config, templates: TemplateGallery | None = None):
        self.bundle = bundle
        self.config = config
        self.metric = bundle.metric
        self.templates = templates if templates is not None else TemplateGallery.empty(self.metric)

    @property
    def templates(self) -> TemplateGallery:
        return self._templates

    @templates.setter
    def templates(self, templates: TemplateGallery) -> None:
        """Search these templates from now on; the operating point follows their number."""
        r = self.config.recognition
        self.operating = operating_point(self.bundle.score_model, len(templates), r.false_open_rate, r.threshold,
                                         people=len(templates.people))
        self._templates = templates

    @property
    def threshold(self) -> float:
        """The score at or above which a face is a known person (see `operating`)."""
        return self.operating.threshold

    @property
    def liveness_on(self) -> bool:
        """Whether analyze checks liveness: the bundle has liveness models and [liveness] enabled is set."""
        return self.bundle.liveness is not None and self.config.liveness.enabled

    def analyze(self, image_rgb: np.ndarray, live: bool = False) -> list[FaceResult]:
        """Every face in an RGB uint8 (H, W, 3) image: usable faces embedded and matched (one batch).
        live: a camera frame: the detector looks at a copy shrunk to [detector] live_max_side
        (photos use max_side); alignment always cuts from the full image."""
        d = self.config.detector
        faces = self.bundle.detector.detect(image_rgb, d.live_max_side if live else d.max_side)
        emb = self.bundle.embedder
        results = []
        for f in faces:
            chips = emb.align_all(image_rgb, f)
            results.append(FaceResult(f, tuple(face_quality(f, chips[0], self.config.detector)), chips))
        good = [i for i, r in enumerate(results) if r.usable]
        if good:
            vecs = emb.embed_sets([results[i].chips for i in good])
            good, vecs = self._quality_gate(results, good, vecs)
        if good:
            matches = self.templates.nearest(vecs, self.metric, self.threshold)
            for i, v, m in zip(good, vecs, matches):
                r = results[i]
                results[i] = replace(r, face=r.face.with_embedding(v), match=m)
            if self.liveness_on:
                scores = self.bundle.liveness.score_many(image_rgb, [results[i].face for i in good])
                for i, p in zip(good, scores):
                    results[i] = replace(results[i], liveness=float(p))
        return results

    @property
    def min_quality(self) -> float | None:
        """The bundle's quality threshold (faces below it are unusable); None without a quality model."""
        q = self.bundle.manifest.quality
        return q.threshold if q is not None and self.bundle.quality is not None else None

    def _quality_gate(self, results: list[FaceResult], good: list[int], vecs: np.ndarray):
        """Score the embedded faces `good` (their raw embeddings vecs float32 (len(good), D)) with the bundle's
        quality model, record each face's quality and mark those below min_quality unusable.
        Returns (the indices still usable, their embeddings)."""
        if self.bundle.quality is None:
            return good, vecs
        thr = self.min_quality
        q, usable = quality_gate(self.bundle.quality, thr, vecs)
        keep = []
        for k, (i, v) in enumerate(zip(good, q)):
            r = results[i]
            if not usable[k]:
                results[i] = replace(r, problems=(*r.problems, low_quality_problem(float(v), thr)), quality=float(v))
            else:
                results[i] = replace(r, quality=float(v))
                keep.append(k)
        return [good[k] for k in keep], vecs[keep]

    def enrollment_photo(self, data: bytes | str | Path, name: str = "photo") -> PhotoResult:
        """Check one enrollment photo: exactly one face, and that face usable. Never raises for bad input."""
        try:
            if isinstance(data, bytes):
                img = decode_image(data, name)
            else:
                name = str(data)
                img = load_image(data)
            r = self.single_face(img)
        except (ImageError, FaceNotFoundError, ManyFacesError) as e:
            return PhotoResult(name, False, str(e))
        crop = self.bundle.embedder.kept_crop(r.chips)
        return PhotoResult(name, True, "", r.face.embedding, encode_jpeg(crop, KEPT_CROP_JPEG_QUALITY),
                           r.liveness)

    def single_face(self, image_rgb: np.ndarray) -> FaceResult:
        """The one usable face of an image. Raises FaceNotFoundError or ManyFacesError."""
        results = self.analyze(image_rgb)
        if not results:
            raise FaceNotFoundError("no face found; use a well-lit, front-facing photo")
        if len(results) > 1:
            raise ManyFacesError(f"{len(results)} faces found; use a photo with only this person")
        r = results[0]
        if r.problems:
            raise FaceNotFoundError("face " + ", ".join(r.problems) + "; take another photo")
        return r


def quality_gate(model: QualityModel, threshold: float, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's quality gate: (quality float32 (N,), usable bool (N,)) of faces given by their raw fused
    embeddings vecs float32 (N, D); a face scoring below `threshold` (the bundle's) is unusable."""
    q = model.score(vecs)
    return q, q >= threshold


def door_candidate(results: list[FaceResult]) -> FaceResult | None:
    """The face the door decides on: the largest usable face (the person nearest the camera)."""
    usable = [r for r in results if r.usable]
    return max(usable, key=lambda r: r.face.width * r.face.height) if usable else None
