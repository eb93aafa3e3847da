import numpy as np

from mrcnn.data.synthetic import ShapesDataset, draw_shape_mask


def test_same_seed_same_images_different_seed_different():
    a = ShapesDataset.build(4, 64, 64, seed=3)
    b = ShapesDataset.build(4, 64, 64, seed=3)
    c = ShapesDataset.build(4, 64, 64, seed=4)
    for i in range(4):
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        np.testing.assert_array_equal(a.load_mask(i)[0], b.load_mask(i)[0])
    assert any(not np.array_equal(a.load_image(i), c.load_image(i)) for i in range(4))


def test_masks_mark_the_shape_colours_and_classes():
    ds = ShapesDataset.build(10, 96, 80, seed=0)
    assert ds.class_names == ["BG", "square", "circle", "triangle"]
    for i in range(10):
        image = ds.load_image(i)
        mask, class_ids = ds.load_mask(i)
        assert image.shape == (96, 80, 3) and image.dtype == np.uint8
        assert mask.shape == (96, 80, class_ids.shape[0]) and mask.dtype == bool
        assert class_ids.dtype == np.int32 and set(class_ids.tolist()) <= {1, 2, 3}
        assert 1 <= class_ids.shape[0] <= 4
        assert mask.any(axis=(0, 1)).all()
        assert not (mask.sum(axis=2) > 1).any()  # visible parts do not overlap
        bg = np.array(ds.image_info[i]["bg_color"], dtype=np.uint8)
        np.testing.assert_array_equal(
            image[~mask.any(axis=2)], np.broadcast_to(bg, image[~mask.any(axis=2)].shape)
        )
        for k in range(class_ids.shape[0]):
            assert len(np.unique(image[mask[:, :, k]], axis=0)) == 1  # one flat colour per instance


def test_empty_fraction_gives_images_without_instances():
    ds = ShapesDataset.build(20, 64, 64, seed=1, empty_fraction=0.5)
    counts = [ds.load_mask(i)[1].shape[0] for i in range(20)]
    assert 0 in counts and max(counts) > 0
    empty = counts.index(0)
    assert ds.load_mask(empty)[0].shape == (64, 64, 0)


def test_draw_shape_mask_areas():
    square = draw_shape_mask("square", (20.0, 20.0), 5.0, 40, 40)
    assert square.sum() == 100
    circle = draw_shape_mask("circle", (20.0, 20.0), 10.0, 40, 40)
    assert abs(circle.sum() - np.pi * 100) < 15
    triangle = draw_shape_mask("triangle", (20.0, 20.0), 10.0, 40, 40)
    side = 20 / np.sin(np.deg2rad(60))
    assert abs(triangle.sum() - 0.5 * side * 20) < 20
