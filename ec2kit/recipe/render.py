"""Jinja2 rendering of step values, ``when`` expressions and template files.

Sandboxed (:func:`environment`) and StrictUndefined everywhere: an undefined name (or an
unsafe attribute such as ``__class__``) is a RecipeError that names the
recipe file, the step, the key, the line and two lines of context (or the
template file and line). Secrets are masked by :class:`Masker` wherever text
is shown.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RecipeError
from .locations import source_context, where
from .model import Step

if TYPE_CHECKING:
    import jinja2

_SINGLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
_envs: dict[tuple[str, ...], jinja2.Environment] = {}
_lock = threading.Lock()
# Compiled templates and expressions, shared by the hosts' threads: without this every host
# compiled the same sources at once (Jinja2's own cache only helps once one has finished).
_compiled: dict[tuple[int, str, str], Any] = {}
_compile_lock = threading.RLock()


def _cached(env: jinja2.Environment, kind: str, source: str, make: Any) -> Any:
    key = (id(env), kind, source)
    found = _compiled.get(key)
    if found is None:
        with _compile_lock:
            found = _compiled.get(key)
            if found is None:
                found = _compiled[key] = make()
    return found


def environment(
    template_dirs: list[Path] | tuple[Path, ...] | Path | str = (), *, trailing_newline: bool = True
) -> jinja2.Environment:
    """The one Jinja2 environment factory: sandboxed, StrictUndefined, the ``quote`` filter; cached per directories.

    Sandboxed because recipes and templates get shared: an expression may read attributes of
    the vars, never reach Python internals (``cycler.__init__.__globals__``, ``__subclasses__``)
    and so never this machine's ``os.system``, even in check mode. ``quote`` makes a value
    one shell word (``{{ path | quote }}``).
    """
    import shlex

    from jinja2 import StrictUndefined

    dirs = (template_dirs,) if isinstance(template_dirs, (Path, str)) else tuple(template_dirs)
    key = (*(str(d) for d in dirs), str(trailing_newline))
    with _lock:
        env = _envs.get(key)
        if env is None:
            env = _bounded_class()(
                loader=_tree_loader([str(d) for d in dirs]),
                undefined=StrictUndefined,
                keep_trailing_newline=trailing_newline,
                autoescape=False,
            )
            env.filters["quote"] = lambda v: shlex.quote(str(v))
            _envs[key] = env
        return env


#: The most text one value or template may render to, and the largest ``**`` result, in bytes/bits.
MAX_RENDERED = 32 * 1024 * 1024
MAX_POWER_BITS = 1_000_000
_BOUNDED: list[Any] = []


def _bounded_class() -> Any:
    """SandboxedEnvironment whose ``**`` and ``*`` cannot make a number or a string too large to render."""
    if _BOUNDED:
        return _BOUNDED[0]
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedEnvironment(SandboxedEnvironment):
        intercepted_binops = frozenset({"**", "*"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                if left.bit_length() * right > MAX_POWER_BITS:
                    raise SecurityError(f"{left} ** {right} is too large a number to compute")
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RENDERED:
                        raise SecurityError(f"repeating a value {times} times makes more than {MAX_RENDERED} bytes")
            try:
                return super().call_binop(context, operator, left, right)
            except OverflowError as err:
                raise SecurityError(f"{left!r} {operator} {right!r}: {err}") from None

    _BOUNDED.append(BoundedEnvironment)
    return BoundedEnvironment


def render_bounded(template: Any, vars: dict[str, Any]) -> str:
    """``template.render(vars)`` that stops with a SecurityError past MAX_RENDERED characters."""
    from jinja2.exceptions import SecurityError

    parts, size = [], 0
    for chunk in template.generate(vars):
        size += len(chunk)
        if size > MAX_RENDERED:
            raise SecurityError(f"the rendered text passed {MAX_RENDERED // (1024 * 1024)} MB")
        parts.append(chunk)
    return "".join(parts)


def _tree_loader(dirs: list[str]) -> Any:
    """A FileSystemLoader that refuses a template reached through a symlink out of its project."""
    from jinja2 import FileSystemLoader

    from .locations import builtin_templates_dir, user_dir
    from .sources import check_template

    class TreeLoader(FileSystemLoader):
        def get_source(self, environment: Any, template: str) -> Any:
            source, filename, uptodate = super().get_source(environment, template)
            check_template(filename, self.searchpath, (builtin_templates_dir(), user_dir("templates")))
            return source, filename, uptodate

    return TreeLoader(dirs)


class Masker:
    """Replaces every secret value with ``***`` in text shown to people."""

    def __init__(self, secrets: set[str] | None = None) -> None:
        self.secrets = sorted((s for s in (secrets or ()) if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text


class _Runaway(Exception):
    """A value too large, too deep or too slow to render, as a message (OverflowError, MemoryError, RecursionError)."""

    def __init__(self, err: BaseException) -> None:
        what = {"RecursionError": "nests too deeply", "MemoryError": "needs more memory than this machine has"}
        super().__init__(f"the expression {what.get(type(err).__name__, f'overflows ({err})')} to render")


def _fail(step: Step, key: str, err: Exception) -> RecipeError:
    at, context = where(step, key)
    detail = getattr(err, "message", None) or str(err)
    msg = f"{at}: {step.label()}: {detail} (in '{key}')."
    if context:
        msg += "\n" + context
    m = re.match(r"'(\w+)' is undefined", detail)
    if m:
        msg += f"\nDefine it under [vars] or pass --set {m.group(1)}=VALUE."
    return RecipeError(msg)


def render_value(value: Any, vars: dict[str, Any], step: Step, key: str, template_dirs: tuple[Path, ...] = ()) -> Any:
    """Render strings (recursively in lists/dicts). ``"{{ x }}"`` alone keeps x's type (a list stays a list)."""
    import jinja2

    env = environment(template_dirs)
    try:
        return _render(env, value, vars)
    except jinja2.TemplateError as err:
        raise _fail(step, key, err) from None
    except (OverflowError, MemoryError, RecursionError) as err:
        raise _fail(step, key, _Runaway(err)) from None


def _render(env: jinja2.Environment, value: Any, vars: dict[str, Any]) -> Any:
    import jinja2

    if isinstance(value, str):
        if "{" not in value:
            return value
        m = _SINGLE_EXPR.match(value)
        if m and "{{" not in m.group(1) and "}}" not in m.group(1):
            expr = m.group(1).strip()
            result = _cached(env, "expr", expr, lambda: env.compile_expression(expr, undefined_to_none=False))(**vars)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result
        return render_bounded(_cached(env, "str", value, lambda: env.from_string(value)), vars)
    if isinstance(value, list):
        return [_render(env, v, vars) for v in value]
    if isinstance(value, dict):
        return {k: _render(env, v, vars) for k, v in value.items()}
    return value


def eval_when(expr: Any, vars: dict[str, Any], step: Step) -> bool:
    """Evaluate a ``when`` (a bare expression or ``"{{ expr }}"``; booleans as is) locally."""
    import jinja2

    if isinstance(expr, bool):
        return expr
    text = str(expr)
    m = _SINGLE_EXPR.match(text)
    if m:
        text = m.group(1)
    try:
        env = environment()
        value = _cached(env, "expr", text.strip(), lambda: env.compile_expression(text.strip(), undefined_to_none=False))(**vars)
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return bool(value)
    except jinja2.TemplateError as err:
        raise _fail(step, "when", err) from None
    except (OverflowError, MemoryError, RecursionError) as err:
        raise _fail(step, "when", _Runaway(err)) from None


def render_plain(value: Any, vars: dict[str, Any]) -> Any:
    """Render ``value`` (strings, recursively) with ``vars``; a Jinja error becomes a RecipeError."""
    import jinja2

    try:
        return _render(environment(), value, vars)
    except jinja2.TemplateError as err:
        raise RecipeError(getattr(err, "message", None) or str(err)) from None
    except (OverflowError, MemoryError, RecursionError) as err:
        raise RecipeError(str(_Runaway(err))) from None


def variables_used(value: Any) -> set[str]:
    """Top-level variable names ``value``'s templates mention."""
    from jinja2 import meta

    env = environment()
    names: set[str] = set()
    if isinstance(value, str):
        if "{" in value:
            try:
                names |= meta.find_undeclared_variables(env.parse(value))
            except Exception:  # noqa: BLE001 - a syntax error is reported when the value is rendered
                pass
    elif isinstance(value, list):
        for v in value:
            names |= variables_used(v)
    elif isinstance(value, dict):
        for v in value.values():
            names |= variables_used(v)
    return names


def mentioned_names(recipe: Any) -> set[str]:
    """Every variable a recipe's steps and the templates they name mention (for checking --set)."""
    import jinja2
    from jinja2 import meta

    names: set[str] = set()
    for step in recipe.steps:
        names |= referenced_names(step)
        source = step.args.get("template")
        if step.kind == "template" and isinstance(source, str) and "{" not in source:
            env = environment(recipe.template_dirs)
            try:
                text = env.loader.get_source(env, source)[0] if env.loader else ""
                names |= meta.find_undeclared_variables(env.parse(text))
            except jinja2.TemplateError:
                pass  # reported with its location when the step runs
    return names


def referenced_names(step: Step) -> set[str]:
    """Top-level variable names a step's values and ``when`` mention (to split batches)."""
    import jinja2
    from jinja2 import meta

    env = environment()
    names: set[str] = set()

    def visit(value: Any, expression: bool = False) -> None:
        if isinstance(value, str):
            src = value
            if expression and not _SINGLE_EXPR.match(src):
                src = "{{ " + src + " }}"
            if "{" in src:
                try:
                    names.update(meta.find_undeclared_variables(env.parse(src)))
                except jinja2.TemplateSyntaxError as err:
                    raise _fail(step, "when" if expression else step.kind, err) from None
        elif isinstance(value, list):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    for key, value in step.args.items():
        visit(value, expression=(key == "when"))
    return names


def render_template_file(name: str, vars: dict[str, Any], step: Step, template_dirs: tuple[Path, ...]) -> str:
    """Render a template file; errors name the template, its line and the lines around it."""
    import traceback

    import jinja2

    env = environment(template_dirs)
    try:
        with _compile_lock:  # one thread compiles a template; the others then find it in Jinja2's cache
            template = env.get_template(name)
    except jinja2.TemplateNotFound:
        at, context = where(step, "template")
        available = sorted({p.name for d in template_dirs if d.is_dir() for p in d.iterdir()})
        from ..errors import NotFound

        hint = NotFound("template", name, available).message.split("'. ", 1)[-1] if available else ""
        raise RecipeError(
            f"{at}: {step.label()}: no template '{name}' in {', '.join(map(str, template_dirs))}. {hint}".rstrip()
        ) from None
    except jinja2.TemplateSyntaxError as err:
        raise _template_error(step, name, err.filename, err.lineno, err.message or str(err)) from None
    except RecipeError as err:  # a template reached through a symlink out of the project
        at, _ = where(step, "template")
        raise RecipeError(f"{at}: {step.label()}: {err.message}", hint=err.hint) from None
    try:
        return render_bounded(template, vars)
    except (OverflowError, MemoryError, RecursionError) as err:
        raise _template_error(step, name, template.filename, 0, str(_Runaway(err))) from None
    except jinja2.TemplateError as err:
        line = 0
        for frame in traceback.extract_tb(err.__traceback__):
            if template.filename and frame.filename == template.filename:
                line = frame.lineno or 0
        raise _template_error(step, name, template.filename, line, getattr(err, "message", None) or str(err)) from None


def _template_error(step: Step, name: str, filename: str | None, line: int | None, detail: str) -> RecipeError:
    at, _ = where(step, "template")
    msg = f"template {name}:{line or '?'}: {detail} ({at}: {step.label()})."
    if filename and line and Path(filename).exists():
        msg += "\n" + source_context(Path(filename).read_text(), line)
    m = re.match(r"'(\w+)' is undefined", detail)
    if m:
        msg += f"\nDefine it under [vars] or pass --set {m.group(1)}=VALUE."
    return RecipeError(msg)
