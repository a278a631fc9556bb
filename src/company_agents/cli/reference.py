"""The command reference, ``docs/cli.md``, generated from the command tree itself.

    python -m company_agents.cli.reference            # rewrite docs/cli.md
    python -m company_agents.cli.reference --check    # exit 1 when docs/cli.md is stale

A test runs the check, so a command added without regenerating fails CI with the line above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from company_agents.cli.help import visible_commands

PROG = "company-agents"
DEFAULT_OUTPUT = Path("docs/cli.md")
REGENERATE = "python -m company_agents.cli.reference"

HEADER = f"""# Command reference

Generated from the commands themselves by `{REGENERATE}`; a test fails when it is stale.
Do not edit by hand: change the command's help and regenerate.

Every id argument or option takes the full id, the first 6 or more characters of it (dashes optional;
tables print 8), and, for agents and teams, the name. Every list and show command takes `--json`.
Groups are singular (`task`, `secret`); the plural works too (`tasks`, `secrets`).

Shell completion: `{PROG} --install-completion` installs it for the current shell (bash, zsh, fish or
PowerShell; restart the shell afterwards); `{PROG} --show-completion` prints the script instead.
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if getattr(param, "is_flag", False) or param.required:
        return ""
    default = param.default
    if default is None or callable(default) or default == "" or default == ():
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(str(d) for d in default)
    return f"`{default}`"


def _envvar(param: Any) -> str:
    envvar = getattr(param, "envvar", None)
    if not envvar:
        return ""
    names = [envvar] if isinstance(envvar, str) else list(envvar)
    return ", ".join(f"`{name}`" for name in names)


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`"
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if not getattr(param, "is_flag", False):
        names += f" {param.metavar or _value_name(param)}"
    return names


def _value_name(param: Any) -> str:
    """``--limit INT``, ``--company COMPANY``: the type where it says more than "text"."""
    bare = param.bare_type() if hasattr(param, "bare_type") else "str"
    return str(param.name).upper() if bare in ("str", "NoneType") else bare.upper()


def _params(command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        help_text = getattr(param, "help", None) or ""
        required = " (required)" if param.required else ""
        rows.append(
            f"| {_names(param)} | {_cell(help_text)}{required} | {_default(param)} | {_envvar(param)} |"
        )
    if not rows:
        return []
    return ["| argument or option | meaning | default | environment |", "|---|---|---|---|", *rows, ""]


def _usage(command: Any, path: list[str]) -> str:
    pieces = [" ".join(path)]
    if any(p.param_type_name == "option" for p in command.params):
        pieces.append("[OPTIONS]")
    for param in command.params:
        if param.param_type_name == "argument":
            name = (param.metavar or param.name).upper()
            pieces.append(name if param.required else f"[{name}]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _section(command: Any, path: list[str], out: list[str]) -> None:
    level = "#" * min(len(path) + 1, 4)
    out.append(f"{level} `{' '.join(path)}`")
    out.append("")
    if command.help:
        out.append(command.help.strip().replace("\b\n", ""))
        out.append("")
    out.append("```")
    out.append(_usage(command, path))
    out.append("```")
    out.append("")
    out.extend(_params(command))
    subcommands = getattr(command, "commands", None) or {}
    hidden = sorted(name for name, sub in subcommands.items() if sub.hidden)
    if hidden:
        out.append(f"Also as (hidden aliases): {', '.join(f'`{n}`' for n in hidden)}.")
        out.append("")
    for name in visible_commands(command):
        _section(subcommands[name], [*path, name], out)


def render() -> str:
    """The whole reference as Markdown."""
    from company_agents.cli.main import command

    out = [HEADER]
    _section(command(), [PROG], out)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Write (or --check) docs/cli.md.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
    print(f"{args.output} {'updated' if current != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
