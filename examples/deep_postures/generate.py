"""Synthetic hip-worn accelerometer data in the DeepPostures pre-processed HDF5 layout.

No data can be downloaded here, so this writes files that look like the output of DeepPostures'
``pre_process_data.py``: one HDF5 file per subject and day, ``<root>/<subject>/<YYYY-MM-DD>.h5``, with

=============  ===============  ===========================================================
dataset        shape, dtype     meaning
=============  ===============  ===========================================================
``time``       (N,) float64     start of each 10-second window, Unix seconds
``data``       (N, 100, 3) f32  the window's 100 samples (10 Hz) of x/y/z acceleration in g
``non_wear``   (N,) int64       1 while the device is not worn
``sleeping``   (N,) int64       1 while the subject is in bed
``label``      (N,) int64       0 sitting, 1 not sitting (standing, stepping), -1 unknown
=============  ===============  ===========================================================

The signal is a simple physical model, not noise with a label attached: gravity seen by a device on
the hip, whose orientation depends on the posture (upright when standing or stepping, tilted when
sitting, flat when lying in bed or lying on a table when not worn), plus a gait oscillation while
stepping, postural sway, fidgeting and sensor noise. Each subject has their own device mounting angle,
sitting tilt, step rate and gait amplitude, so validating on held-out subjects is a real test. Postures
follow a semi-Markov process (bouts of minutes), so the sequence context a BiLSTM sees helps. Every day
starts and ends in bed (``sleeping``), has non-wear gaps, and stretches whose posture label is unknown
(the reference device was off: ``label == -1``), which a loader must break sequences at.

Run ``python examples/deep_postures/generate.py OUT_DIR --subjects 8 --days 1 --hours 3`` to write files.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from cerebro_spark.errors import InvalidParamError

HZ = 10
WINDOW_SECONDS = 10
SAMPLES = HZ * WINDOW_SECONDS  # 100 samples per window

SITTING, STANDING, STEPPING = 0, 1, 2
_LABEL_OF_POSTURE = np.array([0, 1, 1])  # sitting -> 0; standing and stepping -> 1 (not sitting)
# mean bout length (windows) and next-posture probabilities of the semi-Markov posture process
_MEAN_BOUT = np.array([24.0, 9.0, 7.0])
_NEXT = np.array([[0.0, 0.6, 0.4], [0.55, 0.0, 0.45], [0.45, 0.55, 0.0]])

DATASETS = ("time", "data", "non_wear", "sleeping", "label")


@dataclass(frozen=True)
class Subject:
    """What makes one person's signal their own."""

    subject_id: str
    mounting: np.ndarray  # (3, 3) rotation: how the device sits on this person's hip
    sitting_tilt: float  # radians the hip (and device) tilts back when seated
    step_hz: float  # cadence while stepping
    gait_g: float  # vertical gait amplitude in g


def make_subject(subject_id: str, rng: np.random.Generator) -> Subject:
    """A random person: mounting within about 12 degrees of upright, their own posture and gait."""
    yaw, pitch, roll = rng.normal(0.0, np.radians([10.0, 6.0, 6.0]))
    return Subject(
        subject_id=subject_id,
        mounting=_rotation_z(yaw) @ _rotation_x(pitch) @ _rotation_y(roll),
        sitting_tilt=float(np.radians(rng.uniform(22.0, 50.0))),
        step_hz=float(rng.uniform(1.5, 2.1)),
        gait_g=float(rng.uniform(0.15, 0.4)),
    )


def _rotation_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def posture_sequence(num_windows: int, rng: np.random.Generator) -> np.ndarray:
    """Postures (SITTING, STANDING, STEPPING) per window: bouts of geometric length, Markov switches."""
    postures = np.empty(num_windows, dtype=np.int64)
    state, filled = int(rng.choice(3, p=[0.5, 0.3, 0.2])), 0
    while filled < num_windows:
        length = int(rng.geometric(1.0 / _MEAN_BOUT[state]))
        postures[filled : filled + length] = state
        filled += length
        state = int(rng.choice(3, p=_NEXT[state]))
    return postures


def _gravity(tilt: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Unit gravity vectors (n, 3) of a device tilted back by ``tilt`` and sideways by ``side`` radians."""
    return np.stack([np.sin(side), np.cos(tilt) * np.cos(side), np.sin(tilt) * np.cos(side)], axis=-1)


def window_signal(
    subject: Subject,
    postures: np.ndarray,
    sleeping: np.ndarray,
    non_wear: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Acceleration (n, 100, 3) in g for windows with the given postures, bed and non-wear flags."""
    n = len(postures)
    t = np.arange(SAMPLES) / HZ
    # each bout leans its own way (slouching, leaning forward to a desk): seated and upright overlap a little
    bout = np.concatenate([[0], np.cumsum(postures[1:] != postures[:-1])])
    lean = rng.normal(0.0, np.radians(12.0), bout[-1] + 1)[bout] * np.where(postures == SITTING, 1.0, 0.3)
    tilt = (
        np.where(postures == SITTING, subject.sitting_tilt, 0.0) + lean + rng.normal(0.0, np.radians(3.0), n)
    )
    side = rng.normal(0.0, np.radians(4.0), n)
    in_bed = sleeping.astype(bool)
    tilt[in_bed] = np.radians(88.0) + rng.normal(0.0, np.radians(4.0), in_bed.sum())
    side[in_bed] = rng.choice([-1.3, 0.0, 1.3], in_bed.sum())  # on one's back or either side
    signal = np.repeat(_gravity(tilt, side)[:, None, :], SAMPLES, axis=1)

    # slow postural sway and fidgeting: a random walk per window, larger when upright
    sway = np.where((postures == SITTING) | in_bed, 0.03, 0.06)[:, None, None]
    signal += sway * np.cumsum(rng.normal(0.0, 1.0, (n, SAMPLES, 3)), axis=1) / np.sqrt(SAMPLES)
    # gait while stepping: vertical bounce at the step rate, forward sway at half of it
    stepping = (postures == STEPPING) & ~in_bed
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    cadence = subject.step_hz * rng.uniform(0.9, 1.1, (n, 1))
    bounce = subject.gait_g * np.sin(2 * np.pi * cadence * t + phase)
    signal[stepping, :, 1] += bounce[stepping]
    signal[stepping, :, 2] += 0.5 * subject.gait_g * np.sin(np.pi * cadence * t + phase)[stepping]
    signal = signal @ subject.mounting.T

    # not worn: lying still on a table, no body movement at all
    off = non_wear.astype(bool)
    table = _gravity(np.full(off.sum(), np.radians(90.0)), np.zeros(off.sum())) * rng.choice([-1, 1])
    signal[off] = table[:, None, :]
    signal += rng.normal(0.0, 0.01, signal.shape)  # sensor noise
    return signal.astype(np.float32)


def _spans(num_windows: int, count: int, mean_length: float, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask with ``count`` spans of about ``mean_length`` windows at random places."""
    mask = np.zeros(num_windows, dtype=np.int64)
    for _ in range(count):
        length = max(1, int(rng.normal(mean_length, mean_length / 4)))
        start = int(rng.integers(0, max(1, num_windows - length)))
        mask[start : start + length] = 1
    return mask


def simulate_day(
    subject: Subject, day: dt.date, hours: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One day of one subject: the five datasets, ready to write."""
    n = int(hours * 3600 / WINDOW_SECONDS)
    start = dt.datetime.combine(day, dt.time(7, 0), tzinfo=dt.timezone.utc).timestamp()
    time = start + WINDOW_SECONDS * np.arange(n, dtype=np.float64)

    sleeping = np.zeros(n, dtype=np.int64)
    sleeping[: int(rng.uniform(0.03, 0.08) * n)] = 1  # still in bed at the start of the recording
    sleeping[n - int(rng.uniform(0.03, 0.08) * n) :] = 1  # and in bed again at its end
    per_hour = max(1, round(hours / 3))
    non_wear = _spans(n, per_hour, 40.0, rng) * (1 - sleeping)  # device off: shower, sport, ...
    unknown = _spans(n, per_hour, 30.0, rng).astype(bool)  # reference device off: no ground truth

    postures = posture_sequence(n, rng)
    label = _LABEL_OF_POSTURE[postures].copy()
    label[sleeping == 1] = 0  # lying in bed counts as sedentary
    label[unknown] = -1
    data = window_signal(subject, postures, sleeping, non_wear, rng)
    return {"time": time, "data": data, "non_wear": non_wear, "sleeping": sleeping, "label": label}


def write_day(path: Path, datasets: dict[str, np.ndarray]) -> None:
    """Write the five datasets as DeepPostures does (chunked, resizable along the first axis)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name in DATASETS:
            values = datasets[name]
            f.create_dataset(name, data=values, chunks=True, maxshape=(None, *values.shape[1:]))


def generate(
    root: str | Path,
    subjects: int = 8,
    days: int = 1,
    hours: float = 3.0,
    seed: int = 0,
    first_day: dt.date = dt.date(2021, 3, 1),
) -> list[Path]:
    """Write ``subjects x days`` files under ``root`` and return their paths.

    Parameters
    ----------
    root : str or Path
        Output folder; files go to ``<root>/<subject>/<YYYY-MM-DD>.h5``.
    subjects, days : int
        How many people, and how many consecutive days each.
    hours : float
        Hours recorded per day (a real day file holds up to 24 h: 8,640 windows).
    seed : int
        Everything (subjects, postures, signal) follows from it.
    first_day : datetime.date
        Date of the first day.

    Returns
    -------
    list of Path
        The files written, by subject then day.
    """
    if subjects < 1 or days < 1 or hours * 3600 < 10 * WINDOW_SECONDS:
        raise InvalidParamError(
            f"generate needs subjects >= 1, days >= 1 and hours of at least 10 windows. "
            f"Received: subjects={subjects}, days={days}, hours={hours}."
        )
    root = Path(root)
    paths = []
    for s in range(subjects):
        rng = np.random.default_rng([seed, s])
        subject = make_subject(f"S{s + 1:03d}", rng)
        for d in range(days):
            day = first_day + dt.timedelta(days=d)
            path = root / subject.subject_id / f"{day.isoformat()}.h5"
            write_day(path, simulate_day(subject, day, hours, rng))
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write synthetic DeepPostures HDF5 files.")
    parser.add_argument("root", help="output folder")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--hours", type=float, default=3.0, help="hours recorded per day")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate(args.root, args.subjects, args.days, args.hours, args.seed)
    print(f"wrote {len(paths)} files under {args.root}")


if __name__ == "__main__":
    main()
