"""The prior's training loop under DDP: 2 CPU processes, gloo backend."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior


def _data() -> TokenSet:
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randint(8, (20,), generator=g) for _ in range(3)]
    conds = [{"task": torch.randn(8, generator=g), "arch_text": torch.ones(8)} for _ in range(3)]
    return TokenSet(tokens, conds, [0, 1, 2])


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = PriorConfig(vocab_size=8, block_size=16, n_layer=1, n_head=2, n_embd=32, text_dim=8,
                          window_context=4, cond_dropout=0.1)
        prior = Prior(cfg)
        ckpt = f"{out_dir}/prior.pt"
        result = fit_prior(prior, _data(), PriorTrainConfig(steps=12, batch_size=4, warmup=2, log_every=4,
                                                            ckpt_every=6), ckpt=ckpt)
        flat = torch.cat([p.detach().flatten() for p in prior.parameters()])
        torch.save({"params": flat, "losses": torch.tensor(result.losses)}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters import torch: ~15 s quiet, ~40 s on a loaded machine
def test_ddp_two_gloo_processes_stay_in_sync(tmp_path):
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert torch.allclose(r0["params"], r1["params"])  # gradients were all-reduced
    assert not torch.allclose(r0["losses"], r1["losses"])  # yet each rank drew its own batches
    ckpt = torch.load(tmp_path / "prior.pt", weights_only=True)  # rank 0 wrote the checkpoint
    assert ckpt["step"] == 12
    ranks = ckpt["ranks"]  # every rank's own batch generator, so a resumed run keeps drawing its own batches
    assert len(ranks) == 2 and not torch.equal(ranks[0]["rng"], ranks[1]["rng"])


def test_resume_continues_from_the_checkpoint(tmp_path):
    torch.set_num_threads(1)
    cfg = PriorConfig(vocab_size=8, block_size=16, n_layer=1, n_head=2, n_embd=32, text_dim=8, window_context=4)
    tcfg = PriorTrainConfig(steps=8, batch_size=4, warmup=2, log_every=2, ckpt_every=4)
    torch.manual_seed(0)
    straight = Prior(cfg)
    fit_prior(straight, _data(), tcfg)
    ckpt = tmp_path / "p.pt"
    torch.manual_seed(0)
    half = Prior(cfg)

    def interrupt(step, loss):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed after step 5; the checkpoint holds step 4
        fit_prior(half, _data(), tcfg, ckpt=ckpt, progress=interrupt)
    resumed = Prior(cfg)
    result = fit_prior(resumed, _data(), tcfg, ckpt=ckpt, resume=True)
    assert result.resumed_from == 4
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
