"""Everyday commands of a dom0 (test, ls, cat, grep, uptime, hostname, echo, true, false, brctl).

The server hands each handler the argv that ``shlex.split`` made of the exec string.
There is no shell: ``;``, ``|``, ``&&``, ``$(...)``, globs and redirections are NOT
interpreted, a word like ``a;b`` is just a word. Real sshd would run the string through
bash; the drivers quote every word (hosts/drivers/base.py ``quote_command``) so for
them the two agree, and nothing a test sends can reach the machine running the lab.

The file system is simulated: regular files are ``host["files"]``, block devices are
``visible_devices(state, host)``, directories are every parent of those plus a few
fixed ones. Relative paths are taken from root's home, /root.

Bridges: ``brctl show [BRIDGE...]`` (bridge-utils, as on the SLES 10 dom0s of the
thesis); ports are eth<N> for xenbr<N> plus ``vif<domid>.<n>`` of running domains.
"""

from __future__ import annotations

import posixpath
import time
import zlib

from hosts.lab.tools.base import Handler, ToolContext, ToolResult, visible_devices

_FIXED_DIRS = frozenset({"/", "/dev", "/etc", "/etc/xen", "/root", "/tmp", "/var", "/var/log"})
_HOME = "/root"
# Oldest plausible boot: hosts are "up" since early 2025 plus a per-host offset.
_BOOT_ANCHOR = 1_735_689_600.0


def _norm(path: str) -> str:
    joined = path if path.startswith("/") else posixpath.join(_HOME, path)
    normal = posixpath.normpath(joined)
    # POSIX keeps a leading "//" as special; Linux does not, and neither do we.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


class _FileSystem:
    def __init__(self, ctx: ToolContext) -> None:
        host = ctx.state["hosts"].get(ctx.host, {})
        self.files: dict[str, str] = host.get("files", {})
        self.devices = visible_devices(ctx.state, ctx.host)
        dirs = set(_FIXED_DIRS)
        for path in (*self.files, *self.devices):
            parent = posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        self.dirs = dirs

    def kind(self, path: str) -> str | None:
        path = _norm(path)
        if path in self.files:
            return "file"
        if path in self.devices:
            return "block"
        if path in self.dirs:
            return "dir"
        return None

    def children(self, directory: str) -> list[str]:
        directory = _norm(directory)
        names = {
            posixpath.basename(path)
            for path in (*self.files, *self.devices, *self.dirs)
            if path != "/" and posixpath.dirname(path) == directory
        }
        return sorted(names)


def _ok(stdout: str = "") -> ToolResult:
    return 0, stdout, ""


def tool_true(ctx: ToolContext, argv: list[str]) -> ToolResult:
    return _ok()


def tool_false(ctx: ToolContext, argv: list[str]) -> ToolResult:
    return 1, "", ""


def tool_echo(ctx: ToolContext, argv: list[str]) -> ToolResult:
    # bash's builtin: leading -n/-e/-E flags; we honour -n and print the rest verbatim.
    words, newline = argv[1:], True
    while words and words[0] in {"-n", "-e", "-E", "-ne", "-en", "-nE", "-En"}:
        newline = newline and "n" not in words[0]
        words = words[1:]
    return _ok(" ".join(words) + ("\n" if newline else ""))


def tool_hostname(ctx: ToolContext, argv: list[str]) -> ToolResult:
    return _ok(ctx.host + "\n")


def tool_uptime(ctx: ToolContext, argv: list[str]) -> ToolResult:
    """procps-ng: ' 10:22:33 up 41 days,  3:07,  1 user,  load average: 0.08, 0.03, 0.01'."""
    offset = zlib.crc32(ctx.host.encode()) % (30 * 86400)
    up = max(0, int(ctx.now - _BOOT_ANCHOR - offset))
    days, rest = divmod(up, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    text = time.strftime(" %H:%M:%S up ", time.gmtime(ctx.now))
    if days:
        text += f"{days} day{'s' if days != 1 else ''}, "
    text += f"{hours:2d}:{minutes:02d}, " if hours else f"{minutes} min, "
    domains = len(ctx.state["hosts"].get(ctx.host, {}).get("domains", ()))
    load = 0.02 + 0.03 * max(domains - 1, 0)
    text += f" 1 user,  load average: {load:.2f}, {load * 0.8:.2f}, {load * 0.6:.2f}\n"
    return _ok(text)


_TEST_UNARY = {"-e", "-f", "-b", "-d", "-s", "-r", "-w", "-L", "-h", "-n", "-z"}


def tool_test(ctx: ToolContext, argv: list[str]) -> ToolResult:
    """bash's builtin ``test`` (and ``[``) for the file tests the drivers need."""
    name, args = argv[0], argv[1:]
    if name == "[":
        if not args or args[-1] != "]":
            return 2, "", "bash: line 1: [: missing `]'\n"
        args = args[:-1]
    negate = False
    if len(args) in (2, 3, 4) and args[0] == "!":
        negate, args = True, args[1:]
    if not args:
        result: bool | None = False
    elif len(args) == 1:
        result = args[0] != ""
    elif len(args) == 2:
        op, operand = args
        if op not in _TEST_UNARY:
            return 2, "", f"bash: line 1: {name}: {op}: unary operator expected\n"
        result = _unary(ctx, op, operand)
    elif len(args) == 3 and args[1] in {"=", "==", "!="}:
        result = (args[0] == args[2]) != (args[1] == "!=")
    elif len(args) == 3:
        return 2, "", f"bash: line 1: {name}: {args[1]}: binary operator expected\n"
    else:
        return 2, "", f"bash: line 1: {name}: too many arguments\n"
    return (0 if bool(result) != negate else 1), "", ""


def _unary(ctx: ToolContext, op: str, operand: str) -> bool:
    if op == "-n":
        return operand != ""
    if op == "-z":
        return operand == ""
    if op in {"-L", "-h"}:
        return False  # the simulated file system has no symlinks
    fs = _FileSystem(ctx)
    kind = fs.kind(operand) if operand else None
    if op == "-f":
        return kind == "file"
    if op == "-b":
        return kind == "block"
    if op == "-d":
        return kind == "dir"
    if op == "-s":
        return kind == "block" or kind == "dir" or (kind == "file" and fs.files[_norm(operand)] != "")
    return kind is not None  # -e, -r, -w: we are root


def _long_line(fs: _FileSystem, path: str, name: str, now: float) -> str:
    stamp = time.strftime("%b %e %H:%M", time.gmtime(now - 86400 * 3))
    kind = fs.kind(path)
    if kind == "file":
        size = len(fs.files[_norm(path)].encode())
        return f"-rw-r--r-- 1 root root {size:5d} {stamp} {name}"
    if kind == "block":
        minor = zlib.crc32(_norm(path).encode()) % 64
        return f"brw-rw---- 1 root disk 253, {minor:2d} {stamp} {name}"
    return f"drwxr-xr-x 2 root root  4096 {stamp} {name}"


def tool_ls(ctx: ToolContext, argv: list[str]) -> ToolResult:
    """GNU ls, non-tty output (one name per line); flags -l, -d, -1, -a (no dotfiles exist)."""
    long = directory_itself = False
    paths: list[str] = []
    options_done = False
    for word in argv[1:]:
        if word == "--" and not options_done:
            options_done = True  # GNU: everything after "--" is a name
        elif word.startswith("-") and len(word) > 1 and not paths and not options_done:
            for flag in word[1:]:
                if flag == "l":
                    long = True
                elif flag == "d":
                    directory_itself = True
                elif flag not in "1aA":
                    return 2, "", f"ls: invalid option -- '{flag}'\nTry 'ls --help' for more information.\n"
        else:
            paths.append(word)
    fs = _FileSystem(ctx)
    if not paths:
        paths = ["."]
    errors, plain, dirs = [], [], []
    status = 0
    for path in paths:
        kind = fs.kind(path)
        if kind is None:
            errors.append(f"ls: cannot access '{path}': No such file or directory\n")
            status = 2
        elif kind == "dir" and not directory_itself:
            dirs.append(path)
        else:
            plain.append(path)
    blocks = []
    if plain:
        blocks.append("".join((_long_line(fs, p, p, ctx.now) if long else p) + "\n" for p in sorted(plain)))
    for path in sorted(dirs):
        names = fs.children(path)
        body = ""
        if long:
            body += f"total {4 * len(names)}\n"
            body += "".join(_long_line(fs, posixpath.join(_norm(path), n), n, ctx.now) + "\n" for n in names)
        else:
            body += "".join(n + "\n" for n in names)
        header = f"{path}:\n" if len(paths) > 1 else ""
        blocks.append(header + body)
    return status, "\n".join(blocks), "".join(errors)


def tool_cat(ctx: ToolContext, argv: list[str]) -> ToolResult:
    fs = _FileSystem(ctx)
    out, err, status = [], [], 0
    for path in argv[1:]:
        kind = fs.kind(path)
        if kind == "file":
            out.append(fs.files[_norm(path)])
        elif kind == "dir":
            err.append(f"cat: {path}: Is a directory\n")
            status = 1
        elif kind is None:
            err.append(f"cat: {path}: No such file or directory\n")
            status = 1
        # a block device reads as nothing: nobody should cat a LUN over SSH
    return status, "".join(out), "".join(err)


_GREP_FLAGS = {
    "-H": "with_name",
    "-h": "no_name",
    "-Z": "null",
    "--null": "null",
    "-a": "text",
    "--text": "text",
}
_GREP_FLAGS |= {"-F": "fixed", "--fixed-strings": "fixed", "-s": "silent", "--no-messages": "silent"}
_BRE_SPECIAL = frozenset(".[]*^$\\")


def tool_grep(ctx: ToolContext, argv: list[str]) -> ToolResult:
    """GNU grep over the simulated files, for fixed patterns (``-F``, or a pattern without
    regular-expression characters; the empty one matches every line). Flags -H/-h
    (file names, shown by default for more than one file), -Z/--null (a NUL, not ':',
    after the name), -a (the files are text anyway), -s, ``-e PATTERN``; options may
    follow names, as GNU's do, until ``--``. Messages and exit status as GNU's: 0 a line
    selected, 1 none, 2 a file could not be read."""
    usage = "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n"
    opts: set[str] = set()
    patterns: list[str] = []
    positional: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word == "--":
            positional.extend(words)
        elif word == "-e":
            pattern = next(words, None)
            if pattern is None:
                return 2, "", "grep: option requires an argument -- 'e'\n" + usage
            patterns.append(pattern)
        elif word in _GREP_FLAGS:
            opts.add(_GREP_FLAGS[word])
        elif word.startswith("-") and word != "-":
            return 2, "", f"grep: unrecognized option '{word}'\n" + usage
        else:
            positional.append(word)
    if not patterns:
        if not positional:
            return 2, "", usage
        patterns.append(positional.pop(0))
    if "fixed" not in opts and any(_BRE_SPECIAL & set(p) for p in patterns):
        return 2, "", "grep: the lab simulates fixed patterns only (use -F)\n"  # lab-only refusal
    named = "with_name" in opts or (len(positional) > 1 and "no_name" not in opts)
    fs = _FileSystem(ctx)
    out, err, failed, selected = [], [], False, False
    for path in positional:
        kind = fs.kind(path)
        if kind in (None, "dir"):
            failed = True
            if "silent" not in opts:
                err.append(f"grep: {path}: {'Is a directory' if kind else 'No such file or directory'}\n")
            continue
        text = fs.files[_norm(path)] if kind == "file" else ""  # a block device: nothing to show here
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the newline that ends the last line starts no line
        for line in lines:
            if any(p in line for p in patterns):
                selected = True
                out.append(f"{path}{chr(0) if 'null' in opts else ':'}{line}\n" if named else f"{line}\n")
    return (2 if failed else 0 if selected else 1), "".join(out), "".join(err)


def tool_brctl(ctx: ToolContext, argv: list[str]) -> ToolResult:
    """``brctl show [BRIDGE...]`` in bridge-utils' tab layout."""
    if argv[1:2] != ["show"]:
        return 1, "", "Usage: brctl [commands]\nonly 'brctl show [BRIDGE...]' is simulated\n"
    host = ctx.state["hosts"].get(ctx.host, {})
    bridges = list(host.get("bridges", ()))
    wanted = argv[2:] or bridges
    mac = zlib.crc32(ctx.host.encode())
    out, err = ["bridge name\tbridge id\t\tSTP enabled\tinterfaces\n"], []
    for bridge in wanted:
        if bridge not in bridges:
            err.append(f"bridge {bridge} does not exist!\n")
            continue
        index = bridges.index(bridge)
        ports = [f"eth{index}"]
        for domain in host.get("domains", ()):
            ports += [
                f"vif{domain['domid']}.{n}" for n, nic in enumerate(domain["nics"]) if nic["bridge"] == bridge
            ]
        bridge_id = f"8000.00163e{(mac + index) & 0xFFFFFF:06x}"
        out.append(f"{bridge}\t\t{bridge_id}\tno\t\t{ports[0]}\n")
        out.extend(f"\t\t\t\t\t\t\t{port}\n" for port in ports[1:])
    return (1 if err else 0), "".join(out), "".join(err)


CORE_TOOLS: dict[str, Handler] = {
    "test": tool_test,
    "[": tool_test,
    "ls": tool_ls,
    "cat": tool_cat,
    "uptime": tool_uptime,
    "hostname": tool_hostname,
    "echo": tool_echo,
    "true": tool_true,
    "false": tool_false,
    "brctl": tool_brctl,
    "grep": tool_grep,
}


def command_not_found(name: str) -> ToolResult:
    """What bash -c says for a word that is no command (exit 127)."""
    if "/" in name:
        return 127, "", f"bash: line 1: {name}: No such file or directory\n"
    return 127, "", f"bash: line 1: {name}: command not found\n"
