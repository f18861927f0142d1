"""aiortc's video receive path, adapted so that camera frames are dropped, not queued, when the server is short of CPU.

Why an adapter: with two or three live sessions on 2 cores, camera frames reached streamlit-webrtc's callback 3-40 s
late and streams ended. Measured inside the server (``scripts/live_sessions.py``), the frames were already that late
when their RTP packets reached aiortc's receiver; the decoder's input queue and the track's queue were empty. Three
parts of aiortc 1.16.0 (``constraints.txt``) made that delay and kept it:

* **Its bandwidth estimate mistakes the server's own CPU delay for a congested network.** aiortc stamps a packet's
  arrival when its event loop gets to it; with the loop late, the estimate it sends the browser (REMB) fell to
  28-224 kbps. Chromium then sent 320x240 video at one packet a frame, and each key frame took seconds to pace out.
  :class:`FlooredBitrateEstimator` never reports less than :data:`MIN_REMB_BPS` (the browser still lowers its rate
  on packet loss: REMB is only an upper bound in its congestion control).
* **A lost packet stalls the stream until 512 packets have come.** ``JitterBuffer._remove_frame`` hands out frames
  only up to the first missing packet, and the video buffer gives up on it only when it overflows (512 packets; then
  it drops and asks for a key frame). At one or two packets a frame, that is 8-17 s of video.
  :class:`NewestFirstJitterBuffer` waits at most :data:`MAX_WAIT_S` of video for a lost packet, then drops the
  frames it held up (counted) and asks for a key frame (aiortc's own overflow path, PLI).
* **It hands out one frame per incoming packet.** ``RTCRtpReceiver._handle_rtp_packet`` decodes at most the one frame
  ``JitterBuffer.add`` returns, so after a stall the backlog drains by (packets per frame - 1) frames per frame: never
  at one packet a frame (aiortc issue 543 shows the same for audio). :class:`_DecoderInput` queues every complete
  frame at once; all are decoded (frames refer to the ones before) and the camera's one-frame slot
  (``stream_app.ui.relay``) keeps the newest and counts the others as dropped.

Also, aioice's queue of received datagrams (:class:`FreshDatagrams`) drops an RTP datagram that waited more than
:data:`MAX_QUEUED_S` for the event loop while newer ones wait; measured, it rarely fills (datagrams mostly wait in the
kernel's socket buffer, where Python cannot see their age). Frames dropped in the jitter buffer are noted on the next
decoded camera frame (``opaque``: :class:`stream_app.ui.relay.CameraSkipped`), so the panel's "frames dropped" counts
them.

Also, aiortc's decoder and encoder threads and streamlit-webrtc's frame-callback threads run at :data:`MEDIA_NICE`
(:func:`_install_media_nice`): the event loop's thread reads every datagram and sends every packet, and with two
sessions on 2 cores it waited 2-3 times as long for a CPU as it ran, while datagrams waited in the kernel.

:func:`install` (``stream_app.ui.webrtc_view`` calls it once per process) wraps ``RTCRtpReceiver.__init__`` and
``receive`` and ``aioice.Connection.__init__``; the hooks are private names of aiortc 1.16.0 / aioice 0.13.0
(``RTCRtpReceiver.__jitter_buffer``, ``__decoder_queue``, ``__timestamp_mapper``, ``__remote_bitrate_estimator``,
``JitterBuffer._packets/_origin/_capacity/_remove_frame``, ``Connection._queue``). :func:`install` checks them on a
real receiver and refuses, with an error in the log, when one is missing, and ``tests/test_live_receiver.py`` fails
on another aiortc version, so an upgrade cannot silently bring the queues back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref

from stream_app.live import nice_this_thread

log = logging.getLogger(__name__)

TESTED_AIORTC = "1.16.0"
TESTED_AIOICE = "0.13.0"
MAX_QUEUED_S = 0.25  # how long a received RTP datagram may wait for the WebRTC event loop before it is dropped
MAX_WAIT_S = 0.2  # how long (in video time) a frame with a lost packet may hold up the frames after it
MIN_REMB_BPS = 500_000  # the least bit rate the receiver's REMB tells the browser (its loss-based control stays)
_CLOCK = 90000  # video RTP clock rate (Hz)
MEDIA_NICE = 2  # decoder, encoder and frame-callback threads: below the event loop (0), above the analysis (+5)
STALE_RESTART = 10  # this many packets in a row older than the buffer's start: a restarted sender, start over
_MARK = "_stream_app_newest_first"


def _ts_diff(newer: int, older: int) -> int:
    """``newer - older`` for 32-bit RTP timestamps, negative if ``newer`` is older."""
    d = (newer - older) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


def _is_rtp(data) -> bool:
    """An RTP (not RTCP, DTLS or STUN) datagram (RFC 7983 / RFC 5761 demultiplexing)."""
    return isinstance(data, (bytes, bytearray)) and len(data) > 1 and 128 <= data[0] < 192 \
        and not 192 <= data[1] <= 223


class FreshDatagrams(asyncio.Queue):
    """aioice's queue of received datagrams, which the DTLS transport's loop reads one by one: an RTP datagram that
    waited more than ``max_age_s`` while newer ones wait behind it is dropped (counted in ``dropped``); everything
    else (RTCP, DTLS, the end-of-connection marker) is kept. The jitter buffer then sees a hole, skips it
    (:class:`NewestFirstJitterBuffer`) and asks for a key frame."""

    def __init__(self, max_age_s: float = MAX_QUEUED_S, clock=time.monotonic) -> None:
        super().__init__()
        self.max_age_s = max_age_s
        self.clock = clock
        self.dropped = 0

    def _put(self, item) -> None:
        self._queue.append((self.clock(), item))

    def _get(self):
        while True:
            put_at, item = self._queue.popleft()
            if not self._queue or item is None or not _is_rtp(item[0]) or self.clock() - put_at <= self.max_age_s:
                return item
            self.dropped += 1


def _jitter_buffer_class():
    from aiortc.jitterbuffer import JitterBuffer, JitterFrame
    from aiortc.utils import uint16_add

    class NewestFirstJitterBuffer(JitterBuffer):
        """aiortc's video ``JitterBuffer`` that waits for a lost packet at most ``max_wait_s`` of video, and hands
        out every complete frame (:meth:`complete_frames`), not one per incoming packet."""

        def __init__(self, capacity: int = 512, max_wait_s: float = MAX_WAIT_S) -> None:
            super().__init__(capacity=capacity, is_video=True)
            self.max_wait = round(max_wait_s * _CLOCK)
            self.skipped = 0  # frames dropped since the last frame handed out (read by _DecoderInput)
            self.skipped_total = 0
            self._ready: list = []  # complete frames found while skipping a gap, handed out next
            self._stale = 0  # packets in a row older than the buffer's start

        def add(self, packet):
            if self._origin is not None:
                behind = uint16_add(self._origin, -packet.sequence_number)
                if 0 < behind < 0x8000:  # older than the buffer's start: a resend that came after its frame was gone
                    self._stale += 1
                    if self._stale < STALE_RESTART:
                        return False, None
                    # aiortc restarts the buffer at a packet >= 100 older (a sender that restarted its sequence);
                    # a lone late resend must not do that: frames older than those handed out would follow
            self._stale = 0
            pli_flag, frame = super().add(packet)
            if frame is None and self._held_too_long(packet):
                self._ready.extend(self._skip_gap())
                pli_flag = True  # the frames after a loss refer to it: ask the browser for a key frame
                frames = self.complete_frames()
                frame, self._ready = (frames[0], frames[1:]) if frames else (None, [])
            return pli_flag, frame

        def complete_frames(self) -> list:
            """Every frame complete now, oldest first (each one ``add`` would hand out on a later packet)."""
            frames, self._ready = self._ready, []
            while (frame := self._remove_frame(0)) is not None:
                frames.append(frame)
            return frames

        def _slot(self, count: int = 0):
            return self._packets[uint16_add(self._origin, count) % self._capacity]

        def _held_too_long(self, packet) -> bool:
            """A packet is missing before ``packet``, and ``packet`` is more than ``max_wait`` of video newer than
            the oldest buffered packet's frame."""
            if self._origin is None:
                return False
            delta = uint16_add(packet.sequence_number, -self._origin)
            if delta >= self._capacity:
                return False
            oldest = hole = None
            for count in range(delta):
                slot = self._slot(count)
                if slot is None:
                    hole = count if hole is None else hole
                elif oldest is None:
                    oldest = slot.timestamp
            if hole is None or oldest is None:  # no hole, or nothing buffered before this packet yet
                return False
            return _ts_diff(packet.timestamp, oldest) > self.max_wait

        def _drop(self) -> None:
            self._packets[self._origin % self._capacity] = None
            self._origin = uint16_add(self._origin, 1)

        def _skip_gap(self) -> list:
            """Drop the packets before the first hole unless they end a frame (RTP marker bit: then that frame is
            complete and returned), the hole, and the frame right after it (it may be missing its start); count the
            frames dropped."""
            run = []
            budget = self._capacity
            while budget and self._slot() is not None:
                run.append(self._slot())
                self._drop()
                budget -= 1
            while budget and self._slot() is None:
                self._drop()
                budget -= 1
            dropped = set()
            first = self._slot()
            while budget and first is not None and self._slot() is not None \
                    and self._slot().timestamp == first.timestamp:
                dropped.add(first.timestamp)
                self._drop()
                budget -= 1
            complete = []
            for packet in run:  # contiguous: frames in order, each one's packets together
                if complete and complete[-1][0] == packet.timestamp:
                    complete[-1][1].append(packet)
                else:
                    complete.append((packet.timestamp, [packet]))
            if run and not run[-1].marker:  # the last frame before the hole lost its end
                dropped.add(complete.pop()[0])
            self.skipped += len(dropped)
            self.skipped_total += len(dropped)
            log.debug("jitter buffer: %d frame(s) held up by a lost packet dropped", len(dropped))
            return [JitterFrame(data=b"".join(p._data for p in packets), timestamp=ts) for ts, packets in complete]

    return NewestFirstJitterBuffer


def _estimator_class():
    from aiortc.rate import RemoteBitrateEstimator

    class FlooredBitrateEstimator(RemoteBitrateEstimator):
        """aiortc's receive-side bandwidth estimate (sent to the browser as REMB), never below ``floor_bps``.

        aiortc stamps a packet's arrival when its event loop gets to it, not when the network delivers it; when the
        server's CPU is short, the loop's own delay looks like a congested network, and the estimate fell to 28-224
        kbps with two or three sessions on 2 cores. Chromium then sent 320x240 video, one packet a frame, and each key
        frame took seconds to pace out at that rate. The browser still lowers its rate on packet loss (REMB is only
        an upper bound in its congestion control)."""

        def __init__(self, floor_bps: int = MIN_REMB_BPS) -> None:
            super().__init__()
            self.floor_bps = floor_bps

        def add(self, *args, **kwargs):
            result = super().add(*args, **kwargs)
            if result is not None and result[0] < self.floor_bps:
                result = (self.floor_bps, result[1])
            return result

    return FlooredBitrateEstimator


class _DecoderInput(queue.Queue):
    """The receiver's decoder input queue: each frame put brings every other complete frame of the jitter buffer
    with it (timestamps mapped as the receiver maps them), and the number of frames the jitter buffer dropped before
    it is noted for the camera track (``skips``: mapped timestamp -> frames dropped before that frame)."""

    def __init__(self, receiver) -> None:
        super().__init__()
        self._receiver = weakref.ref(receiver)
        self.skips: dict[int, int] = {}

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        receiver = self._receiver()
        if item is None or receiver is None:
            super().put(item, block, timeout)
            return
        codec, frame = item
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        self._note_skipped(buffer, frame)
        super().put(item, block, timeout)
        mapper = receiver._RTCRtpReceiver__timestamp_mapper
        for later in buffer.complete_frames():
            later.timestamp = mapper.map(later.timestamp)
            self._note_skipped(buffer, later)
            super().put((codec, later), block, timeout)

    def _note_skipped(self, buffer, frame) -> None:
        if getattr(buffer, "skipped", 0):
            self.skips[frame.timestamp] = self.skips.get(frame.timestamp, 0) + buffer.skipped
            buffer.skipped = 0
            if len(self.skips) > 256:  # frames that never came out of the decoder
                for key in list(self.skips)[:128]:
                    del self.skips[key]

    def take_skips(self, pts) -> int:
        return self.skips.pop(pts, 0) if pts is not None and self.skips else 0


def _wrap_track(receiver) -> None:
    """The receiver's camera track notes, on each frame, how many frames the jitter buffer dropped before it."""
    from stream_app.ui.relay import CameraSkipped

    track = receiver._track
    if track is None or getattr(track, _MARK, False):
        return
    inputs = receiver._RTCRtpReceiver__decoder_queue
    original = track.recv

    async def recv():
        frame = await original()
        skipped = inputs.take_skips(getattr(frame, "pts", None))
        if skipped:
            frame.opaque = CameraSkipped(skipped + int(getattr(frame, "opaque", None) or 0))
        return frame

    track.recv = recv
    setattr(track, _MARK, True)


def adapt(receiver) -> bool:
    """Give a video ``RTCRtpReceiver`` (not started yet) the jitter buffer and decoder input above. ``False`` (and
    the receiver left as aiortc made it) for audio."""
    if getattr(receiver, "_RTCRtpReceiver__kind", None) != "video":
        return False
    receiver._RTCRtpReceiver__jitter_buffer = _jitter_buffer_class()()
    receiver._RTCRtpReceiver__decoder_queue = _DecoderInput(receiver)
    receiver._RTCRtpReceiver__remote_bitrate_estimator = _estimator_class()()
    return True


_HOOKS = ("_RTCRtpReceiver__jitter_buffer", "_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__timestamp_mapper",
          "_RTCRtpReceiver__decoder_thread", "_RTCRtpReceiver__kind", "_RTCRtpReceiver__remote_bitrate_estimator")


def _check_hooks() -> str | None:
    """What is missing from aiortc for this adapter, or None."""
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    for name in ("_packets", "_origin", "_capacity"):
        if name not in vars(JitterBuffer(capacity=4, is_video=True)):
            return f"JitterBuffer.{name}"
    if not callable(getattr(JitterBuffer, "_remove_frame", None)):
        return "JitterBuffer._remove_frame"

    class _Transport:  # RTCRtpReceiver only reads .state in __init__ (its asyncio.Events need no loop yet)
        state = "new"

    probe = RTCRtpReceiver("video", _Transport())
    for name in _HOOKS:
        if not hasattr(probe, name):
            return f"RTCRtpReceiver.{name}"
    if not isinstance(probe._RTCRtpReceiver__decoder_queue, queue.Queue):
        return "RTCRtpReceiver.__decoder_queue as a queue.Queue"
    return None


def install() -> bool:
    """Make every video ``RTCRtpReceiver`` made from now on use the adapter (idempotent). ``False``, with an error in
    the log, when this aiortc lacks a hook (frames may then queue in its jitter buffer again)."""
    import aiortc
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    if getattr(RTCRtpReceiver.__init__, _MARK, False):
        return True
    version = getattr(aiortc, "__version__", "?")
    missing = _check_hooks()
    if missing is not None:
        log.error("aiortc %s has no %s (tested with %s): camera frames may wait seconds in its jitter buffer",
                  version, missing, TESTED_AIORTC)
        return False
    if version != TESTED_AIORTC:
        log.warning("aiortc %s, the receive adapter was tested with %s", version, TESTED_AIORTC)
    original_init = RTCRtpReceiver.__init__
    original_receive = RTCRtpReceiver.receive

    def __init__(self, kind, transport) -> None:
        original_init(self, kind, transport)
        adapt(self)

    async def receive(self, parameters) -> None:
        await original_receive(self, parameters)
        if isinstance(getattr(self, "_RTCRtpReceiver__decoder_queue", None), _DecoderInput):
            _wrap_track(self)

    setattr(__init__, _MARK, True)
    __init__.__wrapped__ = original_init
    receive.__wrapped__ = original_receive
    RTCRtpReceiver.__init__ = __init__
    RTCRtpReceiver.receive = receive
    _install_aioice()
    _install_media_nice()
    log.info("aiortc %s: video receivers hand out complete frames at once and wait <= %.1f s for a lost packet",
             version, MAX_WAIT_S)
    return True


_NICED = threading.local()


def _nice_this_thread(step: int = MEDIA_NICE) -> None:
    """This thread ``step`` nicer than it is, once per thread (the encoder's executor threads call it per frame)."""
    if getattr(_NICED, "done", False):
        return
    _NICED.done = True
    nice_this_thread(step)


def _install_media_nice() -> None:
    """aiortc's decoder threads, its encoders (run in the event loop's executor) and streamlit-webrtc's frame-callback
    threads run at :data:`MEDIA_NICE`: the event loop's thread, which reads every datagram (one per socket per turn
    of the loop) and sends every packet, gets a CPU first. Measured with two sessions, that thread waited 2-3 times as
    long for a CPU as it ran."""
    import aiortc.rtcrtpreceiver as rr
    from aiortc.codecs import h264, vpx
    from streamlit_webrtc.process import AsyncMediaProcessTrack

    if getattr(rr.decoder_worker, _MARK, False):
        return
    decoder_worker = rr.decoder_worker

    def niced_decoder_worker(*args, **kwargs):
        _nice_this_thread()
        return decoder_worker(*args, **kwargs)

    setattr(niced_decoder_worker, _MARK, True)
    rr.decoder_worker = niced_decoder_worker
    for cls in (vpx.Vp8Encoder, h264.H264Encoder):
        encode = cls.encode

        def niced_encode(self, *args, _encode=encode, **kwargs):
            _nice_this_thread()
            return _encode(self, *args, **kwargs)

        cls.encode = niced_encode
    run_worker = AsyncMediaProcessTrack._run_worker_thread

    def niced_run_worker(self):
        _nice_this_thread()
        return run_worker(self)

    AsyncMediaProcessTrack._run_worker_thread = niced_run_worker


def _install_aioice() -> bool:
    """Every aioice ``Connection`` made from now on queues received datagrams in a :class:`FreshDatagrams`."""
    import aioice
    from aioice.ice import Connection

    if getattr(Connection.__init__, _MARK, False):
        return True
    original = Connection.__init__

    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if type(getattr(self, "_queue", None)) is asyncio.Queue and self._queue.empty():
            self._queue = FreshDatagrams()
        else:
            log.error("aioice %s: Connection._queue is not an empty asyncio.Queue (tested with %s); received "
                      "datagrams may queue for seconds", getattr(aioice, "__version__", "?"), TESTED_AIOICE)

    setattr(__init__, _MARK, True)
    __init__.__wrapped__ = original
    Connection.__init__ = __init__
    return True


def uninstall() -> None:
    """aiortc's and aioice's own classes back (tests)."""
    from aioice.ice import Connection
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    if getattr(RTCRtpReceiver.__init__, _MARK, False):
        RTCRtpReceiver.__init__ = RTCRtpReceiver.__init__.__wrapped__
        RTCRtpReceiver.receive = RTCRtpReceiver.receive.__wrapped__
    if getattr(Connection.__init__, _MARK, False):
        Connection.__init__ = Connection.__init__.__wrapped__
