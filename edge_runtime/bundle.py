"""A model bundle: a folder with the detector, the embedder(s) and `bundle.json`.

bundle.json records the sha256 of every file, provenance, licences, each model's contract and the
recognition threshold chosen on LFW. Loading verifies every hash first: a truncated or altered file
is refused with a clear error, never run.

The bundle id is derived from everything in bundle.json that can change a match (`bundle_id`), and a
bundle.json whose content does not give the id it records is refused: editing a threshold, a fusion
weight, a score model, a contract or a model's hash without rebuilding cannot go unnoticed, and a
bundle whose models or thresholds changed gets a new id, so templates made with the old one are stale.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .detection import FaceDetector
from .embedding import FaceEmbedder, FusedEmbedder
from .errors import FacegateError
from .fusion import FusionError, ScoreFusion
from .liveness import LivenessChecker
from .operating_point import OperatingPointError, ScoreModel
from .quality_model import QualityModel
from .sessions import onnx_detector, onnx_embedder, onnx_liveness, onnx_quality

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"


class BundleError(FacegateError):
    """A bundle is missing, incomplete, altered or of an unknown format."""


@dataclass(frozen=True)
class EmbedderEntry:
    name: str
    file: str
    sha256: str
    precision: str            # "fp32" or "int8"
    threshold: float          # similarity at or above which two faces are the same person
    target_far: float         # false-accept rate the threshold was chosen for (LFW pairs)
    achieved_far: float       # the rate it gave there


@dataclass(frozen=True)
class FusionEntry:
    """The bundle's score fusion of several of its embedders (bundle.json "fusion")."""

    fusion: ScoreFusion
    precision: str            # the parts' precisions, e.g. "int8+int8"
    threshold: float          # fused score at or above which two faces are the same person
    target_far: float
    achieved_far: float

    @property
    def name(self) -> str:
        return self.fusion.name


@dataclass(frozen=True)
class LivenessModelEntry:
    """One liveness model of the bundle (bundle.json "liveness" "models")."""

    name: str
    file: str
    sha256: str
    precision: str            # "fp32" or "int8"
    scale: float              # crop side / face box side (as in its contract)


@dataclass(frozen=True)
class LivenessEntry:
    """The bundle's liveness models (bundle.json "liveness", written by `facegate bundle add-liveness`)."""

    models: tuple[LivenessModelEntry, ...]
    threshold: float          # probability of a real face below which the build recommends "attack"

    @staticmethod
    def from_json(d: dict) -> "LivenessEntry":
        models = tuple(LivenessModelEntry(str(e["name"]), str(e["file"]), str(e["sha256"]), str(e["precision"]),
                                          float(e["scale"])) for e in d["models"])
        if not models:
            raise ValueError("'liveness' has no models")
        return LivenessEntry(models, float(d["threshold"]))


@dataclass(frozen=True)
class QualityEntry:
    """The bundle's face-image quality model (bundle.json "quality", `facegate build-bundle --quality`)."""

    file: str
    sha256: str
    precision: str            # "fp32" or "int8"
    threshold: float          # faces scoring below it are refused by enrollment, skipped by the door and
    #                           left unsorted by the photo organiser
    meaning: str = ""         # how the threshold was chosen, in words

    @staticmethod
    def from_json(d: dict) -> "QualityEntry":
        return QualityEntry(str(d["file"]), str(d["sha256"]), str(d["precision"]), float(d["threshold"]),
                            str(d.get("meaning", "")))


@dataclass(frozen=True)
class Manifest:
    id: str
    detector_file: str
    detector_sha256: str
    detector_precision: str
    embedders: dict[str, EmbedderEntry]
    default_embedder: str
    raw: dict
    fusion: FusionEntry | None = None
    score_models: dict[str, ScoreModel] = field(default_factory=dict)
    liveness: LivenessEntry | None = None
    quality: QualityEntry | None = None

    @property
    def choices(self) -> list[str]:
        """Every name `load_bundle(embedder=...)` accepts: the embedders, then the fusion if any."""
        return [*self.embedders, *([self.fusion.name] if self.fusion else [])]


@dataclass
class Bundle:
    """A loaded bundle: ready-to-run models plus the manifest they came from."""

    path: Path
    manifest: Manifest
    detector: FaceDetector
    embedder: FaceEmbedder | FusedEmbedder
    embedder_entry: EmbedderEntry | FusionEntry
    liveness: LivenessChecker | None = None     # None: the bundle has no liveness model
    quality: QualityModel | None = None         # None: no quality model, or not the embedder it reads

    @property
    def id(self) -> str:
        """Identifies the models that make templates; stored with every template."""
        return f"{self.manifest.id}:{self.embedder_entry.name}"

    @property
    def threshold(self) -> float:
        return self.embedder_entry.threshold

    @property
    def metric(self) -> str | ScoreFusion:
        """How this bundle's templates are compared (TemplateGallery / matching.similarity metric)."""
        return self.embedder.metric

    @property
    def score_model(self) -> ScoreModel | None:
        """Impostor and genuine scores of the embedder in use, measured on the calibration people
        (operating_point.py); None for a bundle built without them."""
        return self.manifest.score_models.get(self.embedder_entry.name)


def default_bundle_dir() -> Path:
    """The int8 bundle shipped inside the package (facegate/edge_runtime/bundle_default)."""
    return Path(str(resources.files("facegate.edge_runtime") / "bundle_default"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# bundle.json fields that describe a bundle but cannot change a match; bundle_id says why for each.
DESCRIPTIVE_FIELDS = ("id", "created", "provenance", "licences", "quantization", "notes")
DESCRIPTIVE_ENTRY_FIELDS = ("report",)      # inside "detector", each "embedders" entry and "fusion"
ID_DOMAIN = b"facegate bundle id v2\n"      # prefix of the hashed text (v1 hashed the model files alone)


def _entry_decisions(entry):
    """One detector, embedder or fusion entry less its descriptive fields (other values as they are)."""
    if not isinstance(entry, dict):
        return entry
    return {k: v for k, v in entry.items() if k not in DESCRIPTIVE_ENTRY_FIELDS}


def decision_content(raw: dict) -> dict:
    """bundle.json (parsed) less its descriptive fields: what `bundle_id` hashes."""
    content = {k: v for k, v in raw.items() if k not in DESCRIPTIVE_FIELDS}
    for key in ("detector", "fusion", "liveness", "quality"):
        if key in content:
            content[key] = _entry_decisions(content[key])
    if isinstance(content.get("embedders"), dict):
        content["embedders"] = {n: _entry_decisions(e) for n, e in content["embedders"].items()}
    return content


def bundle_id(raw: dict) -> str:
    """The bundle's id: 16 hex digits of the sha256 of the canonical JSON (keys sorted, no spaces,
    ASCII) of every match-deciding field of bundle.json (parsed, so layout and number spelling do
    not matter). Everything counts except the descriptive fields below, so a field added later counts
    too. Today that is:

    - format: how the file is read;
    - detector: name, file, sha256 (the model that runs), precision;
    - embedders: per embedder file, sha256, precision, threshold (the 1:1 decision), target_far,
      achieved_far;
    - default_embedder: which embedder or fusion matches when none is configured;
    - contracts: each model's input contract (pre-processing, alignment template, metric);
    - fusion: parts, metrics, dims, weights, means, stds (how part scores become one), precision,
      threshold, target_far, achieved_far;
    - score_models: per embedder or fusion the impostor probs and scores, tail (u, p_u, xi, sigma),
      genuine scores, impostor_pairs, normalization; the door derives its threshold from them;
    - liveness: per liveness model name, file, sha256, precision, scale, and the recommended threshold;
    - quality: the quality model's file, sha256, precision, threshold (the minimum quality of a usable
      face) and its meaning.

    Excluded, because nothing that decides a match reads them (they are shown or kept for people):
    - id: the result itself;
    - created: the build's timestamp;
    - provenance, licences: where each model's weights came from and under which licence; the file
      that runs is fixed by its sha256, which counts;
    - quantization: the settings the int8 files were made with; the files themselves are hashed;
    - notes: the build's decisions and calibration settings, as text and numbers for people;
    - report (in detector, embedders, fusion and liveness): accuracy and latency measured at build time, shown
      on the settings page; the thresholds and fusion parameters chosen from them count.
    """
    text = json.dumps(decision_content(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(ID_DOMAIN + text.encode()).hexdigest()[:16]


def _files_only_id(raw: dict) -> str | None:
    """The id bundles had before it covered thresholds, fusion and score models (model hashes alone)."""
    try:
        hashes = [raw["detector"]["sha256"], *(e["sha256"] for e in raw["embedders"].values())]
        return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:16]
    except (KeyError, TypeError, AttributeError):
        return None


def check_id(raw: dict, root: Path) -> str:
    """The id `raw` (a parsed bundle.json of the bundle at `root`) records, if its content gives it.

    Raises BundleError when it does not: the file was edited after it was built (or was built before
    ids covered every match-deciding field)."""
    recorded, derived = raw.get("id"), bundle_id(raw)
    if recorded == derived:
        return derived
    if recorded is not None and recorded == _files_only_id(raw):
        raise BundleError(f"bundle {root}: bundle.json records an id of the older kind ({recorded}, from the "
                          f"model files alone), which does not cover its thresholds, fusion and score models; "
                          f"rebuild the bundle (facegate build-bundle) or restore the shipped one")
    raise BundleError(f"bundle {root}: bundle.json was edited after it was built: its content gives id "
                      f"{derived}, it records {recorded}; rebuild or restore the bundle")


def read_manifest(path: Path) -> Manifest:
    """Parse and validate `<path>/bundle.json`, and check that its content gives the id it records
    (`check_id`). Raises BundleError."""
    f = Path(path) / MANIFEST
    try:
        raw = json.loads(f.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is not a model bundle: {MANIFEST} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{f} is not valid JSON ({e}); reinstall or rebuild the bundle") from None
    if raw.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{f}: bundle format {raw.get('format')!r}, this runtime reads {BUNDLE_FORMAT}")
    try:
        det = raw["detector"]
        embs = {n: EmbedderEntry(n, e["file"], e["sha256"], e["precision"], float(e["threshold"]),
                                 float(e["target_far"]), float(e["achieved_far"]))
                for n, e in raw["embedders"].items()}
        fu = raw.get("fusion")
        fusion = None if fu is None else FusionEntry(ScoreFusion.from_json(fu), str(fu["precision"]),
                                                     float(fu["threshold"]), float(fu["target_far"]),
                                                     float(fu["achieved_far"]))
        models = {str(n): ScoreModel.from_json(d) for n, d in (raw.get("score_models") or {}).items()}
        m = Manifest(raw["id"], det["file"], det["sha256"], det["precision"], embs,
                     raw["default_embedder"], raw, fusion, models,
                     liveness=None if raw.get("liveness") is None else LivenessEntry.from_json(raw["liveness"]),
                     quality=None if raw.get("quality") is None else QualityEntry.from_json(raw["quality"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"{f} is incomplete: missing or bad field {e}") from None
    except (FusionError, OperatingPointError) as e:
        raise BundleError(f"{f}: {e}") from None
    unknown = [n for n, sm in m.score_models.items() if n not in m.choices or sm.embedder != n]
    if unknown:
        raise BundleError(f"{f}: score model(s) {', '.join(unknown)} do not belong to an embedder of the bundle")
    if fusion is not None:
        missing = [p for p in fusion.fusion.parts if p not in embs]
        if missing:
            raise BundleError(f"{f}: fusion {fusion.name} needs embedder(s) {', '.join(missing)}, not in the bundle")
    if m.quality is not None and fusion is None:
        raise BundleError(f"{f}: its quality model reads fused embeddings, and the bundle has no fusion")
    if m.default_embedder not in m.choices:
        raise BundleError(f"{f}: default embedder {m.default_embedder!r} is not in the bundle")
    check_id(raw, Path(path))
    return m


def verify_file(root: Path, name: str, expected: str) -> Path:
    """Check one bundle file against its recorded sha256. Raises BundleError."""
    p = Path(root) / name
    if not p.is_file():
        raise BundleError(f"bundle file {p} is missing; reinstall or rebuild the bundle")
    got = sha256_file(p)
    if got != expected:
        raise BundleError(f"bundle file {p} is altered or truncated (sha256 {got[:12]}..., expected "
                          f"{expected[:12]}...); reinstall or rebuild the bundle")
    return p


def _liveness_model(root: Path, e: LivenessModelEntry, threads: int):
    """(run, contract) of one liveness model of the bundle at `root`, verified against its entry."""
    run, contract = onnx_liveness(verify_file(root, e.file, e.sha256), threads)
    if (contract.name, contract.scale) != (e.name, e.scale):
        raise BundleError(f"bundle {root}: {e.file} is liveness model {contract.name} (crop x{contract.scale:g}), "
                          f"bundle.json says {e.name} (crop x{e.scale:g}); rebuild the bundle")
    return run, contract


def load_bundle(path: str | Path | None = None, embedder: str | None = None, threads: int = 2,
                **detector_kwargs) -> Bundle:
    """Verify and open a bundle (default: the shipped one).

    Args:
        embedder: which embedder of the bundle to use (default: the bundle's default); the
            fusion's name (e.g. "sface+dlib_resnet") opens its parts as one FusedEmbedder.
        threads: onnxruntime intra-op threads per model.
        detector_kwargs: FaceDetector settings (score_threshold, nms_threshold, max_side).
    """
    root = Path(path) if path is not None else default_bundle_dir()
    m = read_manifest(root)
    name = embedder or m.default_embedder
    if name not in m.choices:
        how = ("facegate build-bundle --out DIR (both embedders and their fusion)" if "+" in name
               else f"facegate build-bundle --embedder {name} --out DIR")
        raise BundleError(f"bundle {root} has no embedder {name!r}; it has {', '.join(m.choices)} "
                          f"(build one that has: {how}, then --bundle DIR)")
    det = onnx_detector(verify_file(root, m.detector_file, m.detector_sha256), threads, **detector_kwargs)
    live = None if m.liveness is None else LivenessChecker(
        [_liveness_model(root, e, threads) for e in m.liveness.models])

    def part(n: str) -> FaceEmbedder:
        e = m.embedders[n]
        return onnx_embedder(verify_file(root, e.file, e.sha256), threads)

    if m.fusion is not None and name == m.fusion.name:
        try:
            emb = FusedEmbedder([part(n) for n in m.fusion.fusion.parts], m.fusion.fusion)
        except ValueError as e:
            raise BundleError(f"bundle {root}: {e}") from None
        return Bundle(root, m, det, emb, m.fusion, liveness=live, quality=_quality_model(root, m, threads))
    return Bundle(root, m, det, part(name), m.embedders[name], liveness=live)


def _quality_model(root: Path, m: Manifest, threads: int) -> QualityModel | None:
    """The bundle's quality model (for its fused embedder), checked against the bundle's embedder files."""
    if m.quality is None:
        return None
    from .errors import ContractError

    q = onnx_quality(verify_file(root, m.quality.file, m.quality.sha256), threads)
    try:
        q.check_embedders(m.fusion.name, {p: m.embedders[p].sha256 for p in m.fusion.fusion.parts})
    except ContractError as e:
        raise BundleError(f"bundle {root}: {e}") from None
    return q
