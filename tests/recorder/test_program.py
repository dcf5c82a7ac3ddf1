"""Tests of recorder/program.py: a continuous output timeline whatever the pictures do (a source with no picture
for a while, a change of source and of picture size), letterboxing, aligned renditions, and a second run of the same
recording appended behind a discontinuity; with low latency, parts listed before their segment is complete, never
longer than the part target, whose bytes make the segment and which play as they are (ffprobe)."""

from __future__ import annotations

from pathlib import Path

from recorder.hls import OutputOptions, Part, Rendition, listed_end, read_segments
from recorder.program import Program
from tests.recorder.hlsmedia import centre_colours, jumps, near, packet_times, picture, tone

RED, BLUE, BLACK = (76, 84, 255), (29, 255, 107), (16, 128, 128)
FPS = 10
R240 = Rendition("240p", 320, 240, 200)
R120 = Rendition("120p", 160, 120, 100)


def _run(directory: Path, start: float, end: float, colour: tuple[int, int, int], ended: bool,
         holes: tuple[float, float] | None = None) -> Program:
    program = Program(directory, OutputOptions(fps=FPS, segment_seconds=1.0, preset="ultrafast", wall0=1e9), start)
    program.begin(program.earlier_renditions() or [R240, R120])
    t = start
    while t < end:
        if holes is None or not holes[0] <= t < holes[1]:
            size = (320, 240) if t < (start + end) / 2 else (160, 160)  # a square picture later: letterboxed
            program.picture(t, picture(colour, size))
        program.sound_at(round(t * 48000), tone(4800, round(t * 48000)))
        t = round(t + 0.1, 6)
        program.advance(t - 0.3)
    program.finish(ended)
    return program


def test_output_is_continuous_with_a_picture_gap_and_renditions_align(tmp_path: Path) -> None:
    _run(tmp_path, 0.0, 4.0, RED, ended=True, holes=(1.0, 2.5))  # no picture for 1.5 s: the last one repeats
    for r in (R240, R120):
        index = tmp_path / "hls" / r.name / "index.m3u8"
        video = packet_times(index, "v:0")
        assert jumps([t for t, _k in video], 1 / FPS) == [] and len(video) == 40
        assert [round(t, 3) for t, key in video if key] == [0.0, 1.0, 2.0, 3.0]
        audio = [t for t, _k in packet_times(index, "a:0")]
        assert jumps(audio, 1024 / 48000) == [] and audio[0] == 0.0 and audio[-1] > 3.9
    assert [s.t for s in read_segments(tmp_path / "hls" / "240p")] == \
        [s.t for s in read_segments(tmp_path / "hls" / "120p")]
    colours = centre_colours(tmp_path / "hls" / "240p" / "index.m3u8")
    assert all(near(c, RED) for _t, c in colours)
    master = (tmp_path / "hls" / "master.m3u8").read_text()
    assert "RESOLUTION=320x240" in master and "RESOLUTION=160x120" in master


def test_letterbox_keeps_the_aspect(tmp_path: Path) -> None:
    _run(tmp_path, 0.0, 2.0, BLUE, ended=True)
    import av

    with av.open(str(tmp_path / "hls" / "240p" / "index.m3u8")) as container:
        frames = [f.to_ndarray() for f in container.decode(video=0)]
    last = frames[-1]  # a 160 × 160 picture in 320 × 240: black bars left and right
    assert last.shape == (360, 320)
    assert abs(int(last[:240, :30].mean()) - BLACK[0]) < 4 and abs(int(last[:240, 150:170].mean()) - BLUE[0]) < 8


def test_a_second_run_appends_behind_a_discontinuity(tmp_path: Path) -> None:
    _run(tmp_path, 0.0, 3.0, RED, ended=True)
    first = (tmp_path / "hls" / "240p" / "init.mp4").read_bytes()
    _run(tmp_path, 3.05, 5.0, BLUE, ended=True)  # the recording continued (the wait cut out)
    folder = tmp_path / "hls" / "240p"
    assert (folder / "init.mp4").read_bytes() == first and not (folder / "init2.mp4").exists()
    segments = read_segments(folder)
    assert [s.n for s in segments] == list(range(len(segments)))
    assert [s.discontinuity for s in segments].count(True) == 1
    text = (folder / "index.m3u8").read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.count("#EXT-X-ENDLIST") == 1
    times = [t for t, _k in packet_times(folder / "index.m3u8", "v:0")]
    assert jumps(times, 1 / FPS) == [(2.9, 3.1)]  # the second run starts on the next frame of the grid
    colours = centre_colours(folder / "index.m3u8")
    assert all(near(c, RED) for t, c in colours if t < 3.0) and all(near(c, BLUE) for t, c in colours if t > 3.0)


def test_a_run_after_a_worker_killed_between_two_renditions_keeps_them_on_one_timeline(tmp_path: Path) -> None:
    _run(tmp_path, 0.0, 3.0, RED, ended=False)
    small = tmp_path / "hls" / "120p" / "segments.jsonl"
    small.write_text("".join(small.read_text().splitlines(keepends=True)[:-1]))  # killed before its last line
    start = listed_end(tmp_path / "hls")  # the next worker starts where every rendition has its segments
    assert start == 2.0
    _run(tmp_path, start, 5.0, BLUE, ended=True)
    ends = []
    for r in (R240, R120):
        segments = read_segments(tmp_path / "hls" / r.name)
        index = tmp_path / "hls" / r.name / "index.m3u8"
        times = [t for t, _k in packet_times(index, "v:0")]
        assert jumps(times, 1 / FPS) == [], r  # no overlap, no hole
        ends.append([(s.t, s.duration) for s in segments])
    assert ends[0] == ends[1]
    folder = tmp_path / "hls" / "240p"
    killed = (folder / "seg2.m4s").read_bytes()
    segments = read_segments(folder)
    # the numbers go on in both renditions alike (a player switches renditions, and slides its window, by them)
    assert [s.n for s in segments] == [0, 1, 2, 3, 4] == [s.n for s in read_segments(tmp_path / "hls" / "120p")]
    # the killed run's seg2.m4s (a cache may hold it) is neither listed nor written again: this run's files are
    # its own, named with its tag
    assert (folder / "seg2.m4s").read_bytes() == killed and "seg2.m4s" not in (folder / "index.m3u8").read_text()
    assert segments[2].file.startswith("seg2-") and segments[2].file in (folder / "index.m3u8").read_text()
    assert all(s.file == f"seg{s.n}.m4s" for s in segments[:2])
    assert all((folder / s.file).exists() for s in segments)


def test_low_latency_lists_parts_as_they_are_made_and_the_segment_is_their_bytes(tmp_path: Path) -> None:
    options = OutputOptions(fps=FPS, segment_seconds=1.0, preset="ultrafast", wall0=1e9, low_latency=True)
    program = Program(tmp_path, options, 0.0)
    program.begin([R120])
    folder = tmp_path / "hls" / "120p"
    t, listed_open = 0.0, False
    while t < 3.0:
        program.picture(t, picture(RED, (160, 120)))
        program.sound_at(round(t * 48000), tone(4800, round(t * 48000)))
        t = round(t + 0.1, 6)
        program.advance(t - 0.3)
        text = (folder / "index.m3u8").read_text() if (folder / "index.m3u8").exists() else ""
        last = [line for line in text.splitlines() if line and not line.startswith("#EXT-X-PROGRAM")][-1:]
        listed_open = listed_open or (last != [] and last[0].startswith("#EXT-X-PART:"))  # before its segment
    assert listed_open, "a part was never listed before its segment was complete"
    live = (folder / "index.m3u8").read_text().splitlines()
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=3.000" in live
    assert "#EXT-X-PART-INF:PART-TARGET=0.500" in live
    parts = [line for line in live if line.startswith("#EXT-X-PART:")]
    assert parts[0] == '#EXT-X-PART:DURATION=0.500,URI="part0.0.m4s",INDEPENDENT=YES'
    durations = {line.split('URI="')[1].split('"')[0]: float(line.split("DURATION=")[1].split(",")[0])
                 for line in parts}
    assert all(0 < d <= 0.5 for d in durations.values())  # never past PART-TARGET (the muxer cuts by frames)
    program.finish(True)
    for s in read_segments(folder)[:-1]:  # (the last one also holds the sound after the last picture)
        names = sorted(folder.glob(f"part{s.n}.*.m4s"), key=lambda p: int(p.name.split(".")[1]))
        assert len(names) >= 2 and b"".join(p.read_bytes() for p in names) == (folder / f"seg{s.n}.m4s").read_bytes()
        if all(p.name in durations for p in names):  # listed: the parts' durations make the segment's
            assert abs(sum(durations[p.name] for p in names) - s.duration) < 1e-3
    # The parts play as they are (ffprobe): segment 1's video from its keyframe on, frame after frame.
    joined = tmp_path / "parts1.mp4"
    joined.write_bytes((folder / "init.mp4").read_bytes() + b"".join(
        p.read_bytes() for p in sorted(folder.glob("part1.*.m4s"), key=lambda p: int(p.name.split(".")[1]))))
    video = packet_times(joined, "v")
    assert video[0] == (1.0, True) and not any(key for _, key in video[1:])
    assert not jumps([t for t, _ in video], 1 / FPS) and len(video) == FPS
    ended = (folder / "index.m3u8").read_text()
    assert "#EXT-X-PART" not in ended and "SERVER-CONTROL" not in ended and ended.endswith("#EXT-X-ENDLIST\n")
    # A run killed in the middle of a segment left its parts (a cache may hold them): the next run goes on with the
    # next number, its files named with a tag of its own.
    n = read_segments(folder)[-1].n + 1
    (folder / f"part{n}.0.m4s").write_bytes(b"left by a killed worker")
    again = Program(tmp_path, options, listed_end(tmp_path / "hls"))
    again.begin([R120])
    assert again.outputs[0].next_n == n and again.outputs[0].tag.startswith("-")
    assert Part(n, 0, 0.5, again.outputs[0].tag).name != f"part{n}.0.m4s"
    # Off (the default): whole segments only, as standard HLS.
    plain = Program(tmp_path / "plain", OutputOptions(fps=FPS, segment_seconds=1.0, preset="ultrafast"), 0.0)
    plain.begin([R120])
    for i in range(20):
        plain.picture(i / 10, picture(RED, (160, 120)))
        plain.advance(i / 10)
    assert "#EXT-X-PART" not in (tmp_path / "plain" / "hls" / "120p" / "index.m3u8").read_text()
    assert not list((tmp_path / "plain" / "hls" / "120p").glob("part*"))
