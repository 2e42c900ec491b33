"""The offline LPIPS provisioning: restricted unpickling and layout conversion."""

import io
import pickle

import numpy as np
import pytest
import torch

from hificodec.metrics.weights import convert_backbone, load_flax_checkpoint


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unpickler_refuses_code():
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_flax_checkpoint(pickle.dumps({"x": _Evil()}))


def test_unpickler_reads_numpy_tree():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}}
    out = load_flax_checkpoint(pickle.dumps(tree))
    assert np.array_equal(out["a"]["kernel"], tree["a"]["kernel"])


def test_flax_to_torchvision_alexnet_layout():
    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    params = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(size=s).astype(np.float32),
                                          "bias": rng.normal(size=s[-1]).astype(np.float32)}
                            for i, s in enumerate(shapes)}}
    state = convert_backbone(params, "alex")
    import torchvision

    model = torchvision.models.alexnet()
    model.load_state_dict(state)  # strict: every key and shape must match torchvision's
    # HWIO -> OIHW, no spatial flip: a 1-pixel probe gives the same response in both layouts
    k = params["AlexNet_0"]["Conv_0"]["kernel"]
    assert torch.allclose(model.features[0].weight[5, 2, 3, 4], torch.tensor(k[3, 4, 2, 5]))
    buf = io.BytesIO()
    torch.save(state, buf)
    assert buf.tell() < 20_000_000  # classifier stays a stride-0 view: small file
