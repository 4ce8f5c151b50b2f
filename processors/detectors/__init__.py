"""Drift detectors: plain objects, no Kafka (see ``base.py`` for the contract).

- ``Cusum``: two-sided CUSUM on standardised scores, calibrated to an ERT on
  a correlated reference (``Cusum.calibrated``).
- ``PageHinkley``: river's Page-Hinkley with an exact JSON checkpoint and a
  calibrated threshold (``PageHinkley.calibrated``).
- ``Adwin``: river's ADWIN with an exact checkpoint of its Rust window.
- ``Ddm``: river's DDM on the 0/1 error stream, exact JSON checkpoint.
- ``WindowedKS``, ``PSI``, ``ChiSquaredMix``: sliding-window tests against a
  reference histogram (confidence, class mix), calibrated to an ERT.
- ``PCAReference`` / ``PCADetector``: Hotelling T^2 and SPE of embeddings on a
  reference PCA basis, watched by calibrated CUSUMs.
- ``WindowedMMD``: windowed MMD (random Fourier features) of embedding
  projections against the reference, calibrated to an ERT on correlated video.

Checkpoints are pydantic models (``state.py``: one ``State`` model per class,
``state()``/``from_state()`` implemented once); ``checks.py`` is the contract
they keep, run over every registered kind by the tests.
"""

from processors.detectors.adwin import Adwin
from processors.detectors.base import Detector, StateVersionError
from processors.detectors.cusum import Cusum
from processors.detectors.ddm import Ddm
from processors.detectors.mmd import WindowedMMD
from processors.detectors.page_hinkley import PageHinkley
from processors.detectors.pca import PCADetector, PCAReference
from processors.detectors.windowed import PSI, ChiSquaredMix, WindowedKS, WindowedTest

__all__ = [
    "PSI",
    "Adwin",
    "ChiSquaredMix",
    "Cusum",
    "Ddm",
    "Detector",
    "PCADetector",
    "PCAReference",
    "PageHinkley",
    "StateVersionError",
    "WindowedKS",
    "WindowedMMD",
    "WindowedTest",
]
