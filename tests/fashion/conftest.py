"""Helpers that write small datasets in each format for the fashion tests."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

import fashion.testing  # noqa: F401  (registers the tests' "tiny" preset)
from fashion.make_sample import label_descriptions
from fashion.rle import rle_encode


def _save_image(path, height, width, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=[height, width, 3], dtype=np.uint8)).save(path)


class Writers:
    """Functions that write datasets under a folder; every mask is given as a [H, W] bool array."""

    @staticmethod
    def image(path, height, width, seed=0):
        _save_image(path, height, width, seed)

    @staticmethod
    def imaterialist(root, images, extra_rows=(), image_files=True, labels=True):
        """images: {image_id: (height, width, [(class_id_text, mask), ...])}; extra_rows: raw CSV rows."""
        os.makedirs(os.path.join(root, "train"), exist_ok=True)
        rows = []
        for k, (image_id, (h, w, segments)) in enumerate(images.items()):
            if image_files:
                _save_image(os.path.join(root, "train", image_id), h, w, seed=k)
            for class_id, mask in segments:
                rows.append([image_id, rle_encode(mask), h, w, class_id])
        with open(os.path.join(root, "train.csv"), "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
            writer.writerows(rows)
            writer.writerows(extra_rows)
        if labels:
            with open(os.path.join(root, "label_descriptions.json"), "w") as f:
                json.dump(label_descriptions(), f)
        return root

    @staticmethod
    def coco(path, image_dir, images, categories, attributes=None):
        """images: [(file_name, h, w, [annotation dicts without id/image_id])]."""
        os.makedirs(image_dir, exist_ok=True)
        data = {"images": [], "annotations": [], "categories": categories}
        if attributes is not None:
            data["attributes"] = attributes
        ann_id = 100
        for img_id, (name, h, w, anns) in enumerate(images, 1):
            _save_image(os.path.join(image_dir, name), h, w, seed=img_id)
            data["images"].append({"id": img_id, "file_name": name, "height": h, "width": w})
            for ann in anns:
                ann_id += 1
                data["annotations"].append({"id": ann_id, "image_id": img_id, "iscrowd": 0, **ann})
        with open(path, "w") as f:
            json.dump(data, f)
        return path

    @staticmethod
    def deepfashion2(root, images):
        """images: {stem: (h, w, {itemN: item dict} or raw text)}."""
        os.makedirs(os.path.join(root, "annos"), exist_ok=True)
        os.makedirs(os.path.join(root, "image"), exist_ok=True)
        for k, (stem, (h, w, items)) in enumerate(images.items()):
            _save_image(os.path.join(root, "image", stem + ".jpg"), h, w, seed=k)
            with open(os.path.join(root, "annos", stem + ".json"), "w") as f:
                if isinstance(items, str):
                    f.write(items)
                else:
                    json.dump({"source": "shop", "pair_id": 7, **items}, f)
        return root


@pytest.fixture(scope="session")
def write():
    return Writers


def box_mask(h, w, y1, x1, y2, x2):
    m = np.zeros([h, w], bool)
    m[y1:y2, x1:x2] = True
    return m


@pytest.fixture
def box():
    return box_mask


@pytest.fixture(scope="session")
def tiny_random_weights(tmp_path_factory):
    """A function seed -> path of an .h5 with the random weights of the "tiny" preset's inference model that
    ``keras.utils.set_random_seed(seed)`` gives (the same weights, hence detections, in every run). Each seed's
    file is written once per session and shared: tests read it, never write it."""
    made: dict[int, str] = {}

    def make(seed: int) -> str:
        if seed not in made:
            made[seed] = _write_tiny_random_weights(seed, tmp_path_factory.mktemp("weights"))
        return made[seed]

    return make


def _write_tiny_random_weights(seed: int, folder) -> str:
    import keras

    from fashion.config import make_config
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(seed)
    model = MaskRCNN(mode="inference", config=make_config("tiny", inference=True), model_dir=str(folder))
    path = str(folder / "tiny_random.h5")
    model.save_weights(path)
    return path
