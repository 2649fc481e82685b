"""A minimal editor for the AWS shared config and credentials files.

``configparser`` reads these files as botocore does, but writing back with it drops every
comment and blank line and reorders nothing less than everything. People keep notes in
``~/.aws/config``, so ``credproc configure`` edits text instead: it finds one section, sets
a few keys in it, and leaves every other byte of the file as it was.

The reading follows what botocore's ``RawConfigParser`` does: a section header is a line
``[...]`` (the name is what lies between the first ``[`` and the last ``]``), an option is
``key = value`` or ``key: value`` with the key compared in lower case, a line indented
deeper than its option continues that option's value, and lines starting with ``#`` or
``;`` are comments. ``[profile NAME]`` and ``[default]`` name profiles in the config file;
in the credentials file a section's name is the profile's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Option:
    key: str  # lower case, as botocore sees it
    start: int  # index of its first line
    end: int  # one past its last line (continuation lines included)


@dataclass
class Section:
    name: str
    header: int  # index of the [header] line
    end: int  # one past the section's last line (the next header, or the end of the file)
    options: list[Option] = field(default_factory=list)


class IniText:
    """The lines of one INI file, with line endings kept, and where its sections are."""

    def __init__(self, text: str):
        self.lines = text.splitlines(keepends=True)
        self.newline = "\r\n" if self.lines and self.lines[0].endswith("\r\n") else "\n"
        self.sections = _parse(self.lines)

    def text(self) -> str:
        return "".join(self.lines)

    def find(self, match: Callable[[str], bool]) -> list[Section]:
        return [s for s in self.sections if match(s.name)]

    def set_options(self, section: Section | None, header: str, values: dict[str, str]) -> None:
        """Set ``values`` in ``section`` (or in a new ``[header]`` appended at the end).

        An existing key keeps its line, its spelling and its spacing around ``=``; only the
        value changes (a multi-line value becomes one line). New keys go after the section's
        last option, before the blank lines and comments that lead to the next section.
        """
        nl = self.newline
        if section is None:
            if self.lines and not self.lines[-1].endswith(("\n", "\r")):
                self.lines[-1] += nl
            if self.lines and self.lines[-1].strip():
                self.lines.append(nl)
            self.lines.append(f"[{header}]{nl}")
            self.lines.extend(f"{key} = {value}{nl}" for key, value in values.items())
            self.sections = _parse(self.lines)
            return
        edits: list[tuple[int, int, list[str]]] = []  # (start, end, replacement lines)
        appended = []
        for key, value in values.items():
            options = [option for option in section.options if option.key == key]
            if not options:
                appended.append(f"{key} = {value}{nl}")
            for option in options:  # a key given twice (botocore refuses that) is set in both places
                first = self.lines[option.start]
                ending = first[len(first.rstrip("\r\n")):] or nl
                prefix = _prefix(first)
                if self.lines[option.start:option.end] != [prefix + value + ending]:
                    edits.append((option.start, option.end, [prefix + value + ending]))
        if appended:
            at = section.options[-1].end if section.options else section.header + 1
            if at > 0 and not self.lines[at - 1].endswith(("\n", "\r")):
                self.lines[at - 1] += nl
            edits.append((at, at, appended))
        for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
            self.lines[start:end] = replacement
        self.sections = _parse(self.lines)


def profile_of_config_section(name: str) -> str | None:
    """The profile a config-file section defines, as botocore reads it, or None."""
    if name == "default":
        return "default"
    if not name.startswith("profile"):
        return None
    import shlex

    try:
        parts = shlex.split(name)
    except ValueError:
        return None
    return parts[1] if len(parts) == 2 and parts[0] == "profile" else None


def _prefix(line: str) -> str:
    """``"  region = eu-west-1\\n"`` -> ``"  region = "``: everything before the value."""
    body = line.rstrip("\r\n")
    cut = min((i for i in (body.find("="), body.find(":")) if i >= 0), default=len(body))
    rest = body[cut + 1:]
    return body[:cut + 1] + rest[:len(rest) - len(rest.lstrip())]


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith(("#", ";"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse(lines: list[str]) -> list[Section]:
    sections: list[Section] = []
    current: Section | None = None
    option: Option | None = None
    option_indent = 0
    for i, line in enumerate(lines):
        if _is_blank_or_comment(line):
            continue
        if option is not None and _indent(line) > option_indent:
            option.end = i + 1  # a continuation line
            continue
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            if current is not None:
                current.end = i
            current = Section(name=stripped[1:stripped.rindex("]")], header=i, end=len(lines))
            sections.append(current)
            option = None
            continue
        if current is None:
            continue  # text before any section: botocore refuses the file; not ours to fix
        delimiters = [j for j in (stripped.find("="), stripped.find(":")) if j >= 0]
        key = stripped[:min(delimiters)] if delimiters else stripped
        option = Option(key=key.strip().lower(), start=i, end=i + 1)
        option_indent = _indent(line)
        current.options.append(option)
    return sections
