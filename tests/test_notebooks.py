"""The tutorial notebooks: English and Chinese in step, stored without outputs, and runnable.

The run test executes both notebooks top to bottom with nbclient, headless, on the demo bundle
in a temporary data folder, as "Run All" would with no edits. They share that folder, so the
second reuses the demo bundle and the compiled programs the first left in its JAX cache.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
ENGLISH = NOTEBOOKS_DIR / "graphcast_tutorial.ipynb"
CHINESE = NOTEBOOKS_DIR / "graphcast_tutorial_zh.ipynb"
NOTEBOOKS = (ENGLISH, CHINESE)
KERNEL = "graphcast-notebook-test"


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _code_cells(path: Path) -> list[str]:
    return [_source(cell) for cell in _read(path)["cells"] if cell["cell_type"] == "code"]


def _without_comments(code: str) -> list[tuple[int, str]]:
    """The code's tokens without comments: what runs, whatever language the comments are in."""
    lines = [line for line in code.splitlines() if not line.lstrip().startswith("%")]  # magics
    tokens = tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline)
    skipped = (tokenize.COMMENT, tokenize.NL)
    return [(token.type, token.string) for token in tokens if token.type not in skipped]


def test_notebooks_have_the_same_code():
    english, chinese = _code_cells(ENGLISH), _code_cells(CHINESE)
    assert len(english) == len(chinese) >= 10
    for index, (en, zh) in enumerate(zip(english, chinese, strict=True)):
        assert _without_comments(en) == _without_comments(zh), f"code cell {index} differs"
        magics = [line for line in en.splitlines() if line.startswith("%")]
        assert magics == [line for line in zh.splitlines() if line.startswith("%")]
    # The Chinese notebook is translated: its prose and comments are not the English ones.
    markdown = [
        [_source(c) for c in _read(path)["cells"] if c["cell_type"] == "markdown"]
        for path in NOTEBOOKS
    ]
    assert len(markdown[0]) == len(markdown[1])
    assert all(en != zh for en, zh in zip(*markdown, strict=True))
    assert "，" in "".join(markdown[1]) and "# " in "".join(chinese)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = _read(path)
    assert notebook["nbformat"] == 4
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        assert "execution" not in cell.get("metadata", {})
    assert path.read_text(encoding="utf-8").endswith("}\n")  # as end-of-file-fixer wants


def test_nbstripout_leaves_the_notebooks_unchanged():
    """The pre-commit hook would rewrite a notebook with outputs or ids it does not write."""
    pytest.importorskip("nbstripout")
    command = [sys.executable, "-m", "nbstripout", "--verify", *map(str, NOTEBOOKS)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _write_kernelspec(jupyter_path: Path) -> None:
    """A kernel running this interpreter, so the notebooks import the package under test."""
    folder = jupyter_path / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "graphcast notebook test",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def _outputs(notebook) -> tuple[str, set[str]]:
    """All printed text, and the MIME types displayed."""
    text, mime = [], set()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                text.append(output["text"])
            elif output["output_type"] in ("display_data", "execute_result"):
                mime.update(output["data"])
    return "".join(text), mime


@pytest.mark.slow
def test_notebooks_run_headless_on_the_demo_bundle(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    _write_kernelspec(tmp_path / "jupyter")
    data_dir = tmp_path / "data"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GRAPHCAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            notebook,
            kernel_name=KERNEL,
            timeout=300,
            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
        )
        client.execute()  # raises CellExecutionError, naming the cell, on any error
        text, mime = _outputs(notebook)
        assert "error" not in {
            o["output_type"] for c in notebook.cells for o in c.get("outputs", [])
        }
        assert f"Data folder: {data_dir}" in text
        assert "Model 'demo'" in text and "SYNTHETIC" in text
        assert "2 steps in" in text and "2m_temperature" in text
        assert "image/png" in mime  # the maps and charts were drawn
        images = sum(
            "image/png" in output.get("data", {})
            for cell in notebook.cells
            for output in cell.get("outputs", [])
        )
        assert images == 4  # input map, prediction maps, RMSE chart, loss curve
        loss = float(text.split("loss: ")[1].split()[0])
        assert loss > 0
        losses = json.loads(text.split("then after the last: ")[1].splitlines()[0])
        assert len(losses) == 4 and losses[0] == pytest.approx(loss, rel=1e-3)
        assert losses[-1] < losses[0]  # three AdamW steps on one batch lower its loss
    assert len(list((data_dir / "params").glob("*.npz"))) == 1  # written once, then reused


def test_notebooks_are_what_the_generator_writes(tmp_path):
    # Both notebooks come from scripts/notebooks: an edit made to one notebook only is caught here.
    (tmp_path / "notebooks").mkdir()
    generator = NOTEBOOKS_DIR.parent / "scripts" / "notebooks" / "make_notebooks.py"
    subprocess.run([sys.executable, str(generator), str(tmp_path)], check=True, capture_output=True)
    for name in ("graphcast_tutorial.ipynb", "graphcast_tutorial_zh.ipynb"):
        written = (tmp_path / "notebooks" / name).read_text(encoding="utf-8")
        assert written == (NOTEBOOKS_DIR / name).read_text(encoding="utf-8"), name
