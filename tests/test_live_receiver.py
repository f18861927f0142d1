"""aiortc's video receive path with the adapter of stream_app.ui.receiver: real VP8 frames (aiortc's encoder) as real
RTP packets into a real RTCRtpReceiver (jitter buffer, decoder thread, RemoteStreamTrack); only the DTLS transport
is a stand-in that records the RTCP the receiver sends. A lost packet holds the frames after it up for at most
MAX_WAIT_S of video (then they are dropped, counted on the next frame, and a key frame is asked for), and frames that
complete at once leave at once. aiortc's own receiver, for contrast, holds everything after a lost packet until 512
packets have come, and after a late packet hands the backlog out one frame per packet."""

from __future__ import annotations

import asyncio
import fractions
import re
from pathlib import Path

import aiortc
import av
import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from stream_app.ui import receiver as adapter
from stream_app.ui.relay import camera_frames_skipped

ROOT = Path(__file__).resolve().parents[1]
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
TICKS = 3000  # 30 fps at 90 kHz


class Transport:
    """Stands in for RTCDtlsTransport: what the receiver registers with, and where its RTCP goes."""

    state = "connected"

    def __init__(self) -> None:
        self.rtcp: list = []

    def _register_rtp_receiver(self, receiver, parameters) -> None:
        pass

    def _unregister_rtp_receiver(self, receiver) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        self.rtcp.extend(RtcpPacket.parse(data))


def vp8_packets(n: int) -> list[list[RtpPacket]]:
    """``n`` numbered 64x64 frames as VP8 RTP packets (each a key frame, so every one decodes alone), 30 fps."""
    encoder = Vp8Encoder()
    seq = 1000
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), (i * 4) % 256, np.uint8), format="rgb24")
        frame.pts, frame.time_base = i * TICKS, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=True)
        packets = []
        for k, payload in enumerate(payloads):
            packets.append(RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=5000 + i * TICKS,
                                     ssrc=1234, payload=payload, marker=int(k == len(payloads) - 1)))
            seq += 1
        out.append(packets)
    return out


async def receive(order: list[RtpPacket], settle: float = 1.5):
    """Feed ``order`` to a started video receiver; the frames its track gives (index, frames dropped before it) and
    the RTCP it sent."""
    transport = Transport()
    receiver = RTCRtpReceiver("video", transport)
    receiver._track = RemoteStreamTrack(kind="video")
    receiver._set_rtcp_ssrc(4321)
    await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8]))
    try:
        for packet in order:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        got = []
        while True:
            try:
                frame = await asyncio.wait_for(receiver.track.recv(), settle)
            except asyncio.TimeoutError:
                break
            got.append((frame.pts // TICKS, camera_frames_skipped(frame)))
        return got, transport.rtcp
    finally:
        await receiver.stop()


@pytest.fixture
def installed():
    assert adapter.install()
    yield
    adapter.uninstall()


def plis(rtcp) -> int:
    return sum(1 for p in rtcp if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI)


def test_aiortc_is_the_version_the_adapter_was_written_for():
    pinned = re.search(r"^aiortc==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert aiortc.__version__ == pinned == adapter.TESTED_AIORTC, (
        "aiortc changed: re-check stream_app/ui/receiver.py against its RTCRtpReceiver and JitterBuffer")
    assert adapter._check_hooks() is None


def test_a_lost_packet_holds_frames_up_for_at_most_max_wait_then_they_are_dropped_counted_and_a_key_frame_asked(
        installed):
    frames = vp8_packets(60)
    assert all(len(p) == 1 for p in frames)  # one packet a frame: the low-bit-rate case
    order = [p for i, packets in enumerate(frames) for p in packets if i != 10]  # frame 10's packet never comes
    got, rtcp = asyncio.run(receive(order))
    indices = [i for i, _ in got]
    assert indices == sorted(indices)
    assert indices[:10] == list(range(10))
    assert 10 not in indices
    # frame 9 is complete (its packet has the marker bit) but only leaves when the frames after the hole stop
    # waiting, MAX_WAIT_S (6 frames) later; frame 11, right after the hole, could have lost its start: dropped
    assert indices[10:] == list(range(12, 59))  # all the rest (59 waits for a next frame)
    assert sum(skipped for _, skipped in got) == 1  # frame 11, counted (frame 10 never came)
    assert plis(rtcp) >= 1


def test_aiortc_alone_holds_every_frame_after_a_lost_packet():
    frames = vp8_packets(60)
    order = [p for i, packets in enumerate(frames) for p in packets if i != 10]
    got, _ = asyncio.run(receive(order, settle=1.0))
    # frame 9 and the 48 frames after the loss wait for 512 packets (or for the lost one)
    assert [i for i, _ in got] == list(range(9))


def test_frames_completed_by_a_late_packet_leave_at_once(installed):
    frames = vp8_packets(40)
    late = frames[10][0]
    order = [p for i, packets in enumerate(frames) for p in packets if i != 10]
    order.insert(order.index(frames[14][0]) + 1, late)  # resent after frame 14: within MAX_WAIT_S
    got, _ = asyncio.run(receive(order))
    assert [i for i, _ in got] == list(range(39))  # none dropped, none left behind (39 waits for a next frame)
    assert all(skipped == 0 for _, skipped in got)


def test_aiortc_alone_hands_a_backlog_out_one_frame_per_packet():
    frames = vp8_packets(40)
    late = frames[10][0]
    order = [p for i, packets in enumerate(frames) for p in packets if i != 10]
    order.insert(order.index(frames[14][0]) + 1, late)
    got, _ = asyncio.run(receive(order, settle=1.0))
    assert [i for i, _ in got] == list(range(35))  # frames 35-38 stay in its buffer: 4 frames behind for good


def test_rtp_datagrams_that_waited_too_long_for_the_event_loop_are_dropped_the_rest_kept(installed):
    from aioice.ice import Connection

    async def run():
        connection = Connection(ice_controlling=True)  # a real aioice connection: its queue of received datagrams
        queue = connection._queue
        assert isinstance(queue, adapter.FreshDatagrams)
        queue.max_age_s = 0.05
        rtp = [RtpPacket(payload_type=96, sequence_number=i, timestamp=i * TICKS, ssrc=1, payload=b"x").serialize()
               for i in range(5)]
        rtcp = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2))
        for data in rtp[:3]:
            connection.data_received(data, 1)  # what aioice's protocol calls for each datagram
        await asyncio.sleep(0.1)  # an event loop busy for 0.1 s: those three are stale now
        for data in (rtcp, rtp[3], rtp[4]):
            connection.data_received(data, 1)
        got = [(await queue.get())[0] for _ in range(3)]
        await connection.close()
        return got, queue.dropped

    got, dropped = asyncio.run(run())
    assert got == [bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=2)), *got[1:]]
    assert [RtpPacket.parse(d).sequence_number for d in got[1:]] == [3, 4]
    assert dropped == 3


def _estimates(estimator) -> list[int]:
    """REMB values from ``estimator`` for 30 packets a second (1200 bytes) that the receiver's event loop, after 100
    of them, gets to one in three (the arrival it stamps is when it gets to a packet)."""
    out = []
    for i in range(600):
        sent_ms = i * 33
        delay = 0 if i < 100 else (i - 100) * 66
        result = estimator.add(arrival_time_ms=1000 + sent_ms + delay, abs_send_time=int(sent_ms / 1000 * (1 << 18))
                               & 0xFFFFFF, payload_size=1200, ssrc=1)
        if result is not None:
            out.append(result[0])
    return out


def test_a_busy_event_loop_does_not_talk_the_browser_down_below_the_floor(installed):
    from aiortc.rate import RemoteBitrateEstimator

    assert min(_estimates(RemoteBitrateEstimator())) < adapter.MIN_REMB_BPS / 4  # aiortc alone: a few tens of kbps
    transport = Transport()

    async def make():
        return RTCRtpReceiver("video", transport)

    receiver = asyncio.run(make())  # a real receiver, as install() leaves it
    estimates = _estimates(receiver._RTCRtpReceiver__remote_bitrate_estimator)
    assert estimates and min(estimates) == adapter.MIN_REMB_BPS


def test_a_resend_that_comes_after_its_frame_was_dropped_does_not_take_the_stream_back(installed):
    frames = vp8_packets(200)
    order = [p for i, packets in enumerate(frames) for p in packets if i != 10]
    order.insert(order.index(frames[150][0]), frames[10][0])  # resent 140 frames (packets) late
    got, _ = asyncio.run(receive(order))
    indices = [i for i, _ in got]
    assert indices == sorted(indices) and 10 not in indices  # aiortc would start over at it: older frames again
    assert indices[-1] == 198
