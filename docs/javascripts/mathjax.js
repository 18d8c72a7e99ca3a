// MathJax 2 configuration. MathJax itself is served from this site (assets/mathjax/, copied
// from the jupyter-server-mathjax package by docs/_ext/hooks.py), so formulas typeset
// offline. This file is loaded before it (extra_javascript in mkdocs.yml), and MathJax takes
// window.MathJax as its configuration, after the combined configuration named in its URL
// (?config=TeX-AMS-MML_HTMLorMML-full: TeX input, HTML-CSS output).
//
// Markdown pages and API docstrings: pymdownx.arithmatex (generic mode) wraps every formula
// in an element of class "arithmatex" with \( \) or \[ \] delimiters; only those elements
// are typeset. With ignoreClass matching every element, tex2jax reads only the text
// directly inside an element of processClass, which is where arithmatex puts the formula.
//
// Notebook pages (rendered by mkdocs-jupyter, inside .jupyter-wrapper): markdown cells use
// $...$ and $$...$$ as in Jupyter, with the formula inside <p>, <li>, ... of the cell;
// typeset the page except code, outputs and the navigation.
// extra_javascript is loaded at the end of <body>, so the page content is already parsed.
const isNotebook = document.querySelector(".jupyter-wrapper") !== null;

window.MathJax = {
  tex2jax: isNotebook
    ? {
        inlineMath: [["$", "$"], ["\\(", "\\)"]],
        displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true,
        processEnvironments: true,
        ignoreClass: "jp-CodeCell|jp-OutputArea|highlight|md-header|md-nav|md-sidebar|md-footer",
        processClass: "arithmatex|jp-MarkdownCell",
      }
    : {
        inlineMath: [["\\(", "\\)"]],
        displayMath: [["\\[", "\\]"]],
        processEscapes: false,
        processEnvironments: true,
        ignoreClass: ".*|",
        processClass: "arithmatex",
      },
  // The only fonts in that MathJax distribution are STIX-Web: never look for TeX fonts
  // (web, local or image), which are not there.
  "HTML-CSS": {
    availableFonts: [],
    preferredFont: null,
    webFont: "STIX-Web",
    imageFont: null,
  },
  // Only the HTML-CSS and native MathML outputs are shipped: no renderer choice in the menu.
  MathMenu: { showRenderer: false },
  messageStyle: "none",
};
