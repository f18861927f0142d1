"""The Streamlit app (``streamlit run stream_app/ui/app.py``): Live, Replay and Images pages.

Pages are thin: processing goes through the mode registry, :mod:`stream_app.pipeline`, :mod:`stream_app.annotators`
and :mod:`stream_app.sinks`; the thread-safe plumbing for the WebRTC callback is in :mod:`stream_app.ui.channel`.
"""
