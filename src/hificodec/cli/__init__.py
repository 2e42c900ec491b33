"""The ``hfc`` command line (app.py) and its batch machinery (batch.py). Nothing imports the CLI."""

from hificodec.cli.app import main

__all__ = ["main"]
