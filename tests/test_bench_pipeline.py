"""`bench pipeline` measures what the door runs: every frame goes through Runner.process."""
from __future__ import annotations

from facegate.edge_runtime.door.runner import Runner
from facegate.edge_runtime.eval.pipeline import DOOR_ENV, door_clip, run_door_clip


def test_bench_pipeline_drives_the_runner(data_dir, tmp_path, monkeypatch):
    calls = []
    process = Runner.process

    def counted(self, ts, frame):
        calls.append(ts)
        return process(self, ts, frame)

    monkeypatch.setattr(Runner, "process", counted)
    report = run_door_clip(door_clip(data_dir), tmp_path)
    assert report["driven_by"] == "Runner.process"
    assert len(calls) == report["frames"] > 200          # every frame of the clip, one by one
    assert calls == sorted(calls) and calls[0] == 0.0
    # Lin-Manuel Miranda is recognised, then the door opens k frames later, as `facegate run` does
    assert report["first_seen_frame"] is not None and report["open_frame"] is not None
    assert report["open_frame"] - report["first_seen_frame"] >= report["k"] - 1
    assert 0 < report["decision_latency_ms"] < 2000
    assert report["frames_with_face"] > 100 and report["median_frame_ms"] > 0


def test_bench_pipeline_runs_its_processes_with_the_door_units_malloc_settings():
    from pathlib import Path

    unit = (Path(__file__).parents[1] / "deploy/facegate.service").read_text().splitlines()
    assert all(f"Environment={k}={v}" in unit for k, v in DOOR_ENV.items())


def test_the_door_process_loads_no_admin_web_or_tls_code():
    import subprocess
    import sys

    code = ("import sys\n"
            "import facegate.run_door, facegate.context\n"
            "from facegate.edge_runtime.door import actuators, camera, home_assistant, runner\n"
            "from facegate.edge_runtime import enrollment, recognizer, store\n"
            "print(sorted(m for m in ('flask', 'werkzeug', 'jinja2', 'ssl', 'urllib.request', "
            "'facegate.edge_runtime.admin') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"                                      # each a few MB on a 512 MB board


def test_each_side_reports_the_medians_of_its_runs_and_its_largest_peak():
    from facegate.edge_runtime.eval.clip_process import main
    from facegate.edge_runtime.eval.pipeline import _combine

    runs = [{"peak_rss_mb": 150.0, "median_frame_ms": 10.0, "fps": 100.0, "frames": 275},
            {"peak_rss_mb": 146.0, "median_frame_ms": 20.0, "fps": 50.0, "frames": 275},
            {"peak_rss_mb": 153.0, "median_frame_ms": 12.5, "fps": 80.0, "frames": 275}]
    r = _combine(runs)
    assert (r["peak_rss_mb"], r["peak_rss_mb_max"], r["median_frame_ms"], r["fps"]) == (150.0, 153.0, 12.5, 80.0)
    assert [x["peak_rss_mb"] for x in r["runs"]] == [150.0, 146.0, 153.0] and r["frames"] == 275
    assert main(["nonsense", "{}"]) == 2
