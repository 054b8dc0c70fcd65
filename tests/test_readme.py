"""Every Python code block of README.md and of the documentation pages
(docs/**/*.md) runs, so that no snippet can rot.

How the blocks are run (the convention for anyone writing README.md or a
docs page):

* Every block fenced with ```python is a test; other fences (```bash, ```)
  are not run.  Its test id is `L<line>-<section heading>`.
* A block runs alone, as pasted into a fresh interpreter: in an empty
  namespace (it imports what it uses, and every name it reads is defined in
  it), in a fresh temporary working directory (files it writes go there), with matplotlib on the Agg backend, and with nncore's class
  registries holding only nncore's own classes while it runs (a block may
  register its own classes, as in a fresh process).
* An HTML comment on the line right before the fence (blank lines allowed in
  between) says what the block needs:

      <!-- readme-test: setup=NAME[,NAME...] requires=MODULE[,MODULE...] -->
      <!-- readme-test: skip=REASON -->

  `setup=` runs the setups named (the functions `setup_NAME` below) before
  the block.  A setup only stands in for the world outside the block: a
  download (patched to return small synthetic data) or a file that the
  README's text or a shell block before it tells the reader to make.  It
  has no access to the block's namespace.  `requires=`
  skips the block unless every module imports (for optional extras such as
  onnx, onnxruntime, sklearn, dask, distributed).  `skip=` never runs it and
  gives the reason; use it only for what cannot run in a test (a cluster
  address, a service), never to hide a broken snippet.
* To add a setup, write `setup_NAME(monkeypatch)` here: it may write files
  into the current directory and patch with `monkeypatch` (undone after the
  block).  Keep data small: the whole
  README runs in a few seconds.
"""
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import nncore
from nncore import registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
if not README.is_file():     # tests copied out of the checkout (a wheel's test run)
    pytest.skip("README.md is not beside the tests", allow_module_level=True)
# the pages of the documentation site (the gallery's pages are generated from docs/gallery)
PAGES = [README] + sorted(path for path in (ROOT / "docs").rglob("*.md")
                          if not {"_build", "auto_examples", "generated"} & set(path.parts))
MARKER = re.compile(r"<!--\s*readme-test:(.*?)-->")
FENCE = re.compile(r"```(\S*)")


def readme_blocks(text, source="README.md"):
    """(line number, section heading, code, options) of every ```python block."""
    blocks, heading, lines = [], "top", text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence:
            end = index + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if fence.group(1) == "python":
                code = "\n".join(lines[index + 1:end]) + "\n"
                blocks.append((index + 1, heading, code, block_options(lines, index, source)))
            index = end
        index += 1
    return blocks


def block_options(lines, fence_index, source="README.md"):
    """The readme-test options written just before the fence at fence_index."""
    before = fence_index - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    marker = MARKER.fullmatch(lines[before].strip()) if before >= 0 else None
    if marker is None:
        return {}
    text = marker.group(1).strip()
    if text.startswith("skip="):
        return {"skip": text[len("skip="):].strip()}
    options = {}
    for word in text.split():
        key, _, value = word.partition("=")
        if key not in ("setup", "requires") or not value:
            raise ValueError(f"{source} line {fence_index}: unknown readme-test option "
                             f"{word!r} (use setup=, requires= or skip=)")
        options[key] = value.split(",")
    return options


def page_name(path):
    return path.relative_to(ROOT).as_posix()


BLOCKS = [(page_name(path), *block) for path in PAGES
          for block in readme_blocks(path.read_text(encoding="utf-8"), page_name(path))]


def block_id(block):
    page, line, heading = block[0], block[1], block[2]
    prefix = "" if page == "README.md" else page.removeprefix("docs/").removesuffix(".md") + ":"
    return f"{prefix}L{line}-" + re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


# ------------------------------------------------------------------ setups
def setup_mnist(monkeypatch):
    """nncore.datasets.load_mnist returns small synthetic MNIST-shaped data
    (uint8 images, training labels sorted like the repository's train5k)
    instead of downloading."""
    rng = np.random.default_rng(0)

    def load_mnist(path=None, url=None):
        train_labels = np.sort(np.arange(300) % 10).astype(np.uint8)
        test_labels = (np.arange(100) % 10).astype(np.uint8)
        return ((rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), train_labels),
                (rng.integers(0, 256, (100, 28, 28), dtype=np.uint8), test_labels))

    monkeypatch.setattr(nncore.datasets, "load_mnist", load_mnist)


def setup_mnist_cnn_onnx(monkeypatch):
    """mnist_cnn.onnx, as the shell block before it makes: the (untrained)
    network of examples/mnist_cnn.py exported to ONNX in the working
    directory."""
    net = nncore.Network([
        nncore.Conv2D(32, 3, activation="relu"), nncore.MaxPool2D(2),
        nncore.Conv2D(64, 3, activation="relu"), nncore.MaxPool2D(2),
        nncore.Flatten(), nncore.Dense(128, activation="relu"), nncore.Dense(10),
    ], input_shape=(28, 28, 1), seed=0)
    importlib.import_module("nncore.onnx").export(net, "mnist_cnn.onnx")


SETUPS = {name[len("setup_"):]: function for name, function in globals().items()
          if name.startswith("setup_")}


# ------------------------------------------------------------------- the test
@pytest.fixture
def isolated_registries(monkeypatch):
    """nncore's own classes only (as in a fresh process), restored afterwards."""
    monkeypatch.setattr(registry, "_REGISTRIES", {
        kind: {name: cls for name, cls in table.items()
               if cls.__module__.split(".")[0] == "nncore"}
        for kind, table in registry._REGISTRIES.items()})


@pytest.mark.parametrize("block", BLOCKS, ids=[block_id(b) for b in BLOCKS])
def test_readme_block_runs(block, tmp_path, monkeypatch, isolated_registries):
    page, line, heading, code, options = block
    if "skip" in options:
        pytest.skip(f"{page} line {line}: {options['skip']}")
    for module in options.get("requires", []):
        pytest.importorskip(module)
    unknown = [name for name in options.get("setup", []) if name not in SETUPS]
    assert not unknown, f"{page} line {line}: unknown setups {unknown}; have {sorted(SETUPS)}"
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        pass
    monkeypatch.chdir(tmp_path)
    for name in options.get("setup", []):
        SETUPS[name](monkeypatch)
    namespace = {"__name__": "readme_block"}
    try:
        exec(compile(code, f"{page}:{line}", "exec"), namespace)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def test_the_readme_has_python_blocks_and_known_setups():
    assert len(BLOCKS) >= 5
    names = {name for block in BLOCKS for name in block[4].get("setup", [])}
    assert names <= set(SETUPS)


def test_markers_are_read_from_the_line_before_the_fence():
    text = ("# T\n<!-- readme-test: setup=digits requires=numpy -->\n\n```python\n"
            "x = 1\n```\n```bash\nls\n```\n<!-- readme-test: skip=needs a cluster -->\n"
            "```python\ny = 2\n```\n")
    blocks = readme_blocks(text)
    assert [(b[0], b[2], b[3]) for b in blocks] == [
        (4, "x = 1\n", {"setup": ["digits"], "requires": ["numpy"]}),
        (11, "y = 2\n", {"skip": "needs a cluster"})]
    with pytest.raises(ValueError, match="unknown readme-test option 'fixture=x'"):
        readme_blocks("<!-- readme-test: fixture=x -->\n```python\npass\n```\n")
