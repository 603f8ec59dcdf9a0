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
    """The argument names of the class at ``class_path`` (for "Option 'x' is not accepted"), those its
    ``**kwargs`` pass on to a base class included."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a hint only
        return None
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.items()
        names += [n for n, p in params if n != "self" and n not in names
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for _, p in params) or klass.__module__.startswith("lightning"):
            break
    return ", ".join(names) or None


def condense(message: str, known_classes: Optional[Callable[[str], Optional[str]]] = None) -> str:
    """A jsonargparse report as one line: ``<dotted key>: <the innermost reasons>; allowed: <...>``.

    ``known_classes(key)`` may name the classes an option accepts (for an unknown class name)."""
    simple = _argparse_message(message)
    if simple:
        return simple
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
        text = _expected_types(reasons, given)
    if text is None:
        text = "; ".join(reasons) if reasons else message.strip().splitlines()[0]
        if given is not None and "Got value" not in text:
            text += f" (got {given!r})"
    text = re.sub(r"\s+", " ", text).strip()
    if text.startswith("Problems parsing config"):
        key = key or "config"
        text += "; allowed: a YAML (or JSON) mapping of options, as in configs/"
    elif key == "config" and text.startswith("File does not exist"):
        text = text.replace("File does not exist", "no such file") + "; allowed: the path of a YAML config file"
    return f"{key}: {text}" if key and not text.startswith(key + ":") else text


_TYPE_NAMES = {"int": "an int", "float": "a number", "bool": "true or false", "str": "a string",
               "NoneType": "null"}


def _expected_types(reasons: list[str], given: Optional[str]) -> Optional[str]:
    """jsonargparse's ``Expected a <class 'int'>`` / ``Expected a typing.Literal[...]`` reports (one per type
    tried) as ``got 'abc'; allowed: an int``."""
    kinds: list[str] = []
    for reason in reasons:
        for part in re.split(r"; (?=Expected a )", reason):
            m = re.match(r"Expected a (?:<class '(\w+)'>|typing\.Literal\[(.*)\])(?:\. Got value: (.*))?$", part.strip())
            if not m:
                return None
            given = given if given is not None else m.group(3)
            for kind in ([_TYPE_NAMES.get(m.group(1), m.group(1))] if m.group(1) else m.group(2).split(", ")):
                if kind not in kinds:
                    kinds.append(kind)
    if not kinds:
        return None
    allowed = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else kinds[0]
    return (f"got {given!r}; " if given is not None else "") + "allowed: " + allowed


def _argparse_message(message: str) -> Optional[str]:
    """argparse's own messages (before any class is involved) in the project's form."""
    m = re.match(r"argument subcommand: invalid choice: '([^']*)' \(choose from (.*)\)$", message.strip())
    if m:
        return f"subcommand: {m.group(1)!r} is not a subcommand; allowed: {m.group(2).replace(chr(39), '')}"
    m = re.match(r"the following arguments are required: (.*)$", message.strip())
    if m:
        keys = [k.strip().split(".", 1)[-1] for k in m.group(1).split(",")]
        return (f"{', '.join(keys)}: required, none given; allowed: --{keys[0]} <class name or import path> "
                f"(`--help` lists them) or {keys[0]}: in a --config file")
    return None


#: Lightning's and torch's own messages for a bad option -> (option, what is allowed: None = from the message)
_FOREIGN = (
    (re.compile(r"You selected an invalid accelerator name: `accelerator=(.*?)`\. Available names are: (.*?)\.?$"),
     "trainer.accelerator", None),
    (re.compile(r"You selected an invalid strategy name: `strategy=(.*?)`\..*"),
     "trainer.strategy", "auto, ddp, ddp_spawn, ddp_find_unused_parameters_true, fsdp, deepspeed, ... (the names "
                         "of lightning.pytorch.strategies.StrategyRegistry) or a Strategy class_path"),
    (re.compile(r"`devices` selected with `\w+` should be (.*?)\.?$"), "trainer.devices", None),
    (re.compile(r"Invalid (learning rate|momentum value|weight_decay value|epsilon value|beta parameter at index \d)"
                r":? (.*)$"), "optimizer", "the values its torch.optim class accepts (lr, momentum, weight_decay "
                                            ">= 0, betas in [0, 1))"),
)


def _foreign_option(text: str) -> Optional[str]:
    """A message of Lightning or torch that names no option, in the project's form."""
    for pattern, option, allowed in _FOREIGN:
        m = pattern.match(text)
        if m:
            if option == "trainer.devices":
                return f"{option}: not a device count this accelerator takes; allowed: {m.group(1)}"
            if option == "optimizer":
                return f"{option}: invalid {m.group(1)} {m.group(2)}; allowed: {allowed}"
            return f"{option}: unknown name {m.group(1)}; allowed: {allowed or m.group(2)}"
    return None


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
    return _foreign_option(text) or text
