"""``credproc completion bash|zsh|fish``: a completion script for that shell, on stdout.

Built with argparse's own means, no library: the parsers of the main job
(``credproc.usage``) and of the commands are walked once, and their commands, flags (per
command), choices and connection-id arguments are written into the script as data. The
script completes connection ids by running ``credproc completion ids`` (hidden), which
prints the ids ``credproc list`` would show, one a line: it reads the environment and the
config file only, never the keyring, and fetches nothing.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from credproc.commands._parser import add_command

SHELLS = ("bash", "zsh", "fish")

EPILOG = """\
examples:
  eval "$(credproc completion bash)"          in ~/.bashrc
  eval "$(credproc completion zsh)"           in ~/.zshrc (after compinit)
  credproc completion fish | source           in ~/.config/fish/config.fish

completes commands, flags (per command), choices, and connection ids (those `credproc list`
shows: from the environment and the config file; the keyring is never asked).
"""


def add_parser(subparsers: Any, common: Any) -> None:
    parser = add_command(subparsers, None, "completion", help="print a shell completion script",
                         description="Print a completion script for bash, zsh or fish.", epilog=EPILOG)
    # "ids" is the scripts' own helper: accepted, not advertised.
    parser.add_argument("shell", metavar="SHELL", choices=(*SHELLS, "ids"), help="bash, zsh or fish")
    parser.set_defaults(run=run)


def run(options: Any) -> int:
    import sys

    if options.shell == "ids":
        sys.stdout.write("".join(f"{conn_id}\n" for conn_id in connection_ids()))
        return 0
    sys.stdout.write(script(options.shell, options.commands_parser))
    return 0


def connection_ids() -> list[str]:
    """The ids ``credproc list`` shows, without describing them (no keyring, no cache)."""
    from credproc import sources
    from credproc.commands import _common, listing

    with _common.quiet():  # a warning would land in the middle of the user's command line
        config = sources.read_config(os.environ)
        ids = listing.candidate_ids(os.environ, config)
    if sources.DEFAULT_CONN_ID not in ids:
        ids.insert(0, sources.DEFAULT_CONN_ID)
    return [conn_id for conn_id in ids if conn_id and not any(c.isspace() for c in conn_id)]


# -- what the parsers accept -----------------------------------------------------------------


def spec(commands_parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """Every command path ("" for credproc itself, "cache clear", ...) and what it accepts:
    ``subs`` (name -> help), ``flags``, ``values`` (flag or ``#N`` for the Nth positional ->
    "id", a list of choices, or "free"; flags absent from it take no value)."""
    from credproc import usage

    nodes: dict[str, dict[str, Any]] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
        node: dict[str, Any] = {"subs": {}, "flags": [], "values": {}}
        positional = 0
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    node["subs"][name] = helps.get(name, "")
                    walk(sub, f"{path} {name}".strip())
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                node["flags"].extend(action.option_strings)
                if action.nargs != 0:
                    for flag in action.option_strings:
                        node["values"][flag] = _kind(action)
            else:
                node["values"][f"#{positional}"] = _kind(action)
                positional += 1
        nodes[path] = node
        return node

    main = walk(usage.build_parser(), "")
    commands = walk(commands_parser, "")
    main["subs"] = commands["subs"]  # credproc COMMAND ..., or the main job's flags
    nodes[""] = main
    return nodes


def _kind(action: argparse.Action) -> Any:
    if action.metavar == "ID" or action.dest == "conn":
        return "id"
    if action.choices:
        return [str(choice) for choice in action.choices if choice != "ids"]
    return "free"


# -- the scripts -------------------------------------------------------------------------------
# One walk in each shell: read the words before the cursor, follow the command names, skip
# each flag's value, count positionals; then offer the value the last flag or the next
# positional takes (ids, choices), else flags (when the word starts with "-") or command
# names. The data comes from spec(): _credproc_node PATH sets the node's lists, and
# _credproc_choices PATH KEY the choices of a flag or positional (#N).


def _quote(words: list[str]) -> str:
    return " ".join(words)


def _fish_words(words: str) -> str:
    return " ".join(f"'{word}'" for word in words.split())


def _node_lines(nodes: dict[str, dict[str, Any]], shell: str) -> tuple[list[str], list[str]]:
    node_cases, choice_cases = [], []
    for path, node in nodes.items():
        subs = _quote(list(node["subs"]))
        flags = _quote(node["flags"])
        vkeys = _quote(list(node["values"]))
        idkeys = _quote([key for key, kind in node["values"].items() if kind == "id"])
        for key, kind in node["values"].items():
            if isinstance(kind, list):
                choice_cases.append((f"{path}|{key}", _quote(kind)))
        if shell == "fish":  # quoted: "#0" would start a comment
            subs, flags, vkeys, idkeys = (_fish_words(words) for words in (subs, flags, vkeys, idkeys))
            node_cases.append(f"        case '{path}'\n"
                              f"            set -g __credproc_subs {subs}\n"
                              f"            set -g __credproc_flags {flags}\n"
                              f"            set -g __credproc_vkeys {vkeys}\n"
                              f"            set -g __credproc_idkeys {idkeys}")
        else:
            node_cases.append(f'        "{path}") subs="{subs}"; flags="{flags}"; vkeys="{vkeys}"; '
                              f'idkeys="{idkeys}" ;;')
    if shell == "fish":
        choices = [f"        case '{key}'\n            set -g __credproc_choice_list {_fish_words(words)}"
                   for key, words in choice_cases]
    else:
        choices = [f'        "{key}") choices="{words}" ;;' for key, words in choice_cases]
    return node_cases, choices


# What bash and zsh share: the tables of the command tree (which words and flags each
# command takes, which flags take a connection id) and of each flag's choices.
_TABLES = r'''_credproc_node() {
    subs=""; flags=""; vkeys=""; idkeys=""
    case "$1" in
@NODES@
    esac
}
_credproc_choices() {
    choices=""
    case "$1|$2" in
@CHOICES@
    esac
}
'''

BASH = r'''# credproc completion for bash: eval "$(credproc completion bash)" in ~/.bashrc
@TABLES@_credproc_ids() {
    local cmd="${COMP_WORDS[0]}"
    cmd="${cmd/#\~/$HOME}"
    command "$cmd" completion ids 2>/dev/null
}
_credproc() {
    local cur="${COMP_WORDS[COMP_CWORD]}" at="" subs flags vkeys idkeys choices word key="" n=0 i=1
    local IFS=$' \t\n'
    _credproc_node ""
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word="${COMP_WORDS[i]}"
        i=$((i + 1))
        if [ "$word" = "=" ] && [ -n "$key" ]; then continue                 # --conn = value
        elif [ -n "$key" ]; then key=""                                       # a flag's value
        elif [ "${word#-}" != "$word" ]; then
            [ "${word#*=}" = "$word" ] && [[ " $vkeys " == *" $word "* ]] && key="$word"
        elif [[ " $subs " == *" $word "* ]]; then
            at="${at:+$at }$word"; _credproc_node "$at"; n=0
        else n=$((n + 1))
        fi
    done
    if [ "$cur" = "=" ] && [ -n "$key" ]; then cur=""; fi
    COMPREPLY=()
    local words=""
    if [ -z "$key" ] && [ "${cur#-}" != "$cur" ]; then
        words="$flags"
    else
        [ -n "$key" ] || { key="#$n"; words="$subs"; }
        if [[ " $idkeys " == *" $key "* ]]; then
            words="$words $(_credproc_ids | tr '\n' ' ')"
        elif [[ " $vkeys " == *" $key "* ]]; then
            _credproc_choices "$at" "$key"; words="$words $choices"
        fi
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _credproc credproc
'''

ZSH = r'''#compdef credproc
# credproc completion for zsh: eval "$(credproc completion zsh)" in ~/.zshrc, after compinit
@TABLES@_credproc() {
    local cur="${words[CURRENT]}" at="" subs flags vkeys idkeys choices word key="" n=0 i=2
    local cmd="${words[1]}"
    _credproc_node ""
    while (( i < CURRENT )); do
        word="${words[i]}"
        (( i++ ))
        if [[ -n "$key" ]]; then key=""
        elif [[ "$word" == -* ]]; then
            [[ "$word" != *=* && " $vkeys " == *" $word "* ]] && key="$word"
        elif [[ " $subs " == *" $word "* ]]; then
            at="${at:+$at }$word"; _credproc_node "$at"; n=0
        else (( n++ ))
        fi
    done
    if [[ -z "$key" && "$cur" == -*=* && " $vkeys " == *" ${cur%%=*} "* ]]; then
        key="${cur%%=*}"
        IPREFIX="$IPREFIX$key="; PREFIX="${PREFIX#*=}"
    elif [[ -z "$key" && "$cur" == -* ]]; then
        compadd -- ${=flags}
        return
    fi
    local -a candidates
    [[ -n "$key" ]] || { key="#$n"; candidates=(${=subs}); }
    if [[ " $idkeys " == *" $key "* ]]; then
        candidates+=(${(f)"$(command ${~cmd} completion ids 2>/dev/null)"})
    elif [[ " $vkeys " == *" $key "* ]]; then
        _credproc_choices "$at" "$key"; candidates+=(${=choices})
    fi
    (( ${#candidates} )) && compadd -- $candidates
}
if (( $+functions[compdef] )); then compdef _credproc credproc; fi
'''

FISH = r'''# credproc completion for fish: credproc completion fish | source  in ~/.config/fish/config.fish
function __credproc_node
    set -g __credproc_subs; set -g __credproc_flags; set -g __credproc_vkeys; set -g __credproc_idkeys
    switch "$argv[1]"
@NODES@
    end
end
function __credproc_choices
    set -g __credproc_choice_list
    switch "$argv[1]|$argv[2]"
@CHOICES@
    end
end
function __credproc_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l at ''
    set -l key ''
    set -l n 0
    __credproc_node ''
    for word in $tokens[2..-1]
        if test -n "$key"
            set key ''
        else if string match -q -- '-*' $word
            if not string match -q -- '*=*' $word; and contains -- $word $__credproc_vkeys
                set key $word
            end
        else if contains -- $word $__credproc_subs
            set at (string trim -- "$at $word")
            __credproc_node $at
            set n 0
        else
            set n (math $n + 1)
        end
    end
    set -l prefix ''
    if test -z "$key"; and string match -q -- '-*=*' $cur
        set key (string split -m1 = -- $cur)[1]
        set prefix "$key="
    else if test -z "$key"; and string match -q -- '-*' $cur
        printf '%s\n' $__credproc_flags
        return
    end
    if test -z "$key"
        set key "#$n"
        printf '%s\n' $__credproc_subs
    end
    if contains -- $key $__credproc_idkeys
        for conn_id in (command $tokens[1] completion ids 2>/dev/null)
            printf '%s%s\n' $prefix $conn_id
        end
    else if contains -- $key $__credproc_vkeys
        __credproc_choices $at $key
        for choice in $__credproc_choice_list
            printf '%s%s\n' $prefix $choice
        end
    end
end
complete -c credproc -f -a '(__credproc_complete)'
'''


def script(shell: str, commands_parser: argparse.ArgumentParser) -> str:
    """The script for ``shell``; ``commands_parser``: ``credproc.commands.build_parser()``'s."""
    nodes, choices = _node_lines(spec(commands_parser), shell)
    template = {"bash": BASH, "zsh": ZSH, "fish": FISH}[shell].replace("@TABLES@", _TABLES)
    return template.replace("@NODES@", "\n".join(nodes)).replace("@CHOICES@", "\n".join(choices))
