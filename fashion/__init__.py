"""Fashion parsing with Mask R-CNN: datasets (iMaterialist 2019, Fashionpedia/COCO, DeepFashion2), class
subsets, balancing, the seed documents' configs, augmentations and schedules, and ``fashion/train.py``.

Importing :mod:`fashion` imports :mod:`mrcnn` first, which lets imgaug 0.4 run under numpy 2.
"""

import mrcnn  # noqa: F401  (must precede any imgaug import)

__version__ = "0.1.0"
