"""sklearn-espro: simplex ensembles (ESPRO) of neural networks for scikit-learn.

Layers, each importing only those before it: :mod:`~sklearn_espro.geometry` (volumes,
sampling), :mod:`~sklearn_espro.simplex` (a simplex of weights for any module,
:mod:`~sklearn_espro.batchnorm`), :mod:`~sklearn_espro.prediction` (the models drawn
from a simplex and Eq. 5: :class:`Member`), :mod:`~sklearn_espro.training`,
:mod:`~sklearn_espro.growing`, :mod:`~sklearn_espro.modes` and :mod:`~sklearn_espro.members` (training),
:mod:`~sklearn_espro.estimator` (:class:`ESPROClassifier`), and the tools
:func:`connect_modes` (mode-connecting complexes), :func:`fit_curve_swag`
(SWAG over a connecting curve),
:mod:`~sklearn_espro.volume` (:class:`SimplexVolume`), :mod:`~sklearn_espro.planes`
(:class:`LossPlane`) and :mod:`~sklearn_espro.metrics`.
"""

from .complexes import SimplicialComplex, connect_modes
from .curves import CurveSWAG, fit_curve_swag
from .estimator import ESPROClassifier
from .modules import MLP, ConvNet1d, ConvNet2d, ResNet1d
from .planes import LossPlane
from .prediction import Member
from .simplex import Simplex
from .volume import SimplexVolume

__all__ = [
    "ESPROClassifier",
    "LossPlane",
    "MLP",
    "ConvNet1d",
    "ConvNet2d",
    "ResNet1d",
    "CurveSWAG",
    "Member",
    "Simplex",
    "SimplexVolume",
    "SimplicialComplex",
    "connect_modes",
    "fit_curve_swag",
]
__version__ = "0.4.0"
