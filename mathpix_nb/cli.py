"""The ``mathpix-nb`` command: a thin dispatcher to each surface's own ``main(argv)``.

Each subcommand's module is imported only when it runs, so a missing optional extra
only affects its own subcommand, with a message naming the extra to install.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, extra that provides its dependencies, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "mathpix_nb.demo",
        "offline",
        "OCR the bundled sample images (offline engine without credentials)",
    ),
    "journal": ("mathpix_nb.bulk.journal_cli", "pandas", "check / repair / forget a bulk journal"),
    "ocr": ("mathpix_nb.bulk.cli", "pandas", "bulk OCR of image paths, globs or a CSV column"),
    "serve": ("mathpix_nb.server.cli", "server", "run the local Mathpix-compatible server"),
    "token-server": ("mathpix_nb.tokens.cli", "server", "run the app-token service for teams"),
}


def _usage() -> str:
    lines = ["usage: mathpix-nb COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14}{help_}" for name, (_, _, help_) in _COMMANDS.items()]
    lines += ["", "Run `mathpix-nb COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from ._version import __version__

        print(f"mathpix-nb {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in _COMMANDS:
        print(f"mathpix-nb: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, extra, _ = _COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"mathpix-nb {name}: a dependency is missing ({exc.name or exc}). "
            f"Install it with: pip install 'mathpix_nb[{extra}]'",
            file=sys.stderr,
        )
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
