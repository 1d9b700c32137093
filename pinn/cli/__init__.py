"""The ``pinn`` command: simulate, train, reconstruct, refine, evaluate, info, demo.

This package only parses arguments (``parser.py``, ``refine_options.py``) and calls the
library (``commands.py``). Errors a user can fix are printed as one line
(``pinn: error: ...``) with exit status 2; ``--debug`` shows the traceback instead. An
interrupted training run exits with status 130 after saving its checkpoint.
"""

from __future__ import annotations

import os
import sys

from pinn.cli.parser import EXIT_USAGE, build_parser, parse_duration
from pinn.errors import PinnError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main", "parse_duration"]

EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting for each other turn any other load on the machine
    # into a 10-20x slowdown of every convolution (2 cores, one other busy process: 4.2 s
    # against 0.17 s per training step). Only effective before torch is imported, which
    # pinn's command does lazily; an explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("pinn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into one line
        if args.debug:
            raise
        from pinn.engine import TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            print(f"pinn: {exc}; run the same command with --resume to continue",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(exc, PinnError):
            message = " ".join(str(exc).split())  # one line, whatever a message embeds
        elif isinstance(exc, OSError):
            message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        else:
            raise
        print(f"pinn: error: {message}", file=sys.stderr)
        from pinn.engine.distributed import CollectiveFailure

        if isinstance(exc, CollectiveFailure):  # torch's threads wait on a dead connection:
            sys.stdout.flush()  # the interpreter's clean-up could abort in them (a second,
            sys.stderr.flush()  # misleading line and status 134), so end here
            os._exit(EXIT_USAGE)
        return EXIT_USAGE
