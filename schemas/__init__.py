"""Event models, wire (de)serialization and JSON Schema export."""

from schemas.events import (
    SCHEMA_VERSION,
    Alert,
    Box,
    Command,
    DeadLetter,
    Embedding,
    Frame,
    FrameError,
    Label,
    Prediction,
    SignalState,
    StreamState,
)
from schemas.wire import decode_as, decode_event, encode

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "Box",
    "Command",
    "DeadLetter",
    "Embedding",
    "Frame",
    "FrameError",
    "Label",
    "Prediction",
    "SignalState",
    "StreamState",
    "decode_as",
    "decode_event",
    "encode",
]
