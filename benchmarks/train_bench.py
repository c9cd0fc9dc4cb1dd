"""Training throughput: the project's engine against a plain per-sample PyTorch loop, on the same images.

    .venv/bin/python benchmarks/train_bench.py [--device auto] [--images 64] [--batch-size 16] [--epochs 1]

Both sides train the same dual-attention ResNet18 with the same focal loss, optimiser and batch size on
the same synthetic 224×224 JPEG face crops (random crops and shifts of matplotlib's grace_hopper.jpg,
written to a temporary folder, so no data set is needed):

* fast: :mod:`training.engine` — all crops decoded once into one uint8 tensor on the device
  (channels_last); each batch is gathered, converted BGR→RGB, normalised (and augmented with
  ``--augment``) on the device; autocast (bf16/fp16) on CUDA.
* baseline: a ``torch.utils.data.Dataset`` that reads each image from disk with cv2, converts it to a
  normalised float tensor, and a ``DataLoader`` (shuffle, default workers, pinned memory on CUDA)
  feeding an fp32 contiguous model.

Each side runs one untimed warm-up epoch, then ``--epochs`` timed epochs, the two sides alternating epoch
by epoch (a shared machine's load then hits both alike); images/s = the median over the timed epochs
of images trained per second (the fast side's one-off decode and upload is reported separately: it is paid
once per run, not per epoch). Prints both figures and their ratio; ``--json PATH`` writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from training.batches import IMAGENET_MEAN, IMAGENET_STD, images_to_tensor
from training.config import TrainConfig
from training.engine import build_loss_fn, build_model, build_optimizer, train_one_epoch
from training.runtime import autocast_dtype, configure_determinism, resolve_device, seed_everything

NUM_CLASSES = 5


def make_crops(folder: Path, n_images: int, size: int, seed: int) -> tuple[list[Path], np.ndarray]:
    """``n_images`` JPEG face crops of ``size``² from grace_hopper.jpg, each a random crop and shift."""
    photo = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    if photo is None:
        raise RuntimeError("matplotlib's grace_hopper.jpg sample could not be read")
    rng = np.random.default_rng(seed)
    height, width = photo.shape[:2]
    paths = []
    for i in range(n_images):
        side = int(rng.integers(int(0.6 * min(height, width)), min(height, width)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = cv2.resize(photo[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
        path = folder / f"crop_{i:04d}.jpg"
        cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths, rng.integers(0, NUM_CLASSES, n_images)


class DiskCrops(Dataset):
    """The plain way: read, decode, convert and normalise one image per ``__getitem__``."""

    def __init__(self, paths: list[Path], labels: np.ndarray) -> None:
        self.paths = paths
        self.labels = labels
        self.mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        self.std = np.asarray(IMAGENET_STD, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        tensor = torch.from_numpy(((rgb - self.mean) / self.std).transpose(2, 0, 1).copy())
        return tensor, int(self.labels[index])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


EpochFn = Callable[[], int]


def setup_fast(paths: list[Path], labels: np.ndarray, config: TrainConfig) -> tuple[EpochFn, dict]:
    """The engine's way; returns a function that trains one epoch (→ images trained) and its settings."""
    device = resolve_device(config.device)
    seed_everything(config.seed)
    started = time.perf_counter()
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths])
    images = images_to_tensor(crops, device, config.image_size, config.channels_last)
    targets = torch.as_tensor(labels, dtype=torch.int64, device=device)
    _sync(device)
    load_seconds = time.perf_counter() - started
    model, _ = build_model(config, NUM_CLASSES)
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    loss_fn = build_loss_fn(config, labels, NUM_CLASSES).to(device)
    optimizer = build_optimizer(model, config)
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(config.seed)

    def epoch() -> int:
        stats = train_one_epoch(
            model, images, targets, optimizer, loss_fn, config, generator, amp_dtype=amp_dtype, scaler=scaler
        )
        return int(stats["n_samples"])

    settings = {
        "decode_and_upload_seconds": load_seconds,
        "autocast": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "channels_last": config.channels_last,
        "augment": config.augment,
    }
    return epoch, settings


def setup_baseline(paths: list[Path], labels: np.ndarray, config: TrainConfig) -> tuple[EpochFn, dict]:
    """The plain way: Dataset reading from disk per sample, DataLoader, fp32 contiguous model."""
    device = resolve_device(config.device)
    seed_everything(config.seed)
    loader = DataLoader(
        DiskCrops(paths, labels), batch_size=config.batch_size, shuffle=True, pin_memory=device.type == "cuda"
    )
    model, _ = build_model(config, NUM_CLASSES)
    model.to(device)
    loss_fn = build_loss_fn(config, labels, NUM_CLASSES).to(device)
    optimizer = build_optimizer(model, config)

    def epoch() -> int:
        model.train()
        seen = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        return seen

    return epoch, {"autocast": "off", "channels_last": False, "augment": False}


def timed(epoch: EpochFn, device: torch.device) -> tuple[int, float]:
    _sync(device)
    started = time.perf_counter()
    seen = epoch()
    _sync(device)
    return seen, time.perf_counter() - started


def run_benchmark(paths: list[Path], labels: np.ndarray, config: TrainConfig, epochs: int) -> dict[str, dict]:
    """One warm-up epoch each, then ``epochs`` rounds of one timed epoch per side, alternating, so that a
    change in machine load during the run hits both sides alike."""
    device = resolve_device(config.device)
    sides = {"fast": setup_fast(paths, labels, config), "baseline": setup_baseline(paths, labels, config)}
    for epoch, _ in sides.values():
        epoch()  # warm-up: allocator, kernel selection, first-touch
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(epochs):
        for name, (epoch, _) in sides.items():
            seen, seconds = timed(epoch, device)
            rates[name].append(seen / seconds)
    return {
        name: {"images_per_s": float(np.median(values)), "per_epoch_images_per_s": values, **sides[name][1]}
        for name, values in rates.items()
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Images/s of one training epoch at 224 px: the project's on-device engine against a "
        "plain per-sample Dataset/DataLoader loop, on the same synthetic face crops.",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: %(default)s)")
    parser.add_argument("--images", type=int, default=64, help="synthetic crops to train on (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="both sides (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs after one warm-up (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=224, help="crop side in pixels (default: %(default)s)")
    parser.add_argument("--attention", default="dual", help="model variant, both sides (default: %(default)s)")
    parser.add_argument(
        "--augment", action="store_true", help="let the fast side augment on the device (the baseline never does)"
    )
    parser.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the fast side's model and batches in the default NCHW layout (to see what channels_last buys)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.images < 2 or args.batch_size < 2 or args.epochs < 1:
        print("error: --images and --batch-size must be ≥ 2 and --epochs ≥ 1", file=sys.stderr)
        return 2
    config = TrainConfig(
        attention=args.attention,
        batch_size=args.batch_size,
        image_size=args.image_size,
        device=args.device,
        seed=args.seed,
        augment=args.augment,
        channels_last=args.channels_last,
        deterministic=False,  # a benchmark measures the fast kernels (cuDNN autotuning allowed)
    )
    configure_determinism(False)
    device = resolve_device(config.device)
    with tempfile.TemporaryDirectory(prefix="train_bench_") as folder:
        paths, labels = make_crops(Path(folder), args.images, args.image_size, args.seed)
        results = run_benchmark(paths, labels, config, args.epochs)
    fast, baseline = results["fast"], results["baseline"]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "images": args.images,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs,
        "attention": args.attention,
        "fast": fast,
        "baseline": baseline,
        "speedup": fast["images_per_s"] / baseline["images_per_s"],
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    print(f"device: {result['device']} ({device.type}, {result['torch_threads']} threads)")
    print(
        f"fast engine  : {fast['images_per_s']:8.1f} images/s  (autocast {fast['autocast']}, "
        f"channels_last {fast['channels_last']}; decode+upload once {fast['decode_and_upload_seconds']:.2f} s)"
    )
    print(f"per-sample   : {baseline['images_per_s']:8.1f} images/s  (Dataset + cv2.imread + DataLoader, fp32)")
    print(f"speed-up     : {result['speedup']:.2f}×")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
