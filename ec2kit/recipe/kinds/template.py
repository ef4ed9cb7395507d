"""``template = "name.j2"`` + ``dest``: a file rendered from the recipe's templates/ is on the host."""

from __future__ import annotations

from .base import Args, Kind, PlanContext, Where
from .files import PUT_FILE, file_body, quick_file, validate_dest


def validate(args: Args, where: Where) -> None:
    """The template's name and ``dest`` are strings; mode/owner as files want them."""
    if not isinstance(args["template"], str):
        raise where.error("template", "'template' must be a template's file name in quotes.", 'Write template = "app.conf.j2".')
    validate_dest(args, where)


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """Render the template locally; the host compares and writes it."""
    content = ctx.render_template(str(args["template"]))
    return file_body(content.encode(), args, ctx), f"write {args['dest']} from {args['template']}"


KIND = Kind(
    "template",
    keys=("dest", "mode", "owner"),
    required=("dest",),
    validate=validate,
    plan=plan,
    quick=quick_file,
    quick_reads=True,
    helpers=(PUT_FILE,),
    pure=True,
)
