"""The weights catalogue: the one table of the published weight files this package knows.

Each entry (:class:`WeightsFile`) carries what using the file needs: where it is (URL, file name), how to
check a copy (size in bytes, checksum), what it holds (backbone, class names for a detector) and which head
layers to leave out when training on other classes. ``MaskRCNN.load_weights``, ``MaskRCNN.get_imagenet_weights``,
``mrcnn.utils.download_trained_weights`` and ``fashion/train.py --weights coco|imagenet`` all read it::

    from mrcnn.catalogue import get_weights

    coco = get_weights("coco")
    path = coco.fetch("weights")          # ./weights/mask_rcnn_coco.h5, downloaded once, checked
    model.load_weights(coco, by_name=True)  # fetched; heads left out when NUM_CLASSES is not 81

A copy is looked for in the folder given, then in the default cache (``$MRCNN_WEIGHTS_DIR``, else Keras'
``~/.keras/models``); only a copy of the right size and checksum counts. Without a network :meth:`fetch`
raises :class:`mrcnn.download.WeightsConnectionError` saying where to put a copy made elsewhere. Importing
this module loads neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from mrcnn.registry import Registry

__all__ = [
    "COCO_CLASS_NAMES",
    "HEAD_LAYERS",
    "WEIGHTS",
    "WeightsFile",
    "default_cache_dir",
    "get_weights",
    "imagenet_weights",
    "register_weights",
]

# The layers whose shapes depend on NUM_CLASSES: left out when a detector's weights start a model with other
# classes (Matterport's samples exclude the same four).
HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")

# Class names of Matterport's COCO model by class id (its demo notebook's list: "BG" and COCO's 80 things).
COCO_CLASS_NAMES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def default_cache_dir() -> str:
    """Where downloaded weights are kept unless a folder is given: ``$MRCNN_WEIGHTS_DIR``, else Keras' own
    cache (``$KERAS_HOME/models``, by default ``~/.keras/models``), where ``get_imagenet_weights`` always
    put the ImageNet file."""
    if os.environ.get("MRCNN_WEIGHTS_DIR"):
        return os.environ["MRCNN_WEIGHTS_DIR"]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "models")


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One published weights file in Matterport's Keras-2 ``.h5`` layout.

    name: the catalogue name ("coco", "imagenet"). filename: the file's name in a cache folder.
    url: where it is published. size: bytes (None: not published). md5, sha256: hex digests (None: not
        published; size and HDF5 layout are then what a copy is checked by).
    backbone: the ``Config.BACKBONE`` the weights are for. class_names: a detector's classes by class id
        ("BG" first); None for a backbone alone. exclude_for_transfer: layers to leave out when the model's
        classes differ from ``class_names``. description: one line for messages and docs.
    layout: "matterport" (loads as published) or "keras_applications" (a keras-applications ResNet, renamed
        once into Matterport's layer names by :func:`mrcnn.keras_applications.convert_to_matterport`).
    """

    name: str
    filename: str
    url: str
    backbone: str
    description: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    class_names: tuple[str, ...] | None = None
    exclude_for_transfer: tuple[str, ...] = ()
    layout: str = "matterport"

    @property
    def local_filename(self) -> str:
        """The name of the file :meth:`fetch` returns: :attr:`filename`, or for a file published in
        keras-applications' layer names, its copy in Matterport's (``<stem>_matterport.h5``)."""
        if self.layout == "matterport":
            return self.filename
        return os.path.splitext(self.filename)[0] + "_matterport.h5"

    @property
    def num_classes(self) -> int | None:
        """NUM_CLASSES of the detector (background included); None for a backbone alone."""
        return None if self.class_names is None else len(self.class_names)

    def exclude_for(self, num_classes: int) -> tuple[str, ...]:
        """The layers to leave out when loading into a model with ``num_classes`` classes (background
        included): none when they match the file's, else :attr:`exclude_for_transfer`."""
        return () if num_classes == self.num_classes else self.exclude_for_transfer

    def is_valid_copy(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is a complete copy: it exists and has the published size and checksums."""
        from mrcnn.download import file_digest

        path = os.fspath(path)
        if not os.path.isfile(path):
            return False
        if self.size is not None and os.path.getsize(path) != self.size:
            return False
        digests = {"md5": self.md5, "sha256": self.sha256}
        return all(file_digest(path, a).lower() == v.lower() for a, v in digests.items() if v is not None)

    def cached(self, cache_dir: str | os.PathLike | None = None) -> str | None:
        """Path of a complete copy (in Matterport's layer names) in ``cache_dir`` or the default cache, else
        None. A published keras-applications file found there is converted on the way."""
        folders = [os.fspath(cache_dir)] if cache_dir is not None else []
        folders.append(default_cache_dir())
        for folder in folders:
            local = os.path.join(folder, self.local_filename)
            if self.layout != "matterport" and os.path.isfile(local):
                return local  # our own conversion, written atomically
            if self.is_valid_copy(os.path.join(folder, self.filename)):
                return self._local_copy(os.path.join(folder, self.filename))
        return None

    def _local_copy(self, published: str) -> str:
        if self.layout == "matterport":
            return published
        from mrcnn.keras_applications import convert_to_matterport

        local = os.path.join(os.path.dirname(published), self.local_filename)
        return local if os.path.isfile(local) else convert_to_matterport(published, local)

    def fetch(
        self, cache_dir: str | os.PathLike | None = None, verbose: int = 1, timeout: float = 60.0
    ) -> str:
        """Path of a complete copy: a cached one (see :meth:`cached`), else downloaded into ``cache_dir``
        (default: :func:`default_cache_dir`) and checked, never leaving a partial file.

        Raises:
            mrcnn.download.WeightsConnectionError: no network (a ``ConnectionError``); the message says
                where to put a copy made elsewhere.
            mrcnn.download.WeightsDownloadError: the download is not the published file (size, checksum).
        """
        from mrcnn import download

        found = self.cached(cache_dir)
        if found is not None:
            if verbose > 0:
                print(f"{self.description}: {found}")
            return found
        folder = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        published = download.download_trained_weights(
            os.path.join(folder, self.filename),
            verbose=verbose,
            url=self.url,
            expected_size=self.size,
            sha256=self.sha256,
            md5=self.md5,
            timeout=timeout,
        )
        return self._local_copy(published)


WEIGHTS: Registry[WeightsFile] = Registry("weights file", hint="a path to an .h5 file works too")


def register_weights(entry: WeightsFile, aliases: Sequence[str] = ()) -> WeightsFile:
    """Add ``entry`` to the catalogue under its name and ``aliases``. Returns ``entry``."""
    for name in (entry.name, *aliases):
        WEIGHTS.register(name, entry)
    return entry


def get_weights(name: str) -> WeightsFile:
    """The catalogue entry ``name``; :class:`mrcnn.registry.UnknownNameError` listing the names if none."""
    return WEIGHTS.get(name)


def imagenet_weights(backbone: object) -> WeightsFile:
    """The ImageNet entry for ``Config.BACKBONE``: ResNet101's for the 101-layer backbones (SE included: their
    other layers load), else ResNet50's (Matterport's only ImageNet file)."""
    return IMAGENET_RESNET101 if isinstance(backbone, str) and backbone.endswith("101") else IMAGENET_RESNET50


COCO = register_weights(
    WeightsFile(
        name="coco",
        filename="mask_rcnn_coco.h5",
        url="https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5",
        backbone="resnet101",
        description="Matterport's COCO-trained Mask R-CNN (ResNet101-FPN, 81 classes)",
        size=257_557_808,
        class_names=COCO_CLASS_NAMES,
        exclude_for_transfer=HEAD_LAYERS,
    )
)

# The keras-applications release of ResNet50 whose layer names Matterport's backbone keeps (conv1,
# res2a_branch2a, bn2a_branch2a, ...); the top (fc1000) is left out. The MD5 is the one Keras publishes.
IMAGENET_RESNET50 = register_weights(
    WeightsFile(
        name="imagenet_resnet50",
        filename="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url=(
            "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        backbone="resnet50",
        description="ImageNet-trained ResNet50 backbone (keras-applications v0.2, Matterport's layer names)",
        md5="a268eb855778b3df3c7506639542a6af",
    ),
    aliases=("imagenet",),
)

IMAGENET_RESNET101 = register_weights(
    WeightsFile(
        name="imagenet_resnet101",
        filename="resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url=(
            "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
            "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        backbone="resnet101",
        description="ImageNet-trained ResNet101 backbone (keras-applications, renamed to Matterport's layers)",
        md5="88cf7a10940856eca736dc7b7e228a21",
        layout="keras_applications",
    )
)
