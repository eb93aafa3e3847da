import numpy as np
import pytest

from fashion.rle import RLEError, parse_rle, rle_area, rle_decode, rle_encode, rle_last_pixel


def test_hand_made_mask_encodes_column_major_with_one_based_starts():
    mask = np.array([[0, 1], [1, 1]], dtype=bool)
    # Column-major numbering: (0,0)=1, (1,0)=2, (0,1)=3, (1,1)=4 -> pixels 2, 3, 4.
    assert rle_encode(mask) == "2 3"
    np.testing.assert_array_equal(rle_decode("2 3", 2, 2), mask)


def test_single_pixels_tell_row_and_column_major_apart():
    h, w = 3, 4
    top_row_second_col = np.zeros([h, w], bool)
    top_row_second_col[0, 1] = True
    second_row_first_col = np.zeros([h, w], bool)
    second_row_first_col[1, 0] = True
    assert rle_encode(top_row_second_col) == "4 1"  # 1 * H + 0 + 1
    assert rle_encode(second_row_first_col) == "2 1"  # 0 * H + 1 + 1
    first = np.zeros([h, w], bool)
    first[0, 0] = True
    assert rle_encode(first) == "1 1"
    last = np.zeros([h, w], bool)
    last[h - 1, w - 1] = True
    assert rle_encode(last) == f"{h * w} 1"


def test_decode_hand_made_runs():
    # H=3, W=4: pixels 1-2 are column 0 rows 0-1; pixels 7-9 are the whole column 2.
    mask = rle_decode("1 2 7 3", 3, 4)
    expected = np.zeros([3, 4], bool)
    expected[0:2, 0] = True
    expected[:, 2] = True
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == bool and mask.shape == (3, 4)


def test_run_crossing_a_column_boundary():
    # Pixels 3-4 of a 3x2 mask: bottom of column 0, top of column 1.
    expected = np.array([[0, 1], [0, 0], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(rle_decode("3 2", 3, 2), expected)
    assert rle_encode(expected) == "3 2"


def test_full_and_empty_masks():
    assert rle_encode(np.ones([2, 3])) == "1 6"
    assert rle_encode(np.zeros([2, 3])) == ""
    assert not rle_decode("", 2, 3).any()
    assert rle_decode("1 6", 2, 3).all()


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = rng.integers(1, 40, size=2)
        mask = rng.random([h, w]) < rng.random()
        encoded = rle_encode(mask)
        np.testing.assert_array_equal(rle_decode(encoded, h, w), mask)
        assert rle_area(encoded) == mask.sum()


def test_run_past_height_times_width_is_an_error_naming_the_limit():
    assert rle_decode("5 2", 2, 3)[:, 2].all()  # ends exactly at pixel 6
    with pytest.raises(RLEError, match=r"ends at pixel 7, past height\*width = 2\*3 = 6"):
        rle_decode("5 3", 2, 3)
    with pytest.raises(RLEError, match="past"):
        rle_decode("1 1 99 1 2 1", 2, 3)  # a middle run, not just the last one


@pytest.mark.parametrize(
    "bad, message",
    [("1 2 3", "odd number"), ("0 2", "1-based"), ("1 -2", "negative"), ("1 x", "non-integer")],
)
def test_malformed_strings(bad, message):
    with pytest.raises(RLEError, match=message):
        rle_decode(bad, 4, 4)


def test_parse_accepts_sequences_and_last_pixel():
    starts, lengths = parse_rle([2, 3, 10, 1])
    assert starts.tolist() == [2, 10] and lengths.tolist() == [3, 1]
    assert rle_last_pixel("2 3 10 1") == 10
    assert rle_last_pixel("  ") == 0
    with pytest.raises(RLEError):
        rle_last_pixel("2 3 10")
