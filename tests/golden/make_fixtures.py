#!/usr/bin/env python3
"""Golden fixtures: sieve's models rebuilt in PyTorch (the layouts of torchvision and of the
common CIFAR reference code, written out here so only torch is needed), run on one small batch
and exported to safetensors, so sieve's C++ tests can match PyTorch tensor by tensor.

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

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

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
class BasicBlock(nn.Module):
    def __init__(self, inp, planes, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = None
        if stride != 1 or inp != planes:
            if shortcut == "zero_pad":  # He et al. option A
                self.pad = planes // 4
            else:
                setattr(self, shortcut, nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False),
                                                      nn.BatchNorm2d(planes)))
        self.shortcut_name = shortcut

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.pad is not None:
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        elif hasattr(self, self.shortcut_name) and isinstance(getattr(self, self.shortcut_name), nn.Module):
            s = getattr(self, self.shortcut_name)(x)
        else:
            s = x
        return F.relu(h + s)


class ResNet(nn.Module):
    def __init__(self, widths, blocks, shortcut, fc_name, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        inp = widths[0]
        for s, (w, n) in enumerate(zip(widths, blocks)):
            layers = []
            for b in range(n):
                layers.append(BasicBlock(inp, w, 2 if (s > 0 and b == 0) else 1, shortcut))
                inp = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.nstages = len(widths)
        self.fc_name = fc_name
        setattr(self, fc_name, nn.Linear(inp, classes))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        for s in range(self.nstages):
            h = getattr(self, f"layer{s + 1}")(h)
        f = h.mean(dim=(2, 3))
        return f, getattr(self, self.fc_name)(f)


def conv_bn_relu6(inp, out, k, stride, groups):
    return nn.Sequential(nn.Conv2d(inp, out, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, t):
        super().__init__()
        hidden = inp * t
        layers = [] if t == 1 else [conv_bn_relu6(inp, hidden, 1, 1, 1)]
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                   nn.Conv2d(hidden, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and inp == out

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 with the CIFAR strides (stem and the 24-channel stage at 1)."""

    def __init__(self, classes):
        super().__init__()
        plan = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
        feats = [conv_bn_relu6(3, 32, 3, 1, 1)]
        inp = 32
        for t, c, n, s in plan:
            for b in range(n):
                feats.append(InvertedResidual(inp, c, s if b == 0 else 1, t))
                inp = c
        feats.append(conv_bn_relu6(inp, 1280, 1, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(1280, classes))

    def forward(self, x):
        f = self.features(x).mean(dim=(2, 3))
        return f, self.classifier(f)


class Vgg16Bn(nn.Module):
    def __init__(self, classes):
        super().__init__()
        layers, inp = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(inp, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                inp = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.0),
                                        nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, classes))

    def forward(self, x):
        h = torch.flatten(self.features(x), 1)
        f = self.classifier[:6](h)
        return f, self.classifier[6](f)


MODELS = {
    "resnet20": (lambda: ResNet([16, 32, 64], [3, 3, 3], "zero_pad", "linear", 10), True),
    "mobilenet_v2": (lambda: MobileNetV2(10), True),
    "resnet18": (lambda: ResNet([64, 128, 256, 512], [2, 2, 2, 2], "downsample", "fc", 10), False),
    "vgg16_bn": (lambda: Vgg16Bn(100), False),
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
    model = MODELS[name][0]()
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
