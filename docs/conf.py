"""Sphinx configuration: ``make docs`` builds docs/_build/html with warnings as errors."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "srat-sklearn"
author = "srat-sklearn developers"
copyright = "2026, srat-sklearn developers"

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# The API pages list members explicitly; numpydoc should not add member tables of its own
# (SRATClassifier inherits dozens of skorch methods).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False
myst_heading_anchors = 3

html_theme = "alabaster"
