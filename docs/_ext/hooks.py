"""MkDocs hooks for the jaxent site.

* Adds the tutorial notebooks (stored in ``notebooks/`` at the repository root) to the
  site, so they are rendered by mkdocs-jupyter from the same files CI executes.
* Rewrites links between notebooks (``02_cross_entropy_and_kl.ipynb``, which work in
  Jupyter) into links between their pages.
* Fails the strict build when a docstring example renders as quoted text, not code.
* Fails the strict build when a public function of ``jaxent``, ``jaxent.estimators``,
  ``jaxent.losses`` or ``jaxent.logistic`` is on no API page (a ``::: identifier`` block naming the function,
  its module, or the namespace that exports it).
* Serves MathJax from the site itself, so formulas typeset offline: copies MathJax 2.7
  into ``assets/mathjax/`` of the built site (see ``_copy_mathjax``), removes the MathJax
  loader that mkdocs-jupyter's template puts in each notebook page (docs/javascripts/mathjax.js
  configures one MathJax for all pages), and fails the strict build when a page loads a
  script or a stylesheet from another host.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
import shutil
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.jaxent")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PUBLIC_NAMESPACES = (
    "jaxent",
    "jaxent.estimators",
    "jaxent.feature_selection",
    "jaxent.losses",
    "jaxent.logistic",
)
_NOTEBOOK_LINK = re.compile(r'href="(?:\./)?(\d\d_[A-Za-z0-9_]+)\.ipynb(#[^"]*)?"')

# MathJax 2.7 (Apache-2.0 license, (c) The MathJax Consortium; its LICENSE file is copied
# along) as shipped inside the PyPI package jupyter-server-mathjax (in the dev extra), which
# Jupyter uses to serve MathJax without a CDN. The package is not imported (that would
# import jupyter_server): its files are read from where it is installed.
#
# That distribution is trimmed: its one combined configuration is
# config/TeX-AMS-MML_HTMLorMML-full.js (TeX and MathML input, HTML-CSS and native MathML
# output) and its only fonts are STIX-Web, so docs/javascripts/mathjax.js selects those.
# Copied: everything that configuration may load at run time, the glyph data and web fonts
# of STIX-Web, the TeX extensions loaded on demand (\boldsymbol, \cancel, ...), the menu and
# zoom, the accessibility extensions (loaded when a reader turns them on in the menu) and
# the menu's translations. Left out: jax/output/SVG (fonts only, without the SVG output jax
# itself, so unusable; the menu's renderer choice is hidden): 8.5 MB of the 12 MB copied.
MATHJAX_PACKAGE = "jupyter_server_mathjax"
MATHJAX_DEST = "assets/mathjax"
MATHJAX_SKIP = ("jax/output/SVG",)
# The block nbconvert's template writes into every notebook page: a <script> loading
# MathJax from mkdocs-jupyter's custom_mathjax_url (empty by default) and a MathJax
# configuration of its own. Removed: docs/javascripts/mathjax.js configures MathJax for
# notebook pages too.
_NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL
)
# A script or stylesheet loaded from another host (absolute or protocol-relative URL).
_REMOTE_LOAD = re.compile(
    r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^\"'\s>]*"
    r"|<link\b(?=[^>]*\brel=[\"']?stylesheet)[^>]*\bhref=[\"']?(?:https?:)?//[^\"'\s>]*",
    re.IGNORECASE,
)


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config):
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        files.append(
            File(
                f"notebooks/{nb.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_content(html, page, config, files):
    if not page.file.src_uri.startswith("notebooks/"):
        # A docstring example that is not rendered as code shows its ">>>" prompts as
        # nested blockquotes (e.g. under an "Example:" heading, which the docstring
        # parser does not know): fail the strict build instead of publishing it.
        if re.search(r"<blockquote>\s*<blockquote>", html) or "<p>&gt;&gt;&gt;" in html:
            log.warning(
                "jaxent docs: %s renders a '>>>' example as text, not code; use an "
                "'Examples:' section in the docstring",
                page.file.src_uri,
            )
        return html
    html, removed = _NBCONVERT_MATHJAX.subn("", html)
    if not removed or "text/x-mathjax-config" in html:
        log.warning(
            "jaxent docs: %s: the MathJax block of mkdocs-jupyter's template was not found "
            "where expected; update _NBCONVERT_MATHJAX in docs/_ext/hooks.py",
            page.file.src_uri,
        )
    prefix = "../" if config["use_directory_urls"] else ""
    suffix = "/" if config["use_directory_urls"] else ".html"
    return _NOTEBOOK_LINK.sub(lambda m: f'href="{prefix}{m[1]}{suffix}{m[2] or ""}"', html)


def on_post_page(output, page, config):
    remote = sorted(set(_REMOTE_LOAD.findall(output)))
    if remote:
        log.warning(
            "jaxent docs: %s loads from another host (the site must work offline): %s",
            page.file.src_uri,
            "; ".join(remote),
        )
    return output


def _mathjax_source() -> Path | None:
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "MathJax.js").is_file() else None


def _copy_mathjax(site_dir: Path) -> None:
    source = _mathjax_source()
    if source is None:
        log.warning(
            "jaxent docs: MathJax not found (the package jupyter-server-mathjax); formulas "
            "would show as LaTeX source: pip install -e '.[dev]'"
        )
        return
    skip = {source / part for part in MATHJAX_SKIP}

    def ignore(folder, names):
        return [name for name in names if Path(folder, name) in skip]

    dest = site_dir / MATHJAX_DEST
    shutil.copytree(source, dest, ignore=ignore, dirs_exist_ok=True)


def _documented(docs_dir: Path) -> set[str]:
    found = set()
    for page in docs_dir.rglob("*.md"):
        found.update(re.findall(r"^:::\s+([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE))
    return found


def _public_functions(namespace: str):
    module = importlib.import_module(namespace)
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if obj is not None and inspect.isfunction(inspect.unwrap(obj)):
            yield name, obj


def on_post_build(config):
    _copy_mathjax(Path(config["site_dir"]))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    documented = _documented(Path(config["docs_dir"]))
    for namespace in PUBLIC_NAMESPACES:
        try:
            functions = list(_public_functions(namespace))
        except ImportError as err:  # a namespace that does not exist yet
            log.info("jaxent docs: skipping %s (%s)", namespace, err)
            continue
        for name, fn in functions:
            module = getattr(inspect.unwrap(fn), "__module__", "") or ""
            candidates = {f"{namespace}.{name}", module, f"{module}.{name}"}
            if namespace != "jaxent":
                candidates.add(namespace)
            if not documented & candidates:
                log.warning(
                    "jaxent docs: public function %s.%s (defined in %s) is on no API page; "
                    "add '::: %s' to a page under docs/api/",
                    namespace,
                    name,
                    module,
                    module or namespace,
                )
