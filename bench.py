"""Speed, measured (not a test): time to quality first, then epochs, steps, the study's engine and its scaling.

    python bench.py                        # every section -> figures/bench.json, figures/bench.md, the README block
    python bench.py --only ttq scaling     # just these sections; the others keep their last measurement

Sections:
    ttq      seconds until the validation loss first reaches TTQ_TARGET: the project default (the whole
             `train.py --model base` process) against a plain PyTorch pipeline (per-sample ToTensor, DataLoader,
             batch 64, Adam 1e-3, stock layers), both validated the same way on the same 6,000 images
    epochs   one training epoch through each pipeline
    step     one training step: the standard-normal KL against the GMM's Monte Carlo KL
    engines  start-up time and memory of Dask and Ray on this machine (Ray only where it is installed)
    scaling  the quick and the medium study on 1 and on 2 Dask workers: wall time, speed-up, identical numbers
    final    the base VAE trained to the end: the project default against the previous default (batch 128, Adam
             1e-3 halved on plateaus): best validation loss and seconds
    full     a from-scratch `python alltests.py`
    gpu      the accelerator's figures, with --device (python bench.py --only gpu --device cuda, one call on a GPU
             machine; not yet timed): training images/s and step time with the GPU's utilisation over a timed
             epoch, peak GPU memory, time to quality (training and whole process), `alltests.py --device` from
             scratch and how far its numbers are from the committed CPU run, and the medium study's wall time

Every timed run is its own process (its memory is its own, and the whole process counts), and the rows take turns
round by round: this VM's speed drifts by tens of percent over minutes, and taking turns puts every row through
the same drift.
"""
import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import cache
import cli
import constants
import datasets
import fitting
from config import ConfigError
from models import ConvVAE, GaussianMixturePrior, StandardNormalPrior, SubPixelConvTranspose2d, pick_device

ROOT = os.path.dirname(os.path.abspath(__file__))
TTQ_TARGET = 33.0  # the validation loss (recon + KL, fixed noise) whose first crossing is timed
TTQ_MAX_EPOCHS = 15
TTQ_SEEDS = [0, 1, 2]  # one round per seed: the optimisation's spread is part of the measurement
EPOCH_ROUNDS = 3
EPOCH_ROWS = {
    "baseline": "torchvision MNIST + ToTensor/Normalize per sample, DataLoader, batch 64, stock layers",
    "tensors-128": "in-memory tensors, batch 128, channels-last, fused Adam, project layers (the previous default)",
    "tensors-stock": f"in-memory tensors, batch {constants.BATCH_SIZE}, channels-last, fused Adam, stock layers",
    "default": f"in-memory tensors, batch {constants.BATCH_SIZE}, channels-last, fused Adam, project layers "
               "(project default)",
    "compile": "the project default under torch.compile",
}
SECTIONS = ("ttq", "epochs", "step", "engines", "scaling", "final", "full", "gpu")
GPU_EPOCHS = 2  # the throughput run: the first epoch warms up (cuDNN's choices, the allocator), the second is timed
GPU_POLL_SECONDS = 0.2  # nvidia-smi's utilisation sampling period while the throughput child runs
# the bench measures the seed design (conv body, squared error, 4-d latent), which bench.json's TTQ_TARGET was set
# for: the default likelihood's loss lives on another scale (README, Performance)
BENCH_MODEL = {"arch": "conv", "likelihood": "gaussian", "latent_dim": 4}
PREVIOUS_DEFAULT = {"batch_size": 128, "lr": 1e-3, "lr_schedule": "plateau"}  # before the one-cycle schedule


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine():
    return {"cpu_cores": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def with_stock_layers(model):
    """The same network (same weights) as a user would write it: nn.ConvTranspose2d for the sub-pixel layer,
    ReLUs that allocate their output, and the encoder's last ReLU before Flatten."""
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


def dataloader_epochs(data_dir, seed, epochs, normalise, on_epoch):
    """The usual PyTorch example pipeline: PIL -> tensor per sample (and Normalize, optionally), DataLoader at
    batch 64, stock layers, plain Adam 1e-3; validated after each epoch exactly as fitting.fit validates."""
    import losses
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets as tv_datasets
    from torchvision import transforms
    steps = [transforms.ToTensor()] + ([transforms.Normalize((0.1307,), (0.3081,))] if normalise else [])
    full = tv_datasets.MNIST(data_dir, train=True, download=False, transform=transforms.Compose(steps))
    split = datasets.load("mnist", data_dir, False, seed=seed)  # the same split and validation images
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(full) * constants.VALIDATION_SPLIT))
    loader = DataLoader(Subset(full, order[n_val:].tolist()), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = with_stock_layers(ConvVAE(**BENCH_MODEL))
    prior = StandardNormalPrior(model.latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, epochs + 1):
        model.train()
        for x, _ in loader:
            loss = losses.vae_loss(x, *model(x), prior, 1.0, None, model.likelihood)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        # pixels in [0, 1] unless normalised, where the loss lives in another space and is not comparable
        val = None if normalise else losses.objective(model, prior, split.val_x, 1.0, seed)["loss"]
        if on_epoch({"epoch": epoch, "val_loss": val}):
            break


def child(args):
    """One timed run in this process; prints one JSON line per epoch, or one result line."""
    import train
    started_at = args.t0 if args.t0 else time.time()
    data_dir = args.data_dir

    def report_epoch(entry, limit=None):
        seconds = time.time() - started_at
        print(json.dumps({"epoch": entry["epoch"], "val_loss": entry["val_loss"], "seconds": seconds,
                          "peak_rss_mib": peak_rss_mib()}), flush=True)
        return limit is not None and (entry["val_loss"] is not None and entry["val_loss"] <= TTQ_TARGET
                                      or entry["epoch"] >= limit)

    if args.child == "ttq-default":  # the `train.py --model base` path, stopped once it reaches the target
        import config
        cfg = config.RunConfig(seed=args.seed, epochs_base=constants.EPOCHS_BASE, **BENCH_MODEL).validate()
        data = datasets.load_for(cfg, data_dir)
        device = pick_device(args.device or "cpu")
        print(json.dumps({"training_starts": time.time() - started_at}), flush=True)
        train.train_run("base", cfg, data, device, progress=False, on_epoch=lambda e: report_epoch(e, TTQ_MAX_EPOCHS))
    elif args.child == "throughput":  # the project default's base VAE, GPU_EPOCHS epochs, each epoch's wall clock
        import config
        cfg = config.RunConfig(seed=args.seed, epochs_base=GPU_EPOCHS).validate()
        data = datasets.load_for(cfg, data_dir)
        device = pick_device(args.device or "cpu")
        marks = [time.time()]

        def timed_epoch(entry):
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks.append(time.time())
            print(json.dumps({"epoch": entry["epoch"], "start": marks[-2], "end": marks[-1],
                              "images": len(data.train_x), "steps": -(-len(data.train_x) // cfg.batch_size),
                              "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2 ** 20
                              if device.type == "cuda" else None}), flush=True)
            marks[-1] = time.time()  # the next epoch starts after this report
        train.train_run("base", cfg, data, device, progress=False, on_epoch=timed_epoch)
    elif args.child in ("final-default", "final-previous"):  # trained to the end: EPOCHS_BASE, early stopping
        import config
        changes = PREVIOUS_DEFAULT if args.child == "final-previous" else {}
        cfg = config.RunConfig(seed=args.seed, **BENCH_MODEL, **changes).validate()
        data = datasets.load_for(cfg, data_dir)
        train.train_run("base", cfg, data, torch.device("cpu"), progress=False, on_epoch=report_epoch)
    elif args.child == "ttq-dataloader":
        dataloader_epochs(data_dir, args.seed, TTQ_MAX_EPOCHS, False, lambda e: report_epoch(e, TTQ_MAX_EPOCHS))
    elif args.child == "baseline":
        dataloader_epochs(data_dir, args.seed, 1, True, report_epoch)
    elif args.child in ("tensors-128", "tensors-stock", "default", "compile"):
        data = datasets.load("mnist", data_dir, False, seed=args.seed)
        torch.manual_seed(args.seed)
        import config
        model = ConvVAE(**BENCH_MODEL)
        model = with_stock_layers(model) if args.child == "tensors-stock" else model
        model = torch.compile(model) if args.child == "compile" else model
        batch = 128 if args.child == "tensors-128" else constants.BATCH_SIZE
        for epoch in range(1 + (args.child == "compile")):  # compile: the first epoch compiles, time the second
            started = time.time()
            history = fitting.fit(model, StandardNormalPrior(4), data.train_x, data.val_x,
                                config.RunConfig(batch_size=batch, seed=args.seed), beta=1.0, epochs=1, progress=False)
            print(json.dumps({"epoch": epoch + 1, "seconds": time.time() - started, "val_loss": history[-1]["val_loss"],
                              "images": len(data.train_x), "peak_rss_mib": peak_rss_mib()}), flush=True)
    elif args.child == "step":
        print(json.dumps(step_cost(args.seed)))


def spawn(kind, data_dir, seed=0, device=None):
    """Run child `kind` in a fresh interpreter; (its JSON lines, seconds of the whole process)."""
    t0 = time.time()
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, "--seed", str(seed),
                             "--data-dir", data_dir, "--t0", repr(t0)] + (["--device", device] if device else []),
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"bench {kind} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return lines, time.time() - t0


def time_to_quality(data_dir):
    rounds = []
    for seed in TTQ_SEEDS:
        row = {"seed": seed}
        for kind in ("ttq-default", "ttq-dataloader"):
            print(f"ttq: {kind}, seed {seed} ...", flush=True)
            epochs, _ = spawn(kind, data_dir, seed)
            reached = [e for e in epochs if e["val_loss"] is not None and e["val_loss"] <= TTQ_TARGET]
            row[kind] = {"epochs": epochs, "reached_epoch": reached[0]["epoch"] if reached else None,
                         "seconds": reached[0]["seconds"] if reached else None}
        rounds.append(row)
    return {"target": TTQ_TARGET, "max_epochs": TTQ_MAX_EPOCHS, "rounds": rounds, "machine": machine()}


def epoch_rows(data_dir):
    runs = {row: [] for row in EPOCH_ROWS}
    for round_ in range(EPOCH_ROUNDS):
        for row in EPOCH_ROWS:
            print(f"epochs: round {round_ + 1}/{EPOCH_ROUNDS}, {row} ...", flush=True)
            runs[row].append(spawn(row, data_dir, 0)[0][-1])
    return {"rounds": EPOCH_ROUNDS, "rows": {row: {"description": EPOCH_ROWS[row],
                                                   "seconds": [r["seconds"] for r in runs[row]],
                                                   "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[row]),
                                                   "val_loss_after_one_epoch": runs[row][0]["val_loss"]}
                                             for row in EPOCH_ROWS}, "machine": machine()}


def step_cost(seed, steps=60, batch_size=constants.BATCH_SIZE):
    """Median seconds per training step with the standard-normal KL and with the GMM Monte Carlo KL."""
    import losses
    g = torch.Generator().manual_seed(seed)
    side = constants.IMAGE_SIZE
    x = torch.rand(batch_size, 1, side, side, generator=g).contiguous(memory_format=torch.channels_last)
    k, d = constants.GMM_COMPONENTS, BENCH_MODEL["latent_dim"]
    a = torch.randn(k, d, d, generator=g) * 0.3
    gmm = GaussianMixturePrior(torch.full((k,), 1 / k), torch.randn(k, d, generator=g), a @ a.transpose(1, 2)
                               + 0.1 * torch.eye(d))
    costs = {}
    for name, prior in (("standard", StandardNormalPrior(d)), ("gmm", gmm)):
        torch.manual_seed(seed)
        model = ConvVAE(**BENCH_MODEL).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters())
        timings = []
        for step in range(steps + 10):
            started = time.perf_counter()
            loss = losses.vae_loss(x, *model(x), prior, 1.0, None, model.likelihood)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= 10:  # warm-up steps excluded
                timings.append(time.perf_counter() - started)
        costs[name] = sorted(timings)[len(timings) // 2]
    return costs


# The engine probe runs as `python -c`, importing only the engine: Dask's worker processes are spawned and re-import
# the __main__ module, so a probe inside bench.py would make them import torch and this repo, which a tiny task does
# not need (the study's workers import them anyway, for both engines alike).
ENGINE_PROBE = """
import json, sys, time
import psutil

def square(x):
    return x * x

engine = sys.argv[1]
if __name__ == "__main__":
    started = time.perf_counter()
    if engine == "ray":
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ready = time.perf_counter()
        remote = ray.remote(num_cpus=1)(square)
        ray.get([remote.remote(i) for i in range(20)])
    else:
        from dask.distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
        ready = time.perf_counter()
        client.gather(client.map(square, range(20)))
    done = time.perf_counter()
    me = psutil.Process()
    processes = [p for p in psutil.process_iter(["create_time"]) if p.info["create_time"] >= me.create_time() - 1]
    rss = sum(p.memory_info().rss for p in processes if p.is_running()) / 2 ** 20
    out = {"start_seconds": ready - started, "tasks_seconds": done - ready, "rss_mib": rss,
           "processes": len(processes), "version": __import__(engine).__version__}
    if engine == "ray":
        ray.shutdown()
    else:
        client.close()
        cluster.close()
    print(json.dumps(out))
"""


def engine_start(engine):
    """Seconds to start a 2-worker, 1-thread-each cluster and run 20 tiny tasks; the memory of every process (the
    probe's own included), in a fresh interpreter that imports only the engine."""
    result = subprocess.run([sys.executable, "-c", ENGINE_PROBE, engine], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"bench {engine} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def engines(data_dir):
    out = {}
    for engine in ("dask", "ray"):
        try:
            __import__(engine)
        except ImportError:
            out[engine] = None  # not installed here: `pip install ray` to measure it too
            continue
        runs = [engine_start(engine) for _ in range(3)]
        out[engine] = {k: sorted(r[k] for r in runs)[1] if k != "version" else runs[0][k] for k in runs[0]}
    return {**out, "machine": machine()}


def run_study(size, workers, out_dir, data_dir, device="cpu"):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "study.py", f"--{size}", "--workers", str(workers), "--out-dir", out_dir,
                             "--data-dir", data_dir, "--device", str(device)], capture_output=True, text=True,
                            cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"study --{size} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    study = json.load(open(os.path.join(out_dir, "figures", "study.json")))
    return time.perf_counter() - started, study


def scaling(data_dir):
    out = {}
    for size in ("quick", "medium"):
        runs = {}
        for workers in (1, 2):
            print(f"scaling: {size} study on {workers} worker(s) ...", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                seconds, study = run_study(size, workers, tmp, data_dir)
            runs[workers] = {"seconds": seconds, "units": study["engine"]["units"], "summary": study["summary"]}
        out[size] = {"units": runs[1]["units"], "seconds": {str(w): r["seconds"] for w, r in runs.items()},
                     "speedup": runs[1]["seconds"] / runs[2]["seconds"],
                     "identical": runs[1]["summary"] == runs[2]["summary"]}
    return {**out, "machine": machine()}


def final_losses(data_dir):
    out = {}
    for kind in ("final-default", "final-previous"):
        print(f"final: {kind} ...", flush=True)
        epochs, seconds = spawn(kind, data_dir, 0)
        out[kind] = {"best_val_loss": min(e["val_loss"] for e in epochs), "epochs": len(epochs), "seconds": seconds}
    return {**out, "previous": PREVIOUS_DEFAULT, "machine": machine()}


def run_alltests(data_dir, device=None):
    """A from-scratch `python alltests.py` in a temporary folder: (wall seconds, its results.json)."""
    with tempfile.TemporaryDirectory() as out_dir:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "alltests.py", "--out-dir", out_dir, "--data-dir", data_dir]
                                + (["--device", device] if device else []), capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"alltests.py failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        return seconds, json.load(open(os.path.join(out_dir, "figures", "results.json")))


def full_run(data_dir):
    seconds, results = run_alltests(data_dir)
    return {"seconds": seconds, "best_validation": {k: v["val_loss"] for k, v in results["best_validation"].items()},
            "machine": machine()}


class UtilisationMonitor:
    """Samples the GPU's utilisation (0-1) with nvidia-smi every GPU_POLL_SECONDS in a thread, each with its wall
    clock time, so that a window (one timed epoch) can be cut from them afterwards (utilisation_between)."""

    def __init__(self, index=0):
        self.index, self.samples, self._stop = index, [], None

    def _poll(self):
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip().isdigit():
                self.samples.append((time.time(), int(out.stdout.strip()) / 100))
            self._stop.wait(GPU_POLL_SECONDS)

    def __enter__(self):
        import threading
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def utilisation_between(samples, start, end):
    """{median, max, samples} of the (time, utilisation) samples inside [start, end]; None without any."""
    inside = sorted(u for t, u in samples if start <= t <= end)
    if not inside:
        return None
    return {"median": statistics.median(inside), "max": inside[-1], "samples": len(inside)}


def results_gap(measured, committed):
    """How far a run's sampling rows are from the committed results.json's: {rows, max_abs_target_rate_diff,
    worst_row} over the rows both have (model, source, labels), in target-rate points (0-1)."""
    key = lambda r: (r["model"], r["source"], r.get("labels"))  # noqa: E731
    theirs = {key(r): r["target_rate"] for r in committed["sampling"]}
    gaps = {key(r): abs(r["target_rate"] - theirs[key(r)]) for r in measured["sampling"] if key(r) in theirs}
    worst = max(gaps, key=gaps.get) if gaps else None
    return {"rows": len(gaps), "max_abs_target_rate_diff": gaps[worst] if worst else None,
            "worst_row": list(worst) if worst else None}


def gpu_section(data_dir, device):
    """The `gpu` section: every figure issue 19 asks of an accelerator, each from its own process."""
    dev = pick_device(device)
    out = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "machine": machine()}
    print(f"gpu: training throughput on {out['device']} ...", flush=True)
    monitor = UtilisationMonitor(dev.index or 0) if dev.type == "cuda" else None
    with monitor or contextlib.nullcontext():
        epochs, _ = spawn("throughput", data_dir, 0, device)
    timed = epochs[-1]  # the last epoch: the first warmed up
    seconds = timed["end"] - timed["start"]
    out.update({"train_images_per_second": timed["images"] / seconds, "step_ms": 1000 * seconds / timed["steps"],
                "epoch_seconds": [e["end"] - e["start"] for e in epochs], "peak_gpu_mib": timed["peak_gpu_mib"]})
    window = utilisation_between(monitor.samples, timed["start"], timed["end"]) if monitor else None
    out["utilisation"] = window["median"] if window else None
    out["utilisation_window"] = window
    print("gpu: time to quality ...", flush=True)
    lines, process_seconds = spawn("ttq-default", data_dir, 0, device)
    starts = next(line["training_starts"] for line in lines if "training_starts" in line)
    reached = [e for e in lines if e.get("val_loss") is not None and e["val_loss"] <= TTQ_TARGET]
    out.update({"ttq_target": TTQ_TARGET, "ttq_epoch": reached[0]["epoch"] if reached else None,
                "ttq_process_seconds": reached[0]["seconds"] if reached else None,
                "ttq_train_seconds": reached[0]["seconds"] - starts if reached else None,
                "ttq_startup_seconds": starts, "ttq_whole_child_seconds": process_seconds})
    print("gpu: python alltests.py from scratch ...", flush=True)
    wall, measured = run_alltests(data_dir, device)
    committed = cache.read_json(os.path.join(ROOT, "figures", "results.json"))
    out.update({"alltests_seconds": measured["seconds"], "alltests_wall_seconds": wall,
                "against_committed_cpu_run": results_gap(measured, committed) if committed else None})
    print("gpu: the medium study ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workers = min(8, os.cpu_count() or 1)
        seconds, study = run_study("medium", workers, tmp, data_dir, device)
    # every unit on the accelerator, the workers sharing it (study.py --device)
    out.update({"study_seconds": seconds, "study_units": study["engine"]["units"], "study_workers": workers,
                "study_device": study["engine"]["device"]})
    return out


def main(argv=None):
    parser = cli.ArgumentParser(description="Benchmark: time to quality, epochs, steps, the study engine.")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to measure")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=os.path.join("figures", "bench"), help="writes OUT.json and OUT.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one timed run
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help="the accelerator of the gpu section (cuda); its children's too")
    args = parser.parse_args(argv)
    args.data_dir = os.path.abspath(datasets.resolve_data_dir(args.data_dir))
    if args.child:
        return child(args)
    import report  # here, not at the top: a timed child process should import no more than train.py does
    datasets.read_raw("mnist", args.data_dir)  # fail early, with the one-line message, if data is missing
    pick_device(args.device or "cpu")  # a device that is not there: one line, before any measurement
    if "gpu" in args.only and not args.device:
        raise ConfigError("the gpu section measures an accelerator: give it with --device (cuda)")
    bench = cache.read_json(f"{args.out}.json") or {}
    measure = {"ttq": time_to_quality, "epochs": epoch_rows, "step": lambda d: {**spawn("step", d)[0][-1],
                                                                                "machine": machine()},
               "engines": engines, "scaling": scaling, "final": final_losses, "full": full_run,
               "gpu": lambda d: gpu_section(d, args.device)}
    for section in args.only:
        bench[section] = measure[section](args.data_dir)
        cache.write_json(f"{args.out}.json", bench)  # after each section: a later failure keeps this one
    table = report.bench_markdown(bench)
    cache.write_text(f"{args.out}.md", table)
    if os.path.abspath(args.out) == os.path.abspath(os.path.join("figures", "bench")):
        report.update_block("bench", table)
    print(table)


if __name__ == "__main__":
    cli.run_main(main)
