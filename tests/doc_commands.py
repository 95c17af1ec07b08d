"""The shell commands the README and docs/ show, and how a test runs each with smoke settings.

A *command* is a line of a fenced code block marked ``bash``/``sh``/``shell``/``console``, a
line starting with ``$ `` in any fenced block (the lines after it, up to the next blank line
or ``$``, are its expected output), or a line starting with ``python`` in an indented (four
spaces) code block. Backslash continuations are joined. Inline code in prose is not a
command. A line that is a synopsis rather than a command (``[--optional]``, ``a|b``,
``...``, ``<placeholder>``) is reported as skipped, with the reason.

`smoke_version` rewrites a command into what the test runs, keeping everything else as
written:

* the quick-start chains (``python3 -m venv ... && pip install ... && X``) run only ``X``;
  a chain whose command is ``ruff``/``pytest`` is CI itself (``.ci/run``) and is skipped;
* ``vision_jax.train --config F[:arg]`` gets the config's ``smoke`` argument (``F:smoke``,
  or ``F:arg,smoke``);
* ``launch.tpu_vm`` gets ``--dry-run`` (it never reaches Google Cloud);
* absolute ``/tmp/...`` paths and ``gs://`` paths of local commands move under the test's
  own directory; relative paths (``runs/mnist``) resolve there anyway, as the test runs each
  document's commands in a scratch directory that links to the repository's ``configs/``,
  ``docs/``, ``launch/`` and ``benchmarks/``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

SHELL_FENCES = ("bash", "sh", "shell", "console")
# Flags whose value is a path the command reads or writes.
PATH_FLAGS = ("--workdir", "--out", "--output", "--data_dir", "--fetch-to")
SYNOPSIS = (
    (re.compile(r"\[--?\w"), "an optional part in brackets"),
    (re.compile(r"(?<![\s'\"])\|(?![\s'\"])"), "alternatives a|b"),
    (re.compile(r"\.\.\."), "an ellipsis"),
    (re.compile(r"<[A-Za-z_ ]+>"), "a <placeholder>"),
)


@dataclasses.dataclass(frozen=True)
class Command:
    """One command as the document writes it."""

    source: str  # "README.md:17"
    text: str
    expected_output: tuple[str, ...] = ()


def extract(path: Path, root: Path) -> list[Command]:
    """The commands of one Markdown file, in document order."""
    lines = path.read_text().splitlines()
    name = str(path.relative_to(root))
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*```(\w*)\s*$", line)
        if fence:
            language = fence.group(1)
            i += 1
            block: list[tuple[int, str]] = []
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                block.append((i + 1, lines[i]))
                i += 1
            commands += _from_block(name, block, shell=language in SHELL_FENCES)
        elif line.startswith("    ") and line.strip().startswith("python") and _after_blank(
                lines, i):
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                if lines[i].strip():
                    block.append((i + 1, lines[i][4:]))
                i += 1
            commands += _from_block(name, block, shell=True)
            continue
        i += 1
    return commands


def _after_blank(lines: list[str], i: int) -> bool:
    # An indented code block starts after a blank line (otherwise it is a list continuation).
    return i == 0 or not lines[i - 1].strip() or lines[i - 1].startswith("    ")


def _from_block(name: str, block: list[tuple[int, str]], *, shell: bool) -> list[Command]:
    commands = []
    j = 0
    while j < len(block):
        number, text = block[j]
        stripped = text.strip()
        prompted = stripped.startswith("$ ")
        if not (shell or prompted) or not stripped or stripped.startswith("#"):
            j += 1
            continue
        if prompted:
            stripped = stripped[2:]
        while stripped.endswith("\\") and j + 1 < len(block):
            j += 1
            stripped = stripped[:-1].rstrip() + " " + block[j][1].strip()
        output = []
        if prompted:
            while j + 1 < len(block) and block[j + 1][1].strip() and not block[
                    j + 1][1].strip().startswith("$ "):
                j += 1
                output.append(block[j][1].strip())
        commands.append(Command(f"{name}:{number}", _strip_comment(stripped), tuple(output)))
        j += 1
    return commands


def _strip_comment(text: str) -> str:
    # A trailing "  # comment" (no quote after the hash, so a quoted '#' stays).
    return re.sub(r"\s+#[^'\"]*$", "", text)


def synopsis_reason(text: str) -> str | None:
    """Why `text` is a synopsis, not a command (None for a command)."""
    for pattern, reason in SYNOPSIS:
        if pattern.search(text):
            return reason
    return None


@dataclasses.dataclass(frozen=True)
class SmokeCommand:
    argv: tuple[str, ...] | None  # None: skipped
    reason: str = ""


def smoke_version(command: Command, scratch: Path) -> SmokeCommand:
    """What the test runs for `command` (see the module docstring)."""
    reason = synopsis_reason(command.text)
    if reason:
        return SmokeCommand(None, f"a synopsis ({reason})")
    segments = [s.strip() for s in command.text.split("&&")]
    kept = [s for s in segments if not re.match(
        r"^(python3? -m venv|\. \S+/activate|source \S+/activate|pip install)\b", s)]
    if any(re.match(r"^(ruff|pytest)\b", s) for s in kept):
        return SmokeCommand(None, "the CI command itself (.ci/run runs it)")
    if len(kept) != 1:
        return SmokeCommand(None, f"a chain of {len(kept)} commands")
    argv = shlex.split(kept[0])
    if argv and argv[0] in ("python", "python3"):
        argv[0] = "python"
    if not argv or argv[0] != "python":
        return SmokeCommand(None, f"not a python command ({argv[0] if argv else 'empty'})")
    return SmokeCommand(tuple(_rewrite(argv, scratch)))


def _modules(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-m"]


def _rewrite(argv: list[str], scratch: Path) -> list[str]:
    modules = _modules(argv)
    dry_run = "launch.tpu_vm" in modules
    out = []
    i = 0
    while i < len(argv):
        word = argv[i]
        flag, eq, value = word.partition("=")
        if flag in ("--config",) or flag in PATH_FLAGS:
            if not eq:  # "--flag value"
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            if not dry_run:  # a dry run only prints: its command stays as written
                value = _smoke_config(value) if flag == "--config" else _local_path(
                    value, scratch)
            out += [flag, value]
        else:
            out.append(word)
        i += 1
    if dry_run and "--dry-run" not in out:
        # Before a "--" that passes the rest on to the trainer.
        end = out.index("--") if "--" in out else len(out)
        out.insert(end, "--dry-run")
    return out


def _smoke_config(value: str) -> str:
    path, _, arg = value.partition(":")
    parts = [p for p in arg.split(",") if p]
    if "smoke" not in parts:
        parts.append("smoke")
    return f"{path}:{','.join(parts)}"


def _local_path(value: str, scratch: Path) -> str:
    if value.startswith("gs://"):
        return str(scratch / "gs" / value[len("gs://"):])
    if value.startswith("/tmp/"):
        return str(scratch / "tmp" / value[len("/tmp/"):])
    return value
