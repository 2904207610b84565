"""The GStreamer namespaces camd and playbackd use, with their Python wrappers made up front.

PyGObject makes a type's wrapper class lazily, at its first use, and that is not thread-safe: two
threads that first meet a type at once can each make a class, and the type's registered class and
the module's attribute may end up different ones. From then on every call passing such an object
fails, e.g. appsrc.set_caps(sample.get_caps()) in an encoder's streaming thread with "argument
caps: Expected Gst.Caps, but got gi.repository.Gst.Caps" (camd, under load in CI). Here 8 threads
reading Gst.Caps at once made two classes in 29 of 30 runs, and none once bound first.

bind() makes them all on the calling thread (~40 ms); call it after Gst.init() and before any
GStreamer thread can run Python code.
"""

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402,F401


def bind():
    for module in (Gst, GstApp, GstRtsp, GstRtspServer):
        for name in dir(module):
            getattr(module, name)
