"""How the leukocyte mode plugs into the app, the CLI and the bench."""

from stream_app.modes.base import ModeSpec
from stream_app.modes.leukocyte.processor import NOTICE, LeukocyteProcessor, LeukocyteSettings

SPEC = ModeSpec(
    name="leukocyte",
    title="Leukocytes",
    description="White blood cells boxed, tracked and counted once on a moving smear (Faster R-CNN, MobileNetV2).",
    processor_cls=LeukocyteProcessor,
    settings_cls=LeukocyteSettings,
    add_evaluate_args="stream_app.modes.leukocyte.evaluate:add_evaluate_args",
    evaluate="stream_app.modes.leukocyte.evaluate:evaluate",
    add_train_args="stream_app.modes.leukocyte.train:add_train_args",
    train="stream_app.modes.leukocyte.train:train",
    bench_frames="stream_app.modes.leukocyte.bench:bench_frames",
    bench_extra="stream_app.modes.leukocyte.bench:reference_timing",
    warm_up="stream_app.modes.leukocyte.processor:warm_up",
    follower="stream_app.modes.leukocyte.follow:follower",
    notice=NOTICE,
)
