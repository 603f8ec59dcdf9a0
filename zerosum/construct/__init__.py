"""Dataset construction of Ilyas et al. (2019), section 3, as Lightning predict runs writing shards.

``zerosum predict --config configs/robust/<...>_construct_<kind>.yaml`` with a
:class:`~zerosum.datamodules.ConstructionData` datamodule, a :class:`RobustFeatureDataset` (D_R / D_NR) or
:class:`NonRobustFeatureDataset` (D_rand / D_det) model and a :class:`ShardWriter` callback; read the
result back with :class:`zerosum.datamodules.ConstructedDataModule`.
"""

from zerosum.construct.inversion import Representation, feature_distance, invert_representation
from zerosum.construct.modules import DatasetConstruction, NonRobustFeatureDataset, RobustFeatureDataset
from zerosum.construct.writer import MANIFEST, ShardWriter
from zerosum.datamodules.construction import ConstructionData, ShardDataset  # the construction kit in one import

__all__ = [
    "MANIFEST", "ConstructionData", "DatasetConstruction", "NonRobustFeatureDataset", "Representation",
    "RobustFeatureDataset", "ShardDataset", "ShardWriter", "feature_distance", "invert_representation",
]
