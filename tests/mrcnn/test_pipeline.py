"""The image pipeline: Matterport's pixels (against scikit-image), the numpy and in-graph faces against each
other, ImageMeta and Matterport's vector layout, unmolding boxes and masks."""

import ast
import pathlib
import random

import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mrcnn import pipeline
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta
from mrcnn.images import mold_image, resize_image
from mrcnn.modeling.graph_utils import parse_image_meta_graph
from mrcnn.pipeline import graph, rules
from mrcnn.pipeline.meta import ImageMeta, meta_size
from mrcnn.pipeline.resample import resize_bilinear, resize_bilinear_exact
from mrcnn.pipeline.rules import ResizeRule
from mrcnn.testing import tiny_config

# Matterport's pixels: at most one level off anywhere, 0.05 levels on average (float rounding before the
# truncation).
MAX_LEVELS = 1
MEAN_LEVELS = 0.05


def matterport_resize_image(image, min_dim, max_dim, min_scale, mode):
    """Reference: Matterport's resize_image for "square" / "pad64": its scale rule, scikit-image's resize with
    Matterport's utils.resize arguments, zero padding, then ``astype`` to the input dtype (truncation)."""
    h, w = image.shape[:2]
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square" and round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    resized = image
    if scale != 1:
        resized = skimage.transform.resize(
            image,
            (round(h * scale), round(w * scale)),
            order=1,
            mode="constant",
            cval=0,
            clip=True,
            preserve_range=True,
            anti_aliasing=False,
        )
    rh, rw = resized.shape[:2]
    if mode == "square":
        top, left = (max_dim - rh) // 2, (max_dim - rw) // 2
        pads = [(top, max_dim - rh - top), (left, max_dim - rw - left)]
    else:
        pads = [((-rh % 64) // 2, -rh % 64 - (-rh % 64) // 2), ((-rw % 64) // 2, -rw % 64 - (-rw % 64) // 2)]
    padded = np.pad(resized, pads + [(0, 0)] * (image.ndim - 2))
    window = (pads[0][0], pads[1][0], pads[0][0] + rh, pads[1][0] + rw)
    return padded.astype(image.dtype), window, scale


def photo(name):
    return {
        "coffee": skimage.data.coffee,
        "astronaut": skimage.data.astronaut,
        "chelsea": skimage.data.chelsea,
    }[name]()


def noise(h, w, seed=0, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def gradient(h, w):
    """A smooth image with flat patches: the case where truncation is most sensitive to float rounding."""
    yy, xx = np.mgrid[:h, :w]
    image = np.stack([yy * 255 / h, xx * 255 / w, np.full((h, w), 200.0)], axis=2)
    image[h // 4 : h // 2, w // 4 : w // 2] = 37
    return image.astype(np.uint8)


def level_differences(ours, reference):
    return np.abs(ours.astype(np.int64) - reference.astype(np.int64))


# -- Matterport's pixels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_name, min_dim, max_dim, min_scale, mode",
    [
        ("coffee", 512, 512, 0, "square"),  # 400x600 photo -> 341x512, padded
        ("coffee", 800, 1024, 0, "square"),  # upscaling: 683x1024
        ("astronaut", 333, 333, 0, "square"),  # downscaling a square photo
        ("astronaut", 1024, 1024, 0, "square"),  # 2x upscaling
        ("chelsea", 256, 777, 0, "square"),  # odd target size
        ("chelsea", 512, 1024, 0, "pad64"),
        ("chelsea", 128, 512, 1.37, "square"),  # min_scale wins
    ],
)
def test_photos_get_matterports_pixels(image_name, min_dim, max_dim, min_scale, mode):
    image = photo(image_name)
    ours, window, scale, padding, crop = resize_image(image, min_dim, max_dim, min_scale, mode)
    expected, expected_window, expected_scale = matterport_resize_image(
        image, min_dim, max_dim, min_scale, mode
    )
    assert window == expected_window and scale == pytest.approx(expected_scale, rel=1e-12) and crop is None
    assert ours.shape == expected.shape and ours.dtype == np.uint8
    diff = level_differences(ours, expected)
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS
    # No bias either way (rounding instead of truncating was +0.25 levels; edge repeats far more at the rim).
    assert abs((ours.astype(float) - expected).mean()) <= MEAN_LEVELS
    y1, x1, y2, x2 = window
    rim = np.ones(ours.shape[:2], bool)
    rim[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] = False
    assert level_differences(ours[rim], expected[rim]).max() <= MAX_LEVELS


@pytest.mark.parametrize(
    "image, min_dim, max_dim",
    [
        (noise(37, 91), 64, 64),
        (noise(401, 599, seed=1), 512, 512),
        (noise(23, 5, seed=2), 64, 128),
        (noise(700, 301, seed=3), 256, 256),
        (gradient(400, 600), 512, 512),
        (gradient(97, 131), 800, 1024),
        (noise(30, 40, seed=4, channels=1), 64, 64),
        (noise(1200, 1700, seed=5), 256, 256),  # height / 4.7: only the sampled rows are converted
        (gradient(2000, 1500), 384, 384),
    ],
    ids=[
        "noise-up",
        "noise-down",
        "noise-tiny",
        "noise-tall",
        "gradient-down",
        "gradient-up",
        "one-channel",
        "noise-strong-down",
        "gradient-strong-down",
    ],
)
def test_synthetic_images_get_matterports_pixels(image, min_dim, max_dim):
    ours, window, scale, _, _ = resize_image(image, min_dim, max_dim, 0, "square")
    expected, expected_window, _ = matterport_resize_image(image, min_dim, max_dim, 0, "square")
    assert window == expected_window
    diff = level_differences(ours, expected)
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS


def test_upscaled_rim_blends_with_zero_and_is_clipped_to_the_image_range():
    """skimage's border: the outer output rows sample between the edge pixel and a zero outside, and the
    result is clipped to the input's [min, max] over all channels (so a bright flat image keeps its rim)."""
    flat = np.full((10, 10, 3), 200, np.uint8)
    out, *_ = resize_image(flat, 40, 40, 0, "square")
    assert (out == 200).all()
    image = np.full((10, 10, 3), 200, np.uint8)
    image[0, 0, 0] = 0  # the range now reaches 0: the rim may darken
    ours, *_ = resize_image(image, 40, 40, 0, "square")
    expected, *_ = matterport_resize_image(image, 40, 40, 0, "square")
    assert ours[0, 20, 1] < 200 and level_differences(ours, expected).max() <= MAX_LEVELS


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int16, np.int32])
@pytest.mark.parametrize("shape", [(17, 29), (17, 29, 1), (17, 29, 3), (17, 29, 5)])
def test_fast_resize_equals_reference_and_skimage(dtype, shape):
    rng = np.random.default_rng(7)
    image = (rng.random(shape) * 1000 - (500 if np.dtype(dtype).kind in "fi" else 0)).astype(dtype)
    for out_shape in [(40, 13), (5, 61), (17, 29), (4, 7)]:
        reference = skimage.transform.resize(
            image.astype(np.float64),
            out_shape,
            order=1,
            mode="constant",
            preserve_range=True,
            anti_aliasing=False,
        )
        exact = resize_bilinear_exact(image, out_shape)
        fast = resize_bilinear(image, out_shape)
        np.testing.assert_allclose(exact, reference, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-3)
        assert fast.shape == reference.shape


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 90), st.integers(1, 90), st.integers(0, 2**16))
def test_interpolation_weights_rule_is_the_reference_resize(h, w, out_h, out_w, seed):
    """The graph's paste uses rules.bilinear_weights as matrices; with numpy they give the reference resize."""
    image = np.random.default_rng(seed).random((h, w))
    rows = rules.bilinear_weights(rules.source_coordinates(np.arange(out_h), h, out_h), h)
    cols = rules.bilinear_weights(rules.source_coordinates(np.arange(out_w), w, out_w), w)
    np.testing.assert_allclose(
        np.clip(rows @ image @ cols.T, image.min(), image.max()),
        resize_bilinear_exact(image, (out_h, out_w)),
        atol=1e-12,
    )
    rim = rules.rim_factors(rules.source_coordinates(np.arange(out_h), h, out_h), h)
    np.testing.assert_allclose(rows.sum(axis=1), rim, atol=1e-12)


def test_resize_image_none_and_crop_modes_keep_their_contracts():
    image = noise(100, 80)
    same, window, scale, padding, crop = resize_image(image, 64, 128, 0, "none")
    assert same is image and window == (0, 0, 100, 80) and scale == 1 and crop is None
    out, window, scale, padding, crop = resize_image(image, 96, None, 0, "crop", rng=random.Random(3))
    y, x, h, w = crop
    assert scale == 1.2 and out.shape == (96, 96, 3) and window == (0, 0, 96, 96)
    scaled = skimage.transform.resize(
        image, (120, 96), order=1, mode="constant", preserve_range=True, anti_aliasing=False
    ).astype(np.uint8)
    assert level_differences(out, scaled[y : y + h, x : x + w]).max() <= MAX_LEVELS


# -- molding a batch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["square", "pad64", "none", "crop"])
def test_mold_one_equals_resize_then_mold(mode):
    config = tiny_config(IMAGE_RESIZE_MODE=mode, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    for image in [noise(48, 80), noise(30, 24, seed=1), photo("coffee")[::5, ::5]]:
        molded, meta = pipeline.mold_one(image, config, rng=random.Random(0))
        resized, window, scale, _, _ = resize_image(
            image, 64, 128, config.IMAGE_MIN_SCALE, mode, rng=random.Random(0)
        )
        np.testing.assert_array_equal(molded, mold_image(resized, config))
        expected_meta = compose_image_meta(
            0, image.shape, resized.shape, window, scale, np.zeros(config.NUM_CLASSES)
        )
        np.testing.assert_array_equal(meta.to_vector(), expected_meta)


def test_mold_images_batch_and_mismatched_sizes():
    config = tiny_config(IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64)
    batch = pipeline.mold_images([noise(48, 80), noise(30, 24)], config)
    assert batch.images.shape == (2, 64, 64, 3) and batch.images.dtype == np.float32
    assert batch.meta_vectors.shape == (2, config.IMAGE_META_SIZE)
    np.testing.assert_array_equal(batch.windows, [m.window for m in batch.metas])
    pad64 = tiny_config(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64)
    with pytest.raises(ValueError, match="same size"):
        pipeline.mold_images([noise(64, 64), noise(64, 200)], pad64)


# -- the graph face against the numpy face -------------------------------------------------------------------


def assert_graph_matches_numpy(image, rule):
    resized, window, scale, _, _ = resize_image(image, rule.min_dim, rule.max_dim, rule.min_scale, rule.mode)
    g_resized, g_window, g_scale = graph.resize_image_graph(tf.constant(image), rule)
    assert tuple(g_window.numpy()) == tuple(window)
    assert float(g_scale) == pytest.approx(scale, rel=1e-6)
    assert g_resized.shape == resized.shape and g_resized.dtype == tf.float32
    diff = level_differences(g_resized.numpy(), resized)
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 400),
    st.integers(1, 400),
    st.sampled_from(["square", "pad64", "none"]),
    st.sampled_from([(64, 64), (128, 256), (256, 128), (512, 512)]),
    st.sampled_from([0, 1.5]),
    st.integers(0, 2**16),
)
def test_graph_resize_matches_numpy_on_many_sizes(h, w, mode, dims, min_scale, seed):
    min_dim, max_dim = dims
    if mode == "square" and max_dim < min_dim:
        max_dim = min_dim
    rule = ResizeRule(min_dim=min_dim, max_dim=max_dim, min_scale=min_scale, mode=mode)
    try:
        pipeline.plan_resize((h, w), rule)
    except ValueError as error:  # e.g. 1x400 in a 64 square: 0 rows
        assert "too thin" in str(error)
        assume(False)
    assert_graph_matches_numpy(noise(h, w, seed), rule)


@pytest.mark.parametrize("name", ["coffee", "astronaut", "chelsea"])
def test_graph_resize_gives_matterports_pixels_on_photos(name):
    image = photo(name)
    rule = ResizeRule(min_dim=512, max_dim=512, min_scale=0, mode="square")
    resized, window, _ = graph.resize_image_graph(tf.constant(image), rule)
    expected, expected_window, _ = matterport_resize_image(image, 512, 512, 0, "square")
    assert tuple(window.numpy()) == expected_window
    diff = level_differences(resized.numpy(), expected)
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS


def test_graph_mold_traced_with_dynamic_size_matches_numpy_mold():
    config = tiny_config(IMAGES_PER_GPU=1)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def mold(image):
        return graph.mold_image_graph(image, config)

    for image in [noise(48, 80), noise(30, 24, seed=1), noise(64, 64, seed=2), noise(100, 7, seed=3)]:
        molded, meta, window = (t.numpy() for t in mold(tf.constant(image)))
        expected, expected_meta = pipeline.mold_one(image, config)
        np.testing.assert_array_equal(meta, expected_meta.to_vector())
        assert tuple(window) == expected_meta.window
        assert np.abs(molded - expected).max() <= MAX_LEVELS + 1e-4


def test_graph_face_refuses_crop():
    with pytest.raises(ValueError, match="crop"):
        graph.resize_image_graph(tf.constant(noise(10, 10)), ResizeRule(64, 64, 0, "crop"))


# -- ImageMeta -----------------------------------------------------------------------------------------------


def test_image_meta_round_trip_in_matterports_layout():
    meta = ImageMeta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6, [1, 1, 0, 1])
    vector = meta.to_vector()
    np.testing.assert_array_equal(
        vector, compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6, [1, 1, 0, 1])
    )
    np.testing.assert_allclose(vector, [7, 480, 640, 3, 1024, 1024, 3, 128, 0, 896, 1024, 1.6, 1, 1, 0, 1])
    back = ImageMeta.from_vector(vector)
    assert back.window == meta.window and back.image_shape == meta.image_shape
    assert back.original_shape == meta.original_shape and back.active_class_ids == (1, 1, 0, 1)
    assert back.scale == pytest.approx(1.6, rel=1e-7) and back.image_id == 7
    assert meta_size(4) == vector.size == tiny_config(NUM_CLASSES=4).IMAGE_META_SIZE
    with pytest.raises(ValueError, match="window"):
        ImageMeta(0, (1, 1, 3), (1, 1, 3), (0, 0, 1), 1)
    with pytest.raises(ValueError, match="one"):
        ImageMeta.from_vector(np.stack([vector, vector]))


def test_graph_meta_compose_and_parse_use_the_same_layout():
    metas = [
        ImageMeta(0, (48, 80, 3), (64, 64, 3), (12, 0, 50, 64), 0.8, [0, 0, 0]),
        ImageMeta(0, (30, 24, 3), (64, 64, 3), (0, 6, 64, 57), 2.1333, [0, 0, 0]),
    ]
    vectors = np.stack([m.to_vector() for m in metas])
    for meta, vector in zip(metas, vectors):
        composed = graph.compose_image_meta_graph(
            tf.constant(meta.original_shape),
            tf.constant(meta.image_shape),
            tf.constant(meta.window),
            tf.constant(meta.scale, tf.float32),
            3,
        )
        np.testing.assert_array_equal(composed.numpy(), vector)
    parsed_graph = {k: v.numpy() for k, v in parse_image_meta_graph(tf.constant(vectors)).items()}
    parsed = parse_image_meta(vectors)
    assert parsed_graph.keys() == parsed.keys()
    for key in parsed:
        np.testing.assert_allclose(parsed_graph[key], parsed[key], rtol=1e-6)


# -- unmolding -----------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 300), st.integers(5, 300), st.integers(0, 2**16))
def test_unmold_boxes_numpy_and_graph_agree(h, w, seed):
    rule = ResizeRule(min_dim=64, max_dim=128, min_scale=0, mode="square")
    plan = pipeline.plan_resize((h, w, 3), rule)
    rng = np.random.default_rng(seed)
    corners = np.sort(rng.random((20, 2, 2)), axis=1)
    boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1).astype(
        np.float32
    )
    ours = pipeline.unmold_boxes(boxes, plan.window, (128, 128), (h, w))
    theirs = graph.unmold_boxes_graph(
        tf.constant(boxes), tf.constant(plan.window), (128, 128), (h, w)
    ).numpy()
    assert ours.dtype == theirs.dtype == np.int32
    # Both round float32 values; the numpy face multiplies in float64, so a .5 tie may round apart.
    assert np.abs(ours - theirs).max() <= 1 and np.mean(ours != theirs) <= 0.02
    # The window maps onto the whole original image.
    window_n = np.array(plan.window, np.float64) - [0, 0, 1, 1]
    window_n /= 127
    np.testing.assert_array_equal(
        pipeline.unmold_boxes(window_n[None].astype(np.float32), plan.window, (128, 128), (h, w)),
        [[0, 0, h, w]],
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(8, 90), st.integers(8, 90))
def test_paste_masks_numpy_fast_exact_and_graph_agree(seed, h, w):
    rng = np.random.default_rng(seed)
    n = 6
    masks = rng.random((n, 28, 28)).astype(np.float32)
    masks[0] = 0.75
    masks[1] *= 0.45
    y = np.sort(rng.integers(-10, h + 10, (n, 2)), axis=1)
    x = np.sort(rng.integers(-10, w + 10, (n, 2)), axis=1)
    boxes = np.stack([y[:, 0], x[:, 0], y[:, 1] + 1, x[:, 1] + 1], axis=1).astype(np.int32)
    fast = pipeline.paste_masks(masks, boxes, (h, w))
    exact = pipeline.paste_masks(masks, boxes, (h, w), exact=True)
    ours = np.moveaxis(graph.paste_masks_graph(tf.constant(masks), tf.constant(boxes), h, w).numpy(), 0, -1)
    assert fast.shape == exact.shape == ours.shape == (h, w, n)
    # Float32 against float64 interpolation: only pixels within rounding of 0.5 may differ.
    assert np.logical_xor(fast, exact).sum() <= 2
    assert np.logical_xor(ours, exact).sum() <= 3
    assert not exact[:, :, 1].any()


def test_unmold_detections_numpy_and_graph_agree():
    rng = np.random.default_rng(3)
    original_shape, image_shape = (48, 80, 3), (64, 64, 3)
    meta = pipeline.plan_resize(original_shape, ResizeRule(64, 64, 0, "square"))
    d = 10
    corners = np.sort(rng.uniform(0.15, 0.85, (d, 2, 2)), axis=1)
    detections = np.zeros((d, 6), np.float32)
    detections[:, :4] = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    detections[:, 4] = rng.integers(1, 4, d)
    detections[:, 5] = np.sort(rng.random(d))[::-1]
    detections[7:] = 0  # padding rows
    detections[2, 2] = detections[2, 0] - 0.05  # no area: dropped
    masks = rng.random((d, 28, 28)).astype(np.float32)
    boxes, class_ids, scores, full = pipeline.unmold_detections(
        detections, masks, original_shape, image_shape, meta.window
    )
    out = graph.unmold_detections_graph(
        tf.constant(detections), tf.constant(masks), tf.constant(meta.window), (64, 64), (48, 80)
    )
    assert len(boxes) == 6
    np.testing.assert_array_equal(out["boxes"].numpy(), boxes)
    np.testing.assert_array_equal(out["class_ids"].numpy(), class_ids)
    np.testing.assert_array_equal(out["scores"].numpy(), scores)
    assert np.logical_xor(np.moveaxis(out["masks"].numpy(), 0, -1), full).sum() <= 3


# -- one pipeline ----------------------------------------------------------------------------------------------

RESIZERS = ("cv2.resize", "transform.resize", "tf.image.resize", "ndimage.zoom")


def _dotted(node):
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def test_nothing_outside_the_pipeline_resizes_images():
    """No call of an image resizer (OpenCV, scikit-image, TensorFlow, scipy) in mrcnn/ or fashion/ outside
    mrcnn/pipeline/. (fashion.datasets repairs files whose size disagrees with their annotations with PIL's
    ``Image.resize``: data repair, before the pipeline.)"""
    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("mrcnn", "fashion"):
        for path in sorted((root / folder).rglob("*.py")):
            if "pipeline" in path.relative_to(root).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and _dotted(node.func).endswith(RESIZERS):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} {_dotted(node.func)}")
                if isinstance(node, ast.ImportFrom) and any(
                    f"{node.module}.{alias.name}".endswith(RESIZERS) for alias in node.names
                ):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} import")
    assert offenders == []
