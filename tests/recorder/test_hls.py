"""Tests of recorder/hls.py: the media and master playlists (window, discontinuities, ENDLIST), the rendition ladder,
the codec string of an init segment, and the MP4 box reader that cuts the muxer's output into segments."""

from __future__ import annotations

from pathlib import Path

from recorder.hls import (
    Rendition,
    Segment,
    _boxes,
    atomic_write,
    avc_codec,
    ladder,
    master_playlist,
    media_playlist,
)

R720 = Rendition("720p", 1280, 720, 1500)
R360 = Rendition("360p", 640, 360, 500)


def _segments(n: int, disc_at: int | None = None) -> list[Segment]:
    return [Segment(i, 2.0 * i, 2.0, 1_700_000_000.0 + 2 * i, i == disc_at) for i in range(n)]


def test_live_playlist_slides_and_the_ended_one_lists_everything() -> None:
    segments = _segments(10, disc_at=3)
    live = media_playlist(segments, 2, ended=False, window=6.0)
    assert live.splitlines()[:6] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2",
                                     "#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-DISCONTINUITY-SEQUENCE:1",
                                     "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert [line for line in live.splitlines() if line.startswith("seg")] == ["seg7.m4s", "seg8.m4s", "seg9.m4s"]
    assert "#EXT-X-ENDLIST" not in live and '#EXT-X-MAP:URI="init.mp4"' in live
    ended = media_playlist(segments, 2, ended=True, window=6.0)
    lines = ended.splitlines()
    assert [line for line in lines if line.startswith("seg")] == [f"seg{i}.m4s" for i in range(10)]
    assert lines[-1] == "#EXT-X-ENDLIST" and "#EXT-X-MEDIA-SEQUENCE:0" in lines
    assert lines.index("#EXT-X-DISCONTINUITY") < lines.index("seg3.m4s") and lines.count("#EXT-X-DISCONTINUITY") == 1
    assert lines[lines.index("seg0.m4s") - 2] == "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z"
    assert lines[lines.index("seg0.m4s") - 1] == "#EXTINF:2.000,"


def test_ladder_leaves_out_renditions_taller_than_the_source() -> None:
    assert ladder([R360, R720], 1080) == [R720, R360]
    assert ladder([R720, R360], 720) == [R720, R360]
    assert ladder([R720, R360], 480) == [R360]
    assert ladder([R720, R360], 240) == [R360]  # the smallest always stays
    assert ladder([R720, R360], None) == [R720, R360]


def test_master_playlist_and_codec_string() -> None:
    init = b"\x00\x00\x00\x10ftypiso6" + b"\x00\x00\x00\x20avcC\x01\x64\x00\x1f\xff" + b"\x00" * 20
    assert avc_codec(init) == "avc1.64001f"
    text = master_playlist([(R720, "avc1.64001f"), (R360, "avc1.64001e")], 25)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[3].startswith("#EXT-X-STREAM-INF:BANDWIDTH=")
    assert 'RESOLUTION=1280x720' in lines[3] and 'CODECS="avc1.64001f,mp4a.40.2"' in lines[3]
    assert lines[4] == "720p/index.m3u8" and lines[6] == "360p/index.m3u8"
    assert R720.bandwidth > 1_500_000 > R360.bandwidth > 500_000


def test_boxes_are_read_only_when_complete(tmp_path: Path) -> None:
    data = bytearray(b"\x00\x00\x00\x08moof" + b"\x00\x00\x00\x0cmdat1234" + b"\x00\x00\x00\x10mdat12")
    assert _boxes(data) == [(b"moof", 8), (b"mdat", 20)]  # the last one is not complete yet
    atomic_write(tmp_path / "a.m3u8", b"x")
    assert (tmp_path / "a.m3u8").read_bytes() == b"x" and not list(tmp_path.glob(".*"))
