"""The ``nerflow`` command line."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from importlib import metadata

__all__ = ["main", "build_parser"]

# Distributions whose versions decide what a model run produces, in the order printed.
_VERSIONED = ("torch", "transformers", "span_marker")


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_version(_args: argparse.Namespace) -> int:
    from nerflow import __version__

    print(f"nerflow {__version__}")
    for name in _VERSIONED:
        print(f"{name} {_installed_version(name)}")
    print(f"python {platform.python_version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="nerflow",
        description="Document ETL for multilingual named-entity recognition.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    version = commands.add_parser(
        "version", help="print the versions of nerflow and of the libraries that decide its results"
    )
    version.set_defaults(handler=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
