"""``python -m pinn`` (and ``torchrun ... -m pinn train ...``) runs the ``pinn`` command."""

import sys

from pinn.cli import main

sys.exit(main())
