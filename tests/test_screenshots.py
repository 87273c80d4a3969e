"""The README's screenshots come from scripts/screenshots.py (which takes minutes, so it runs by hand)."""

import json
import os
import re
import subprocess
import sys

from .conftest import ROOT


def test_every_readme_image_is_one_the_script_made():
    with open(os.path.join(ROOT, "README.md")) as f:
        referenced = set(re.findall(r"docs/screenshots/([\w-]+\.png)", f.read()))
    with open(os.path.join(ROOT, "docs", "screenshots", "screenshots.json")) as f:
        record = json.load(f)
    assert referenced and referenced <= set(record["images"]), referenced - set(record["images"])
    assert record["command"] == "python scripts/screenshots.py" and record["git"]["commit"]
    on_disk = {n for n in os.listdir(os.path.join(ROOT, "docs", "screenshots")) if n.endswith(".png")}
    assert on_disk == set(record["images"])  # no image left over from an older layout


def test_the_script_starts_only_from_an_empty_runs_folder(tmp_path):
    (tmp_path / "runs" / "20261207-000000-grpo-abcd").mkdir(parents=True)
    r = subprocess.run([sys.executable, "scripts/screenshots.py", "--runs-dir", str(tmp_path / "runs")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "already holds runs" in r.stderr and "Traceback" not in r.stderr
