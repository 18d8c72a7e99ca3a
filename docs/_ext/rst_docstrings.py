"""Griffe extension: renders the reST bits of jaxent's docstrings as Markdown.

The docstrings follow optax's style (Google sections, ``.. math::`` blocks, ``:math:``
and ``:func:`` roles) so that they read well in ``help()``. mkdocstrings renders
Markdown, so before rendering each docstring is rewritten:

* ``.. math:: formula`` (and an indented continuation) -> a ``$$`` display-math block;
* ``:math:`x``` -> inline math ``$x$`` for pymdownx.arithmatex;
* ``:func:`name``` / ``:class:`name``` / ``:mod:`name``` -> ``name`` as code.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|obj|data):`~?([^`]+)`")
_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")


def _display_math(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        body = [m.group("first")] if m.group("first").strip() else []
        i += 1
        # The block continues over blank lines and lines indented deeper than the directive.
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        formula = textwrap.dedent("\n".join(body)).strip()
        out += ["", f"{indent}$$", *(indent + ln for ln in formula.splitlines()), f"{indent}$$", ""]
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """Rewrites the reST constructs used in jaxent's docstrings as Markdown."""
    text = _display_math(text)
    text = _INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text)
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
