"""Public-API alias (SPEC §2): ``from forex_diffusion.data.sssd_dataset import SSSDDataModule,
SSSDTimeSeriesDataset, collate_fn`` keeps working.

The code lives in ``forex_diffusion.dataset`` (windows, splits, collation) and
``forex_diffusion.training.data_module``. Nothing inside the package imports this module; it
is the one place where ``data`` reaches above its layer, for the public import path only.
"""

from forex_diffusion.dataset.collate import collate_fn
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.training.data_module import SSSDDataModule

__all__ = ["SSSDDataModule", "SSSDTimeSeriesDataset", "collate_fn"]
