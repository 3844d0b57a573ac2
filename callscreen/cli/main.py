"""``callscreen`` command line: one module per command group, each with ``register(subparsers)``.

Command modules are imported only when named on the command line, so ``callscreen check``
does not pay for the dashboard's imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from callscreen.cli.context import EXIT_CONFIG, EXIT_UNAVAILABLE, CliContext, CliError
from callscreen.config import ConfigError, load_settings
from callscreen.policy import PolicyError
from callscreen.store import STORE_ERRORS, StoreError

# command -> module that registers it
COMMANDS = {
    "check": "callscreen.cli.check",
    "campaign": "callscreen.cli.campaign",
    "consent": "callscreen.cli.consent",
    "optout": "callscreen.cli.optout",
    "objection": "callscreen.cli.optout",
    "log": "callscreen.cli.log",
    "retention": "callscreen.cli.retention",
    "keys": "callscreen.cli.keys",
    "erase": "callscreen.cli.privacy",
    "migrate": "callscreen.cli.privacy",
    "dsr": "callscreen.cli.privacy",
    "dossier": "callscreen.cli.privacy",
    "journal": "callscreen.cli.privacy",
    "run": "callscreen.cli.run",
    "demo": "callscreen.cli.run",
    "serve": "callscreen.cli.serve",
    "registry": "callscreen.cli.registry",
    "scrub": "callscreen.cli.registry",
    "user": "callscreen.cli.web",
    "token": "callscreen.cli.web",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callscreen",
        description="Screen outbound marketing calls against consent, opt-outs, registries and the law.",
    )
    parser.add_argument("--config", help="TOML settings file (default: $CALLSCREEN_CONFIG or ./callscreen.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    modules = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--config":
            skip = True
            continue
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_name(argv))
    args = parser.parse_args(argv)
    context: CliContext | None = None
    try:
        context = CliContext(load_settings(args.config))
        return int(args.handler(args, context) or 0)
    except CliError as exc:
        print(f"callscreen: {exc}", file=sys.stderr)
        return exc.code
    except (ConfigError, PolicyError) as exc:
        print(f"callscreen: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (StoreError, *STORE_ERRORS) as exc:
        print(f"callscreen: store unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if context is not None:
            context.close()


if __name__ == "__main__":
    sys.exit(main())
