// MathJax 3 configuration.
//
// Markdown pages and API docstrings: pymdownx.arithmatex (generic mode) wraps every formula
// in an element of class "arithmatex" with \( \) or \[ \] delimiters; only those elements
// are typeset (the setup recommended by mkdocs-material).
//
// Notebook pages (rendered by mkdocs-jupyter, inside .jupyter-wrapper): markdown cells use
// $...$ and $$...$$ as in Jupyter; typeset them, and never touch code or outputs.
// extra_javascript is loaded at the end of <body>, so the page content is already parsed.
const isNotebook = document.querySelector(".jupyter-wrapper") !== null;

window.MathJax = isNotebook
  ? {
      tex: {
        inlineMath: [["$", "$"], ["\\(", "\\)"]],
        displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true,
        processEnvironments: true,
      },
      options: {
        ignoreHtmlClass: "jp-CodeCell|jp-OutputArea|highlight|md-header|md-nav|md-footer",
        processHtmlClass: "arithmatex|jp-MarkdownCell",
      },
    }
  : {
      tex: {
        inlineMath: [["\\(", "\\)"]],
        displayMath: [["\\[", "\\]"]],
        processEscapes: true,
        processEnvironments: true,
      },
      options: {
        ignoreHtmlClass: ".*|",
        processHtmlClass: "arithmatex",
      },
    };
