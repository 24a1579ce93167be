"""Speed benchmark (not a test): one training epoch of the same VAE through several input pipelines.

    python bench.py           # the table, written to figures/bench.json and figures/bench.md
    python bench.py --full    # also times a from-scratch `python alltests.py` into a temporary folder

Each timed epoch runs in its own subprocess, so a row's peak memory (max RSS) is its own, and the rows take
turns (baseline, ours, ..., baseline, ours, ...): this VM's speed drifts by tens of percent over minutes, and
interleaving puts every row through the same drift, so the ratios stay side by side.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import torch

import alltests
import constants
import mnist
import train
from models import ConvVAE, GaussianMixturePrior, StandardNormalPrior, SubPixelConvTranspose2d, pick_device

ROWS = {
    "baseline": "torchvision MNIST + ToTensor/Normalize per sample, DataLoader, batch 64, stock layers "
                "(earlier implementation)",
    "tensors-64": "in-memory tensors, batch 64, contiguous layout",
    "tensors-stock": f"in-memory tensors, batch {constants.BATCH_SIZE}, channels-last, fused Adam, stock layers",
    "tensors-default": f"in-memory tensors, batch {constants.BATCH_SIZE}, channels-last, fused Adam, sub-pixel last "
                       "layer, in-place ReLU, ReLU after Flatten (project default)",
    "tensors-compile": "the project default under torch.compile",
}
REPEATS = 5  # rounds: each times one epoch of every row; the table shows each row's median (5: one or two
# rounds slowed by the VM's drift do not move it)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def with_stock_layers(model):
    """The same network (same weights) as a user would write it: nn.ConvTranspose2d for the sub-pixel layer,
    ReLUs that allocate their output, and the encoder's last ReLU before Flatten. The baseline row uses it, and
    one row shows what the three changes buy."""
    for module in list(model.modules()):
        if isinstance(module, torch.nn.Sequential):
            layers = list(module)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], torch.nn.Flatten) and isinstance(layers[i + 1], torch.nn.ReLU):
                    module[i], module[i + 1] = layers[i + 1], layers[i]
        for name, child in module.named_children():
            if isinstance(child, SubPixelConvTranspose2d):
                stock = torch.nn.ConvTranspose2d(child.in_channels, child.out_channels, 4, stride=2, padding=1)
                stock.load_state_dict(child.state_dict())
                setattr(module, name, stock)
            elif isinstance(child, torch.nn.ReLU):
                child.inplace = False
    return model


def baseline_epoch(data_dir, device, seed):
    """One timed epoch of the usual PyTorch example pipeline: PIL -> tensor -> normalise per sample, DataLoader,
    batch 64."""
    import losses
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(data_dir, train=True, download=False, transform=transform)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(full) * constants.VALIDATION_SPLIT))
    train_loader = DataLoader(Subset(full, order[n_val:].tolist()), batch_size=64, shuffle=True)
    val_loader = DataLoader(Subset(full, order[:n_val].tolist()), batch_size=64)
    torch.manual_seed(seed)
    model = with_stock_layers(ConvVAE()).to(device)
    prior = StandardNormalPrior(model.latent_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=constants.LEARNING_RATE)
    started = time.perf_counter()
    model.train()
    for x, _ in train_loader:
        x = x.to(device)
        loss = losses.vae_loss(x, *model(x), prior, 1.0)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, _ in val_loader:
            x = x.to(device)
            losses.vae_loss(x, *model(x), prior, 1.0)[0].item()
    seconds = time.perf_counter() - started
    # its loss lives in normalised pixel space, so it is not comparable with ours: not reported
    return [seconds], len(order) - n_val, None


def tensor_epochs(data_dir, device, seed, repeats, batch_size, channels_last, compile_model=False, stock=False):
    """Epochs of the project's own loop (train.fit), one call per epoch so each is timed alone."""
    data = mnist.load_mnist(data_dir, seed=seed)
    torch.manual_seed(seed)
    model = ConvVAE()
    model = (with_stock_layers(model) if stock else model).to(device)
    if compile_model:
        model = torch.compile(model)
    seconds, val_loss = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        history = train.fit(model, StandardNormalPrior(4), data.train_x, data.val_x, beta=1.0, epochs=1,
                            batch_size=batch_size, seed=seed, channels_last=channels_last, progress=False)
        seconds.append(time.perf_counter() - started)
        val_loss = history[-1]["val_loss"] if val_loss is None else val_loss
    return seconds, len(data.train_x), val_loss


def step_cost(device, seed, steps=60, batch_size=constants.BATCH_SIZE):
    """Seconds per training step with the standard-normal KL and with the GMM Monte Carlo KL."""
    import losses
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 1, 28, 28, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    a = torch.randn(constants.GMM_N_COMPONENTS, constants.LATENT_DIM, constants.LATENT_DIM, generator=g) * 0.3
    gmm = GaussianMixturePrior(torch.full((constants.GMM_N_COMPONENTS,), 1 / constants.GMM_N_COMPONENTS),
                               torch.randn(constants.GMM_N_COMPONENTS, constants.LATENT_DIM, generator=g),
                               a @ a.transpose(1, 2) + 0.1 * torch.eye(constants.LATENT_DIM))
    costs = {}
    for name, prior in (("standard", StandardNormalPrior(constants.LATENT_DIM)), ("gmm", gmm)):
        torch.manual_seed(seed)
        model = ConvVAE().to(device).to(memory_format=torch.channels_last)
        prior = prior.to(device)
        optimizer = torch.optim.Adam(model.parameters())
        timings = []
        for step in range(steps + 10):
            started = time.perf_counter()
            loss = losses.vae_loss(x, *model(x), prior, 1.0)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= 10:  # warm-up steps excluded
                timings.append(time.perf_counter() - started)
        costs[name] = sorted(timings)[len(timings) // 2]  # median: robust to a busy moment
    return costs


def run_row(row, data_dir, device, seed):
    """One timed epoch of `row` (under torch.compile, after an untimed compiling epoch), in this process."""
    if row == "step-cost":
        return step_cost(device, seed)
    if row == "baseline":
        seconds, images, val_loss = baseline_epoch(data_dir, device, seed)
    else:
        batch_size, channels_last = (64, False) if row == "tensors-64" else (constants.BATCH_SIZE, constants.CHANNELS_LAST)
        compiled = row == "tensors-compile"  # its first epoch pays for compilation: time one more, report the last
        seconds, images, val_loss = tensor_epochs(data_dir, device, seed, 1 + compiled, batch_size, channels_last,
                                                  compile_model=compiled, stock=row == "tensors-stock")
    return {"seconds": seconds[-1], "first_epoch_seconds": seconds[0], "images": images,
            "peak_rss_mib": peak_rss_mib(), "val_loss_after_one_epoch": val_loss}


def in_subprocess(row, data_dir, device, seed):
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--row", row, "--data-dir", data_dir,
                             "--device", str(device), "--seed", str(seed)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench row {row} failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarise(runs):
    """A row's rounds -> its median epoch, throughput, peak memory and (seeded, so identical) one-epoch loss."""
    seconds = [r["seconds"] for r in runs]
    median = sorted(seconds)[len(seconds) // 2]
    return {"seconds_per_epoch": median, "epoch_seconds": seconds, "images_per_second": runs[0]["images"] / median,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "compile_epoch_seconds": runs[0]["first_epoch_seconds"],
            "val_loss_after_one_epoch": runs[0]["val_loss_after_one_epoch"]}


def time_full_run(data_dir, device):
    with tempfile.TemporaryDirectory() as out_dir:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "alltests.py", "--retrain", "--out-dir", out_dir, "--data-dir", data_dir,
                                 "--device", str(device)], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)))
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"alltests.py failed: {result.stderr.strip().splitlines()[-1]}")
        results = json.load(open(os.path.join(out_dir, "figures", "results.json")))
    return {"seconds": seconds, "best_validation": {k: v["val_loss"] for k, v in results["best_validation"].items()}}


def markdown(report):
    m = report["machine"]
    lines = [f"Machine: {m['cpu_cores']} CPU cores ({m['processor']}), torch {m['torch']}, device {m['device']}, "
             f"{m['torch_threads']} torch threads; measured {m['date']}.", "",
             f"| pipeline (one epoch: 54,000 train + 6,000 validation images; median of {REPEATS} interleaved rounds) | s / epoch | images / s | peak memory (MiB) "
             "| speed-up vs baseline | speed-up in each round | val loss after 1 epoch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    baseline = report["rows"]["baseline"]
    for row, r in report["rows"].items():
        val = "n/a (normalised pixels)" if r["val_loss_after_one_epoch"] is None else f"{r['val_loss_after_one_epoch']:.2f}"
        name = ROWS[row] + (f" (first epoch, compiling: {r['compile_epoch_seconds']:.0f} s)" if row == "tensors-compile" else "")
        # each round's baseline epoch over this row's epoch of the same round: the spread the drift leaves
        rounds = ", ".join(f"{b / s:.2f}" for b, s in zip(baseline["epoch_seconds"], r["epoch_seconds"]))
        lines.append(f"| {name} | {r['seconds_per_epoch']:.1f} | {r['images_per_second']:.0f} | "
                     f"{r['peak_rss_mib']:.0f} | {baseline['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}x | "
                     f"{rounds} | {val} |")
    s = report["step_cost"]
    lines += ["", f"One training step (batch {constants.BATCH_SIZE}): standard-normal KL {s['standard'] * 1e3:.1f} ms, "
                  f"GMM Monte Carlo KL ({constants.GMM_N_COMPONENTS} components, {constants.GMM_KL_SAMPLES} sample) "
                  f"{s['gmm'] * 1e3:.1f} ms: ratio {s['gmm'] / s['standard']:.2f}."]
    if "full_run" in report:
        f = report["full_run"]
        lines += ["", f"`python alltests.py` from scratch (three VAEs, classifier, figures, results): "
                      f"{f['seconds'] / 60:.1f} min; best validation losses "
                      + ", ".join(f"{k} {v:.2f}" for k, v in f["best_validation"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = train.ArgumentParser(description="Benchmark the training pipeline against the usual PyTorch one.")
    parser.add_argument("--full", action="store_true", help="also time a from-scratch alltests.py run")
    train.add_machine_arguments(parser)
    parser.add_argument("--seed", type=int, default=constants.SEED)
    parser.add_argument("--out", default=os.path.join("figures", "bench"), help="writes OUT.json and OUT.md")
    parser.add_argument("--row", choices=list(ROWS) + ["step-cost"], help=argparse.SUPPRESS)  # one row, internal
    args = parser.parse_args(argv)
    data_dir = os.path.abspath(mnist.resolve_data_dir(args.data_dir))
    device = pick_device(args.device)
    if args.row:
        print(json.dumps(run_row(args.row, data_dir, device, args.seed)))
        return
    mnist.read_mnist(data_dir, download=True)  # fail early, with the one-line message, if data is missing
    report = {"machine": {"cpu_cores": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "device": str(device), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")},
              "rows": {}}
    runs = {row: [] for row in ROWS}
    for round_ in range(1, REPEATS + 1):
        for row in ROWS:
            print(f"round {round_}/{REPEATS}: {ROWS[row]} ...", flush=True)
            runs[row].append(in_subprocess(row, data_dir, device, args.seed))
    report["rows"] = {row: summarise(runs[row]) for row in ROWS}
    report["step_cost"] = in_subprocess("step-cost", data_dir, device, args.seed)
    if args.full:
        print("timing: python alltests.py from scratch ...", flush=True)
        report["full_run"] = time_full_run(data_dir, device)
    table = markdown(report)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    alltests.write_text(f"{args.out}.json", json.dumps(report, indent=2) + "\n")
    alltests.write_text(f"{args.out}.md", table)
    if os.path.abspath(args.out) == os.path.abspath(os.path.join("figures", "bench")):
        alltests.update_readme_block("bench", table)
    print(table)


if __name__ == "__main__":
    train.run_main(main)
