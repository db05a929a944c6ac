"""Writes notebooks/graphcast_tutorial{,_zh}.ipynb (English, Chinese) from one list of cells.

The code cells live in cells_code.py, the prose and translated comments in texts.py; run
`python scripts/notebooks/make_notebooks.py` after editing either, so both notebooks stay in step.
"""

import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
import cells_code as C  # noqa: E402
import texts as T  # noqa: E402

ORDER = [
    ("md", "intro"),
    ("md", "credits"),
    ("md", "imports"),
    ("code", C.IMPORTS),
    ("md", "choose"),
    ("code", C.CHOOSE),
    ("md", "locate"),
    ("code", C.LOCATE),
    ("md", "fetch"),
    ("code", C.FETCH),
    ("md", "listing"),
    ("code", C.LISTING),
    ("md", "load"),
    ("code", C.LOAD),
    ("md", "plot_inputs"),
    ("code", C.PLOT_CHOICE),
    ("code", C.PLOT_INPUTS),
    ("md", "extract"),
    ("code", C.EXTRACT),
    ("md", "predict"),
    ("code", C.PREDICT),
    ("md", "plot_predictions"),
    ("code", C.PLOT_PRED_CHOICE),
    ("code", C.PLOT_PRED),
    ("md", "evaluate"),
    ("code", C.EVALUATE),
    ("md", "loss"),
    ("code", C.LOSS),
    ("md", "grads"),
    ("code", C.GRADS),
    ("md", "train"),
    ("code", C.TRAIN),
    ("md", "next"),
]


def translate(code: str, lang: str) -> str:
    def replace(match):
        indent, key = match.group(1), match.group(2)
        text = T.COMMENTS[key][lang]
        return "\n".join(f"{indent}# {line}" for line in text.split("\n"))

    out = re.sub(r"^( *)# @@([\w-]+)$", replace, code, flags=re.M)
    out = re.sub(
        r"  # @@([\w-]+)$", lambda m: "  # " + T.COMMENTS[m.group(1)][lang], out, flags=re.M
    )
    assert "@@" not in out, out
    return out.rstrip("\n")


def build(lang: str) -> nbformat.NotebookNode:
    cells = []
    for kind, value in ORDER:
        if kind == "md":
            cells.append(nbformat.v4.new_markdown_cell(T.MARKDOWN[value][lang].strip("\n")))
        else:
            cells.append(nbformat.v4.new_code_cell(translate(value, lang)))
    for index, cell in enumerate(cells):
        cell["id"] = str(index)  # the ids nbstripout writes
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (graphcast)",
            "language": "python",
            "name": "graphcast",
        },
        "language_info": {"name": "python"},
    }
    return notebook


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    for lang, name in (("en", "graphcast_tutorial.ipynb"), ("zh", "graphcast_tutorial_zh.ipynb")):
        notebook = build(lang)
        nbformat.validate(notebook)
        (root / "notebooks" / name).write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")
        print("wrote", root / "notebooks" / name)
