#!/usr/bin/env python3
"""PyTorch twin of sieve's training benchmark.

Measures what `sieve bench` measures, for the same model, in PyTorch: training throughput
(images/s over timed steps after a warm-up), evaluation throughput, the time of one full
CIFAR-10 training epoch (with --data) and peak memory. The recipe is sieve's: the same four
architectures (apps/bench/torch_models.py, equal parameter counts, sieve's dropout rates),
SGD (lr 0.1, momentum 0.9, weight decay 5e-4), cross-entropy, training mode, and a u8 image
store from which every batch is assembled inside the timed loop the way sieve assembles it:
indices from a seeded shuffle, random crop 32 with zero padding 4, random horizontal flip,
conversion to float and CIFAR-10 normalisation, on the device that trains. The loss is read
back after every step and checked to be finite, as sieve's trainer does.

One invocation measures one (model, configuration) and prints exactly one JSON object on
stdout; everything else goes to stderr. `sieve bench --compare` runs this script once for
every model and configuration it compares, with its own --batch-size, --threads,
--warmup-steps, --steps, --repeats, --eval-batches and --data, and with --expect-params set
to sieve's parameter count of the model (so a mismatch stops the comparison instead of
producing an unfair one), then reads the JSON and puts the numbers beside sieve's.

Configurations:
  cpu:  fp32 (eager, NCHW), fp32_channels_last, bf16_channels_last (CPU autocast to bf16)
  cuda: fp32, bf16_channels_last (CUDA autocast to bf16), compile (torch.compile, fp32),
        compile_bf16 (torch.compile under bf16 autocast)
On cuda, cuDNN autotuning is on (torch.backends.cudnn.benchmark) and TF32 is off for fp32
unless --tf32 is given, so "fp32" means IEEE fp32 arithmetic.

Examples:
  python3 apps/bench/torch_twin.py --model resnet20 --device cpu --config fp32 --threads 2
  python3 apps/bench/torch_twin.py --model resnet18 --device cuda --config compile \\
      --data ../shared/datasets/cifar-10-batches-bin --expect-params 11173962
  python3 apps/bench/torch_twin.py --param-counts

Exit codes: 0 success, 2 bad arguments or an unavailable configuration/device/data,
3 parameter count differs from --expect-params, 4 a non-finite loss.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    "cpu": ("fp32", "fp32_channels_last", "bf16_channels_last"),
    "cuda": ("fp32", "bf16_channels_last", "compile", "compile_bf16"),
}
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4
SYNTHETIC_IMAGES = 2048
EVAL_BATCH = 500
RECORD = 1 + 3 * 32 * 32  # CIFAR-10 binary record: label byte + CHW pixels

# stdout carries only the JSON; main() points file descriptor 1 at stderr while it runs, so that
# nothing else (library prints, compiler subprocesses) can land there.
_json_out = None


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def fail(code, message):
    log(f"torch_twin: error: {message}")
    sys.exit(code)


def emit(obj):
    text = json.dumps(obj) + "\n"
    if _json_out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        os.write(_json_out, text.encode())


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch twin of sieve's training benchmark: one model, one configuration, one JSON line.")
    p.add_argument("--model", choices=("resnet20", "resnet18", "vgg16_bn", "mobilenet_v2"))
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="intra-op threads (torch.set_num_threads); inter-op threads are 1 (default: all cores)")
    p.add_argument("--config", default="fp32",
                   help="cpu: " + ", ".join(CONFIGS["cpu"]) + "; cuda: " + ", ".join(CONFIGS["cuda"]))
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="timed training steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval-batches", type=int, default=10, help=f"timed evaluation batches of {EVAL_BATCH}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="CIFAR-10 binary folder (data_batch_1..5.bin, test_batch.bin): train on the real "
                                  "images and also time one full training epoch")
    p.add_argument("--expect-params", type=int, help="exit 3 unless the model has exactly this many parameters")
    p.add_argument("--tf32", action="store_true", help="cuda: allow TF32 in fp32 convolutions and matmuls")
    p.add_argument("--param-counts", action="store_true",
                   help='print {model: {"10": count, "100": count}} for all four models and exit')
    args = p.parse_args(argv)
    if args.param_counts:
        return args
    if args.model is None:
        fail(2, "--model is required (resnet20, resnet18, vgg16_bn, mobilenet_v2)")
    if args.config not in CONFIGS[args.device]:
        fail(2, f"--config '{args.config}' does not exist on {args.device} "
                f"(known there: {', '.join(CONFIGS[args.device])})")
    for name in ("num_classes", "batch_size", "threads", "steps", "repeats", "eval_batches"):
        if getattr(args, name) < 1:
            fail(2, f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_steps < 0:
        fail(2, f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    return args


# ---------------------------------------------------------------- data
def read_cifar10_file(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        fail(2, f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    raw = raw.reshape(-1, RECORD)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def load_cifar10(folder):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for n in names:
        if not os.path.isfile(os.path.join(folder, n)):
            fail(2, f"--data: {os.path.join(folder, n)} not found (expected the CIFAR-10 binary version)")
    parts = [read_cifar10_file(os.path.join(folder, n)) for n in names[:5]]
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    test_x, test_y = read_cifar10_file(os.path.join(folder, names[5]))
    return train_x, train_y, test_x, test_y


def synthetic(seed, n, classes):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, classes, size=n, dtype=np.int64))


class Batches:
    """sieve's batch assembly in batched torch ops: gather the u8 images by index, zero-pad by
    CROP_PADDING, take each image's 32x32 window at its random offset (flipped horizontally for
    half of them) with one advanced-indexing gather, convert to float and normalise."""

    def __init__(self, torch, images, labels, device, seed, channels_last):
        self.torch = torch
        self.device = device
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (N, 3, 32, 32) u8
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        self.n = self.images.shape[0]
        self.channels_last = channels_last
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.order_rng = np.random.default_rng(seed)
        self.order, self.pos = None, 0
        mean = torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1)
        # x / 255 normalised = x * scale + shift
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.ar = torch.arange(32, device=device)
        self.channel = torch.arange(3, device=device).view(1, 3, 1, 1)

    def shuffle(self):
        return self.order_rng.permutation(self.n)

    def next_indices(self, bs):
        """The next bs indices of a running shuffle; a new shuffle when the current one runs out."""
        if self.order is None or self.pos + bs > self.n:
            self.order, self.pos = self.shuffle(), 0
        idx = self.order[self.pos:self.pos + bs]
        self.pos += bs
        return idx

    def assemble(self, idx, augment):
        torch = self.torch
        idx = torch.from_numpy(np.ascontiguousarray(idx)).to(self.device, non_blocking=True)
        x = self.images.index_select(0, idx)
        y = self.labels.index_select(0, idx)
        if augment:
            b = x.shape[0]
            p = CROP_PADDING
            padded = x.new_zeros((b, 3, 32 + 2 * p, 32 + 2 * p))
            padded[:, :, p:p + 32, p:p + 32] = x
            dy = torch.randint(0, 2 * p + 1, (b, 1), device=self.device, generator=self.gen)
            dx = torch.randint(0, 2 * p + 1, (b, 1), device=self.device, generator=self.gen)
            flip = torch.randint(0, 2, (b, 1), device=self.device, generator=self.gen).bool()
            rows = dy + self.ar                                          # (B, 32)
            cols = dx + torch.where(flip, 31 - self.ar, self.ar)         # (B, 32)
            x = padded[torch.arange(b, device=self.device).view(b, 1, 1, 1), self.channel,
                       rows.view(b, 1, 32, 1), cols.view(b, 1, 1, 32)]
        x = x.float().mul_(self.scale).add_(self.shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


# ---------------------------------------------------------------- environment
def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def param_counts(torch):
    from torch_models import MODEL_NAMES, make_model, param_count
    return {m: {str(c): param_count(make_model(m, c)) for c in (10, 100)} for m in MODEL_NAMES}


# ---------------------------------------------------------------- benchmark
def run(args, torch):
    import torch.nn.functional as F
    from torch_models import make_model, param_count

    device = torch.device(args.device)
    cuda = args.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            fail(2, "--device cuda: no CUDA device is available to this PyTorch")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    bf16 = "bf16" in args.config
    channels_last = "channels_last" in args.config
    compiled = args.config.startswith("compile")

    torch.manual_seed(args.seed)
    model = make_model(args.model, args.num_classes)
    params = param_count(model)
    if args.expect_params is not None and params != args.expect_params:
        fail(3, f"{args.model} with {args.num_classes} classes has {params} parameters in PyTorch, "
                f"--expect-params says {args.expect_params}")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net = torch.compile(model, dynamic=False) if compiled else model
    amp = (lambda: torch.autocast(device_type=args.device, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    if args.data:
        train_x, train_y, test_x, test_y = load_cifar10(args.data)
        if int(max(train_y.max(), test_y.max())) >= args.num_classes:
            fail(2, f"--num-classes {args.num_classes} is too few for CIFAR-10's labels 0..9")
        data_name = "cifar10"
    else:
        train_x, train_y = synthetic(args.seed, SYNTHETIC_IMAGES, args.num_classes)
        test_x, test_y = train_x, train_y
        data_name = "synthetic"
    if args.batch_size > train_x.shape[0]:
        fail(2, f"--batch-size {args.batch_size} exceeds the {train_x.shape[0]} training images")
    train = Batches(torch, train_x, train_y, device, args.seed, channels_last)
    test = Batches(torch, test_x, test_y, device, args.seed + 1, channels_last)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    last_loss = [float("nan")]
    correct = torch.zeros((), dtype=torch.int64, device=device)

    def step(idx):
        x, y = train.assemble(idx, augment=True)
        with amp():
            logits = net(x)[1]
            loss = F.cross_entropy(logits, y)
        value = loss.item()  # read back every step, as sieve's trainer does, and checked before the update
        if not math.isfinite(value):
            fail(4, f"non-finite training loss {value}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            correct.add_((logits.argmax(1) == y).sum())
        last_loss[0] = value

    # training throughput
    model.train()
    log(f"torch_twin: {args.model} ({params} parameters), {args.device} {args.config}, batch {args.batch_size}, "
        f"{args.threads} threads, {data_name} data")
    for _ in range(args.warmup_steps):
        step(train.next_indices(args.batch_size))
    repeats = []
    for r in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(train.next_indices(args.batch_size))
        sync()
        seconds = time.perf_counter() - t0
        repeats.append(args.batch_size * args.steps / seconds)
        log(f"torch_twin: repeat {r + 1}/{args.repeats}: {repeats[-1]:.1f} images/s, loss {last_loss[0]:.4f}")

    # one full training epoch over the real training set (shuffled, last batch partial, as sieve)
    epoch_seconds = epoch_ips = None
    if args.data:
        n = train.n
        tail = n % args.batch_size
        if tail:  # the partial last batch is a new shape: compile / autotune it before the clock runs
            step(train.next_indices(tail))
        sync()
        t0 = time.perf_counter()
        order = train.shuffle()
        for b in range(0, n, args.batch_size):
            step(order[b:b + args.batch_size])
        sync()
        epoch_seconds = time.perf_counter() - t0
        epoch_ips = n / epoch_seconds
        log(f"torch_twin: epoch of {n} images: {epoch_seconds:.2f} s ({epoch_ips:.1f} images/s)")

    # evaluation throughput (one untimed warm-up batch, then --eval-batches timed ones)
    model.eval()
    eval_bs = EVAL_BATCH

    def eval_batch(b):
        idx = (np.arange(b * eval_bs, (b + 1) * eval_bs) % test.n)
        x, _ = test.assemble(idx, augment=False)
        with torch.no_grad(), amp():
            logits = net(x)[1]
        return logits

    eval_batch(0)
    sync()
    t0 = time.perf_counter()
    for b in range(args.eval_batches):
        logits = eval_batch(b + 1)
    logits.float().sum().item()
    sync()
    eval_ips = eval_bs * args.eval_batches / (time.perf_counter() - t0)
    log(f"torch_twin: eval: {eval_ips:.1f} images/s")

    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        device_name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        device_name = cpu_name()

    return {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "model": args.model,
        "params": params,
        "num_classes": args.num_classes,
        "config": args.config,
        "precision": "bf16" if bf16 else "fp32",
        "memory_format": "channels_last" if channels_last else "nchw",
        "compiled": compiled,
        "tf32": bool(args.tf32) if cuda else False,
        "device": args.device,
        "device_name": device_name,
        "threads": args.threads,
        "data": data_name,
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup_steps,
        "steps": args.steps,
        "repeats": args.repeats,
        "train_images_per_s": statistics.median(repeats),
        "train_images_per_s_repeats": repeats,
        "eval_batch_size": eval_bs,
        "eval_batches": args.eval_batches,
        "eval_images_per_s": eval_ips,
        "epoch_seconds": epoch_seconds,
        "epoch_images_per_s": epoch_ips,
        "peak_memory_mib": peak,
        "final_loss": last_loss[0],
    }


def main(argv=None):
    global _json_out
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    _json_out = os.dup(1)
    os.dup2(2, 1)
    try:
        import torch
    except ImportError:
        fail(2, "PyTorch is not installed (pip install torch)")
    if args.param_counts:
        emit(param_counts(torch))
        return 0
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    emit(run(args, torch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
