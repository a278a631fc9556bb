"""The finishing pass over the built command tree, so ``--help`` helps whatever a module declared.

- A flag is shown as a flag: Typer prints a boolean option's type (``--debug <bool>``); a flag takes
  no value, so its type column is left empty.
- A group's one-line summary lists its commands, computed from the tree (a list a module wrote by
  hand goes stale the day someone adds a command): ``Agents: hire, list, show, rotate-token, …``.

Groups are named in the singular (``task``, ``secret``); ``aliases`` registers the other form hidden.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import typer

# "Agents: hire, list, show." — the hand-written list of commands after the title.
_LISTED = re.compile(r"^(?P<title>[^:]+):\s*(?P<names>[\w-]+(?:,\s*[\w-]+)*)\.?$")


def id_help(noun: str, what: str = "", *, named: bool = False, slug: bool = False) -> str:
    """The help of an id argument or option (``what`` it is for): every form ``ids.resolve_id`` takes."""
    forms = "slug, id" if slug else "name, id" if named else "id"
    return f"{what or 'The ' + noun}: {forms} or the first 6+ characters of its id (as tables show)."


def id_argument(noun: str, *, named: bool = False, slug: bool = False) -> Any:
    """A Typer argument for an id: ``ApprovalArg = Annotated[str, id_argument("approval")]``.

    Resolve it inside the command's transaction with ``ids.resolve_id(conn, KIND, value)``.
    """
    return typer.Argument(help=id_help(noun, named=named, slug=slug), metavar=noun.upper())


def id_option(noun: str, what: str = "", *, named: bool = False, slug: bool = False) -> Any:
    """A Typer ``--<noun>`` option for an id: ``Annotated[str | None, id_option("task")] = None``."""
    return typer.Option(f"--{noun}", help=id_help(noun, what, named=named, slug=slug))


class App(typer.Typer):
    """The root ``typer.Typer``; it remembers the groups' aliases (see ``add_group``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliases: dict[str, str] = {}


def add_group(app: typer.Typer, group: typer.Typer, name: str, *aliases: str) -> None:
    """``group`` under ``name``, and under each alias too, hidden from help.

    On an ``App`` an alias is the same click command under a second name (``add_aliases``), so the
    group is converted once: Typer builds every command from its signature, which is most of what
    ``--help`` costs.
    """
    app.add_typer(group, name=name)
    for alias in aliases:
        if isinstance(app, App):
            app.aliases[alias] = name
        else:
            app.add_typer(group, name=alias, hidden=True)


def add_aliases(root: Any, aliases: dict[str, str]) -> Any:
    """Register each alias on the built ``root`` as a hidden copy of the command it names."""
    for alias, name in aliases.items():
        hidden = copy.copy(root.commands[name])
        hidden.hidden = True
        root.commands[alias] = hidden
    return root


# Typer builds its commands on a click of its own (``typer._click``), so the tree is walked by shape,
# not by ``isinstance`` against the ``click`` package.
def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", None) or {})


def visible_commands(group: Any) -> list[str]:
    return [name for name, cmd in _subcommands(group).items() if not cmd.hidden]


def _summary(group: Any) -> str:
    names = visible_commands(group)
    first = (group.help or "").strip().split("\n\n")[0].replace("\n", " ").strip()
    match = _LISTED.match(first)
    if match and set(re.split(r",\s*", match["names"])) <= set(_subcommands(group)):
        first = match["title"]  # a stale hand-written list: replaced by the real one
    title = first.rstrip(".")
    if ":" in title or len(title) > 40:  # a description of its own: the commands after it
        return f"{title}. Commands: {', '.join(names)}."
    return f"{title}: {', '.join(names)}."


def _flag_as_flag(param: Any) -> None:
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""  # Typer's rich help prints a set metavar instead of the type


def finish(command: Any, *, root: bool = True) -> Any:
    """Apply the rules above to ``command`` and everything under it; returns it.

    The root keeps its own help: its commands panel is the list.
    """
    for param in command.params:
        _flag_as_flag(param)
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:  # click makes ``--help`` afresh for each context
        option = make_help_option(ctx)
        if option is not None:
            _flag_as_flag(option)
        return option

    command.get_help_option = help_option
    subcommands = _subcommands(command)
    for sub in subcommands.values():
        finish(sub, root=False)
    if subcommands and not root:
        if command.help is not None:
            summary = _summary(command)
            _, _, rest = command.help.strip().partition("\n\n")
            command.help = summary + (f"\n\n{rest}" if rest else "")
            command.short_help = summary
    return command
