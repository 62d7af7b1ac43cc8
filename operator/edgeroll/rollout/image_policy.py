"""Which edge cache images a RouterConfig may ask for (spec.cache.image).

The cache pod holds the edge S3 key and the signing key, so the image it runs is the operator
admin's choice, not the RouterConfig author's: an allow-list of exact references, which always
holds the operator's own default cache image.
"""

from __future__ import annotations

from collections.abc import Sequence

CACHE_IMAGE_FIELD = "spec.cache.image"


def allowed_cache_images(default: str, extra: Sequence[str]) -> tuple[str, ...]:
    """The default image first, then the listed ones, without duplicates or blanks."""
    out: list[str] = []
    for image in (default, *extra):
        image = image.strip()
        if image and image not in out:
            out.append(image)
    return tuple(out)


def cache_image_problem(requested: str | None, allowed: Sequence[str]) -> str | None:
    """Why `requested` may not run, or None. Unset means the default image, which is always allowed."""
    if requested is None or requested in allowed:
        return None
    return (
        f"{CACHE_IMAGE_FIELD}: {requested!r} is not an allowed cache image; allowed: "
        f"{', '.join(allowed) or '(none)'} (the operator's --allowed-cache-image)"
    )
