"""Sphinx configuration for kdcore's documentation site: `make docs` builds it into docs/_build/html.

The pages are the Markdown files of docs/ (MyST, so they stay readable on a code host), the tutorial is a
MyST notebook executed at every build (a failing cell fails the build), and the API reference is generated
from ``kdcore.__all__`` (docs/_ext/kdcore_api.py). `make docs` runs with -W --keep-going: any warning fails.
"""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import kdcore  # noqa: E402  (the installed package: `make docs` installs it editable into .venv)

project = "kdcore"
author = "the kdcore developers"
copyright = "2026, the kdcore developers"
release = kdcore.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (MyST) and the executable tutorial notebook
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into the site: the math renders offline too, no CDN
    "sphinx.ext.extlinks",
    "numpydoc",
    "kdcore_api",  # the API reference from kdcore.__all__
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
# README-like files of subfolders and the build output are not pages.
exclude_patterns = ["_ext", "examples", "img/results/README.md", "**/.ipynb_checkpoints"]

# MyST: $…$ and $$…$$ math as on GitHub; GitHub's heading anchors, so links like math.md#3-… resolve.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# Notebooks: execute every build, in the docs' own directory; a cell that raises fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 180
nb_execution_in_temp = False
nb_merge_streams = True

# numpydoc renders the docstrings' sections; the class-member tables would duplicate autodoc's members.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_typehints = "none"  # numpydoc's Parameters section already states each type, in words
autodoc_member_order = "bysource"
# The docstrings cite papers as :doi:`…` and :arxiv:`…`.
extlinks = {"doi": ("https://doi.org/%s", "doi:%s"), "arxiv": ("https://arxiv.org/abs/%s", "arXiv:%s")}
# numpydoc turns a docstring's References into citations; one that the text does not cite inline is a matter
# of style (the docstrings list their sources without [1] markers), not a broken link.
suppress_warnings = ["ref.citation"]

html_theme = "pydata_sphinx_theme"
html_title = "kdcore"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
# Every page is top level (the navigation bar lists them): no empty left sidebar.
html_sidebars = {"**": []}


# -- pages the index does not list, and links the site cannot hold --------------------------------------

# The index lists the main pages in reading order; a page someone adds to docs/ later is appended to its
# table of contents here, so the build never fails on "document isn't included in any toctree".
TOCTREE_END = re.compile(r"^```\s*$", re.MULTILINE)


def _listed(index_text: str) -> set[str]:
    block = index_text.split("```{toctree}", 1)[1].split("```", 1)[0]
    return {line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")}


def _complete_the_index(app, docname, source):
    if docname != "index":
        return
    listed = _listed(source[0])
    others = sorted(
        name for name in app.env.found_docs if name not in listed and name != "index" and "/" not in name
    )
    if others:
        head, tail = source[0].split("```{toctree}", 1)
        block, rest = tail.split("```", 1)
        source[0] = head + "```{toctree}" + block.rstrip("\n") + "\n" + "\n".join(others) + "\n```" + rest


# Links from a page to a folder of the repository (``[benchmarks/](../benchmarks/)``) work on a code host
# but have no target on the site: show the folder's path instead. Links to files are kept (MyST offers
# them as downloads) and links between pages are checked (a broken one fails the build).
FOLDER_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)#]*/)\)")


def _folder(match: re.Match) -> str:
    text, path = match.group(1), match.group(2)[len("../") :]
    return text if path in text else f"{text} (`{path}` in the repository)"


def _unlink_folders(app, docname, source):
    source[0] = FOLDER_LINK.sub(_folder, source[0])


def setup(app):
    app.connect("source-read", _complete_the_index)
    app.connect("source-read", _unlink_folders)
