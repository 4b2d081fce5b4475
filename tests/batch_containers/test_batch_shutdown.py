"""Shutdown of the training entry point's data loading: no loader thread outlives its stream, however the stream
ends. (That a two-node run frees its gloo process group before exit, stopped or not, is checked by
test_batch_distributed.py::test_two_node_job_over_s3_stops_on_sigterm_then_attempt_2_resumes.)"""

from __future__ import annotations

import threading

import pytest
from mlpipe_batch import data, manifest, synthetic

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]


def _stream(dataset: synthetic.SyntheticDataset) -> data.BatchStream:
    loaded = manifest.load(dataset.manifest_uri)
    return data.training_stream(
        loaded, split="train", epoch=0, rank=0, world_size=1, batch_size=64, seed=1, prefetch_batches=2
    )


def test_a_stream_joins_its_thread_however_it_ends(dataset: synthetic.SyntheticDataset) -> None:
    before = set(threading.enumerate())
    stream = _stream(dataset)
    assert not stream._thread.daemon  # joined, never left running into interpreter exit
    assert len(list(stream)) == stream.num_batches
    assert not stream._thread.is_alive()

    with _stream(dataset) as stream:
        batches = iter(stream)
        next(batches)  # then abandoned while the producer waits on its full queue
    assert not stream._thread.is_alive()
    del batches

    stream = _stream(dataset)
    stream.close()  # never iterated
    stream.close()
    assert not stream._thread.is_alive()
    assert {t for t in threading.enumerate() if t.name.startswith("mlpipe-")} <= before
