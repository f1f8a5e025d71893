"""`make e2e-report`'s plugin on a real pytest run: outcomes folded into scenarios, printed and written as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_reports_a_real_run(tmp_path: Path) -> None:
    # GIVEN a tier with a passing, a failing and a skipped scenario
    tier = tmp_path / "tier1"
    tier.mkdir()
    (tier / "test_t1_1_ok.py").write_text('"""T1.1 It works: yes."""\n\ndef test_a():\n    assert True\n')
    (tier / "test_t1_2_bad.py").write_text('"""T1.2 It breaks."""\n\ndef test_b():\n    assert 1 == 2, "boom"\n')
    (tier / "test_t1_3_skip.py").write_text(
        '"""T1.3 Not here."""\nimport pytest\n\n@pytest.mark.skip(reason="Docker not available")\n'
        "def test_c():\n    pass\n")
    out = tmp_path / "report.json"
    # WHEN pytest runs with the plugin
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.e2e.report",
         f"--e2e-report-json={out}", "--rootdir", str(tmp_path), str(tier)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    # THEN the run fails (one test did), the report is printed and written
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✅ T1.1 It works" in done.stdout and "❌ T1.2 It breaks (FAILED - AssertionError: boom" in done.stdout
    assert "⏭️ T1.3 Not here (SKIPPED - Docker not available)" in done.stdout
    assert "Success Rate: 33.3%" in done.stdout
    doc = json.loads(out.read_text())
    assert [s["status"] for s in doc["scenarios"]] == ["passed", "failed", "skipped"]
