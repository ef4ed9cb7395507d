"""Which of a recipe's steps run: ``--tags``, ``--skip-tags`` and ``--start-at``."""

from __future__ import annotations

from ..errors import RecipeError
from .model import Step


def select_steps(
    steps: list[Step],
    *,
    tags: tuple[str, ...] | list[str] = (),
    skip_tags: tuple[str, ...] | list[str] = (),
    start_at: str | int | None = None,
) -> list[Step]:
    """Steps that carry one of ``tags`` (all when empty), minus ``skip_tags``, from ``start_at`` on."""
    chosen = list(steps)
    if start_at is not None:
        key = str(start_at)
        idx = next((i for i, s in enumerate(chosen) if s.name == key or str(s.number) == key), None)
        if idx is None:
            import difflib

            close = difflib.get_close_matches(key, [s.name for s in chosen], n=3, cutoff=0.5)
            guess = (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
            listing = ", ".join(f"{s.number} '{s.name}'" for s in chosen[:12]) + (" …" if len(chosen) > 12 else "")
            raise RecipeError(f"--start-at '{key}': no step has that name or number.{guess} Steps: {listing}.")
        twins = [s for s in chosen if s.name == key]
        if len(twins) > 1 and not key.isdigit():
            where = ", ".join(f"{s.number} (recipe {s.recipe})" for s in twins)
            raise RecipeError(f"--start-at '{key}': several steps have that name: {where}.", hint="Give its number instead.")
        chosen = chosen[idx:]
    known_tags = sorted({t for s in steps for t in s.tags})
    for flag, wanted in (("--tags", tags), ("--skip-tags", skip_tags)):
        unknown = [t for t in wanted if t not in known_tags]
        if unknown:
            raise RecipeError(
                f"{flag} {','.join(unknown)}: no step has {'that tag' if len(unknown) == 1 else 'those tags'}.",
                hint=f"Tags in this recipe: {', '.join(known_tags) or 'none'}.",
            )
    if tags:
        chosen = [s for s in chosen if set(s.tags) & set(tags)]
    if skip_tags:
        chosen = [s for s in chosen if not set(s.tags) & set(skip_tags)]
    return chosen
