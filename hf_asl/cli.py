"""The `hf-asl` console entry point: dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import HfAslError
from .version import __version__

# Order is the order shown by `hf-asl --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "hf_asl.commands.demo",
    "hf_asl.commands.evaluate",
    "hf_asl.commands.extract",
    "hf_asl.commands.search",
    "hf_asl.commands.score",
    "hf_asl.commands.ndec",
    "hf_asl.commands.train",
    "hf_asl.commands.mini_ndec",
    "hf_asl.commands.submit",
    "hf_asl.commands.push",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-asl", description="Image copy detection with ASL.")
    parser.add_argument("--version", action="version", version=f"hf-asl {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HfAslError as err:
        print(f"hf-asl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hf-asl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
