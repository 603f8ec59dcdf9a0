"""One line for a user's mistake.

zerosum's classes refuse bad settings with ``ValueError``/``TypeError`` messages of the form
``<option>: <what is wrong>; allowed: <...>``. Between them and the user stand jsonargparse and
Lightning, which wrap such an error in a multi-line report ("Does not validate against any of the
Union subtypes ... Given value: Namespace(...)"). :func:`one_line` finds the project's own message in
an exception chain (or condenses a jsonargparse report) so that the command line can print it as its
single final line, ``error: <option>: ...``.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

#: first lines of the reports jsonargparse wraps around the real error
_WRAPPERS = ("Does not validate against any of the Union subtypes", "Problem with given class_path",
             "Parser key ", "Configuration check failed", "Validation failed")
#: report lines that say nothing the user can act on
_NOISE = re.compile(r"^(Subtypes:|Errors:|Given value type:|Given value:|Expected a <class 'NoneType'>|"
                    r"Not a valid path to a class|Problem with given class_path|Does not validate against any)")


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def _is_wrapper(message: str) -> bool:
    return message.lstrip().startswith(_WRAPPERS)


def _allowed_options(class_path: str) -> Optional[str]:
    """The argument names of the class at ``class_path`` (for "Option 'x' is not accepted")."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        params = inspect.signature(getattr(importlib.import_module(module), name).__init__).parameters
    except Exception:  # noqa: BLE001 - a hint only
        return None
    return ", ".join(n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def condense(message: str, known_classes: Optional[Callable[[str], Optional[str]]] = None) -> str:
    """A jsonargparse report as one line: ``<dotted key>: <the innermost reasons>; allowed: <...>``.

    ``known_classes(key)`` may name the classes an option accepts (for an unknown class name)."""
    keys: list[str] = []
    class_path = None
    given = None
    reasons: list[str] = []
    for raw in message.splitlines():
        line = raw.strip().lstrip("-").strip()
        for key in re.findall(r'Parser key "([^"]+)":', line):
            keys.append(key)
        line = re.sub(r'Parser key "[^"]+":\s*', "", line).strip()
        m = re.match(r"Problem with given class_path '([^']+)'", line)
        if m:
            class_path = m.group(1)
            continue
        m = re.match(r"Given value: (.*)$", line)
        if m:
            given = m.group(1) if "(" not in m.group(1) else None
            continue
        if not line or _NOISE.match(line):
            continue
        line = line.rstrip(":")
        if line not in reasons:
            reasons.append(line)
    key = ".".join(keys)
    text = None
    for reason in reasons:
        m = re.match(r"Option '([^']+)' is not accepted", reason)
        if m:
            key = f"{key}.{m.group(1)}" if key else m.group(1)
            allowed = _allowed_options(class_path) if class_path else None
            text = f"not an option of {class_path or 'this class'}" + (f"; allowed: {allowed}" if allowed else "")
            break
        m = re.match(r"Expected a typing.Literal\[(.*)\]\. Got value: (.*)$", reason)
        if m:
            text = f"{m.group(2)!r} is not allowed; allowed: {m.group(1)}"
            break
        m = re.match(r"(Expected a dot import path string:?|Expected a path but)\s*(.*?)(\s+either not accessible.*)?$",
                     reason)
        if m:
            name = m.group(2).strip()
            allowed = known_classes(key) if known_classes else None
            text = f"unknown class {name!r}" + (f"; allowed: {allowed}" if allowed else
                                                 "; allowed: a class name or import path 'package.module.Class'")
            break
    if text is None:
        text = "; ".join(reasons) if reasons else message.strip().splitlines()[0]
        if given is not None and "Got value" not in text:
            text += f" (got {given!r})"
    text = re.sub(r"\s+", " ", text).strip()
    if text.startswith("Problems parsing config"):
        key = key or "config"
    return f"{key}: {text}" if key and not text.startswith(key + ":") else text


def one_line(err: BaseException) -> str:
    """The message a user should read for ``err``: the first message in its chain that is not a
    jsonargparse wrapper, on one line (``<option>: <what is wrong>; allowed: <...>``)."""
    chosen: Optional[BaseException] = None
    for e in _chain(err):
        if str(e) and not _is_wrapper(str(e)):
            chosen = e
            break
    if chosen is None:
        return condense(str(err)) or type(err).__name__
    message = str(chosen)
    if isinstance(chosen, KeyError) and message.startswith(("'", '"')):
        message = message[1:-1]
    if isinstance(chosen, FileNotFoundError) and chosen.filename and str(chosen.filename) not in message:
        message = f"{chosen.filename}: {message}"
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    text = " ".join(lines)
    if len(lines) > 1 and _NOISE.match(lines[1]):
        text = condense(message)
    return text
