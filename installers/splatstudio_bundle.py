"""Entry script of the one-folder bundle (installers/splatstudio.spec).

The bundle's executable also runs the app's subprocesses: pipeline stages and the trainer come back to it
with a hidden first argument (``--run-stage``, ``--run-script``; see ``splatstudio/launch.py``). Those are
handled before anything else is imported, so a stage process never loads Qt.
"""

import sys

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()
    from splatstudio.bundle_main import dispatch

    sys.exit(dispatch())
