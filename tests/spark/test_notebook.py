"""``examples/notebook.ipynb`` executed by a real Jupyter kernel (nbclient, ipykernel), as a user runs it.

Any cell error fails the test. The live display must reach the notebook as one HTML display updated in
place (not terminal escape codes), and the leaderboard, the plot and the scores must be in the outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def test_the_notebook_runs_and_shows_a_live_table(tmp_path, monkeypatch):
    import nbclient  # the dev extra (make install)
    import nbformat

    # A kernel spec of its own, for this very interpreter: never some other "python3" on the machine.
    spec = tmp_path / "kernels" / "cerebro-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "cerebro", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("CEREBRO_STORE", str(tmp_path / "store"))

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="cerebro-test",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on any cell error

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    texts = [json.dumps(out) for out in outputs]
    assert not any("\\u001b[" in text for text in texts)  # no terminal escape codes anywhere
    live = [
        out
        for out in outputs
        if out.output_type == "display_data" and "units" in out.data.get("text/plain", "")
    ]
    assert len(live) == 1  # one display, updated in place
    assert "units 96/96" in live[0].data["text/plain"]  # its final state: 8 models x 3 epochs x 4 units
    assert all(f"m000{i}" in live[0].data["text/html"] for i in range(8))
    assert any("image/png" in out.get("data", {}) for out in outputs)  # result.plot()
    assert any("val_accuracy" in out.get("data", {}).get("text/html", "") for out in outputs)  # leaderboard
    assert (tmp_path / "store" / "report.html").exists()
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    accuracy = float(printed.split("accuracy ")[1].split()[0])
    assert accuracy > 0.8, printed
