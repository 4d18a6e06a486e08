"""The ``mathpix-nb`` command: a thin dispatcher to each surface's own entry point.

Each subcommand's module is imported only when it runs, so a missing optional extra
only affects its own subcommand, with a message naming the extra to install.
Exit status, for every command: 0 ok, 1 some rows or pages failed, 2 bad usage.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module[:function], extra that provides its dependencies, one-line help);
# the function (default ``main``) takes the arguments and returns the exit status.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "mathpix_nb.demo",
        "offline",
        "OCR the bundled sample images (offline engine without credentials)",
    ),
    "journal": (
        "mathpix_nb.bulk.journal_cli:main",
        "pandas",
        "check / repair / forget a bulk journal",
    ),
    "ocr": (
        "mathpix_nb.bulk.cli:ocr_main",
        "pandas",
        "one image's Mathpix Markdown, or images / globs / a CSV column into a table",
    ),
    "pdf": (
        "mathpix_nb.bulk.cli:pdf_main",
        "pandas",
        "convert a PDF to .mmd/.md/.docx/.tex.zip/.html (progress, --resume)",
    ),
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
    if not args:
        print(_usage(), file=sys.stderr)
        return 2
    if args[0] in {"-h", "--help"}:
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
    target, extra, _ = _COMMANDS[name]
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return int(getattr(module, function or "main")(rest) or 0)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "mathpix_nb":
            raise
        print(
            f"mathpix-nb {name}: a dependency is missing ({exc.name}). "
            f"Install it with: pip install 'mathpix_nb[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
