"""Every ```python block of README.md runs as written (in a fresh namespace, in order)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the fenced ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_block_extraction_by_hand():
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = 2\n"]


def test_readme_python_blocks_run():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no python block"
    library = None
    for number, code in enumerate(blocks, 1):
        namespace: dict = {"__name__": f"readme_block_{number}"}
        exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        library = namespace if "loss" in namespace else library
    # the library example (the block that computes a CoSENT loss) trains: a finite scalar, gradients on the encoder
    assert library is not None, "README.md's library example (a block computing `loss`) is missing"
    loss, encoder = library["loss"], library["encoder"]
    assert loss.dim() == 0 and bool(loss.isfinite())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert library["vectors"].shape == (1, encoder.hidden_size)
