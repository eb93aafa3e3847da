"""Issue #12's accuracy targets on trained weights: a checkpoint trained on the shipped sample (the README's main
command, about 3 minutes on 2 CPU cores) detects the same in bfloat16 and float16 as in float32.

Slow: ``python -m pytest -m slow tests/fashion/test_precision_sample.py``. ``bench/precision.py --only sample``
prints the same figures for any checkpoint (measured 2026-11-30 on the regenerated sample, preset's 100
inference ROIs: bfloat16 95.6% matched, mask IoU 0.994, mask AP +0.0012; float16 99.7%, 1.000, +0.0003).
bfloat16 is close to the 95% bound: at 1000 ROIs it measured 94.7% (tiny boxes one pixel off; see README
"Precision"), so a retrained checkpoint may land on either side.
"""

import os
import shutil

import numpy as np
import pytest

from fashion import train as train_cli
from fashion.config import make_config
from fashion.evaluate import load_eval_dataset
from fashion.evaluation import EvaluationReport
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from mrcnn.model import MaskRCNN
from mrcnn.precision import compare_detections


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample_run")
    data = folder / "sample"
    shutil.copytree(SAMPLE, data)
    logs = folder / "logs"
    argv = ["--dataset", str(data), "--preset", "sample", "--weights", "none", "--logs", str(logs)]
    assert train_cli.main([*argv, "--verbose", "0"]) == 0
    (run,) = os.listdir(logs)
    return str(logs / run / "mask_rcnn_fashion_0012.h5"), str(data)


@pytest.fixture(scope="module")
def sample_images(checkpoint):
    dataset = load_eval_dataset("imaterialist", checkpoint[1], "thesis11", 128)
    truth = []
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        truth.append({"class_ids": class_ids[class_ids > 0], "masks": masks[:, :, class_ids > 0]})
    return dataset, [dataset.load_image(i) for i in dataset.image_ids], truth


def _detect(precision, checkpoint, sample_images, tmp_path):
    dataset, images, truth = sample_images
    config = make_config("sample", num_classes=dataset.num_classes, inference=True, MIXED_PRECISION=precision)
    model = MaskRCNN("inference", config, str(tmp_path))
    model.load_weights(checkpoint[0], by_name=True)
    results = [model.detect([image])[0] for image in images]
    report = EvaluationReport(dataset.class_names)
    for gt, result in zip(truth, results):
        report.add(gt, result)
    return results, float(report.compute()["coco"]["segm"]["AP"])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_meets_the_targets_on_the_sample_checkpoint(
    precision, checkpoint, sample_images, tmp_path
):
    reference, reference_ap = _detect("float32", checkpoint, sample_images, tmp_path)
    results, ap = _detect(precision, checkpoint, sample_images, tmp_path)
    agreement = compare_detections(reference, results)
    print(f"{precision}: {agreement.summary()}; mask AP {ap:.4f} against {reference_ap:.4f}")
    assert agreement.reference >= 50 and np.isfinite(reference_ap)
    assert agreement.meets(0.95, 0.9), agreement.summary()
    assert abs(ap - reference_ap) <= 0.01
