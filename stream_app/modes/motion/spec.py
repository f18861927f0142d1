"""How the motion mode plugs in: a processor and its settings; no model, so no train / evaluate hooks."""

from stream_app.modes.base import ModeSpec
from stream_app.modes.motion.processor import MotionProcessor, MotionSettings

SPEC = ModeSpec(
    name="motion",
    title="Motion",
    description="Boxes around moving things (background subtraction); no model needed.",
    processor_cls=MotionProcessor,
    settings_cls=MotionSettings,
)
