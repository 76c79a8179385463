"""The README's simulator example runs as written (review section 5: it lacked an import)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_simulator_snippet_runs_verbatim():
    text = README.read_text()
    marker = text.index("<!-- readme-simulator-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code is not None
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    assert namespace["r"].choices[0].message.content.startswith("Hello from xai.grok-4")
