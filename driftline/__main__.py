"""``python -m driftline`` and the ``driftline`` console script."""

import sys


def run() -> None:
    """The command line (``driftline.cli``), with a worker's stop signals recorded first.

    Before anything else (importing the CLI and the worker takes ~2 s): a
    SIGTERM or Ctrl-C from here on stops the worker cleanly
    (``driftline.early_stop``) instead of killing it.
    """
    if sys.argv[1:2] == ["worker"]:
        from driftline import early_stop

        early_stop.install()
    from driftline.cli import main

    main()


# Guarded: a child process started with *spawn* (processors.calibration_pool)
# imports the parent's main module again, and must not run the CLI.
if __name__ == "__main__":
    run()
