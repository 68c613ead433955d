"""deploy/: the example config is the documented default, and the service commands parse."""
import shlex
from pathlib import Path

from facegate.edge_runtime.config import Config, load_config
from facegate.main import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_example_config_is_the_default():
    assert load_config(DEPLOY / "config.example.toml", missing_ok=False) == Config()
    # word for word what `facegate config init` writes, so its comments cannot fall behind the settings
    assert (DEPLOY / "config.example.toml").read_text() == Config().to_toml()


def test_service_command_lines_parse():
    for unit in ("facegate.service", "facegate-admin.service", "facegate-backup.service"):
        line = next(l for l in (DEPLOY / unit).read_text().splitlines() if l.startswith("ExecStart="))
        argv = shlex.split(line.split("=", 1)[1])[1:]
        args = build_parser().parse_args(argv)
        assert args.home == "/var/lib/facegate"
