"""Runs the calling script under the project's .venv, wherever it was started from.

`import project_venv` at the top of a script in scripts/ (before importing matplotlib,
torch, sentencepiece, ...) re-executes it with REPO/.venv/bin/python3 when another
interpreter started it -- a pyenv python3 first on PATH does not see Debian's python3-*
packages nor the venv's pinned ones (scripts/install_deps.sh makes the venv). Without a
venv the script goes on with the interpreter it has.
"""

import os
import sys

_venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv")
_python = os.path.join(_venv, "bin", "python3")
# sys.prefix is the venv's directory when it is the one running (resolved: .venv may be a link).
if (os.path.realpath(sys.prefix) != os.path.realpath(_venv) and os.access(_python, os.X_OK)
        and os.path.isfile(sys.argv[0]) and not os.environ.get("MEAP_VENV_REEXEC")):
    os.environ["MEAP_VENV_REEXEC"] = "1"  # never loop, whatever the venv reports
    os.execv(_python, [_python] + sys.argv)
