"""MkDocs hooks for the jaxent site.

* Adds the tutorial notebooks (stored in ``notebooks/`` at the repository root) to the
  site, so they are rendered by mkdocs-jupyter from the same files CI executes.
* Rewrites links between notebooks (``02_cross_entropy_and_kl.ipynb``, which work in
  Jupyter) into links between their pages.
* Fails the strict build when a docstring example renders as quoted text, not code.
* Fails the strict build when a public function of ``jaxent``, ``jaxent.estimators``,
  ``jaxent.losses`` or ``jaxent.logistic`` is on no API page (a ``::: identifier`` block naming the function,
  its module, or the namespace that exports it).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
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
    prefix = "../" if config["use_directory_urls"] else ""
    suffix = "/" if config["use_directory_urls"] else ".html"
    return _NOTEBOOK_LINK.sub(lambda m: f'href="{prefix}{m[1]}{suffix}{m[2] or ""}"', html)


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
