"""Bytes on the wire per published frame: a JPEG ``Frame`` against an ``--edge`` ``Prediction``.

What ``driftline publish`` sends per kept frame, as the encoded JSON event
(what the broker stores): a frame event (JPEG, base64 in JSON) at three
sizes and two qualities, and an edge prediction (the packaged
EfficientNet-Lite0's 1,280-d embedding, top class and top-5 scores) at
three precisions (``--edge-digits``). Frames: the simulated camera on the
``coffee``, ``chelsea`` and (when installed) ``vtest`` scenes, 20 frames
each. Prints a markdown table; recorded in bench/README.md ("Publishing:
bytes per frame").

    python bench/bench_publish_bytes.py
"""

from __future__ import annotations

import numpy as np

from processors.embedder import Embedder
from processors.top_scores import top_scores
from producers.camera_publish import edge_vector
from producers.scenes import list_scenes
from producers.simulated_camera import SimulatedCamera
from producers.sources import encode_jpeg
from schemas.events import Frame, Prediction
from schemas.wire import encode

SIZES = ((160, 120), (320, 240), (640, 480))
QUALITIES = (90, 75)
DIGITS = (3, 4, 17)
EVENT_ID = "cam-1-0123abcd-f00000001"  # what publish names a frame


def main() -> None:
    emb = Embedder.load()
    scenes = [s for s in ("coffee", "chelsea", "vtest") if s in list_scenes()]
    print(f"# scenes: {', '.join(scenes)}; 20 frames each; KB = 1024 bytes of encoded event")
    print("| frame size | frame event, q90 KB | frame event, q75 KB | "
          + " | ".join(f"edge, {d} digits KB" for d in DIGITS) + " |")
    print("|---|" + "---:|" * (len(QUALITIES) + len(DIGITS)))
    for size in SIZES:
        frame_kb: dict[int, list[int]] = {q: [] for q in QUALITIES}
        edge_kb: dict[int, list[int]] = {d: [] for d in DIGITS}
        for scene in scenes:
            for f in SimulatedCamera(scene, seed=1, size=size).frames(20):
                for q in QUALITIES:
                    frame = Frame(event_id=EVENT_ID, stream_id="cam-1", model_version="v1",
                                  image=encode_jpeg(f.rgb, q), content_type="image/jpeg",
                                  frame_index=1, meta={"source": "cam"})
                    frame_kb[q].append(len(encode(frame)))
                out = emb.embed([f.rgb])
                assert out.top_class is not None and out.confidence is not None
                for d in DIGITS:
                    pred = Prediction(event_id=EVENT_ID + "-p", stream_id="cam-1",
                                      model_version="v1", frame_index=1,
                                      top_class=out.top_class[0],
                                      confidence=float(out.confidence[0]),
                                      scores=top_scores(out, 0, emb.class_names),
                                      embedding=edge_vector(out.embeddings[0], d))
                    edge_kb[d].append(len(encode(pred)))
        cells = [f"{np.mean(frame_kb[q]) / 1024:.1f}" for q in QUALITIES]
        cells += [f"{np.mean(edge_kb[d]) / 1024:.1f}" for d in DIGITS]
        print(f"| {size[0]}×{size[1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
