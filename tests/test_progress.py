"""Training progress is logged: one line per epoch with the loss and validation metric, optional step lines."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from recsys_gnn.progress import LogProgress


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.w(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/ndcg@10", torch.tensor(0.25))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_epoch_and_step_lines(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LogProgress(every_n_steps=2)],
        default_root_dir=tmp_path,
    )
    with caplog.at_level(logging.INFO, logger="recsys_gnn.progress"):
        trainer.fit(_Tiny(), train_dataloaders=data, val_dataloaders=data)
    lines = [r.getMessage() for r in caplog.records if r.name == "recsys_gnn.progress"]
    epochs = [line for line in lines if line.startswith("epoch ") and "/2:" in line]
    assert len(epochs) == 2
    assert "train/loss" in epochs[0] and "val/ndcg@10 0.2500" in epochs[0]
    steps = [line for line in lines if " step " in line]
    assert [s.split(":")[0] for s in steps[:2]] == ["epoch 1 step 2/4", "epoch 1 step 4/4"]
    with pytest.raises(ValueError, match="every_n_steps"):
        LogProgress(every_n_steps=-1)
