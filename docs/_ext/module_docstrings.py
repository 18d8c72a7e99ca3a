"""Griffe extension: the API pages, not the module docstrings, introduce public modules.

A public module such as ``jaxent.joint`` has a docstring for ``help()`` and an API page
(docs/api/joint.md) whose Markdown introduction says the same and more, followed by
``::: jaxent.joint``. Rendering both would say everything twice, so the docstring of
every public module (no path component starting with ``_``) is dropped from the site;
the page's introduction carries what it said. The modules themselves are untouched.

Private submodules keep their docstrings: docs/api/estimators.md uses those of
``jaxent.estimators._counts``, ``._knn``, ... as the texts of its sections.
"""

from __future__ import annotations

import griffe


class DropPublicModuleDocstrings(griffe.Extension):
    """Removes the docstring of each public module from the rendered documentation."""

    def on_module(self, *, mod: griffe.Module, **kwargs: object) -> None:
        if not any(part.startswith("_") for part in mod.path.split(".")):
            mod.docstring = None
