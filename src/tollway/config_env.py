"""`${VAR}` references in configuration strings, with the shell's default and error forms.

    ${VAR}            the variable; unset is a problem naming the key path
    ${VAR:-default}   `default` when VAR is unset or empty (`${VAR-default}`: only when unset)
    ${VAR:?message}   `message` is the problem when VAR is unset or empty (`${VAR?message}`: unset)
    $${               a literal `${`

A default or message runs to the first `}` (no nesting). Written by hand: the libraries that
expand variables (os.path.expandvars, string.Template, python-dotenv) either ignore these forms
or cannot name the key path of a missing variable.

A string made by a reference is returned as `EnvStr`, so that fields with strict types (ports,
timeouts, flags) may still take their value from the environment: see `config_types.env_scalar`.
"""

from __future__ import annotations

import re
from typing import Any

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class EnvStr(str):
    """A string that came (at least in part) from an environment variable."""

    __slots__ = ()


def interpolate(value: Any, path: str, env: dict[str, str], problems: list[tuple[str, str]]) -> Any:
    """`value` with every reference expanded; each problem is appended as (key path, message)."""
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    expanded = False

    def sub(m: re.Match[str]) -> str:
        nonlocal expanded
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name is None:  # $${ escapes a literal ${
            return "${"
        expanded = True
        current = env.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if not missing:
            return current or ""
        if op in ("-", ":-"):
            return arg or ""
        if op in ("?", ":?"):
            why = arg.strip() or f"environment variable {name} is not set"
            problems.append((path, f"{why} (from ${{{name}}})" if arg.strip() else why))
            return ""
        problems.append((path, f"environment variable {name} is not set"))
        return ""

    out = _REF.sub(sub, value)
    return EnvStr(out) if expanded else out
