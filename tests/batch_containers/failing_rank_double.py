"""Test double of a workload entrypoint: rank 3 joins the process group and then exits 7; every other rank
runs the regression example's training (train.py beside it in the code package)."""

import os
import runpy
import sys

if os.environ["RANK"] == "3":
    import torch.distributed as dist

    dist.init_process_group("gloo")
    sys.exit(7)
runpy.run_path("train.py", run_name="__main__")
