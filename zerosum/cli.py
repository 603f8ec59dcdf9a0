"""``zerosum`` command line: LightningCLI with subclass mode for model and data.

Facts the data knows (number of classes, channels, image size, normalisation statistics) are linked
into the model when the datamodule is built, so a config never writes them twice; models that do not
take an argument simply do not receive it. ``fit`` ends with a test of the final weights so the
accuracy a newcomer wants is printed (``--test_after_fit false`` skips it).
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch.distributed as dist
from lightning.pytorch.cli import LightningCLI

#: datamodule attribute -> model argument, linked after the datamodule is instantiated.
DATA_LINKS = {"num_classes": "num_classes", "in_channels": "in_channels", "image_size": "image_size",
              "mean": "data_mean", "std": "data_std"}


class ZerosumCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="After fit, evaluate the final weights on the test split.")
        for attr, arg in DATA_LINKS.items():
            parser.link_arguments(f"data.{attr}", f"model.init_args.{arg}", apply_on="instantiate")

    def after_fit(self) -> None:
        if self.config.get("fit", {}).get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule)


def run(args: Optional[list[str]] = None) -> ZerosumCLI:
    """Run the CLI on ``args`` (default ``sys.argv[1:]``) and return it (trainer, model, datamodule)."""
    return ZerosumCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def close_process_group() -> None:
    """Wait for every rank, then destroy the default process group, if one is open.

    Lightning destroys NCCL groups at exit but leaves gloo ones (CPU DDP) to interpreter shutdown,
    where a group's threads can abort the process ("terminate called without an active exception")
    after the work is done. Call it only once every rank has finished without error.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(args: Optional[list[str]] = None) -> None:
    """Entry point of ``zerosum`` and ``python -m zerosum``; ``args`` replaces ``sys.argv[1:]``."""
    run(args)
    close_process_group()


if __name__ == "__main__":
    main()
