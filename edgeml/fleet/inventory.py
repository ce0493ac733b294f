"""A fleet inventory: the boards a team keeps, their target profiles, SSH options and concurrency.

Two spellings, chosen by content (a file whose first table is ``[[board]]`` is TOML, else INI)::

    # fleet.toml
    [defaults]                       # optional, applied to every board
    python = "python3"

    [[board]]
    name = "pi-1"                    # optional (default: the host)
    host = "pi@192.168.1.20:22"      # [USER@]HOST[:PORT] or a ~/.ssh/config alias (required)
    target = "rpi4"                  # a built-in profile or a profile TOML (required)
    concurrency = 1                  # jobs at once on this board (1-8: sshd's MaxSessions is 10; default 1)
    identity = "~/.ssh/id_ed25519"   # optional; also ssh_config, user, port, python, connect_timeout
                                     # (relative paths: relative to this file)
    ssh_options = ["ServerAliveInterval=5"]   # optional extra ``-o`` options

    # hosts (an Ansible-style INI inventory: ansible_* variables are understood, edgeml_target is required)
    [pis]
    pi-1 ansible_host=192.168.1.20 ansible_user=pi
    [pis:vars]
    edgeml_target=rpi4

Every error names the file and line. Host-key checking stays the user's: options that switch it off are
refused.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError, InventoryError

KEYS = {"name", "host", "target", "user", "port", "ssh_config", "identity", "python", "concurrency",
        "connect_timeout", "ssh_options"}
_NAME = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]*")  # used in file names: never "." or ".."
_UNSAFE: dict[str, set[str] | None] = {
    "stricthostkeychecking": {"no", "off", "accept-new"}, "userknownhostsfile": {"/dev/null"},
           "proxycommand": None, "localcommand": None, "permitlocalcommand": None, "controlpath": None,
           "controlmaster": None, "controlpersist": None, "batchmode": None}


@dataclass
class Board:
    """One board of a fleet; ``line`` is where the inventory declares it (for error messages)."""

    name: str
    host: str
    target: str
    user: str | None = None
    port: int | None = None
    ssh_config: str | None = None
    identity: str | None = None
    python: str = "python3"
    concurrency: int = 1
    connect_timeout: int = 10
    ssh_options: list[str] = field(default_factory=list)
    where: str = ""

    def ssh_target(self, extra: list[str] | None = None) -> Any:
        """The board as an :class:`edgeml.targets.remote.SSHTarget` (``extra``: more ssh words)."""
        from edgeml.targets.remote import SSHTarget

        t = SSHTarget.parse(self.host, config=self.ssh_config, identity=self.identity, python=self.python,
                            connect_timeout=self.connect_timeout)
        t.user = self.user or t.user
        t.port = self.port or t.port
        t.extra = [w for o in self.ssh_options for w in ("-o", o)] + list(extra or [])
        return t

    @property
    def label(self) -> str:
        return self.ssh_target().label

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.label, "target": self.target, "concurrency": self.concurrency}


@dataclass
class Fleet:
    boards: list[Board]
    path: str | None = None

    def select(self, *, names: list[str] | None = None, targets: list[str] | None = None) -> Fleet:
        """The boards named (``names``) and/or of these target profiles; an unknown name is an error."""
        boards = self.boards
        if names:
            known = {b.name for b in boards}
            for n in names:
                if n not in known:
                    raise InventoryError(f"`board` {n}: no such board in {self.path or 'the fleet'}",
                                         hint=f"boards: {', '.join(sorted(known))}")
            boards = [b for b in boards if b.name in names]
        if targets:
            boards = [b for b in boards if b.target in targets]
            if not boards:
                raise InventoryError(f"no board of target {', '.join(targets)} in {self.path or 'the fleet'}",
                                     hint="targets there: " + ", ".join(sorted({b.target for b in self.boards})))
        return Fleet(boards=boards, path=self.path)

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(b.target for b in self.boards))


def load_inventory(path: str | Path) -> Fleet:
    """Read a fleet inventory (TOML ``[[board]]`` tables, or an Ansible-style INI file) and check it: every
    board has a host and a known target profile, names are unique, options are sane. Raises InventoryError
    naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise InventoryError(f"{p}: fleet inventory not found", hint="write a fleet.toml with [[board]] tables "
                                                                     "(host = ..., target = ...)")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{p}: cannot read the fleet inventory ({exc})") from exc
    boards = _toml(p, text) if _is_toml(text) else _ini(p, text)
    for b in boards:  # relative key and config paths are relative to the inventory, like its target files
        for key in ("ssh_config", "identity"):
            v = getattr(b, key)
            if v and not Path(v).is_absolute():
                setattr(b, key, str(p.parent / v))
    if not boards:
        raise InventoryError(f"{p}: no boards", hint="add a [[board]] table with host = \"...\" and target = \"...\"")
    seen: dict[str, str] = {}
    for b in boards:
        if b.name in seen:
            raise InventoryError(f"{b.where}: board name {b.name!r} is already used at {seen[b.name]}",
                                 hint="give each board its own name = \"...\"")
        seen[b.name] = b.where
    _check_targets(boards, p.parent)
    return Fleet(boards=boards, path=str(p))


def _is_toml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        return bool(re.match(r"\[\[\s*board\s*\]\]|\[\s*defaults\s*\]|board\s*=", s))
    return False


def _toml(p: Path, text: str) -> list[Board]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{p}: not valid TOML ({exc})") from exc
    lines = text.splitlines()
    heads = [i + 1 for i, line in enumerate(lines) if re.match(r"\s*\[\[\s*board\s*\]\]", line)]
    unknown = sorted(set(data) - {"board", "defaults"})
    if unknown:
        raise InventoryError(f"{p}:{_key_line(lines, unknown[0], 0) or 1}: unknown table or key {unknown[0]!r}",
                             hint="a fleet inventory has [defaults] and [[board]] tables")
    defaults = data.get("defaults", {})
    entries = data.get("board", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list):
        raise InventoryError(f"{p}: [defaults] is a table and [[board]] an array of tables")
    bad = sorted(set(defaults) - KEYS)
    if bad:
        raise InventoryError(f"{p}:{_key_line(lines, bad[0], 0) or 1}: unknown key {bad[0]!r} in [defaults]",
                             hint=f"known keys: {', '.join(sorted(KEYS))}")
    boards = []
    for k, entry in enumerate(entries):
        head = heads[k] if k < len(heads) else None
        where = f"{p}:{head}" if head else f"{p}: board #{k + 1}"
        if not isinstance(entry, dict):
            raise InventoryError(f"{where}: each [[board]] must be a table")

        def at(key: str, head: int | None = head, where: str = where) -> str:
            line = _key_line(lines, key, head) if head else None
            return f"{p}:{line}" if line else where

        boards.append(_board({**defaults, **entry}, where, at))
    return boards


def _key_line(lines: list[str], key: str, start: int | None) -> int | None:
    """The line of ``key = ...`` in the table whose header is line ``start`` (1-based; 0: the top level,
    where ``key`` may also be a table's name)."""
    i = start or 0
    while i < len(lines):
        s = lines[i].strip()
        if s.startswith("["):
            if not start and re.match(rf"\[+\s*{re.escape(key)}\s*\]", s):
                return i + 1
            if start:
                break
        elif re.match(rf"{re.escape(key)}\s*=", s):
            return i + 1
        i += 1
    return None


def _board(d: dict[str, Any], where: str, at: Any) -> Board:
    unknown = sorted(set(d) - KEYS)
    if unknown:
        raise InventoryError(f"{at(unknown[0])}: unknown key {unknown[0]!r}",
                             hint=f"known keys: {', '.join(sorted(KEYS))}")
    for key in ("host", "target"):
        if key not in d:
            raise InventoryError(f"{where}: board has no {key}",
                                 hint='each board names host = "[USER@]HOST[:PORT]" and target = "rpi4" (or a '
                                      'profile TOML)')
    for key in ("host", "target", "name", "user", "ssh_config", "identity", "python"):
        if key in d and (not isinstance(d[key], str) or not d[key].strip()):
            raise InventoryError(f"{at(key)}: {key} must be a non-empty string, not {d[key]!r}")
    for key, lo, hi in (("port", 1, 65535), ("concurrency", 1, 8), ("connect_timeout", 1, 600)):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            raise InventoryError(f"{at(key)}: {key} = {v!r} must be a whole number from {lo} to {hi}")
    opts = d.get("ssh_options", [])
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise InventoryError(f"{at('ssh_options')}: ssh_options must be a list of \"Key=Value\" strings")
    for o in opts:
        m = re.fullmatch(r"([A-Za-z]+)[= ](\S.*)", o.strip())
        if not m:
            raise InventoryError(f"{at('ssh_options')}: ssh option {o!r} is not Key=Value",
                                 hint='e.g. ssh_options = ["ServerAliveInterval=5"]')
        key, value = m.group(1).lower(), m.group(2).strip().lower()
        bad = _UNSAFE.get(key, set())
        if key in _UNSAFE and (bad is None or value in bad):
            raise InventoryError(f"{at('ssh_options')}: ssh option {o!r} is not allowed in an inventory",
                                 hint="host-key checking, BatchMode and connection sharing stay as edgeml and your "
                                      "~/.ssh/config set them; put other settings in ~/.ssh/config (ssh_config = ...)")
    from edgeml.targets.remote import SSHTarget

    try:
        t = SSHTarget.parse(d["host"])
    except EdgeMLError as exc:
        raise InventoryError(f"{at('host')}: host = {d['host']!r}: expected [USER@]HOST[:PORT]",
                             hint="e.g. host = \"pi@192.168.1.20:22\" or an alias from ~/.ssh/config") from exc
    name = d.get("name") or t.host
    if not _NAME.fullmatch(name):
        raise InventoryError(f"{at('name')}: board name {name!r} may hold letters, digits and . _ - @ only "
                             "(not first: .)")
    for key in ("ssh_config", "identity"):
        if d.get(key):
            d[key] = str(Path(d[key]).expanduser())
    return Board(name=name, host=d["host"], target=d["target"], user=d.get("user"), port=d.get("port"),
                 ssh_config=d.get("ssh_config"), identity=d.get("identity"), python=d.get("python", "python3"),
                 concurrency=d.get("concurrency", 1), connect_timeout=d.get("connect_timeout", 10),
                 ssh_options=[o.strip() for o in opts], where=where)


_ANSIBLE = {"ansible_host": "host_addr", "ansible_ssh_host": "host_addr", "ansible_user": "user",
            "ansible_ssh_user": "user", "ansible_port": "port", "ansible_ssh_port": "port",
            "ansible_ssh_private_key_file": "identity", "ansible_python_interpreter": "python",
            "edgeml_target": "target", "edgeml_concurrency": "concurrency", "edgeml_python": "python",
            "edgeml_ssh_config": "ssh_config", "edgeml_connect_timeout": "connect_timeout"}


def _ini(p: Path, text: str) -> list[Board]:
    """Ansible-style INI: ``[group]`` host lines with ``key=value`` variables, ``[group:vars]``,
    ``[group:children]``; unknown ``ansible_*`` variables are ignored, other keys are errors."""
    hosts: list[tuple[str, str, dict[str, str], str]] = []  # name, group, vars, where
    group_vars: dict[str, dict[str, str]] = {}
    parents: dict[str, list[str]] = {}
    group, kind = "ungrouped", "hosts"
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{p}:{i}"
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[([^\]:]+)(?::(vars|children))?\]", line)
        if m:
            group, kind = m.group(1).strip(), m.group(2) or "hosts"
            continue
        if line.startswith("["):
            raise InventoryError(f"{where}: not a group header: {line!r}", hint="[group], [group:vars] or "
                                 "[group:children]; or write a fleet.toml with [[board]] tables")
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{where}: cannot read this line ({exc})") from exc
        if kind == "children":
            parents.setdefault(words[0], []).append(group)
            continue
        pairs = words if kind == "vars" else words[1:]
        vars_: dict[str, str] = {}
        for w in pairs:
            k, eq, v = w.partition("=")
            if not eq:
                raise InventoryError(f"{where}: {w!r} is not key=value",
                                     hint="host lines are: NAME ansible_host=ADDR edgeml_target=rpi4")
            vars_[k.strip()] = v.strip()
        if kind == "vars":
            group_vars.setdefault(group, {}).update(vars_)
            continue
        if re.search(r"\[[0-9a-z]+:[0-9a-z]+\]", words[0]):
            raise InventoryError(f"{where}: host ranges like {words[0]!r} are not supported",
                                 hint="list each board on its own line")
        hosts.append((words[0], group, vars_, where))

    def inherited(g: str, seen: tuple[str, ...] = ()) -> dict[str, str]:
        out: dict[str, str] = {}
        for parent in parents.get(g, []):
            if parent not in seen:
                out.update(inherited(parent, seen + (g,)))
        return {**group_vars.get("all", {}), **out, **group_vars.get(g, {})}

    boards = []
    for name, grp, vars_, where in hosts:
        merged = {**inherited(grp), **vars_}
        d: dict[str, Any] = {}
        for k, v in merged.items():
            if k in _ANSIBLE:
                d[_ANSIBLE[k]] = v
            elif not k.startswith("ansible_"):
                raise InventoryError(f"{where}: unknown variable {k!r} for {name}",
                                     hint="edgeml reads edgeml_target, edgeml_concurrency, edgeml_python and "
                                          "ansible_host/user/port/ssh_private_key_file/python_interpreter")
        if "target" not in d:
            raise InventoryError(f"{where}: board {name} has no edgeml_target",
                                 hint=f"add edgeml_target=rpi4 to its line or to [{grp}:vars]")
        for key in ("port", "concurrency", "connect_timeout"):
            if key in d:
                if not d[key].isdigit():
                    raise InventoryError(f"{where}: {key} = {d[key]!r} must be a whole number")
                d[key] = int(d[key])
        if str(d.get("python", "")).startswith("auto"):  # ansible_python_interpreter=auto[_silent|_legacy]
            d.pop("python")
        addr = d.pop("host_addr", name)
        d["host"] = addr
        d["name"] = name
        boards.append(_board(d, where, lambda key, where=where: where))
    return boards


def _check_targets(boards: list[Board], base: Path) -> None:
    from edgeml.targets.profile import builtin_names, load_profile

    for b in boards:
        t = b.target
        if t.endswith(".toml") and not Path(t).is_absolute():
            b.target = t = str(base / t)
        try:
            load_profile(t)
        except EdgeMLError as exc:
            raise InventoryError(f"{b.where}: board {b.name}: unknown target profile {t!r} ({exc.message})",
                                 hint=f"built-in targets: {', '.join(builtin_names())}, or a profile .toml") from exc
