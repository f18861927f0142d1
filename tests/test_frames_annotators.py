"""Frame layout rules, the motion processor and the annotators, on generated frames."""

import numpy as np
import pytest

from stream_app.annotators import annotate, colour_for
from stream_app.errors import FrameError
from stream_app.frames import check_frame, fit_within, to_rgb8
from stream_app.modes import UnknownModeError, create_processor, get_mode, mode_names
from stream_app.modes.fingerspell.processor import FingerspellExtras
from stream_app.results import Detections, FrameResult
from stream_app.synthetic import moving_shapes


def test_check_frame_rejects_wrong_layouts():
    check_frame(np.zeros((4, 4, 3), np.uint8))
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                np.zeros((1, 4, 3), np.uint8), [[0, 0, 0]]):
        with pytest.raises(FrameError):
            check_frame(bad)


@pytest.mark.parametrize("image, expected_px", [
    (np.full((5, 7), 200, np.uint8), (200, 200, 200)),
    (np.full((5, 7, 1), 10, np.uint8), (10, 10, 10)),
    (np.dstack([np.full((5, 7), v, np.uint8) for v in (1, 2, 3, 255)]), (1, 2, 3)),
    (np.array([[0, 4095]], np.uint16).repeat(3, 0), (255, 255, 255)),
    (np.full((3, 3, 3), 0.5, np.float32), (127, 127, 127)),
])
def test_to_rgb8_converts_common_formats(image, expected_px):
    out = to_rgb8(image)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert tuple(int(v) for v in out[-1, -1]) == expected_px


def test_to_rgb8_rejects_empty_and_nan():
    with pytest.raises(FrameError):
        to_rgb8(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(FrameError):
        to_rgb8(np.full((3, 3), np.nan, np.float32))


def test_fit_within_downscales_long_side_only_when_needed():
    frame = np.zeros((2160, 3840, 3), np.uint8)
    small, scale = fit_within(frame, 640)
    assert small.shape == (360, 640, 3) and scale == pytest.approx(1 / 6)
    same, one = fit_within(small, 640)
    assert same is small and one == 1.0


def test_registry_finds_modes_by_name():
    assert "motion" in mode_names()
    assert get_mode("motion").name == "motion"
    with pytest.raises(UnknownModeError, match="available"):
        get_mode("no-such-mode")


def test_motion_boxes_the_moving_shapes_at_their_place():
    processor = create_processor("motion")
    frames = list(moving_shapes(40))
    results = [processor.process(f, i / 30) for i, f in enumerate(frames)]
    last = results[-1]
    assert last.counts["moving"] == len(last.detections) >= 2
    assert set(last.timings_ms) >= {"subtract", "boxes", "total"}
    # the red disc (240, 60, 60) is inside one of the boxes
    red = np.argwhere((frames[-1][:, :, 0] > 200) & (frames[-1][:, :, 1] < 100))
    cy, cx = red.mean(axis=0)
    assert any(d.box[0] <= cx <= d.box[2] and d.box[1] <= cy <= d.box[3] for d in last.detections)


def test_motion_reports_boxes_in_original_pixels_for_4k():
    processor = create_processor("motion", max_side=320)
    frames = list(moving_shapes(30, width=3840, height=2160))
    result = [processor.process(f, i / 30) for i, f in enumerate(frames)][-1]
    assert result.detections
    assert max(d.box[2] for d in result.detections) > 320  # not in the downscaled copy's coordinates


def test_process_safely_turns_a_bad_frame_into_an_error_result_and_goes_on():
    processor = create_processor("motion")
    bad = processor.process_safely(np.zeros((10, 10), np.uint8))
    assert bad.error and "HxWx3" in bad.error
    good = processor.process_safely(next(moving_shapes(1)))
    assert good.error is None


def test_annotate_draws_boxes_text_and_letter_without_touching_input():
    frame = np.zeros((240, 320, 3), np.uint8)
    result = FrameResult(mode="x", detections=Detections([(10, 20, 100, 120)], [0.9], ["WBC"], [3]),
                         top_k=[("A", 0.8), ("S", 0.1)], extras=FingerspellExtras(letter="A", letter_score=0.8,
                                                                                  text="HELLO"),
                         counts={"WBC": 1}, warning="no hand", timings_ms={"total": 5.0})
    out = annotate(frame, result)
    assert frame.max() == 0  # input untouched
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert tuple(out[70, 10]) == colour_for("WBC")  # left edge of the box
    assert out[200:, :160].max() > 0  # caption drawn along the bottom
    assert out[:, 240:].max() > 0  # letter / top-k drawn on the right


def test_result_json_has_the_documented_fields():
    record = FrameResult(mode="motion", detections=Detections([(1, 2, 3, 4)], [0.5], ["moving"])).to_json(7, 0.25)
    assert record["frame"] == 7 and record["time_s"] == 0.25 and record["mode"] == "motion"
    assert record["detections"] == [{"label": "moving", "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]}]
    assert record["letter"] is None and record["letter_score"] is None and record["text"] == ""
    assert record["counts"] == {} and record["timings_ms"] == {}


def test_detections_are_checked_when_made_and_filter_by_index():
    dets = Detections([(0, 0, 10, 10), (5, 5, 6, 8), (1, 2, 3, 4)], [0.9, 0.3, 0.6], ["WBC", "RBC", "WBC"], [4, None, 7])
    assert len(dets) == 3 and dets.boxes.shape == (3, 4) and dets.track_ids.tolist() == [4, -1, 7]
    wbc = dets[dets.labels == "WBC"]
    assert wbc.scores.tolist() == pytest.approx([0.9, 0.6]) and wbc.track_ids.tolist() == [4, 7]
    assert [d.track_id for d in dets] == [4, None, 7] and list(dets)[1].label == "RBC"
    assert dets[1].to_json() == [{"label": "RBC", "score": 0.3, "box": [5.0, 5.0, 6.0, 8.0]}]
    assert len(Detections.merge([dets, Detections.empty(), wbc])) == 5
    assert Detections.from_rows(list(dets)) == dets
    with pytest.raises(ValueError, match="scores has 1 entries for 2 boxes"):
        Detections([(0, 0, 1, 1), (0, 0, 2, 2)], [0.5], ["a", "b"])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Detections([(0, 0, 1)], [0.5], ["a"])
    with pytest.raises(ValueError, match="x1 <= x2"):
        Detections([(5, 0, 1, 1)], [0.5], ["a"])
    with pytest.raises(ValueError, match="NaN"):
        Detections([(0, 0, np.nan, 1)], [0.5], ["a"])
    with pytest.raises(AttributeError):
        dets.scores = np.zeros(3)
    with pytest.raises(ValueError):
        dets.scores[0] = 1.0  # the columns are read-only too


def test_each_mode_draws_with_the_annotators_its_spec_names():
    """Fingerspelling's spec adds the letter and the landmarks to the shared annotators; a result drawn with the
    shared set alone shows neither."""
    frame = np.zeros((240, 320, 3), np.uint8)
    points = [(40.0 + 4 * i, 60.0 + 3 * i) for i in range(21)]
    result = FrameResult(mode="fingerspell", extras=FingerspellExtras(letter="B", letter_score=0.9, landmarks=points))
    spec = get_mode("fingerspell")
    assert len(spec.annotators) > len(get_mode("motion").annotators)
    drawn, plain = spec.annotate(frame, result), annotate(frame, result)
    assert tuple(drawn[60, 40]) == (0, 255, 128) and plain.max() == 0  # a landmark dot; nothing in the shared set
    assert drawn[:60, 200:].max() > 0  # the letter, top right
