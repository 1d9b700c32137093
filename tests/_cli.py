"""Running the ``pinn`` command inside the test process (shared by the CLI tests of
tests/test_cli.py and tests/refine/)."""

from __future__ import annotations

from pinn import cli


def run_main(argv, capsys):
    """``pinn.cli.main(argv)`` -> (status, stdout, stderr); SystemExit counts as a status.

    ``argv`` may hold paths (each item is passed as ``str``); ``capsys`` is pytest's fixture,
    read (and so emptied) after the run."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err
