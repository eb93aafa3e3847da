"""Fashion category tables and the named class subsets used by the seed documents.

``IMATERIALIST_CATEGORIES`` are the 46 iMaterialist Fashion 2019 (FGVC6) categories exactly as they appear in
the competition's ``label_descriptions.json`` (id, name, supercategory): ids 0-26 are the 27 main garments and
accessories, ids 27-45 the garment parts, closures and decorations. ``DEEPFASHION2_CATEGORIES`` are
DeepFashion2's 13 categories (ids 1-13 as in its annotation files).

Named subsets (``resolve_classes``):

=============== ============ ==========================================================================
name            dataset      classes
=============== ============ ==========================================================================
``all``         any          every category of the dataset (46 for iMaterialist and Fashionpedia)
``main``        any          categories outside the garment parts, closures and decorations (27 items)
``thesis11``    iMaterialist thesis 001 full set, Table 5 (alias ``full``)
``thesis5``     iMaterialist thesis 001 base set, Table 5 (alias ``base``)
``deepfashion2`` DeepFashion2 all 13 categories (alias ``df2``)
=============== ============ ==========================================================================

Internal (model) class ids are 1 + the position of a category in its subset, with the subset in source-id
order, so for ``thesis11`` the model's class k is Table 5's annotation k - 1 ('shirt, blouse' = 1, ...,
'umbrella' = 11); 0 is background.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One source category: its id in the source's files, name and supercategory."""

    id: int
    name: str
    supercategory: str


def _table(rows: Sequence[tuple[str, str]], first_id: int = 0) -> tuple[Category, ...]:
    return tuple(Category(first_id + i, name, sup) for i, (name, sup) in enumerate(rows))


IMATERIALIST_CATEGORIES: tuple[Category, ...] = _table(
    [
        ("shirt, blouse", "upperbody"),
        ("top, t-shirt, sweatshirt", "upperbody"),
        ("sweater", "upperbody"),
        ("cardigan", "upperbody"),
        ("jacket", "upperbody"),
        ("vest", "upperbody"),
        ("pants", "lowerbody"),
        ("shorts", "lowerbody"),
        ("skirt", "lowerbody"),
        ("coat", "wholebody"),
        ("dress", "wholebody"),
        ("jumpsuit", "wholebody"),
        ("cape", "wholebody"),
        ("glasses", "head"),
        ("hat", "head"),
        ("headband, head covering, hair accessory", "head"),
        ("tie", "neck"),
        ("glove", "arms and hands"),
        ("watch", "arms and hands"),
        ("belt", "waist"),
        ("leg warmer", "legs and feet"),
        ("tights, stockings", "legs and feet"),
        ("sock", "legs and feet"),
        ("shoe", "legs and feet"),
        ("bag, wallet", "others"),
        ("scarf", "others"),
        ("umbrella", "others"),
        ("hood", "garment parts"),
        ("collar", "garment parts"),
        ("lapel", "garment parts"),
        ("epaulette", "garment parts"),
        ("sleeve", "garment parts"),
        ("pocket", "garment parts"),
        ("neckline", "garment parts"),
        ("buckle", "closures"),
        ("zipper", "closures"),
        ("applique", "decorations"),
        ("bead", "decorations"),
        ("bow", "decorations"),
        ("flower", "decorations"),
        ("fringe", "decorations"),
        ("ribbon", "decorations"),
        ("rivet", "decorations"),
        ("ruffle", "decorations"),
        ("sequin", "decorations"),
        ("tassel", "decorations"),
    ]
)

# Supercategories of the parts that thesis 001 (4.2.1) removes before choosing its subsets.
PART_SUPERCATEGORIES = frozenset({"garment parts", "closures", "decorations"})

DEEPFASHION2_CATEGORIES: tuple[Category, ...] = _table(
    [
        ("short sleeve top", "clothes"),
        ("long sleeve top", "clothes"),
        ("short sleeve outwear", "clothes"),
        ("long sleeve outwear", "clothes"),
        ("vest", "clothes"),
        ("sling", "clothes"),
        ("shorts", "clothes"),
        ("trousers", "clothes"),
        ("skirt", "clothes"),
        ("short sleeve dress", "clothes"),
        ("long sleeve dress", "clothes"),
        ("vest dress", "clothes"),
        ("sling dress", "clothes"),
    ],
    first_id=1,
)

THESIS11 = (
    "shirt, blouse",
    "top, t-shirt, sweatshirt",
    "sweater",
    "jacket",
    "pants",
    "skirt",
    "dress",
    "tie",
    "shoe",
    "bag, wallet",
    "umbrella",
)
THESIS5 = ("top, t-shirt, sweatshirt", "jacket", "pants", "dress", "shoe")

SUBSETS: dict[str, tuple[str, ...]] = {
    "all": tuple(c.name for c in IMATERIALIST_CATEGORIES),
    "main": tuple(c.name for c in IMATERIALIST_CATEGORIES if c.supercategory not in PART_SUPERCATEGORIES),
    "thesis11": THESIS11,
    "thesis5": THESIS5,
    "deepfashion2": tuple(c.name for c in DEEPFASHION2_CATEGORIES),
}
ALIASES = {"full": "thesis11", "base": "thesis5", "df2": "deepfashion2", "all46": "all", "main27": "main"}


class UnknownClassError(ValueError):
    """A class name or id that is not among the dataset's categories."""


def subset_names() -> list[str]:
    """Names accepted by :func:`resolve_classes` besides explicit lists."""
    return sorted(SUBSETS) + sorted(ALIASES)


def resolve_classes(spec: str | Iterable[str | int] | None, categories: Sequence[Category]) -> list[Category]:
    """The categories selected by ``spec``, in source-id order.

    spec: None (all of ``categories``), a subset name (``"thesis11"``, ``"main"``, ...), a string of
        category names or ids separated by ``;`` (names contain commas: ``"shoe;bag, wallet;23"``), or an
        iterable of names/ids.
    categories: the dataset's categories (e.g. read from its label file).
    Raises UnknownClassError naming every entry that matches no category.
    """
    by_name = {c.name: c for c in categories}
    by_id = {c.id: c for c in categories}
    if spec is None:
        return sorted(categories, key=lambda c: c.id)
    if isinstance(spec, str):
        key = ALIASES.get(spec.strip().lower(), spec.strip().lower())
        if key == "all":
            entries: list[str | int] = [c.id for c in categories]
        elif key == "main":
            entries = [c.id for c in categories if c.supercategory not in PART_SUPERCATEGORIES]
        elif key in SUBSETS:
            entries = list(SUBSETS[key])
        else:
            entries = [part.strip() for part in spec.split(";") if part.strip()]
    else:
        entries = list(spec)
    chosen: dict[int, Category] = {}
    unknown = []
    for entry in entries:
        cat = None
        if isinstance(entry, int) or (isinstance(entry, str) and entry.isdigit()):
            cat = by_id.get(int(entry))
        else:
            cat = by_name.get(entry) or by_name.get(entry.lower())
        if cat is None:
            unknown.append(entry)
        else:
            chosen[cat.id] = cat
    if unknown:
        known = ", ".join(repr(c.name) for c in categories)
        raise UnknownClassError(
            f"unknown classes {unknown} (separate names with ';'). Subsets: {', '.join(subset_names())}. "
            f"Categories: {known}"
        )
    if not chosen:
        raise UnknownClassError(f"class spec {spec!r} selects no classes")
    return [chosen[i] for i in sorted(chosen)]
