"""Mask R-CNN for TensorFlow 2 / Keras 3 with Matterport's public API.

Importing :mod:`mrcnn` restores the numpy attributes that ``imgaug`` 0.4.0 still
uses under numpy 2, so ``import mrcnn`` before ``import imgaug`` and pass imgaug
augmenters to ``MaskRCNN.train`` exactly as with Matterport.
"""

from mrcnn.compat import patch_numpy_for_imgaug

patch_numpy_for_imgaug()

__version__ = "0.1.0"
