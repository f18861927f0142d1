"""How the classify mode plugs into the app, the CLI and the bench."""

from stream_app.modes.base import ModeSpec
from stream_app.modes.classify.processor import ClassifyProcessor, ClassifySettings
from stream_app.modes.classify.report import NOTICE

SPEC = ModeSpec(
    name="classify",
    title="Image classification",
    description="Class probabilities for a whole image (default model: chest X-ray, normal vs pneumonia).",
    processor_cls=ClassifyProcessor,
    settings_cls=ClassifySettings,
    add_evaluate_args="stream_app.modes.classify.evaluate:add_evaluate_args",
    evaluate="stream_app.modes.classify.evaluate:run_evaluate",
    add_train_args="stream_app.modes.classify.train:add_train_args",
    train="stream_app.modes.classify.train:run_train",
    warm_up="stream_app.modes.classify.processor:warm_up",
    report="stream_app.modes.classify.report:render_report",
    notice=NOTICE,
)
