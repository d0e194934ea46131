"""Starts the pipeline command out of reach of the signals sent to the worker's group.

`python -m pipeline.launch <command> <arguments…>` is what the worker spawns, with SIGTERM
and SIGINT blocked and in a session of its own (`command.py`). A stop signal sent to the
worker's process group while the child was still in that group is pending here, blocked;
ignoring it discards it. Then the command runs, with the default dispositions and no
signal blocked, as any command started from a shell.
"""

import os
import signal
import sys

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PYTHON_IGNORES = {signal.SIGPIPE, signal.SIGXFSZ}  # at its start; a command expects neither


def main(argv: list[str]) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # a pending one is dropped
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS | PYTHON_IGNORES:
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.exit(f"cannot run {argv[0]}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
