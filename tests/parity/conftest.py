"""tests/parity: make the helper modules here (``tf_reference``, ``conventions``,
``fixture_cases``) importable by plain name whether or not the folder is collected as a
package."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
