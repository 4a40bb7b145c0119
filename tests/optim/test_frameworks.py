"""The Scheduler inside Lightning's and Hugging Face's trainers.

Neither framework is a dependency, so these tests skip unless it is installed
(`pip install lightning transformers accelerate`); they were run that way before release.
"""

from __future__ import annotations

import pytest
import torch

from superconverge.optim import Scheduler
from superconverge.schedules import one_cycle


def test_lightning_trainer_steps_the_scheduler_every_batch(tmp_path):
    L = pytest.importorskip("lightning")
    seen: list[float] = []

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, index):
            x, y = batch
            seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
            return {"optimizer": opt,
                    "lr_scheduler": {"scheduler": Scheduler(opt, one_cycle(20, 0.5)), "interval": "step"}}

    data = torch.utils.data.TensorDataset(torch.randn(80, 4), torch.randint(0, 2, (80,)))
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              default_root_dir=tmp_path).fit(Module(), torch.utils.data.DataLoader(data, batch_size=8))
    expected = one_cycle(20, 0.5)["lr"]
    assert seen == pytest.approx([expected(t) for t in range(20)], rel=1e-12)


def test_hf_trainer_takes_the_scheduler(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    seen: list[float] = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x, labels=None):
            logits = self.lin(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Data(torch.utils.data.Dataset):
        x, y = torch.randn(80, 4), torch.randint(0, 2, (80,))

        def __len__(self):
            return 80

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i]}

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    class Recording(transformers.Trainer):
        def training_step(self, *args, **kwargs):
            seen.append(opt.param_groups[0]["lr"])
            return super().training_step(*args, **kwargs)

    args = transformers.TrainingArguments(str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                                          report_to=[], save_strategy="no", use_cpu=True)
    Recording(model=model, args=args, train_dataset=Data(),
              optimizers=(opt, Scheduler(opt, one_cycle(20, 0.5)))).train()
    expected = one_cycle(20, 0.5)["lr"]
    assert seen == pytest.approx([expected(t) for t in range(20)], rel=1e-12)
