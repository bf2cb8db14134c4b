"""The runnable example of docs/python_api.md runs as written and prints what the page says it prints."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(REPO, "docs", "python_api.md")


def _blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_python_api_example_runs_and_prints_what_the_page_says(tmp_path):
    with open(PAGE, encoding="utf-8") as f:
        text = f.read()
    code, = _blocks(text, "python")  # The page has exactly one runnable block.
    expected, = _blocks(text, "text")  # ... and one block of its output.
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()
    for line in expected.strip().splitlines():
        assert line in printed, f"{line!r} not printed; stdout:\n{done.stdout}"
