"""The shared encoding rules: the same values give the same targets, splits and statistics
whether they come as a pandas column, CSV text cells or a numpy array."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from manytask.data.encoding import (
    Place,
    Standardizer,
    encode_labels,
    has_label,
    nested_subset,
    sorted_names,
    split_rows,
)
from manytask.errors import ConfigError, DataError

CSV = Place("t.csv", "c")
NPZ = Place.array("a.npz", "c")


def three_ways(cells: list[str]) -> list[tuple[np.ndarray, object]]:
    """``cells`` as CSV text cells, as a pandas column read from them, and as a string array."""
    frame = pd.read_csv(pd.io.common.StringIO("c\n" + "\n".join(f'"{c}"' for c in cells) + "\n"),
                        skip_blank_lines=False)
    return [encode_labels(cells, CSV), encode_labels(frame["c"], CSV), encode_labels(np.array(cells), NPZ)]


def test_class_names_sort_numbers_by_value_then_text() -> None:
    assert sorted_names({"cat", "10", "2", "ant", "2.5"}) == ["2", "2.5", "10", "ant", "cat"]
    for codes, coding in three_ways(["10", "9", "x", "", "9"]):
        assert coding.classes == ("9", "10", "x")
        assert codes.dtype == np.int64 and codes.tolist() == [1, 0, 2, -1, 0]


@pytest.mark.parametrize("cells, classes", [
    (["Yes", "no", "NO", "yes"], ("no", "yes")),
    (["True", "false", "FALSE"], ("false", "true")),
])
def test_boolean_names_are_zero_and_one_in_any_case(cells: list[str], classes: tuple[str, str]) -> None:
    for codes, coding in three_ways(cells):
        assert coding.classes == classes
        assert codes.tolist() == [1 if c.lower() in ("yes", "true") else 0 for c in cells]


def test_missing_text_is_the_same_everywhere() -> None:
    cells = ["cat", "", "NA", "nan", "null", " dog ", "None"]
    for codes, coding in three_ways(cells):
        assert coding.classes == ("cat", "dog")
        assert codes.tolist() == [0, -1, -1, -1, -1, 1, -1]


def test_numbers_stay_numbers() -> None:
    for codes, coding in three_ways(["3", "1", "2"]):
        assert coding is None and codes.dtype == np.int64 and codes.tolist() == [3, 1, 2]
    for codes, coding in three_ways(["3", "", "2.5"]):
        assert coding is None and codes.dtype == np.float32
        assert codes[0] == 3 and np.isnan(codes[1]) and codes[2] == 2.5
    ints = encode_labels(np.array([[1, -1], [0, 2]]), NPZ)[0]
    assert ints.dtype == np.int64 and ints.shape == (2, 2)
    assert encode_labels(np.array([1.0, np.nan]), NPZ)[0].dtype == np.float32


def test_classes_given_code_numbers_and_refuse_others() -> None:
    codes, coding = encode_labels(pd.Series([3, 1, None, 2]), CSV, classes=[1, 2, 3])
    assert codes.tolist() == [2, 0, -1, 1] and coding.classes == ("1", "2", "3")
    with pytest.raises(DataError, match=r"^t\.csv: row 2, column 'c': value 4 is not one of the classes 1, 2"):
        encode_labels(pd.Series([1, 4]), CSV, classes=[1, 2])


@pytest.mark.parametrize("values, place, message", [
    (["", "NaN"], CSV, r"^t\.csv: column 'c' has no label \(every value is missing\)$"),
    (np.full(3, -1), NPZ, r"^a\.npz: array 'c' has no label \(every value is missing\)$"),
    (np.full(3, np.nan), NPZ, r"^a\.npz: array 'c' has no label \(every value is missing\)$"),
    (["1", "inf"], CSV, r"^t\.csv: row 2, column 'c': value inf is not finite$"),
    (np.array([0.0, 1.0, np.inf]), NPZ, r"^a\.npz: index 2, array 'c': value inf is not finite$"),
])
def test_bad_labels_name_the_place(values: object, place: Place, message: str) -> None:
    with pytest.raises(DataError, match=message):
        encode_labels(values, place)


def test_origin_names_the_first_class_name() -> None:
    _, coding = encode_labels(["1.5", "", "n/k", "x"], CSV)
    assert coding.origin == "t.csv: row 3, column 'c' has the class name 'n/k'"


def test_has_label_for_arrays_and_tensors() -> None:
    assert not has_label(np.array([np.nan])) and has_label(torch.tensor([np.nan, 1.0]))
    assert not has_label(torch.tensor([-1, -1])) and has_label(np.array([-1, 0]))


def test_split_names_and_codes_give_the_same_rows() -> None:
    names = ["train", "Validation", "TEST", "valid", " train", "val"]
    codes = np.array([0, 1, 2, 1, 0, 1])
    expected = ([0, 4], [1, 3, 5], [2])
    for values in (names, pd.Series(names), np.array(names), codes, codes.astype(float), [str(c) for c in codes]):
        assert [r.tolist() for r in split_rows(values, CSV)] == list(expected)


def test_split_problems_name_the_row() -> None:
    with pytest.raises(DataError, match=r"^t\.csv: row 3, column 'c': unknown split 'dev' \(split names: train: "):
        split_rows(["train", "val", "dev"], CSV)
    with pytest.raises(DataError, match=r"^a\.npz: index 1, array 'c': unknown split 7 "):
        split_rows(np.array([0, 7]), NPZ)
    with pytest.raises(DataError, match=r"^t\.csv: row 2, column 'c': no split name$"):
        split_rows(["train", ""], CSV)
    with pytest.raises(DataError, match=r"^t\.csv: column 'c': no row is in the training split$"):
        split_rows(["val", "test"], CSV)
    train, val, test = split_rows(["train", "train"], CSV)  # validation and test may be empty
    assert train.tolist() == [0, 1] and val.size == test.size == 0


def test_nested_subsets() -> None:
    rows = np.arange(10, 110, 2)
    half, fifth = nested_subset(rows, 0.5, 3), nested_subset(rows, 0.2, 3)
    assert len(half) == 25 and len(fifth) == 10 and set(fifth) <= set(half) <= set(rows)
    assert np.all(np.diff(half) > 0)
    with pytest.raises(ConfigError, match=r"^fraction: 0\.01 of 50 training rows leaves no training row$"):
        nested_subset(rows, 0.01, 3)


def test_standardizer_uses_the_given_rows_and_ignores_missing_values() -> None:
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan], [np.nan, 5.0, 2.0], [100.0, 0.0, 7.0]])
    scaler = Standardizer.fit(x, np.array([0, 1, 2]))
    assert scaler.mean.tolist() == [2.0, 5.0, 2.0] and scaler.std.tolist() == [1.0, 1.0, 1.0]
    assert scaler(x)[3].tolist() == [98.0, -5.0, 5.0]
    assert scaler.fill(x)[2].tolist() == [2.0, 5.0, 2.0]
    dense = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4))
    fitted = Standardizer.fit(dense, np.arange(30))
    assert np.allclose(fitted.mean, dense[:30].mean(0)) and np.allclose(fitted.std, dense[:30].std(0))
