"""Packing image attributes into the 1-D ``image_meta`` vector the model takes as an input, and back.

Matterport's ``compose_image_meta`` / ``parse_image_meta``; defined, with the typed record
:class:`~mrcnn.pipeline.meta.ImageMeta` and the layout, in :mod:`mrcnn.pipeline.meta`.
"""

from __future__ import annotations

from mrcnn.pipeline.meta import ImageMeta, compose_image_meta, parse_image_meta

__all__ = ["ImageMeta", "compose_image_meta", "parse_image_meta"]
