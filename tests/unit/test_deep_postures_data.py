"""examples/deep_postures: the synthetic HDF5 files and the sequences the loader cuts from them (no JVM)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from deep_postures.generate import generate  # noqa: E402
from deep_postures.loader import day_sequences, list_day_files, read_day, usable_runs, windows_for  # noqa: E402

from cerebro_spark.errors import DataError, InvalidParamError  # noqa: E402


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("deep_postures")
    return root, generate(root, subjects=2, days=2, hours=1.0, seed=3)


def test_one_file_per_subject_and_day_in_the_deep_postures_layout(generated):
    root, paths = generated
    assert [p.relative_to(root).as_posix() for p in paths] == [
        "S001/2021-03-01.h5", "S001/2021-03-02.h5", "S002/2021-03-01.h5", "S002/2021-03-02.h5",
    ]  # fmt: skip
    for path in paths:
        with h5py.File(path, "r") as f:
            assert sorted(f.keys()) == ["data", "label", "non_wear", "sleeping", "time"]
            n = f["time"].shape[0]
            assert n == 360  # one hour of 10-second windows
            assert f["time"].dtype == np.float64
            assert f["data"].shape == (n, 100, 3) and f["data"].dtype.kind == "f"
            for name in ("non_wear", "sleeping", "label"):
                assert f[name].shape == (n,) and f[name].dtype.kind == "i"
            assert f["data"].maxshape == (None, 100, 3) and f["label"].maxshape == (None,)


def test_flags_labels_and_times_are_as_deep_postures_writes_them(generated):
    root, paths = generated
    for path in paths:
        day = read_day(str(path))
        assert set(np.unique(day["non_wear"])) == {0, 1}
        assert set(np.unique(day["sleeping"])) == {0, 1}
        assert set(np.unique(day["label"])) == {-1, 0, 1}
        assert day["sleeping"][0] == 1 and day["sleeping"][-1] == 1  # the day starts and ends in bed
        assert np.all(np.diff(day["time"]) == 10.0)
        first = dt.datetime.fromtimestamp(day["time"][0], dt.timezone.utc).date().isoformat()
        assert path.stem == first


def test_the_classes_differ_in_a_learnable_way(generated):
    """Seated, the hip tilts back: gravity moves from the vertical axis toward the forward one."""
    _, paths = generated
    days = [read_day(str(p)) for p in paths]
    awake = np.concatenate([(d["sleeping"] == 0) & (d["non_wear"] == 0) for d in days])
    label = np.concatenate([d["label"] for d in days])
    data = np.concatenate([d["data"] for d in days])
    forward = data[..., 2].mean(axis=1)  # mean forward component of each window
    sitting, upright = forward[awake & (label == 0)], forward[awake & (label == 1)]
    assert len(sitting) > 100 and len(upright) > 100
    assert sitting.mean() - upright.mean() > 2 * upright.std()
    motion = data.std(axis=1).sum(axis=1)
    assert np.median(motion[awake & (label == 1)]) > np.median(motion[awake & (label == 0)])
    not_worn = np.concatenate([d["non_wear"] for d in days]) == 1
    # a device on a table is stiller than a seated person
    assert np.quantile(motion[not_worn], 0.95) < np.quantile(motion[awake & (label == 0)], 0.05)


def test_the_same_seed_writes_the_same_files(tmp_path, generated):
    _, paths = generated
    again = generate(tmp_path, subjects=2, days=2, hours=1.0, seed=3)
    for a, b in zip(paths, again, strict=True):
        for name, values in read_day(str(a)).items():
            np.testing.assert_array_equal(values, read_day(str(b))[name])
    other = generate(tmp_path / "other", subjects=1, days=1, hours=1.0, seed=4)
    assert not np.array_equal(read_day(str(other[0]))["data"], read_day(str(paths[0]))["data"])


def write_day(path: Path, n: int, **overrides) -> dict[str, np.ndarray]:
    """A hand-made file whose window i holds the value i everywhere, so sequences show their windows."""
    day = {
        "time": 1_600_000_000.0 + 10.0 * np.arange(n),
        "data": np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 100, 3)).copy(),
        "non_wear": np.zeros(n, dtype=np.int64),
        "sleeping": np.zeros(n, dtype=np.int64),
        "label": np.arange(n, dtype=np.int64) % 2,
    }
    day.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, values in day.items():
            f.create_dataset(name, data=values)
    return day


def test_sequences_break_at_sleep_non_wear_unknown_labels_and_time_gaps(tmp_path):
    n = 30
    sleeping, non_wear, label = np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n) % 2
    sleeping[5], non_wear[12], label[18] = 1, 1, -1
    time = 1_600_000_000.0 + 10.0 * np.arange(n)
    time[24:] += 60.0  # a minute missing before window 24
    path = tmp_path / "P7" / "2020-09-13.h5"
    write_day(path, n, time=time, sleeping=sleeping, non_wear=non_wear, label=label)

    assert usable_runs(time, non_wear, sleeping, label).tolist() == [
        [0, 5],
        [6, 12],
        [13, 18],
        [19, 24],
        [24, 30],
    ]
    batch = day_sequences(str(path), 4).to_pydict()
    first_windows = [0, 6, 13, 19, 24]  # one sequence of 4 per run; shorter leftovers are dropped
    assert batch["subject"] == ["P7"] * 5 and batch["day"] == ["2020-09-13"] * 5
    assert batch["start_time"] == [time[i] for i in first_windows]
    for features, labels, start in zip(batch["features"], batch["labels"], first_windows, strict=True):
        windows = list(range(start, start + 4))
        assert [row[0] for row in features] == windows and all(len(row) == 300 for row in features)
        assert all(len(set(row)) == 1 for row in features)  # each window's 100 x 3 samples, whole
        assert labels == [int(label[i]) for i in windows]


def test_a_run_as_long_as_several_sequences_gives_consecutive_ones(tmp_path):
    path = tmp_path / "S1" / "2020-01-01.h5"
    write_day(path, 14)
    batch = day_sequences(str(path), 6).to_pydict()
    assert [seq[0][0] for seq in batch["features"]] == [0.0, 6.0]  # windows 12 and 13 are left over


def test_a_file_without_a_whole_sequence_gives_no_rows(tmp_path):
    path = tmp_path / "S1" / "2020-01-01.h5"
    write_day(path, 5, sleeping=np.ones(5, np.int64))
    assert day_sequences(str(path), 2).num_rows == 0


@settings(max_examples=60, deadline=None)
@given(
    flags=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.sampled_from([-1, 0, 1]), st.booleans()), max_size=60
    )
)
def test_runs_are_exactly_the_maximal_stretches_of_usable_consecutive_windows(flags):
    n = len(flags)
    sleeping = np.array([f[0] for f in flags], dtype=np.int64)
    non_wear = np.array([f[1] for f in flags], dtype=np.int64)
    label = np.array([f[2] for f in flags], dtype=np.int64)
    gap_before = np.array([f[3] for f in flags], dtype=bool)
    time = 10.0 * np.arange(n) + 35.0 * np.cumsum(gap_before)
    runs = usable_runs(time, non_wear, sleeping, label)
    usable = (sleeping == 0) & (non_wear == 0) & (label >= 0)
    covered = np.zeros(n, dtype=bool)
    for start, stop in runs:
        assert usable[start:stop].all() and np.all(np.diff(time[start:stop]) == 10.0)
        covered[start:stop] = True
        # maximal: the window before and the one after could not extend the run
        assert start == 0 or not usable[start - 1] or time[start] - time[start - 1] != 10.0
        assert stop == n or not usable[stop] or time[stop] - time[stop - 1] != 10.0
    assert np.array_equal(covered, usable)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(DataError, match="No DeepPostures files under"):
        list_day_files(str(tmp_path))
    bad = tmp_path / "S1" / "2020-01-01.h5"
    write_day(bad, 4, data=np.zeros((4, 50, 3), np.float32))
    with pytest.raises(
        DataError, match=r"Dataset 'data' .* must have shape \(4, 100, 3\).*Received: \(4, 50, 3\)"
    ):
        read_day(str(bad))
    with h5py.File(bad, "a") as f:
        del f["label"]
    with pytest.raises(DataError, match=r"lacks dataset\(s\) \['label'\]"):
        read_day(str(bad))
    assert windows_for(7) == 42 and windows_for(9) == 54
    with pytest.raises(InvalidParamError, match="whole number"):
        windows_for(0.05)
