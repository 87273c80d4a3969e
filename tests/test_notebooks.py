"""The teaching notebooks (notebooks/*.ipynb) run top to bottom, with the small settings their
`QUICK` switch picks, in a fresh kernel, and are committed without outputs."""

import glob
import os

import nbformat
import pytest

from .conftest import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_the_three_notebooks_are_there_and_stripped():
    assert [os.path.basename(p) for p in NOTEBOOKS] == ["01-playground.ipynb", "02-labs.ipynb",
                                                        "03-dpo-vs-rlhf.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path}: outputs not stripped"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # the kernel inherits this environment: small settings, and runs in a folder of the test's own
    monkeypatch.setenv("RLHF_EXPLORER_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("RLHF_EXPLORER_RUNS", str(tmp_path / "runs"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if "labs" not in path:  # runs went where the app would list them
        assert os.listdir(tmp_path / "runs")
