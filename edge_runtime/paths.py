"""Where facegate's folders are: the data home on the device (one private folder holding the store and
the config) and the research data folder that evaluation, calibration and training read."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import FacegateError

STORE_FILE = "store.db"        # SQLite enrollment store (people, templates, images, audit)
CONFIG_FILE = "config.toml"    # the one configuration file
BEFORE_RESTORE = ".before-restore"   # suffix of a data home file a forced restore replaced (kept next to it)

HOME_ENV = "FACEGATE_HOME"
DATA_ENV = "FACEGATE_DATA"
DEFAULT_DATA = "../shared/data"  # the shared research data, seen from the repository root
DIR_MODE = 0o700               # biometric data: readable by the owner only


class DataHomeError(FacegateError):
    """The data folder cannot be used (exists as a file, cannot be created)."""


def data_home(cli_home: str | Path | None = None) -> Path:
    """The data folder, created (mode 0o700) if missing.

    Looked up in order: `cli_home` (the `--home` argument), `$FACEGATE_HOME`,
    `$XDG_DATA_HOME/facegate` (only if that variable holds an absolute path, as the XDG spec
    says), `~/.local/share/facegate`. An existing folder keeps its permissions.
    Returns the absolute path.
    """
    if cli_home is not None and str(cli_home) != "":
        home, origin = Path(cli_home).expanduser(), "--home"
    elif os.environ.get(HOME_ENV):
        home, origin = Path(os.environ[HOME_ENV]).expanduser(), f"${HOME_ENV}"
    elif os.environ.get("XDG_DATA_HOME") and os.path.isabs(os.environ["XDG_DATA_HOME"]):
        home, origin = Path(os.environ["XDG_DATA_HOME"]) / "facegate", "$XDG_DATA_HOME"
    else:
        home, origin = Path.home() / ".local" / "share" / "facegate", "the default"
    home = home.absolute()
    if home.exists() and not home.is_dir():
        raise DataHomeError(f"data folder {home} (from {origin}) is a file, not a folder: "
                            f"move it away or choose another folder with --home or ${HOME_ENV}")
    if not home.is_dir():
        try:
            home.mkdir(mode=DIR_MODE, parents=True)
        except FileExistsError:        # created meanwhile by another process: fine
            pass
        except OSError as e:
            raise DataHomeError(f"cannot create data folder {home} (from {origin}): {e.strerror}; "
                                f"choose a writable folder with --home or ${HOME_ENV}") from e
        else:
            os.chmod(home, DIR_MODE)   # mkdir's mode is masked by the umask
    return home


def store_path(home: Path) -> Path:
    """The enrollment store inside the data folder."""
    return Path(home) / STORE_FILE


def config_path(home: Path) -> Path:
    """The config file inside the data folder."""
    return Path(home) / CONFIG_FILE


def data_dir() -> Path:
    """The research data folder (LFW, WIDER FACE, videos, weights; see its MANIFEST.md): $FACEGATE_DATA,
    default ../shared/data relative to the working directory. Not created; callers say what is missing."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)
