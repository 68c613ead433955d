"""Test a photo: who does the door think is in it, with what score, against which threshold."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from ..enrollment import face_report
from ..errors import ImageError
from ..fusion import metric_label
from ..imageio import decode_image, encode_jpeg
from .enroll import data_uri
from .services import audit_action, enrolled_templates, sentence, services
from .uploads import UploadError, read_photos

bp = Blueprint("identify", __name__)

CROP_JPEG_QUALITY = 85          # face crops shown on the test page


def identify_photo(label: str, data: bytes) -> dict:
    """Every face in one photo matched against the enrolled people (shared by the page and the API).

    Returns {"file", "threshold", "metric", "faces": [face_report + "crop" (JPEG bytes)]}.
    Raises ImageError when the upload is not a usable image (or a face crop cannot be encoded).
    """
    image = decode_image(data, label)
    s = services()
    rec = s.recognizer(enrolled_templates())
    with s.inference():
        results = rec.analyze(image)
    faces = []
    for r in results:
        f = face_report(r)
        f["crop"] = encode_jpeg(r.chip, CROP_JPEG_QUALITY)
        faces.append(f)
    audit_action("identify", None, faces=len(faces),
                 matches=[{"person": f["person"], "score": f["score"]} for f in faces])
    return {"file": label, "threshold": rec.threshold, "metric": metric_label(rec.metric), "faces": faces}


@bp.route("/test", methods=["GET", "POST"])
def page():
    if request.method == "GET":
        return render_template("test.html", result=None, threshold=services().recognizer(enrolled_templates()).threshold)
    try:
        (label, data), = read_photos("photo", max_count=1)
        result = identify_photo(label, data)
    except (UploadError, ImageError) as e:
        return render_template("test.html", result=None, error=sentence(e),
                               threshold=services().recognizer(enrolled_templates()).threshold), 400
    return render_template("test.html", result=result, data_uri=data_uri, threshold=result["threshold"])
