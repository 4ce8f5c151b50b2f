"""The packaged EfficientNet-Lite0 embedder on real photos (scikit-image's data set)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from driftline.errors import ConfigError
from driftline.settings import EmbedderSettings
from processors.embedder import Embedder, MicroBatcher
from processors.model_manifest import PACKAGED_MANIFEST, PACKAGED_MODEL

MODEL_SETTING = "DRIFTLINE_EMBEDDER__MODEL_PATH"
MANIFEST_SETTING = "DRIFTLINE_EMBEDDER__MANIFEST_PATH"

# Photo -> ImageNet classes that count as a correct top-1.
KNOWN = {
    "chelsea": {"tabby, tabby cat", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug", "eggnog"},
    "motorcycle": {"moped", "motor scooter, scooter", "crash helmet", "disk brake, disc brake"},
    "camera": {"tripod", "reflex camera", "Polaroid camera, Polaroid Land camera"},
    "rocket": {"missile", "projectile, missile", "space shuttle"},
}


def photo(name: str) -> np.ndarray:
    if name == "motorcycle":
        img = skimage.data.stereo_motorcycle()[0]
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


def test_top1_is_right_on_photos_it_should_know(embedder: Embedder) -> None:
    res = embedder.embed([photo(n) for n in KNOWN])
    assert res.top_class is not None and res.confidence is not None
    got = dict(zip(KNOWN, res.top_class, strict=True))
    print({n: (c, round(float(p), 3)) for n, c, p in zip(KNOWN, res.top_class, res.confidence,
                                                         strict=True)})
    assert got["chelsea"] in KNOWN["chelsea"]
    assert got["coffee"] in KNOWN["coffee"]
    right = sum(got[n] in ok for n, ok in KNOWN.items())
    assert right >= 4, got
    assert res.probs is not None
    np.testing.assert_allclose(res.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert res.entropy is not None and (res.entropy >= 0).all()


def _perturbed_crops(img: np.ndarray, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for _ in range(k):
        ch, cw = int(h * rng.uniform(0.85, 0.95)), int(w * rng.uniform(0.85, 0.95))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y : y + ch, x : x + cw].astype(np.float32) * rng.uniform(0.9, 1.1)
        out.append(np.clip(crop, 0, 255).astype(np.uint8))
    return out


def test_embeddings_separate_scenes(embedder: Embedder) -> None:
    rng = np.random.default_rng(0)
    names = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle"]
    k = 4
    images = [c for n in names for c in _perturbed_crops(photo(n), rng, k)]
    emb = embedder.embed(images).embeddings
    assert emb.shape == (len(images), 1280) and np.isfinite(emb).all()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    scene = np.repeat(np.arange(len(names)), k)
    same = (scene[:, None] == scene[None, :]) & ~np.eye(len(images), dtype=bool)
    diff = scene[:, None] != scene[None, :]
    within, between = float(cos[same].mean()), float(cos[diff].mean())
    print(f"cosine within scene {within:.3f}  between scenes {between:.3f}  "
          f"(min within {cos[same].min():.3f}, max between {cos[diff].max():.3f})")
    assert within > 0.75
    assert within - between > 0.35
    assert cos[same].min() > cos[diff].max()


def test_grey_rgba_small_and_exact_size_inputs(embedder: Embedder) -> None:
    rgb = photo("chelsea")
    grey = rgb.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    exact = embedder.resize(rgb)
    assert exact.shape == (224, 224, 3)
    res = embedder.embed([rgb, grey, rgba, exact, np.zeros((5, 7, 3), np.uint8)])
    assert res.embeddings.shape == (5, 1280)
    np.testing.assert_allclose(res.embeddings[2], res.embeddings[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.embeddings[3], res.embeddings[0], rtol=1e-5, atol=1e-5)


def test_batching_does_not_change_results(embedder: Embedder) -> None:
    imgs = [photo(n) for n in ("chelsea", "coffee", "rocket")]
    batch = embedder.embed(imgs).embeddings
    single = np.concatenate([embedder.embed([im]).embeddings for im in imgs])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-4)
    # preprocess() returns a fresh tensor; run() on it equals embed().
    np.testing.assert_allclose(embedder.run(embedder.preprocess(imgs)).embeddings, batch,
                               rtol=1e-5, atol=1e-5)


def test_empty_batch(embedder: Embedder) -> None:
    res = embedder.embed([])
    assert res.embeddings.shape == (0, 1280)
    assert res.top_class == []


def test_bad_image_arrays_are_rejected(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError):
        embedder.embed([np.zeros((10, 10, 2), np.uint8)])


def _manifest(tmp_path: Path, **changes: object) -> Path:
    raw = json.loads(PACKAGED_MANIFEST.read_text())
    raw["onnx_file"] = str(PACKAGED_MODEL)  # absolute: no 18 MB copy
    raw["class_names_file"] = str(PACKAGED_MANIFEST.with_name("imagenet_classes.txt"))
    raw.update(changes)
    raw = {k: v for k, v in raw.items() if v is not None}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(raw))
    return p


def test_sha256_mismatch_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        Embedder.load(manifest_path=_manifest(tmp_path, sha256="0" * 64))
    assert ei.value.setting == MODEL_SETTING
    assert "sha256" in str(ei.value)


def test_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "efficientnet_lite0.onnx"
    data = bytearray(PACKAGED_MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    bad.write_bytes(bytes(data))
    shutil.copy(PACKAGED_MANIFEST, tmp_path / "efficientnet_lite0.json")
    with pytest.raises(ConfigError) as ei:
        Embedder.load(model_path=bad)  # manifest found beside it, same stem
    assert ei.value.setting == MODEL_SETTING


def test_missing_files_name_their_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        Embedder.load(model_path=tmp_path / "nope.onnx", manifest_path=PACKAGED_MANIFEST)
    assert ei.value.setting == MODEL_SETTING
    with pytest.raises(ConfigError) as ei:
        Embedder.load(manifest_path=tmp_path / "nope.json")
    assert ei.value.setting == MANIFEST_SETTING
    with pytest.raises(ConfigError) as ei:
        Embedder.load(model_path=tmp_path / "mine.onnx")  # no mine.json beside it
    assert ei.value.setting == MANIFEST_SETTING


def test_manifest_that_disagrees_with_the_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        Embedder.load(manifest_path=_manifest(tmp_path, embedding_output="feats"))
    assert ei.value.setting == MODEL_SETTING and "feats" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        Embedder.load(manifest_path=_manifest(tmp_path, embedding_dim=512))
    assert ei.value.setting == MANIFEST_SETTING
    with pytest.raises(ConfigError) as ei:
        Embedder.load(manifest_path=_manifest(tmp_path, layout="CHWN"))
    assert ei.value.setting == MANIFEST_SETTING


def test_embedding_only_manifest_and_bgr_order(tmp_path: Path, embedder: Embedder) -> None:
    """A user backbone without a head; and a BGR model sees channels swapped."""
    emb_only = Embedder.load(
        manifest_path=_manifest(tmp_path, logits_output=None, class_names_file=None,
                                num_classes=None)
    )
    img = photo("coffee")
    res = emb_only.embed([img])
    assert res.logits is None and res.top_class is None and res.confidence is None
    np.testing.assert_allclose(res.embeddings, embedder.embed([img]).embeddings, atol=1e-5)

    bgr = Embedder.load(manifest_path=_manifest(tmp_path, channel_order="BGR"))
    np.testing.assert_allclose(
        bgr.embed([img]).embeddings,
        embedder.embed([np.ascontiguousarray(img[:, :, ::-1])]).embeddings,
        rtol=1e-4, atol=1e-4,
    )


def test_from_settings_and_threads() -> None:
    e = Embedder.from_settings(EmbedderSettings(threads=2))
    assert e.threads == 2 and e.embedding_dim == 1280 and e.has_logits
    with pytest.raises(ConfigError):
        Embedder.load(threads=0)


def test_micro_batcher_with_a_fake_clock() -> None:
    now = [0.0]
    mb: MicroBatcher[int] = MicroBatcher(batch_size=4, max_wait=0.05, clock=lambda: now[0])
    assert mb.time_until_due() is None
    batches = []
    for i in range(10):
        now[0] += 0.01
        out = mb.add(i)
        if out:
            batches.append(out)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(mb) == 2 and mb.poll() is None
    now[0] += 0.05
    assert mb.poll() == [8, 9]
    assert mb.poll() is None and len(mb) == 0
    with pytest.raises(ValueError):
        MicroBatcher(batch_size=0, max_wait=1.0)
