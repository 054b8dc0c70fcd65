"""Sphinx configuration of nncore's documentation site.

Build:  python -m pip install ".[docs]" && sphinx-build -W -b html docs docs/_build/html
The gallery (docs/gallery/*.py) runs at build time on small settings; MNIST
is read from NNCORE_MNIST_DIR (else the examples' default directory).  The
build makes no network access: intersphinx is not used.
"""
import os
import sys
from pathlib import Path

import nncore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))     # the gallery imports the examples' helpers
os.environ.setdefault("MPLBACKEND", "Agg")

project = "nncore"
author = "nncore developers"
copyright = "nncore developers"
release = nncore.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "gallery/*.md", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

myst_heading_anchors = 3
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
# nncore.mpi imports mpi4py, which needs an MPI library; its page needs neither
autodoc_mock_imports = ["mpi4py"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|_run_example\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": "True",
    "within_subsection_order": "FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = f"nncore {release}"
html_theme_options = {
    "navbar_end": ["theme-switcher"],
    "secondary_sidebar_items": ["page-toc"],
    "show_prev_next": True,
}
html_static_path = []
html_context = {"default_mode": "auto"}     # the theme reads it on every page
suppress_warnings = ["config.cache"]


def skip_metadata_routing(app, what, name, obj, skip, options):
    """scikit-learn's generated set_*_request methods are documented by
    scikit-learn (their docstrings refer to its glossary)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_metadata_routing)
