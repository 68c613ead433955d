"""Model input contracts: what a model expects and returns, written into the ONNX metadata at export
and checked when the runtime opens a model. These defaults are the single source of the constants."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .detection import PriorConfig
from .errors import ContractError

# Where RetinaFace's 5 landmarks sit, on average, inside dlib's own 150x150 chips
# (dlib get_face_chip_details(shape5, 150, padding 0.25)). Measured by
# `facegate models measure-template` on LFW people outside pairs.txt (its JSON gives the spread per point).
DLIB_CHIP_TEMPLATE = ((46.59, 45.43), (101.97, 45.21), (73.27, 76.66), (50.40, 103.32), (97.01, 103.29))

# OpenCV's FaceRecognizerSF.alignCrop template (ArcFace 112x112), which SFace was trained with.
ARCFACE_112_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                        (41.5493, 92.3655), (70.7299, 92.2041))


@dataclass(frozen=True)
class DetectorContract:
    """Input/output contract of a RetinaFace-style detector."""

    name: str = "retinaface_mnet025"
    kind: str = "detector"
    colour_order: str = "BGR"                     # channel order of the input
    mean: tuple[float, ...] = (104.0, 117.0, 123.0)  # subtracted per channel, in colour_order
    std: tuple[float, ...] = (1.0, 1.0, 1.0)      # divisor per channel
    layout: str = "NCHW"
    outputs: tuple[str, ...] = ("loc", "conf", "landmarks")
    priors: PriorConfig = field(default_factory=PriorConfig)


@dataclass(frozen=True)
class EmbedderContract:
    """Input/output contract of a face embedder working on aligned chips."""

    name: str
    input_size: int                               # chip side in pixels
    colour_order: str                             # "RGB" or "BGR"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    template: tuple[tuple[float, float], ...]     # 5 landmark positions inside the chip
    embedding_size: int
    metric: str                                   # "euclidean" (lower = same) or "cosine" (higher = same)
    threshold: float                              # match when similarity >= threshold (see matching)
    kind: str = "embedder"
    layout: str = "NCHW"


DETECTOR = DetectorContract()
DLIB_RESNET = EmbedderContract(
    name="dlib_resnet", input_size=150, colour_order="RGB", mean=(122.782, 117.001, 104.298),
    std=(256.0, 256.0, 256.0), template=DLIB_CHIP_TEMPLATE, embedding_size=128,
    metric="euclidean", threshold=-0.6)           # similarity is -distance; dlib's own 0.6
SFACE = EmbedderContract(
    name="sface", input_size=112, colour_order="RGB", mean=(127.5, 127.5, 127.5),
    std=(128.0, 128.0, 128.0), template=ARCFACE_112_TEMPLATE, embedding_size=128,
    metric="cosine", threshold=0.363)             # OpenCV Zoo's default cosine threshold
# The distilled MobileFaceNet-style student (models/student.py, `facegate train student`): SFace's chips and
# pixel normalisation, since it is trained to reproduce SFace's embeddings.
STUDENT_MFN = EmbedderContract(
    name="student_mfn", input_size=112, colour_order="RGB", mean=(127.5, 127.5, 127.5),
    std=(128.0, 128.0, 128.0), template=ARCFACE_112_TEMPLATE, embedding_size=128,
    metric="cosine", threshold=0.363)             # placeholder: a bundle records the threshold chosen on LFW
EMBEDDERS = {c.name: c for c in (DLIB_RESNET, SFACE, STUDENT_MFN)}


@dataclass(frozen=True)
class LivenessContract:
    """Input/output contract of a presentation-attack (liveness) classifier judging one face crop.

    The crop (edge_runtime/liveness.liveness_crop): the face box is first adjusted to the box convention
    the network was trained with (box_width_scale, box_height_scale around the centre, then shifted by
    box_shift_y box heights), enlarged `scale` times around its centre (capped so it fits the image),
    shifted back inside the image, cut and resized to input_size. Output: `classes` logits, softmax;
    class `real_index` = a real face."""

    name: str
    scale: float                                  # crop side / face box side
    kind: str = "liveness"
    input_size: int = 80
    colour_order: str = "BGR"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    classes: int = 3
    real_index: int = 1
    box_width_scale: float = 1.0                  # our detector's box -> the training detector's box
    box_height_scale: float = 1.0
    box_shift_y: float = 0.0                      # in box heights, + = down


MINIFASNET_V2 = LivenessContract(name="minifasnet_v2", scale=2.7)
MINIFASNET_V1SE = LivenessContract(name="minifasnet_v1se", scale=4.0)
LIVENESS = {c.name: c for c in (MINIFASNET_V2, MINIFASNET_V1SE)}


@dataclass(frozen=True)
class QualityContract:
    """Input/output contract of a face-image quality model (`facegate train quality`): a head on the raw
    fused embedding of the embedder files whose sha256 it records (part_sha256); it outputs one float per
    face, higher = more usable for recognition, in `units`."""

    name: str
    parts: tuple[str, ...]                        # the fused embedder's parts, in embedding order
    dims: tuple[int, ...]                         # their embedding sizes
    part_sha256: dict = field(default_factory=dict)   # {part: sha256 of the embedder file trained on}
    kind: str = "quality"
    input: str = "raw fused embedding"
    layout: str = "ND"
    features_of: str = ""                         # the fusion's name, e.g. "sface+dlib_resnet"
    bundle_id: str = ""                           # the bundle it was trained with (informative)
    output: str = "quality"
    higher_is_better: bool = True
    units: str = ""


def to_metadata(contract) -> dict[str, str]:
    """Contract -> ONNX metadata_props (one JSON string under the key 'facegate.contract')."""
    return {"facegate.contract": json.dumps(asdict(contract), sort_keys=True)}


def from_metadata(meta: dict[str, str]):
    """ONNX metadata_props -> DetectorContract, EmbedderContract or LivenessContract. Raises ContractError."""
    raw = meta.get("facegate.contract")
    if raw is None:
        raise ContractError("model has no 'facegate.contract' metadata: it was not exported by "
                            "`facegate export`; re-export it instead of guessing its input format")
    try:
        d = json.loads(raw)
        kind = d.get("kind")
        if kind == "detector":
            d["priors"] = PriorConfig(**{k: _tuples(v) for k, v in d["priors"].items()})
            cls = DetectorContract
        elif kind == "embedder":
            cls = EmbedderContract
        elif kind == "quality":
            cls = QualityContract
        elif kind == "liveness":
            cls = LivenessContract
        else:
            raise ContractError(f"unknown model kind {kind!r} in contract")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ContractError(f"unknown contract fields {sorted(unknown)}")
        return cls(**{k: _tuples(v) for k, v in d.items()})
    except (ValueError, TypeError, KeyError) as e:
        raise ContractError(f"model contract is malformed: {e}") from None


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def check_contract(found, expected) -> None:
    """Raise ContractError naming every field where a model's contract differs from the expected one."""
    if type(found) is not type(expected):
        raise ContractError(f"expected a {expected.kind} model, got a {getattr(found, 'kind', '?')}")
    diffs = [f.name for f in fields(expected)
             if f.name != "threshold" and getattr(found, f.name) != getattr(expected, f.name)]
    if diffs:
        raise ContractError("model contract differs from what this runtime expects in: "
                            + ", ".join(f"{n} (model {getattr(found, n)!r}, runtime {getattr(expected, n)!r})"
                                        for n in diffs))
