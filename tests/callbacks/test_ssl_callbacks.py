import torch

from zerosum.callbacks.knn_accuracy import knn_predict
from zerosum.callbacks.batch_features import step_features


def test_knn_predict_matches_brute_force_weighted_vote():
    torch.manual_seed(0)
    bank, labels, q = torch.randn(50, 6), torch.randint(0, 3, (50,)), torch.randn(7, 6)
    pred = knn_predict(q, bank, labels, 3, k=5, temperature=0.5)
    nb, nq = bank / bank.norm(dim=1, keepdim=True), q / q.norm(dim=1, keepdim=True)
    for i in range(7):
        sims = [(float(nq[i] @ nb[j]), j) for j in range(50)]
        top = sorted(sims, reverse=True)[:5]
        votes = [0.0] * 3
        for s, j in top:
            votes[int(labels[j])] += torch.exp(torch.tensor(s / 0.5)).item()
        assert int(pred[i]) == max(range(3), key=votes.__getitem__)


def test_knn_finds_planted_clusters():
    centers = torch.eye(4) * 5
    bank = torch.cat([centers[c] + 0.1 * torch.randn(10, 4) for c in range(4)])
    labels = torch.arange(4).repeat_interleave(10)
    queries = centers + 0.1 * torch.randn(4, 4)
    assert torch.equal(knn_predict(queries, bank, labels, 4, k=7), torch.arange(4))


def test_step_features_prefers_returned_features():
    class M(torch.nn.Module):
        def features(self, x):
            return x * 2

    feats = torch.ones(3, 2, requires_grad=True)
    out = step_features(M(), {"features": feats}, (torch.zeros(3, 2), None))
    assert torch.equal(out, feats) and not out.requires_grad
    assert torch.equal(step_features(M(), None, ([torch.ones(3, 2), torch.zeros(3, 2)], None)), 2 * torch.ones(3, 2))


class _PixelFeatures(__import__("lightning").LightningModule):
    """A 'self-supervised' module whose features are the raw pixels (linearly separable classes)."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def features(self, x):
        return x.flatten(1)

    def training_step(self, batch, batch_idx):
        return {"features": self.features(batch[0])}

    def validation_step(self, batch, batch_idx):
        return {"features": self.features(batch[0])}

    def configure_optimizers(self):
        return torch.optim.SGD([self.dummy], lr=0.0)


def test_online_probe_and_knn_learn_separable_features(tmp_path):
    import lightning as L

    from zerosum.callbacks import KNNAccuracy, OnlineLinearProbe
    from zerosum.datamodules import SyntheticDataModule

    dm = SyntheticDataModule(batch_size=32, num_train=256, noise=0.2)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[OnlineLinearProbe(lr=0.05), KNNAccuracy(k=5)])
    trainer.fit(_PixelFeatures(), dm)
    assert trainer.callback_metrics["probe/val_acc"] > 0.8
    assert trainer.callback_metrics["knn/val_acc"] > 0.8
