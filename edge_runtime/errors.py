"""Specific exceptions; each message tells the user what to do."""


class FacegateError(Exception):
    """Base class for every error facegate raises on purpose."""


class ImageError(FacegateError, ValueError):
    """A file is not a usable image (not an image, truncated, too large, a decompression bomb)."""


class FaceNotFoundError(FacegateError):
    """No usable face in an image."""


class ManyFacesError(FacegateError):
    """Several faces where exactly one was required."""


class ContractError(FacegateError):
    """A model's input contract is missing or does not match what the runtime expects."""
