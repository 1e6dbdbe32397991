"""The ``edgecsi`` command. Thin: each command parses arguments and calls a library function.

Command modules import their heavy dependencies (torch, scipy, onnx) inside the
command functions, so ``edgecsi run`` on a gateway never loads them.
"""

from __future__ import annotations

import importlib
import sys

from edgecsi.cli.app import app

# One module per area; a module that is not there yet is simply absent.
COMMAND_MODULES = (
    "capture_commands",
    "demo_commands",
    "dataset_commands",
    "simulate_commands",
    "train_commands",
    "adapt_commands",
    "generative_commands",
    "export_commands",
    "agent_commands",
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"edgecsi.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"edgecsi.cli.{_name}":
            raise


def main() -> None:
    """Run the command; a bad input (our errors, and the ValueError / OSError the library raises for
    bad arguments, missing files and unusable runs) is one line on stderr and exit status 2, not a
    traceback. ``EDGECSI_DEBUG=1`` shows the traceback."""
    import os

    from edgecsi.errors import EdgeCSIError

    try:
        app()
    except (EdgeCSIError, ValueError, OSError) as exc:
        if os.environ.get("EDGECSI_DEBUG", "").strip() not in ("", "0"):
            raise
        print(f"edgecsi: error: {exc}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
