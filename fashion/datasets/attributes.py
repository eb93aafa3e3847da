"""Garment attributes as one index space per dataset, the rule for which attributes a class is annotated
with, and the ``all|none|LIST`` selection of ``--attributes``.

An :class:`AttributeSpace` orders a dataset's attributes (model attribute ``a`` is the ``a``-th attribute of
the space, in source-id order) and says, per model class, which of them the dataset annotates:

* **Source list.** iMaterialist: the ``attributes`` of ``label_descriptions.json`` (92 in 2019); Fashionpedia /
  COCO: the top-level ``attributes`` of the json (294 in Fashionpedia v1). A file without such a list gets the
  attribute ids its annotations use, named by their id. DeepFashion2's per-item fields (style, scale,
  occlusion, zoom_in, viewpoint) describe the photo and the pairing, not the garment: its space is empty.
* **Annotated rule** (``annotated [num_classes, A]`` bool, row 0 the background): attribute ``a`` is annotated
  for class ``c`` when some instance of ``c`` in the *whole annotation file* (before ``--limit`` and the
  class subset) carries an attribute of ``a``'s supercategory (its ``supercategory`` field: "length",
  "textile pattern", "neckline type", ...; an attribute without one is its own group). Neither dataset's
  files state per class which attributes were offered to the annotators, so the rule reads it off the
  labels: both annotate attributes on a fixed set of classes only (Fashionpedia's official evaluator
  ``FPEval`` hard-codes 18 of its 46 categories: the 13 garments 0-12 and the parts collar, lapel, sleeve,
  pocket, neckline; iMaterialist 2019 shares the 46 categories) and, per class, by supercategory groups (a
  sleeve gets a sleeve length, not a neckline type). A group never used on a class in the file is read as
  "not annotated", so the model is neither trained nor scored on it for that class.
* **Empty attribute lists.** In Fashionpedia every instance of an annotated class was labelled, and an
  empty list means "none of them" (``FPEval`` scores it so). iMaterialist 2019 labels attributes on part
  of its segments only (most rows of garment classes have a bare ``ClassId``), so there an instance without
  any attribute is unlabelled: :meth:`AttributeSpace.instance_weights` gives it weight 0 throughout
  (``empty_is_unlabelled``). The shipped sample labels every garment, so both readings agree on it.

The model side uses ``multi_hot`` targets and ``instance_weights`` as the per-entry loss mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AttributeSelectionError",
    "AttributeSpace",
    "build_attribute_space",
    "empty_attribute_space",
    "resolve_attributes",
]


class AttributeSelectionError(ValueError):
    """An ``--attributes`` value names attributes the dataset does not have (the message lists some it has)."""


@dataclass(frozen=True, eq=False)
class AttributeSpace:
    """A dataset's (selected) attributes in model order and the classes they are annotated for.

    Attributes:
        source_ids: ``[A]`` the attributes' ids in the dataset's files, increasing.
        names: ``[A]`` their names.
        supercategories: ``[A]`` their supercategories ("" when the file gives none).
        annotated: ``[num_classes, A]`` bool; ``annotated[c, a]``: the dataset labels attribute ``a`` on
            instances of model class ``c`` (row 0, the background, is all False). See the module docstring.
        empty_is_unlabelled: an instance without any attribute is unlabelled (weight 0), not "none of them".
    """

    source_ids: tuple[int, ...]
    names: tuple[str, ...]
    supercategories: tuple[str, ...]
    annotated: np.ndarray
    empty_is_unlabelled: bool = False

    def __post_init__(self) -> None:
        n = len(self.source_ids)
        if len(self.names) != n or len(self.supercategories) != n:
            raise ValueError("source_ids, names and supercategories differ in length")
        if self.annotated.ndim != 2 or self.annotated.shape[1] != n:
            raise ValueError(f"annotated must be [num_classes, {n}], got {self.annotated.shape}")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.source_ids)})

    def __len__(self) -> int:
        return len(self.source_ids)

    @property
    def num_attributes(self) -> int:
        """A, the model's NUM_ATTRIBUTES for this space."""
        return len(self.source_ids)

    @property
    def num_classes(self) -> int:
        return int(self.annotated.shape[0])

    def index_of(self, source_id: int) -> int:
        """Model index of a source attribute id; KeyError naming it when it is not in the space."""
        try:
            return self._index[int(source_id)]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"attribute id {source_id} is not in this attribute space") from None

    def contains(self, source_id: int) -> bool:
        return int(source_id) in self._index  # type: ignore[attr-defined]

    def multi_hot(self, source_ids: Iterable[int]) -> np.ndarray:
        """``[A]`` float32, 1 at the space's index of each id in ``source_ids``; ids outside the space (left
        out by a selection) are ignored."""
        out = np.zeros(len(self), dtype=np.float32)
        index = self._index  # type: ignore[attr-defined]
        for s in source_ids:
            i = index.get(int(s))
            if i is not None:
                out[i] = 1.0
        return out

    def multi_hot_rows(self, records: Sequence[Iterable[int]]) -> np.ndarray:
        """``[N, A]`` float32 multi-hot rows of N instances' attribute id lists."""
        if not records:
            return np.zeros([0, len(self)], dtype=np.float32)
        return np.stack([self.multi_hot(r) for r in records])

    def instance_weights(self, class_ids: np.ndarray, records: Sequence[Iterable[int]]) -> np.ndarray:
        """``[N, A]`` float32 loss/score weights: 1 where instance ``n``'s attribute ``a`` is labelled.

        That is ``annotated[class_ids[n], a]``, and 0 for the whole row of an instance whose class id is not
        positive (background, crowd) or, with ``empty_is_unlabelled``, whose record lists no attribute of
        the dataset at all (``records[n]`` empty).
        """
        class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        weights = np.zeros([class_ids.size, len(self)], dtype=np.float32)
        for n, (c, record) in enumerate(zip(class_ids.tolist(), records)):
            if c <= 0 or c >= self.num_classes:
                continue
            if self.empty_is_unlabelled and not tuple(record):
                continue
            weights[n] = self.annotated[c]
        return weights

    def annotated_classes(self) -> list[int]:
        """Model class ids with at least one annotated attribute."""
        return [int(c) for c in np.flatnonzero(self.annotated.any(axis=1))]

    def subset(self, indices: Sequence[int]) -> AttributeSpace:
        """The space of the attributes at ``indices`` (kept in this space's order)."""
        keep = sorted({int(i) for i in indices})
        return AttributeSpace(
            tuple(self.source_ids[i] for i in keep),
            tuple(self.names[i] for i in keep),
            tuple(self.supercategories[i] for i in keep),
            self.annotated[:, keep].copy(),
            self.empty_is_unlabelled,
        )

    def to_json(self) -> dict:
        """The space as JSON-able lists (for run folders and evaluation files)."""
        return {
            "source_ids": list(self.source_ids),
            "names": list(self.names),
            "supercategories": list(self.supercategories),
            "annotated_classes": self.annotated_classes(),
            "empty_is_unlabelled": self.empty_is_unlabelled,
        }


def empty_attribute_space(num_classes: int) -> AttributeSpace:
    """A space without attributes (DeepFashion2, ``--attributes none``)."""
    return AttributeSpace((), (), (), np.zeros([num_classes, 0], dtype=bool))


def build_attribute_space(
    attributes: Sequence[tuple[int, str, str]],
    class_source_ids: Sequence[int | None],
    cooccurrence: Mapping[tuple[int, int], int],
    empty_is_unlabelled: bool = False,
) -> AttributeSpace:
    """The full attribute space of a dataset.

    Args:
        attributes: ``(source id, name, supercategory)`` of every attribute of the dataset's list.
        class_source_ids: per model class id, its source category id (None for the background, index 0).
        cooccurrence: ``{(source category id, source attribute id): number of instances}`` over the whole
            annotation file.
        empty_is_unlabelled: see :class:`AttributeSpace`.
    """
    attributes = sorted(attributes, key=lambda a: a[0])
    source_ids = tuple(int(a[0]) for a in attributes)
    group_of = {int(s): (sup if sup else f"#{s}") for s, _, sup in attributes}
    used: set[tuple[int, str]] = set()
    for (category, attribute), count in cooccurrence.items():
        if count > 0 and int(attribute) in group_of:
            used.add((int(category), group_of[int(attribute)]))
    annotated = np.zeros([len(class_source_ids), len(source_ids)], dtype=bool)
    for c, category in enumerate(class_source_ids):
        if category is None:
            continue
        for a, s in enumerate(source_ids):
            annotated[c, a] = (int(category), group_of[s]) in used
    return AttributeSpace(
        source_ids,
        tuple(str(a[1]) for a in attributes),
        tuple(str(a[2]) for a in attributes),
        annotated,
        empty_is_unlabelled,
    )


def resolve_attributes(
    spec: str | Sequence[str | int] | None, space: AttributeSpace, argument: str = "--attributes"
) -> AttributeSpace:
    """The part of ``space`` that ``spec`` selects.

    Args:
        spec: None or "all" (every attribute), "none" (no attribute), or attribute names (case-insensitive)
            and/or source ids, separated by ';' in a string or given as a list.
        space: the dataset's full space.
        argument: the option named in error messages.

    Raises:
        AttributeSelectionError: an unknown name or id, or an empty list; the message names ``argument``
            and shows some of the dataset's attributes.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return space
    if isinstance(spec, str) and spec.strip().lower() == "none":
        return space.subset([])
    items = [s.strip() for s in spec.split(";")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if not items:
        raise AttributeSelectionError(f"{argument}: empty list; use all, none or names/ids separated by ';'")
    by_name = {name.lower(): i for i, name in enumerate(space.names)}
    chosen = []
    for item in items:
        if item.lower() in by_name:
            chosen.append(by_name[item.lower()])
        elif item.lstrip("-").isdigit() and space.contains(int(item)):
            chosen.append(space.index_of(int(item)))
        else:
            known = ", ".join(f"{s}={n!r}" for s, n in zip(space.source_ids[:12], space.names[:12]))
            more = f", ... ({len(space)} in all)" if len(space) > 12 else ""
            raise AttributeSelectionError(
                f"{argument}: {item!r} is not an attribute of this dataset (give names or ids separated by "
                f"';', or all / none); it has: {known or 'no attributes'}{more}"
            )
    return space.subset(chosen)
