"""EMAHook: the Trainer evaluates and exports the exponential moving average of the weights."""

from __future__ import annotations

import pytest
import torch
from _train_fixtures import TinyMLP, make_data, mse_loss
from safetensors.torch import load_file

from kexue.errors import ConfigError
from kexue.train import EMAHook, Hook, Trainer, TrainerConfig


def test_ema_is_evaluated_and_exported(tmp_path):
    decay = 0.75
    history = []

    class Record(Hook):
        def on_step_end(self, trainer):
            history.append({k: v.detach().clone() for k, v in trainer.model.named_parameters()})

    evaluated = []

    def evaluate(model):
        evaluated.append((model, {k: v.detach().clone() for k, v in model.named_parameters()}))
        return {"n": float(len(evaluated))}

    torch.manual_seed(0)
    model = TinyMLP(dropout=0.1, dtype=torch.float64)
    cfg = TrainerConfig(output_dir=tmp_path / "run", epochs=2, batch_size=4, learning_rate=5e-2, seed=0,
                        progress_bar=False)
    Trainer(model, cfg, make_data(12, dtype=torch.float64), compute_loss=mse_loss, evaluate=evaluate,
            hooks=[EMAHook(decay), Record()]).fit()

    # hand-rolled EMA: the first update copies the weights, then e <- decay * e + (1 - decay) * w
    ema = dict(history[0])
    per_step = [dict(ema)]
    for weights in history[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * weights[k] for k in ema}
        per_step.append(dict(ema))
    assert len(history) == 6 and len(evaluated) == 2  # 3 steps per epoch, evaluation at each epoch end
    for (module, params), step in zip(evaluated, (3, 6)):
        assert module is not model
        for k, v in params.items():
            torch.testing.assert_close(v, per_step[step - 1][k], rtol=0, atol=1e-12)
    exported = load_file(tmp_path / "run" / "last" / "model.safetensors")
    for k, v in per_step[-1].items():
        torch.testing.assert_close(exported[k], v, rtol=0, atol=1e-12)
        assert not torch.equal(exported[k], history[-1][k])  # the export is not the live weights


def test_ema_decay_is_validated():
    with pytest.raises(ConfigError, match="decay"):
        EMAHook(1.0)
