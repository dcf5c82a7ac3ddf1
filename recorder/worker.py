"""worker: finalize a recording in a child process with a bounded CPU share.

``python -m recorder.worker <directory> [--nice N]`` lowers its own priority (``os.nice``), runs
``recorder.archive.finalize`` single-threaded (so it uses at most one core, and only what the live rooms
leave over) and prints one JSON object per line on stdout: ``{"progress": 0..100}`` while working, then
``{"result": {...}}`` or ``{"error": "..."}`` (exit status 1). ``run_worker`` starts it from the server and
reports progress through a callback. One worker at a time finalizes a recording (a lock file in its directory);
a worker that finds it finished meanwhile reports the result at once. ``--keep-segments`` keeps the segments of a
recording the meeting may still continue; ``release`` removes them later, under the same lock.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO

log = logging.getLogger("taphuan.recorder")
LOCK_FILE = ".finalizing.lock"


def progress_printer() -> Callable[[float], None]:
    """progress_printer: a callback printing ``{"progress": 0..100}`` on stdout each time the percent changes (what
    the worker processes tell their server: ``run_worker`` here, ``server.live.broadcast`` for ``recorder.vod``)."""
    last = -1

    def progress(fraction: float) -> None:
        nonlocal last
        percent = int(fraction * 100)
        if percent != last:
            last = percent
            print(json.dumps({"progress": percent}), flush=True)

    return progress


class WorkerError(Exception):
    """WorkerError: the worker failed; the message is its reason (shown to operators)."""


async def run_worker(directory: Path, nice: int, on_progress: Callable[[int], None] | None = None,
                     on_lecture: Callable[[dict[str, object]], None] | None = None,
                     keep_segments: bool = False) -> dict[str, object]:
    """run_worker finalizes `directory` in a child process; returns the result dict (raises WorkerError).

    `on_lecture(result)` is called as soon as the lecture file is ready (the originals follow). With
    `keep_segments` the segments stay (the recording may still be continued; ``release`` removes them).
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "recorder.worker", str(directory), "--nice", str(nice),
        *(["--keep-segments"] if keep_segments else []),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    result: dict[str, object] | None = None
    error = ""
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    try:
        async for raw in proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if "progress" in line and on_progress is not None:
                on_progress(int(line["progress"]))
            elif "result" in line:
                result = line["result"]
                if on_lecture is not None:
                    on_lecture(dict(line["result"]))
            elif "originals" in line and result is not None:
                result["originals"] = line["originals"]
            elif "error" in line:
                error = str(line["error"])
        await proc.wait()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        stderr = (await stderr_task).decode(errors="replace").strip()
    if result is None or proc.returncode != 0:
        if stderr:
            log.warning("recorder worker for %s: %s", directory, stderr[-2000:])
        raise WorkerError(error or f"worker exited with status {proc.returncode}")
    return result


def main(argv: list[str] | None = None) -> int:
    """main: the worker's entry point (see the module doc)."""
    parser = argparse.ArgumentParser(prog="recorder.worker")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--keep-segments", action="store_true")
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    import av

    from recorder.archive import FinalizeError, FinalResult, finalize, read_result
    from recorder.writer import segment_paths

    av.logging.set_level(av.logging.ERROR)
    lock = _lock(args.directory)  # one worker per recording: a server's and one left running by the last one
    done = read_result(args.directory)
    segments_left = segment_paths(args.directory, "program-video")
    if done is not None and (args.directory / done.file).exists() and not segments_left:
        print(json.dumps({"result": asdict(done)}, ensure_ascii=False), flush=True)  # finished meanwhile
        print(json.dumps({"originals": done.originals}, ensure_ascii=False), flush=True)
        return 0
    progress = progress_printer()

    def lecture(result: FinalResult) -> None:
        print(json.dumps({"result": asdict(result)}, ensure_ascii=False), flush=True)

    try:
        result = finalize(args.directory, progress, keep_segments=args.keep_segments, on_lecture=lecture)
    except FinalizeError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    except Exception as exc:  # reported to the server, which marks the recording failed
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        raise
    print(json.dumps({"originals": result.originals}, ensure_ascii=False), flush=True)
    lock.close()
    return 0


def release(directory: Path) -> None:
    """release removes the segments a finalized recording kept for a continuation that will not come, once no
    worker finalizes it (blocking: run it in a thread)."""
    from recorder.archive import remove_segments

    with _lock(directory):
        remove_segments(directory)


def _lock(directory: Path) -> IO[bytes]:
    """_lock waits for, then holds (until the process ends), the recording's finalizing lock: two workers on one
    recording (a server's and the one the previous server left finishing at its shutdown) take turns."""
    handle = open(directory / LOCK_FILE, "ab")  # noqa: SIM115 (held for the process's life)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


if __name__ == "__main__":
    sys.exit(main())
