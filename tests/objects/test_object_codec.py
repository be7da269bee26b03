"""Object files: what goes in comes out, large parts are mapped, not copied."""

from __future__ import annotations

import gc
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tune_client import object_codec, object_format
from tune_client.errors import NotSerializableError


def round_trip(obj, tmp_path):
    """Encode ``obj`` into ``tmp_path``; return (loaded object, encoded)."""
    encoded = object_codec.encode(obj, "obj", directory=str(tmp_path))
    return object_codec.load_file(encoded.path), encoded


def anon_pss_kib() -> int:
    """This process's proportional share of anonymous (heap) memory."""
    with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1])
    pytest.skip("smaps_rollup has no Pss_Anon on this kernel")


# ---- DataFrames --------------------------------------------------------------


FRAMES = {
    "strings and nulls": pd.DataFrame(
        {"s": ["a", None, "c"], "x": [1.5, np.nan, 3.0], "i": [1, 2, 3]}
    ),
    "categorical": pd.DataFrame(
        {"c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True)}
    ),
    "nullable ints": pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")}),
    "datetimes": pd.DataFrame(
        {
            "naive": pd.to_datetime(["2024-01-01", None, "2024-03-01"]),
            "aware": pd.date_range("2024-01-01", periods=3, tz="Europe/Paris"),
            "delta": pd.to_timedelta([1, 2, 3], unit="s"),
        }
    ),
    "named index": pd.DataFrame(
        {"x": [1.0, 2.0, 3.0]}, index=pd.Index([10, 20, 30], name="step")
    ),
    "string index": pd.DataFrame({"x": [1, 2, 3]}, index=["a", "b", "c"]),
    "range index with step": pd.DataFrame(
        {"x": [1, 2, 3]}, index=pd.RangeIndex(5, 11, 2)
    ),
    "multiindex": pd.DataFrame(
        {"x": [1.0, 2.0, 3.0]},
        index=pd.MultiIndex.from_tuples(
            [("a", 1), ("a", 2), ("b", 1)], names=["group", "k"]
        ),
    ),
    "tz index with freq": pd.DataFrame(
        {"x": [1, 2]}, index=pd.date_range("2024", periods=2, tz="UTC", name="ts")
    ),
    "int column labels": pd.DataFrame(np.ones((3, 2)), columns=[0, 1]),
}


@pytest.fixture
def arrow_for_every_frame(monkeypatch):
    """Small frames are pickled; these tests need the Arrow path at any size."""
    monkeypatch.setattr(object_format, "ARROW_MIN_BYTES", 0)


@pytest.mark.parametrize("name", list(FRAMES))
def test_dataframes_round_trip(name, tmp_path, arrow_for_every_frame):
    frame = FRAMES[name]
    loaded, _ = round_trip(frame, tmp_path)
    pd.testing.assert_frame_equal(loaded, frame)


def test_small_dataframe_is_pickled_and_large_one_goes_to_arrow(tmp_path):
    small = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})
    loaded, encoded = round_trip(small, tmp_path)
    assert encoded.kind == "pickle"
    pd.testing.assert_frame_equal(loaded, small)
    large = pd.DataFrame({"a": np.arange(200_000.0)})
    loaded, encoded = round_trip(large, tmp_path)
    assert encoded.kind == "pandas"
    pd.testing.assert_frame_equal(loaded, large)


def test_numeric_dataframe_is_stored_as_arrow_ipc(tmp_path, arrow_for_every_frame):
    frame = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5)})
    encoded = object_codec.encode(frame, "frame", directory=str(tmp_path))
    assert encoded.kind == "pandas"
    start, length = object_format.read_header(encoded.path)[1]["ipc"]
    with open(encoded.path, "rb") as f:
        f.seek(start)
        assert f.read(6) == b"ARROW1"
    assert start % 64 == 0


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"mixed": [1, "a", None]}),
        pd.DataFrame(np.ones((2, 2)), columns=["a", "a"]),
        # Past the rows the format probe looks at, so only Arrow's own
        # conversion finds out.
        pd.DataFrame({"late": ["a"] * 200_000 + [3], "x": np.arange(200_001.0)}),
    ],
    ids=["mixed object column", "duplicate column names", "mixed after the probe"],
)
def test_frames_arrow_cannot_keep_are_pickled_instead(frame, tmp_path):
    loaded, encoded = round_trip(frame, tmp_path)
    assert encoded.kind == "pickle"
    pd.testing.assert_frame_equal(loaded, frame)


def test_frame_attrs_survive(tmp_path):
    frame = pd.DataFrame({"x": [1.0]})
    frame.attrs["source"] = "sensor 4"
    loaded, _ = round_trip(frame, tmp_path)
    assert loaded.attrs == {"source": "sensor 4"}


def test_arrow_table_round_trips(tmp_path):
    table = pa.table({"x": [1, 2, None], "s": ["a", "b", "c"]})
    loaded, encoded = round_trip(table, tmp_path)
    assert encoded.kind == "arrow"
    assert loaded.equals(table)


def test_numeric_dataframe_is_mapped_not_copied(tmp_path):
    frame = pd.DataFrame(
        {f"c{i}": np.random.default_rng(i).random(1 << 20) for i in range(8)},
        copy=False,
    )  # 64 MiB
    expected = frame.sum()
    encoded = object_codec.encode(frame, "frame", directory=str(tmp_path))
    del frame
    gc.collect()
    before = anon_pss_kib()
    loaded = object_codec.load_file(encoded.path)
    sums = loaded.sum()
    grown_kib = anon_pss_kib() - before
    pd.testing.assert_series_equal(sums, expected)
    assert grown_kib < 64 * 1024 * 0.1, f"loading copied {grown_kib} KiB"


# ---- numpy arrays --------------------------------------------------------------


ARRAYS = {
    "float64": np.linspace(0, 1, 12).reshape(3, 4),
    "float32": np.arange(7, dtype=np.float32),
    "int8": np.arange(-5, 5, dtype=np.int8),
    "uint64": np.arange(4, dtype=np.uint64),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, 3 - 4j]),
    "datetime64": np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]"),
    "unicode": np.array(["alpha", "beta"]),
    "structured": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "i4"), ("b", "f8")]),
    "scalar": np.array(3.5),
    "empty": np.zeros((0, 3)),
    "strided slice": np.arange(20.0)[::3],
    "transposed": np.arange(12.0).reshape(3, 4).T,
    "fortran order": np.asfortranarray(np.arange(12).reshape(3, 4)),
    "3d": np.arange(24, dtype=np.int16).reshape(2, 3, 4),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_arrays_round_trip(name, tmp_path):
    array = ARRAYS[name]
    loaded, encoded = round_trip(array, tmp_path)
    assert encoded.kind == "numpy"
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_object_arrays_are_pickled(tmp_path):
    array = np.array([{"a": 1}, None, "x"], dtype=object)
    loaded, encoded = round_trip(array, tmp_path)
    assert encoded.kind == "pickle"
    assert list(loaded) == list(array)


def test_loaded_array_is_writable_without_changing_the_object(tmp_path):
    array = np.arange(10.0)
    encoded = object_codec.encode(array, "array", directory=str(tmp_path))
    first = object_codec.load_file(encoded.path)
    first[0] = 99.0
    again = object_codec.load_file(encoded.path)
    assert again[0] == 0.0
    assert object_format.file_digest(encoded.path) == encoded.object_id


# ---- anything else -------------------------------------------------------------


class Model:
    def __init__(self, weights):
        self.weights = weights


def test_arbitrary_objects_round_trip(tmp_path):
    obj = {
        "weights": np.arange(1000.0),
        "model": Model(np.ones((4, 4))),
        "fn": lambda x: x + 1,
        "text": "hello",
    }
    loaded, encoded = round_trip(obj, tmp_path)
    assert encoded.kind == "pickle"
    np.testing.assert_array_equal(loaded["weights"], obj["weights"])
    np.testing.assert_array_equal(loaded["model"].weights, np.ones((4, 4)))
    assert loaded["fn"](1) == 2 and loaded["text"] == "hello"


def test_out_of_band_buffers_are_aligned_and_mapped(tmp_path):
    obj = {"a": np.arange(1000.0), "b": np.arange(77, dtype=np.uint8)}
    encoded = object_codec.encode(obj, "obj", directory=str(tmp_path))
    _, meta = object_format.read_header(encoded.path)
    assert len(meta["buffers"]) == 2
    assert all(offset % 64 == 0 for offset, _ in meta["buffers"])
    loaded = object_codec.load_file(encoded.path)
    assert not loaded["a"].flags.owndata  # a view of the file's mapping
    loaded["a"][0] = -1.0  # copy-on-write: allowed, and the file is unchanged
    assert object_codec.load_file(encoded.path)["a"][0] == 0.0


def test_same_data_gets_the_same_id(tmp_path):
    frame = pd.DataFrame({"x": np.arange(100.0)})
    first = object_codec.encode(frame, "a", directory=str(tmp_path))
    second = object_codec.encode(frame.copy(), "b", directory=str(tmp_path))
    assert first.object_id == second.object_id
    assert first.path != second.path


def test_temporary_file_goes_away_after_discard(tmp_path):
    encoded = object_codec.encode([1, 2, 3], "small", directory=str(tmp_path))
    path = encoded.path
    encoded.discard()
    assert not os.path.exists(path)


def test_unpicklable_object_names_itself(tmp_path):
    import threading

    with pytest.raises(NotSerializableError, match="'lock_holder'"):
        object_codec.encode(
            {"lock": threading.Lock()}, "lock_holder", directory=str(tmp_path)
        )
    assert os.listdir(tmp_path) == []


def test_plain_cloudpickle_files_still_load(tmp_path):
    path = tmp_path / "trainable.pkl"
    path.write_bytes(object_codec.dumps({"plain": True}, "plain"))
    assert object_codec.load_file(str(path)) == {"plain": True}
