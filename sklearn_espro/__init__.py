"""sklearn-espro: simplex ensembles (ESPRO) of neural networks for scikit-learn.

The public API is this package's names, :mod:`sklearn_espro.geometry` (volumes and
uniform sampling of simplexes, pure tensor math), :mod:`sklearn_espro.metrics` and
:mod:`sklearn_espro.augment`.
Everything else is private: the core in ``sklearn_espro/_core/`` (a simplex of weights,
its training verbs, modes, members and the models drawn from them), and, over it, the
estimator and the Section 4 tools in underscore modules.
"""

from ._compat import install_moved_modules
from ._complexes import SimplicialComplex, connect_modes
from ._curves import CurveSWAG, fit_curve_swag
from ._estimator import ESPROClassifier
from ._regressor import ESPRORegressor
from ._modules import MLP, ConvNet1d, ConvNet2d, ResNet1d
from ._plane_display import LossPlaneDisplay
from ._planes import LossPlane
from ._core.landscape import flat_parameters, weights_loss
from ._core.prediction import Member
from ._core.simplex import Simplex
from ._volume import SimplexVolume, simplex_volumes

__all__ = [
    "ESPROClassifier",
    "ESPRORegressor",
    "LossPlane",
    "LossPlaneDisplay",
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
    "simplex_volumes",
    "flat_parameters",
    "weights_loss",
]

__version__ = "0.4.1"

install_moved_modules()  # version 0.4.0's module paths, until 0.5


def __getattr__(name: str):
    """``sklearn_espro.training`` and the other module paths of version 0.4.0, as attributes."""
    from ._compat import MOVED_MODULES

    if f"{__name__}.{name}" in MOVED_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # warns
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
