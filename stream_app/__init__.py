"""stream_app: real-time video processing in the browser (fingerspelling, leukocyte detection, image classification).

Layers, each a module or package of its own:
sources (video files, images, WebRTC frames) -> processors (frame in, FrameResult out) -> annotators (draw a result)
-> sinks (annotated video, JSONL) -> ui (Streamlit pages) and cli (the same processors, no Streamlit).
"""

__version__ = "0.1.0"
