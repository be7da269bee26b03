"""Checkpoint workload: 4 trials each saving 5 checkpoints of 50 MB (1000 MB).

Run as a script by bench.run under either interpreter; only the import shim
below differs between flavors. Each trial draws 50 MB of random bytes once,
then 5 times writes them to a fresh temporary folder and reports that folder
as a checkpoint, as a training loop saving its model does. ``BENCH_TARGET``
picks the storage: ``local`` (a folder) or ``s3`` (``s3://BUCKET/run-ID`` on
the S3 endpoint the harness started; AWS_ENDPOINT_URL_S3 points both
flavors' S3 clients at it).

Figures (``BENCH_METRIC`` lines):

- ``fit_mb_s``: 1000 MB / the seconds from fit() being called to it
  returning, so cluster start-up and the trials writing their own folders
  count, as they do for a user.
- ``floor_mb_s`` and ``fit_vs_floor_pct`` (ours only, so Ray's runs stay as
  short as they must): the same 1000 MB copied by plain fsspec ``put`` in this
  process (local: folder to folder; s3: s3fs to the same endpoint), after
  fit() and a ``sync`` so that neither sees the other's writeback. It is the
  speed the storage allows, which the system can at best approach.

After fit() every trial must have 5 checkpoints and a last one holding the
50 MB file, or the run fails.
"""

import os
import shutil
import sys
import tempfile
import time
import uuid

if os.environ["BENCH_FLAVOR"] == "ray":
    from ray import tune
    from ray.tune import Tuner
else:
    import tune_client as tune
    from tune_client import Tuner

# Read once in the driver: the pickled training function carries them.
STORAGE = os.environ["BENCH_STORAGE"]
TARGET = os.environ.get("BENCH_TARGET", "local")
CHECKPOINT_BYTES = int(os.environ.get("BENCH_CHECKPOINT_MB", "50")) * 1_000_000
NUM_TRIALS = 4
CHECKPOINTS_PER_TRIAL = 5
TOTAL_MB = NUM_TRIALS * CHECKPOINTS_PER_TRIAL * CHECKPOINT_BYTES / 1e6
FILE_NAME = "model.bin"
OURS = os.environ["BENCH_FLAVOR"] != "ray"


def save_checkpoints(config):
    """Report the same 50 MB as 5 checkpoints, each from a new folder."""
    blob = os.urandom(CHECKPOINT_BYTES)
    for step in range(CHECKPOINTS_PER_TRIAL):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, FILE_NAME), "wb") as f:
                f.write(blob)
            tune.report(
                {"step": step}, checkpoint=tune.Checkpoint.from_directory(folder)
            )


def storage_path(run_id: str) -> str:
    if TARGET == "s3":
        return f"s3://{os.environ['BENCH_S3_BUCKET']}/run-{run_id}"
    if TARGET == "local":
        return STORAGE
    raise SystemExit(f"BENCH_TARGET must be local or s3, not {TARGET!r}")


def check(results) -> None:
    """Every checkpoint must be kept and the last one must hold all 50 MB."""
    errors = [str(r.error) for r in results if r.error]
    if len(results) != NUM_TRIALS or errors:
        raise SystemExit(f"BENCH_FAILED trials={len(results)} errors={errors}")
    for result in results:
        kept = len(result.best_checkpoints)
        if kept != CHECKPOINTS_PER_TRIAL or result.checkpoint is None:
            raise SystemExit(f"BENCH_FAILED {result.path}: {kept} checkpoints")
        with result.checkpoint.as_directory() as folder:
            size = os.path.getsize(os.path.join(folder, FILE_NAME))
        if size != CHECKPOINT_BYTES:
            raise SystemExit(f"BENCH_FAILED {result.checkpoint}: {size} bytes")


def measure_floor(run_id: str) -> float:
    """Seconds for a plain fsspec put of the same 1000 MB to the same storage."""
    import fsspec

    source = tempfile.mkdtemp(prefix="bench-floor-src-")
    local_target = tempfile.mkdtemp(prefix="bench-floor-dst-")
    try:
        for trial in range(NUM_TRIALS):
            blob = os.urandom(CHECKPOINT_BYTES)
            for step in range(CHECKPOINTS_PER_TRIAL):
                folder = os.path.join(source, f"trial_{trial}", f"checkpoint_{step}")
                os.makedirs(folder)
                with open(os.path.join(folder, FILE_NAME), "wb") as f:
                    f.write(blob)
        if TARGET == "s3":
            fs = fsspec.filesystem("s3", skip_instance_cache=True)
            target = f"{os.environ['BENCH_S3_BUCKET']}/floor-{run_id}/"
        else:
            fs = fsspec.filesystem("file")
            target = local_target + "/"
        os.sync()  # the fit's and the source's writeback must not land in here
        started = time.perf_counter()
        fs.put(source + "/", target, recursive=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(local_target, ignore_errors=True)


def main() -> None:
    run_id = os.environ.get("BENCH_RUN_ID") or uuid.uuid4().hex[:12]
    tuner = Tuner(
        tune.with_resources(save_checkpoints, {"cpu": 1}),
        param_space={"trial": tune.grid_search(list(range(NUM_TRIALS)))},
        run_config=tune.RunConfig(
            storage_path=storage_path(run_id),
            name="bench_checkpoints",
            verbose=0,
        ),
    )
    started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - started
    check(results)
    fit_rate = TOTAL_MB / fit_s
    print(f"fit {fit_s:.2f} s for {TOTAL_MB:.0f} MB to {TARGET}")
    print(f"BENCH_METRIC fit_mb_s={fit_rate:.1f} MB/s")
    if OURS:
        floor_s = measure_floor(run_id)
        floor_rate = TOTAL_MB / floor_s
        print(f"plain fsspec put: {floor_s:.2f} s")
        print(f"BENCH_METRIC floor_mb_s={floor_rate:.1f} MB/s")
        pct = 100 * fit_rate / floor_rate
        print(f"BENCH_METRIC fit_vs_floor_pct={pct:.0f} % higher")
    print(f"BENCH_OK trials={len(results)} mb={TOTAL_MB:.0f}")


if __name__ == "__main__":
    sys.exit(main())
