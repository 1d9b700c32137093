"""``python -m pinn.cli`` runs the ``pinn`` command, as ``python -m pinn`` does."""

import sys

from pinn.cli import main

sys.exit(main())
