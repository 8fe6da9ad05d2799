"""Frame-level analysis shared by the workers and the CLI: what a frame *is* (language,
package/module, kind) independent of the agent that recorded it (see :mod:`.frames`)."""

from fleetprof.analysis.frames import KINDS, LANGUAGES, FrameClass, classify_frame, classify_frames

__all__ = ["KINDS", "LANGUAGES", "FrameClass", "classify_frame", "classify_frames"]
