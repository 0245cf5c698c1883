#!/usr/bin/env python3
"""Golden fixtures: sieve's models rebuilt in PyTorch (the layouts of torchvision and of the
common CIFAR reference code, written out in apps/bench/torch_models.py so only torch is needed),
run on one small batch and exported to safetensors, so sieve's C++ tests can match PyTorch
tensor by tensor.

Each fixture holds the input batch and labels, train-mode logits, features and loss, the
gradient of every parameter, eval-mode logits, and the parameters and loss after each of 3 SGD
steps (lr 0.1, momentum 0.9, weight decay 5e-4, train mode, same batch). PyTorch runs in float64
from the float32 weights and input, so the fixture is the exact answer: sieve matches it in
f64 to near machine precision (every op, every gradient) and in f32 to fp32 tolerances. Weights are not draws
of PyTorch's RNG: every state tensor is filled from sieve's Philox stream keyed by the FNV-1a
hash of its name (golden_values() below), which the C++ test reproduces bit for bit. ResNet-20's
fixture also stores its initial weights, so the load path is tested too. Tensors of more than
FULL_LIMIT elements are stored as a fixed sample of elements plus their L2 norm, to keep the
fixtures small. Dropout runs at p = 0 (its random masks are not PyTorch's).

Regenerate (CPU PyTorch from PyPI):  python3 tests/golden/make_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps", "bench"))
from torch_models import make_model  # noqa: E402

FULL_LIMIT = 4096   # tensors larger than this are stored as SAMPLE elements + norm
SAMPLE = 256
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# ---------------------------------------------------------------- Philox4x32-10 (engine/rng.h)
M32 = np.uint64(0xFFFFFFFF)


def philox4x32(seed, ctr):
    """Vectorised over ctr (np.uint64 array); returns the four 32-bit words as uint64 arrays."""
    c0 = ctr & M32
    c1 = ctr >> np.uint64(32)
    c2 = np.zeros_like(ctr)
    c3 = np.zeros_like(ctr)
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64(seed >> 32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = (hi1 ^ c1 ^ k0) & M32, lo1, (hi0 ^ c3 ^ k1) & M32, lo0
        k0 = (k0 + np.uint64(0x9E3779B9)) & M32
        k1 = (k1 + np.uint64(0xBB67AE85)) & M32
    return c0, c1, c2, c3


def philox_uniform_double(seed, n):
    v0, v1, _, _ = philox4x32(seed, np.arange(n, dtype=np.uint64))
    bits = ((v0 << np.uint64(21)) ^ (v1 >> np.uint64(11))) & np.uint64((1 << 53) - 1)
    return bits.astype(np.float64) * (1.0 / 9007199254740992.0)


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def golden_values(name, shape):
    """The value of state tensor `name`, as tests/unit/golden_test.cpp computes it."""
    n = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    u = philox_uniform_double(fnv1a64(name), n)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * np.sqrt(3.0 / fan_in)
    elif name.endswith("running_mean"):
        v = 0.1 * (2.0 * u - 1.0)
    elif name.endswith("running_var"):
        v = 1.0 + 0.5 * u
    elif name.endswith("weight"):
        v = 1.0 + 0.2 * (2.0 * u - 1.0)
    else:
        v = 0.1 * (2.0 * u - 1.0)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def sample_index(n):
    return [(i * 7919) % n for i in range(min(n, SAMPLE))]


# ---------------------------------------------------------------- models
# name -> (classes, full): full fixtures also hold every gradient and the 3 SGD steps.
MODELS = {
    "resnet20": (10, True),
    "mobilenet_v2": (10, True),
    "resnet18": (10, False),
    "vgg16_bn": (100, False),
}


def put(out, key, t):
    t = t.detach().contiguous()
    if t.numel() > FULL_LIMIT:
        flat = t.reshape(-1)
        out["sample." + key] = flat[sample_index(flat.numel())].clone()
        out["norm." + key] = flat.double().norm().reshape(1)
    else:
        out[key] = t.clone()


def make(name, full):
    torch.manual_seed(0)
    model = make_model(name, MODELS[name][0], dropout=False)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            t.copy_(golden_values(k, tuple(t.shape)))
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(4, 3, 32, 32, generator=g)  # stored as f32; the model sees it as f64
    y = torch.tensor([3, 1, 0, 7], dtype=torch.int64)
    out = {"input": x, "labels": y}
    if name == "resnet20":
        for k, t in model.state_dict().items():
            out["weights." + k] = t.clone()
    model = model.double()
    xd = x.double()

    model.eval()
    with torch.no_grad():
        out["eval.logits"] = model(xd)[1]

    model.train()
    feats, logits = model(xd)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["train.features"] = feats.detach()
    out["train.logits"] = logits.detach()
    out["train.loss"] = loss.detach().reshape(1)
    params = dict(model.named_parameters())
    grad_names = list(params) if full else [n for i, n in enumerate(params) if i % 7 == 0 or i == len(params) - 1]
    for n in grad_names:
        put(out, "grad." + n, params[n].grad)

    if full:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        losses = []
        for step in range(3):
            if step > 0:
                opt.zero_grad()
                loss = F.cross_entropy(model(xd)[1], y)
                loss.backward()
            losses.append(loss.item())
            opt.step()
        out["step3.losses"] = torch.tensor(losses, dtype=torch.float64)
        for n, p in model.named_parameters():
            put(out, "step3." + n, p)
        for n, b in model.named_buffers():
            if b.dtype == torch.float64:
                put(out, "step3." + n, b)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    save_file(out, path, metadata={"model": name, "torch": torch.__version__,
                                   "generator": "tests/golden/make_fixtures.py"})
    nparams = sum(p.numel() for p in model.parameters())
    print(f"{path}: {os.path.getsize(path) / 1e6:.2f} MB, {nparams} parameters, loss {out['train.loss'].item():.6f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    for name, (_, full) in MODELS.items():
        make(name, full)
