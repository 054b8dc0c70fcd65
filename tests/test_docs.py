"""The API reference covers every public name, and the docstring examples run.

A public name is one in the module's ``__all__``; a module without
``__all__`` exports the classes and functions it defines whose names do not
start with an underscore.  Each must have a docstring of its own (data: a
``#:`` comment before its assignment) and be listed in an ``autosummary`` on
one of the pages of docs/api/, under any name that is the same object (an
alias such as ``nncore.FCLayer`` is covered by ``nncore.layers.FCLayer``).
A name of nncore's ``__all__`` that is a submodule needs a module docstring
and a page whose ``automodule`` or ``currentmodule`` is that module.

Each public class and function has numpydoc sections: "Parameters" naming
every argument it takes (a class: its constructor's), "Returns" when a
function is annotated to return something, and "Examples", which run here
as doctests.
"""
import doctest
import importlib
import inspect
import re
import types
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
if not (DOCS / "api").is_dir():     # tests copied out of the checkout (a wheel's test run)
    pytest.skip("docs/ is not beside the tests", allow_module_level=True)

MODULES = ["nncore", "nncore.layers", "nncore.losses", "nncore.optimizers", "nncore.callbacks",
           "nncore.metrics", "nncore.sklearn", "nncore.dask", "nncore.mpi", "nncore.onnx"]
# modules whose import needs an optional package (imported for the check when installed)
OPTIONAL = {"nncore.sklearn": "sklearn", "nncore.dask": "dask", "nncore.mpi": "mpi4py"}
NOT_REFERENCED = {"__version__"}        # said in prose on docs/api/index.md
ENTRY = re.compile(r"^\s{3,}~?([A-Za-z_][\w.]*)\s*$")
DIRECTIVE = re.compile(r"^\s*(?:\.\. |```\{)(autosummary|currentmodule|automodule)[}:]*\s*(\S*)")


def load(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    return importlib.import_module(name)


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is not None:
        return [name for name in names if name not in NOT_REFERENCED]
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_")
                  and (inspect.isclass(value) or inspect.isfunction(value))
                  and getattr(value, "__module__", None) == module.__name__)


def reference_entries():
    """(fully qualified names listed in autosummary tables, modules with a page)."""
    listed, modules = set(), set()
    for page in sorted((DOCS / "api").glob("*.*")):
        current, in_table = None, False
        for line in page.read_text(encoding="utf-8").splitlines():
            directive = DIRECTIVE.match(line)
            if directive:
                kind, argument = directive.groups()
                if kind in ("currentmodule", "automodule"):
                    current = argument
                    modules.add(argument)
                in_table = kind == "autosummary"
                continue
            entry = ENTRY.match(line)
            if in_table and entry and not line.strip().startswith(":"):
                name = entry.group(1)
                listed.add(name if current is None else f"{current}.{name}")
    return listed, modules


def resolve(qualified):
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(qualified)


def own_docstring(module, name, value):
    if callable(value) or inspect.ismodule(value):
        return (value.__doc__ or "").strip()
    from sphinx.pycode import ModuleAnalyzer       # data: the '#:' comment of its assignment
    docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
    return " ".join(docs.get(("", name), [])).strip()


def test_every_public_name_has_a_docstring_and_a_reference_entry():
    pytest.importorskip("sphinx")
    listed, module_pages = reference_entries()
    listed_objects = {}
    for qualified in listed:
        try:
            listed_objects.setdefault(id(resolve(qualified)), qualified)
        except (ImportError, AttributeError) as error:
            pytest.fail(f"docs/api lists {qualified}, which does not import: {error}")
    missing_docstring, missing_page = [], []
    for module_name in MODULES:
        module = load(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            qualified = f"{module_name}.{name}"
            if not own_docstring(module, name, value):
                missing_docstring.append(qualified)
            if inspect.ismodule(value):
                if value.__name__ not in module_pages:
                    missing_page.append(qualified)
            elif id(value) not in listed_objects and qualified not in listed:
                missing_page.append(qualified)
    assert not missing_docstring, f"public names without a docstring: {missing_docstring}"
    assert not missing_page, f"public names without a page in docs/api: {missing_page}"


def named_parameters(value):
    """The arguments a caller names: a function's, or a class's constructor's
    (without self, *args and **kwargs)."""
    target = value.__init__ if inspect.isclass(value) else value
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):        # a builtin without a signature
        return []
    return [name for name, p in signature.parameters.items()
            if name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def returns_a_value(value):
    if inspect.isclass(value):
        return False
    try:
        annotation = inspect.signature(value).return_annotation
    except (TypeError, ValueError):
        return False
    return annotation not in (inspect.Signature.empty, None, "None")


def section_problems(value):
    """What the numpydoc docstring of `value` lacks, as short phrases."""
    from numpydoc.docscrape import NumpyDocString
    doc = NumpyDocString(inspect.getdoc(value) or "")
    problems = []
    wanted = named_parameters(value)
    documented = {name.strip().lstrip("*") for entry in doc["Parameters"]
                  for name in entry.name.split(",")}
    if wanted and not doc["Parameters"]:
        problems.append("no Parameters section")
    elif set(wanted) - documented:
        problems.append(f"Parameters without {sorted(set(wanted) - documented)}")
    if returns_a_value(value) and not (doc["Returns"] or doc["Yields"]):
        problems.append("no Returns section")
    if not doc["Examples"]:
        problems.append("no Examples section")
    return problems


def public_callables():
    """(qualified name, object) of every public class and function, once each."""
    seen = set()
    for module_name in MODULES:
        module = load(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            if callable(value) and not inspect.ismodule(value) and id(value) not in seen:
                seen.add(id(value))
                yield f"{module_name}.{name}", value


def test_every_public_docstring_has_the_numpydoc_sections():
    pytest.importorskip("numpydoc")
    problems = {name: found for name, value in public_callables()
                for found in [section_problems(value)] if found}
    assert not problems, "docstrings lacking numpydoc sections:\n" + "\n".join(
        f"{name}: {', '.join(found)}" for name, found in sorted(problems.items()))


def test_the_section_check_sees_what_is_missing():
    pytest.importorskip("numpydoc")

    def undocumented(a, b=1) -> int:
        """Adds."""

    def partly(a, b=1) -> int:
        """Adds.

        Parameters
        ----------
        a : int
            One.

        Examples
        --------
        >>> partly(1)
        """

    def complete(a, *args, b=1, **kwargs) -> int:
        """Adds.

        Parameters
        ----------
        a, b : int
            The numbers.

        Returns
        -------
        int

        Examples
        --------
        >>> complete(1)
        """

    class NoArguments:
        """Nothing to say.

        Examples
        --------
        >>> NoArguments()
        """

    assert section_problems(undocumented) == ["no Parameters section", "no Returns section",
                                              "no Examples section"]
    assert section_problems(partly) == ["Parameters without ['b']", "no Returns section"]
    assert section_problems(complete) == []
    assert section_problems(NoArguments) == []


def test_the_checker_sees_a_missing_entry(tmp_path, monkeypatch):
    """The listing parser reads both directive syntaxes (rst and MyST)."""
    api = tmp_path / "api"
    api.mkdir()
    (api / "a.md").write_text("```{currentmodule} nncore\n```\n\n```{autosummary}\n"
                              ":toctree: generated\n\n   Network\n   load\n```\n")
    (api / "b.rst").write_text(".. automodule:: nncore.losses\n\n.. autosummary::\n\n   mse\n")
    global DOCS
    saved, DOCS = DOCS, tmp_path
    try:
        listed, modules = reference_entries()
    finally:
        DOCS = saved
    assert listed == {"nncore.Network", "nncore.load", "nncore.losses.mse"}
    assert modules == {"nncore", "nncore.losses"}


def docstring_examples():
    """The doctests of every public class and function (and their methods)."""
    finder, found, seen = doctest.DocTestFinder(exclude_empty=True), [], set()
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in public_names(module):
            value = getattr(module, name)
            if not callable(value):
                continue
            for test in finder.find(value, f"{value.__module__}.{value.__qualname__}"):
                if test.examples and test.name not in seen:
                    seen.add(test.name)
                    found.append(test)
    return found


EXAMPLES = docstring_examples()


def test_public_docstrings_have_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example_runs(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test.globs = {"np": np}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} examples failed"
