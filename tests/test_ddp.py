"""Two CPU processes under torchrun (gloo) end with identical weights; only rank 0 writes files."""
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist
    from mnf.models import resnet20
    from mnf.train import fit, setup_distributed
    rank, world, device = setup_distributed()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(60) % 10
    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = resnet20(blocks=1)
    out = sys.argv[1]
    fit(model, (images[:40], labels[:40], images[40:], labels[40:]), epochs=2, batch_size=20,
        progress=False, out=os.path.join(out, "run"))
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
""")


@pytest.mark.slow  # ~25 s: two interpreters importing torch, rendezvous
def test_two_ranks_end_identical(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    fresh = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert fresh["epoch"] == 2 and all(torch.equal(fresh["model"][k], a[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "history.csv", "history.json"]
