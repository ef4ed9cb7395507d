"""``copy = "local/path"`` + ``dest``: a local file or directory is on the host (a directory as a tar)."""

from __future__ import annotations

from pathlib import Path

from ...errors import RecipeError
from .base import Args, Kind, PlanContext, Where, b64, mode_word, q, sh_path
from .files import PUT_FILE, file_body, quick_file, validate_dest

PUT_DIR = r"""
__put_dir() {  # dest shown mode owner; gzip tar in $__T/new.tar
  local d="$1" show="$2" f n=0 diffs=""
  mkdir -p "$__T/nd" && tar -xzf "$__T/new.tar" -C "$__T/nd" || exit 1
  while IFS= read -r f; do
    n=$((n+1))
    $S cmp -s "$__T/nd/$f" "$d/$f" || { diffs="$diffs${f#./}"$'\n'; }
  done < <(cd "$__T/nd" && find . -type f | sort)
  printf %s "$diffs" > "$__T/diff"
  local ch="" what
  [ -n "$diffs" ] && ch=" $(printf %s "$diffs" | grep -c .) file(s)"
  if $S test -d "$d"; then __attrs "$d" "$3" "$4"; ch="$ch$__A"; what="update$ch in $show"; else ch=" new"; what="create $show with $n file(s)"; fi
  if [ -z "$ch" ]; then __ok "$show already has these $n files"; return 0; fi
  if [ "$__CHECK" = 1 ]; then __changed "would $what"; return 0; fi
  $S mkdir -p "$d" && $S cp -R "$__T/nd/." "$d/" || exit 1
  __fix_attrs "$d" "$3" "$4"
  if [ -n "$4" ]; then $S chown -R "$4" "$d" || exit 1; fi
  __changed "$(printf %s "$what" | sed 's/^update/updated/;s/^create/created/')"
}
"""


def validate(args: Args, where: Where) -> None:
    """The source and ``dest`` are strings; mode/owner as files want them."""
    if not isinstance(args["copy"], str):
        raise where.error("copy", "'copy' must be a local path in quotes.", 'Write copy = "files/app.conf".')
    validate_dest(args, where)


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """A file: its bytes; a directory: a deterministic tar of it. Relative to the recipe's project."""
    from ..sources import check_tree, explicit, project_source

    text = str(args["copy"])
    src = project_source(text, ctx.base_dir or Path.cwd(), lambda: ctx.where)
    shown = f"{text} (outside the project)" if explicit(text) else text
    if src.is_file():
        return file_body(src.read_bytes(), args, ctx), f"copy {shown} to {args['dest']}"
    if src.is_dir():
        check_tree(src, lambda: ctx.where)
        data = tar_directory(src)
        dest, show = sh_path(str(args["dest"])), str(args["dest"])
        body = (
            f'base64 -d <<< {q(b64(data))} > "$__T/new.tar" || exit 1\n'
            f"__put_dir {dest} {q(show)} {q(mode_word(args))} {q(args.get('owner'))}"
        )
        return body, f"copy directory {shown} to {show}"
    raise RecipeError(f"{ctx.where}: the file or directory to copy, {src}, does not exist.")


def tar_directory(src: Path) -> bytes:
    """A deterministic gzip tar of a directory's contents (sorted, no owners, fixed mtimes)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(src.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(src)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            elif info.isdir():
                tar.addfile(info)
    return buf.getvalue()


KIND = Kind(
    "copy",
    keys=("dest", "mode", "owner"),
    required=("dest",),
    validate=validate,
    plan=plan,
    quick=quick_file,
    quick_reads=True,
    helpers=(PUT_FILE, PUT_DIR),
    pure=True,
)
