"""Test double of a workload entrypoint: the regression example's training (train.py beside it in the code
package), with every optimizer step of attempt 1 slowed down, so that a SIGTERM sent after its first
checkpoint lands before it could finish, however fast the machine."""

import os
import runpy
import time

import torch

if os.environ.get("MLPIPE_ATTEMPT") == "1":
    step = torch.optim.AdamW.step

    def slow_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.02)
        return step(self, *args, **kwargs)

    torch.optim.AdamW.step = slow_step  # type: ignore[method-assign]
runpy.run_path("train.py", run_name="__main__")
