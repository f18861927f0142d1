"""How the fingerspelling mode plugs into the app, the CLI and the bench."""

from stream_app.annotators import BoxAnnotator, CaptionAnnotator, StatusAnnotator, TopKAnnotator
from stream_app.modes.base import ModeSpec
from stream_app.modes.fingerspell.annotators import LandmarkAnnotator, LetterAnnotator
from stream_app.modes.fingerspell.processor import FingerspellProcessor, FingerspellSettings

SPEC = ModeSpec(
    name="fingerspell",
    title="Fingerspelling",
    description="ASL letters from the hand (MediaPipe landmarks + hand crop), spelled into text; J and Z from motion.",
    processor_cls=FingerspellProcessor,
    settings_cls=FingerspellSettings,
    add_evaluate_args="stream_app.modes.fingerspell.evaluate_videos:add_evaluate_args",  # evaluate's + --videos
    evaluate="stream_app.modes.fingerspell.evaluate_videos:run_evaluate",
    add_train_args="stream_app.modes.fingerspell.train:add_train_args",
    train="stream_app.modes.fingerspell.train:run_train",
    bench_frames="stream_app.modes.fingerspell.bench:bench_frames",
    bench_extra="stream_app.modes.fingerspell.bench:bench_extra",
    warm_up="stream_app.modes.fingerspell.processor:warm_up",
    annotators=(BoxAnnotator(), LandmarkAnnotator(), LetterAnnotator(), TopKAnnotator(), CaptionAnnotator(),
                StatusAnnotator()),
    counts_over_time=False,  # "hands: 1" over time says nothing; the letters and the text do (Replay shows them)
)
