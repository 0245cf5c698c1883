"""sieve's four architectures rebuilt in PyTorch, layer for layer and name for name.

The layouts are those of torchvision and of the common CIFAR reference code, written out here
so that only torch is needed. Each model's forward returns (features, logits), as sieve's
ModelOutput does. Used by the golden fixtures (tests/golden/make_fixtures.py, which builds them
with dropout at p = 0) and by the PyTorch benchmark twin (apps/bench/torch_twin.py, which keeps
sieve's training dropout rates).

Parameter counts, equal to sieve's: resnet20 269,722, mobilenet_v2 2,236,682 and resnet18
11,173,962 (10 classes); vgg16_bn 15,299,748 (100 classes).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL_NAMES = ("resnet20", "resnet18", "vgg16_bn", "mobilenet_v2")

# sieve's dropout rates in training (models/mobilenet.cpp, models/vgg.cpp).
MOBILENET_DROPOUT = 0.2
VGG_DROPOUT = 0.5


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


def resnet20(classes):
    """He et al.'s CIFAR ResNet-20: widths 16/32/64, 3 blocks a stage, zero-padding shortcuts."""
    return ResNet([16, 32, 64], [3, 3, 3], "zero_pad", "linear", classes)


def resnet18(classes):
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    return ResNet([64, 128, 256, 512], [2, 2, 2, 2], "downsample", "fc", classes)


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

    def __init__(self, classes, dropout=0.0):
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
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, classes))

    def forward(self, x):
        f = self.features(x).mean(dim=(2, 3))
        return f, self.classifier(f)


class Vgg16Bn(nn.Module):
    def __init__(self, classes, dropout=0.0):
        super().__init__()
        layers, inp = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(inp, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                inp = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(512, 512), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, classes))

    def forward(self, x):
        h = torch.flatten(self.features(x), 1)
        f = self.classifier[:6](h)
        return f, self.classifier[6](f)


def make_model(name, num_classes, dropout=True):
    """One of MODEL_NAMES with num_classes outputs. dropout=True keeps sieve's training dropout
    (MobileNetV2 0.2, VGG 0.5); dropout=False builds every Dropout at p = 0, as the fixtures do."""
    if name == "resnet20":
        return resnet20(num_classes)
    if name == "resnet18":
        return resnet18(num_classes)
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes, MOBILENET_DROPOUT if dropout else 0.0)
    if name == "vgg16_bn":
        return Vgg16Bn(num_classes, VGG_DROPOUT if dropout else 0.0)
    raise ValueError(f"unknown model '{name}' (known: {', '.join(MODEL_NAMES)})")


def param_count(model):
    return sum(p.numel() for p in model.parameters())
