"""Go ``text/template`` in Python: the subset and semantics Ollama's Modelfile TEMPLATEs rely on.

``parse`` builds a Go-shaped syntax tree (the walkers Ollama runs over templates need its shape);
``Template.execute`` runs it with ``missingkey=zero`` semantics over plain Python data (dicts,
lists, str, int, float, bool, None) and objects offering ``__go_str__`` (Go's Stringer).
"""

from pollama.templates.gotemplate.execute import ExecError, ExecLimitError
from pollama.templates.gotemplate.lexer import TemplateSyntaxError
from pollama.templates.gotemplate.template import Template

__all__ = ["ExecError", "ExecLimitError", "Template", "TemplateSyntaxError"]
