"""The study: how strong can the bias get, at what cost, from how few labels, for every class of two datasets, and
how each model design (STUDY_DESIGNS: latent size, body, likelihood) draws each class.

    python study.py                              # the whole study: figures/study*.png, study.json, study.md
    python study.py --quick                      # a small study (the tests run it), output in runs/study-quick/
    python study.py --workers 1                  # the local cluster's size (default: one worker per core)
    python study.py --address tcp://host:8786    # run the units on an existing Dask cluster instead
    python study.py --device cuda                # every unit on the GPU, the workers sharing it
    python study.py --variant latent-16          # the default design's study at a latent of 16 (STUDY_VARIANTS),
                                                 # set beside the default's in the README
    python study.py --designs default --latent-dim 8 --out-dir runs/l8   # any setting flag, for every unit

Every training and every evaluation is one unit of work (units.py) on a Dask cluster, started here sized to the
machine (one single-threaded worker per core), or joined with --address (or $DASK_SCHEDULER_ADDRESS). A unit waits
for the units it needs (a fine-tune for its base model) and stores its result under its identity in
<out>/units/, so a killed study loses only the units in flight and a rerun recomputes exactly those.
"""
import contextlib
import itertools
import logging
import os
import platform
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import dask
import torch
from tqdm import tqdm

import cache
import cli
import config
import constants
import datasets
import models
import plots
import study_report
import samplers
import units
from errors import CheckpointError

@dataclass
class Unit:
    name: str
    func: Callable
    spec: dict
    deps: tuple = ()  # names of the units whose results are passed to func after the spec
    weight: int = 1  # rough cost (epochs, sources measured): the progress bar's estimate, and the Dask priority


# a training's cost per epoch by body, against the conv body's: the plan's weights, so that the heaviest training
# starts first (measured in the study of 2026-12-01: the residual body's Fashion-MNIST base VAE took 1,055 s for the
# conv body's 276 s, both 12 epochs); a body not named here counts as the conv body
EPOCH_COST = {"conv": 1, "resnet": 4}
DEFAULT_DESIGN = "default"  # constants.py's model settings; STUDY_DESIGNS names the others by what they change
SIZES = {"full": {}, "medium": constants.MEDIUM_STUDY, "quick": constants.QUICK_STUDY}
OUT_DIRS = {"full": constants.STUDY_OUT_DIR, "medium": constants.MEDIUM_STUDY_OUT_DIR,
            "quick": constants.QUICK_STUDY_OUT_DIR}


def study_settings(size="full"):
    """The study's plan: seeds, datasets, latent sizes, goal sets, label budgets, the beta grid, and the run
    settings every unit starts from (constants.py's STUDY_* values, then QUICK_STUDY or MEDIUM_STUDY)."""
    settings = {"seeds": list(constants.STUDY_SEEDS), "draws": list(constants.STUDY_DRAWS), "datasets": list(constants.STUDY_DATASETS),
                "designs": dict(constants.STUDY_DESIGNS), "classes": list(constants.STUDY_CLASSES),
                "goal_sets": dict(constants.STUDY_GOAL_SETS), "label_curve": list(constants.STUDY_LABEL_CURVE),
                "few_label_samplers": list(constants.STUDY_FEW_LABEL_SAMPLERS),
                "eval_samples": constants.STUDY_EVAL_SAMPLES, "run": {}}
    settings.update(SIZES[size])
    return settings


# the settings the plan sets itself (per unit: each goal, budget, draw, seed, dataset; per study size: the samples
# per row), so no flag overrides them
PLANNED_SETTINGS = ("dataset", "seed", "goals", "expert_labels", "label_draw", "eval_samples")


def with_overrides(settings, dataset=None, designs=None, run=None):
    """The study's settings narrowed to one dataset and to some designs, with run settings changed for every unit
    (study.py's --dataset, --designs and setting flags: e.g. the whole study at another latent size, without editing
    constants.py). One-line ConfigError for a design that is not planned or a setting the plan sets itself."""
    settings = {**settings, "run": dict(settings["run"])}
    if dataset:
        settings["datasets"] = [dataset]
    if designs:
        unknown = [d for d in designs if d not in settings["designs"]]
        if unknown:
            raise config.ConfigError(f"unknown design(s) {', '.join(map(repr, unknown))}: choose from "
                                     f"{', '.join(map(repr, settings['designs']))}")
        settings["designs"] = {d: settings["designs"][d] for d in settings["designs"] if d in designs}
    planned = sorted(set(run or {}) & set(PLANNED_SETTINGS))
    if planned:
        raise config.ConfigError(f"the study sets {', '.join(planned)} itself, unit by unit")
    settings["run"].update(run or {})
    config.RunConfig(**settings["run"]).validate()  # here, with the one-line error, not inside a worker
    return settings


def variant_out_dir(name, size="full"):
    """Where a variant's units go: the size's folder with the variant's name, runs/study-latent-16 for the full one."""
    return f"{OUT_DIRS[size]}-{name}"


def variant_settings(name, size="full"):
    """The study of a variant (STUDY_VARIANTS): the default design alone, its run settings changed for every unit."""
    return with_overrides(study_settings(size), designs=[DEFAULT_DESIGN], run=constants.STUDY_VARIANTS[name])


def cell_name(dataset, design, seed):
    """The prefix of every unit of one dataset, design and seed: "<dataset>/<design, spaces as dashes>/s<seed>"."""
    return f"{dataset}/{design.replace(' ', '-')}/s{seed}"


def design_bases(results, settings):
    """[(dataset, design, result, loaded)] of each design's base VAE unit that finished, for the study's first seed:
    loaded is models.load_checkpoint's (model, prior, checkpoint), or the CheckpointError of a checkpoint this process
    cannot read (on another machine of a remote cluster). Read once for design_costs and design_samples."""
    bases = []
    for dataset in settings["datasets"]:
        for design in settings["designs"]:
            unit = f"{cell_name(dataset, design, settings['seeds'][0])}/base"
            if unit in results:
                try:
                    loaded = models.load_checkpoint(results[unit]["path"])
                except CheckpointError as error:
                    loaded = error
                bases.append((dataset, design, results[unit], loaded))
    return bases


def plan(settings, data_dir, out_dir, device="cpu"):
    """Every unit of the study, keyed by name, each after the units it depends on, each computing on `device`."""
    plan_units = {}

    def add(name, func, cfg, deps=(), weight=1, **spec):
        plan_units[name] = Unit(name, func, {"name": name, "run": cfg.as_dict(), "data_dir": data_dir,
                                             "out_dir": out_dir, "device": str(device), **spec}, tuple(deps),
                                      weight)
        return name

    def evaluation(name, cfg, design, draw, sources, deps, decoder=None, unlabelled=None):
        row = {"dataset": cfg.dataset, "design": design, "latent_dim": cfg.latent_dim, "seed": cfg.seed,
               "draw": draw, "goals": cfg.goals}
        add(name, units.evaluation_unit, cfg, deps + tuple(d for d in (decoder, unlabelled) if d), len(sources),
            sources=sources, row=row, has_decoder=decoder is not None, has_unlabelled=unlabelled is not None)

    for dataset in settings["datasets"]:
        run = config.RunConfig(**{**settings["run"], "dataset": dataset, "eval_samples": settings["eval_samples"]})
        classifier = add(f"{dataset}/classifier", units.classifier_unit, run.replace(seed=constants.SEED), weight=6)
        for design, changes in settings["designs"].items():
            default = design == DEFAULT_DESIGN  # every measurement; another design: its decoder ceilings
            for seed in settings["seeds"]:
                cell = cell_name(dataset, design, seed)
                cfg = run.replace(seed=seed, **changes)
                training = cfg.epochs_base * EPOCH_COST.get(cfg.arch, 1)  # the weight of a base VAE or CVAE
                base = add(f"{cell}/base", units.vae_unit, cfg, weight=training, model="base")
                for c in settings["classes"]:
                    evaluation(f"{cell}/g{c}/references", cfg.replace(goals=[c]).validate(), design, None, [
                        {"method": units.REAL, "source": "real", "beta": None, "labels": None},
                        {"method": units.CEILING, "source": "ceiling", "beta": None, "labels": None}],
                        (classifier, base))
                if not default:
                    continue
                cvae = add(f"{cell}/cvae", units.vae_unit, cfg, weight=training, model="cvae")
                unlabelled = add(f"{cell}/unlabelled", units.unlabelled_unit, cfg, (base,), 3)
                for c in settings["classes"]:
                    evaluation(f"{cell}/g{c}/cvae", cfg.replace(goals=[c]).validate(), design, None,
                               [{"method": units.CVAE, "source": "cvae", "beta": None, "labels": "every image"},
                                {"method": units.CVAE_POSTERIORS, "source": "cvae-posteriors", "beta": None,
                                 "labels": "every image"}],
                               (classifier, base), decoder=cvae)
                goal_sets = [[c] for c in settings["classes"]] + settings["goal_sets"].get(dataset, [])
                for goals in goal_sets:
                    budgets = settings["label_curve"] if len(goals) == 1 else settings["label_curve"][-1:]
                    for budget, draw in itertools.product(budgets, settings["draws"]):
                        names = samplers.names() if budget == settings["label_curve"][-1] \
                            else settings["few_label_samplers"]
                        gcfg = cfg.replace(goals=goals, expert_labels=budget, label_draw=draw).validate()
                        tag = config.budget_name(budget)
                        evaluation(f"{cell}/g{''.join(map(str, goals))}/samplers-n{tag}-d{draw}", gcfg, design, draw,
                                   [{"method": units.sampler_method(name), "source": name, "beta": None,
                                     "labels": tag} for name in names], (classifier, base), unlabelled=unlabelled)
    return plan_units


def machine():
    """The machine that drives the study, and so runs a local cluster's workers (not those of a cluster joined with
    --address, which may differ): its CPU's model, torch and Python. The
    same seed and settings give the same numbers on one machine, not across CPUs, whose floating point differs in the
    last digits (measured: a classifier trained anew on another machine, 99.33% against 99.42% test accuracy)."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def connect(address, workers):
    """A Dask client: to the cluster at `address` (or $DASK_SCHEDULER_ADDRESS), else to a new local cluster of
    `workers` single-threaded worker processes. Returns (client, the cluster to close or None, a description)."""
    from dask.distributed import Client, LocalCluster
    address = address or dask.config.get("scheduler-address", None)
    if address:
        try:
            client = Client(address, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        except (OSError, TimeoutError) as error:
            raise cli.EngineError(f"no Dask scheduler answers at {address} ({type(error).__name__}): start one "
                                  f"with `dask scheduler`, or leave out --address for a local cluster") from None
        return client, None, {"address": address, "workers": len(client.scheduler_info()["workers"])}
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, to hand freed memory back to the OS; setting it also
    # turns off glibc's adaptive mmap threshold, so every array over 128 KiB is mapped afresh and its pages faulted
    # in again (measured during a full study: 40-45% of each worker's CPU time in the kernel). Unset there,
    # the workers allocate as a plain process does (mallopt(3): M_MMAP_THRESHOLD, "dynamic adjustment")
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    return Client(cluster), cluster, {"address": "local", "workers": workers}


def split_sources(unit):
    """An evaluation unit measured source by source: one unit per source, named <unit>/<source>."""
    return {f"{unit.name}/{source['source']}": Unit(f"{unit.name}/{source['source']}", unit.func,
                                                    {**unit.spec, "name": f"{unit.name}/{source['source']}",
                                                     "sources": [source]}, unit.deps, 1)
            for source in unit.spec["sources"]}


def unit_key(unit, token):
    """The unit's Dask key: its function's name, then the run's token, then the unit's name. Dask groups tasks by the
    key's leading words (dask.utils.key_split) to estimate their durations and to spot root tasks, which its
    scheduler holds back and hands to whichever worker frees first. Keyed by the unit's name alone, every
    Fashion-MNIST unit fell into one group "fashion" of hundreds of mostly short tasks with dependencies: the
    dependency-free trainings were then assigned to a busy worker up front and waited behind a long training while
    the other worker idled (measured in the study of 2026-12-01). The token, digits, ends the group name there."""
    return f"{unit.func.__name__}-{token}-{unit.name}"


def run_units(plan_units, client, progress=True):
    """Submit every unit with its dependencies, the heaviest first where several are ready, by the plan's rough
    weights (longest processing time first shortens the whole run); one progress bar. Returns ({name: result},
    {name: error}, {name: unit}: the units measured source by source (split_sources) because their unit failed as a
    whole)."""
    from dask.distributed import as_completed
    token = f"{os.getpid()}-{time.time_ns()}"  # keys unique to this run, on a shared cluster too
    futures, names, results, failed, split = {}, {}, {}, {}, {}
    total_units = [len(plan_units)]

    def submit(batch):
        for name, unit in batch.items():
            # no retries: a unit's errors are deterministic (a lost worker is rescheduled by Dask without them)
            future = client.submit(unit.func, unit.spec, *(futures[d] for d in unit.deps), key=unit_key(unit, token),
                                   pure=False, priority=unit.weight)
            futures[name], names[future.key] = future, name
        return [futures[name] for name in batch]

    def gather(batch, bar):
        for future in as_completed(submit(batch)):
            name = names[future.key]
            try:
                results[name] = future.result()
            except Exception as error:  # noqa: BLE001 - a failed unit is reported, the others carry on
                failed[name] = f"{type(error).__name__}: {error}"
            bar.set_description_str(f"study {len(results) + len(failed)}/{total_units[0]} units"
                                    + (f", {len(failed)} failed" if failed else ""), refresh=False)
            bar.update(batch[name].weight)

    with tqdm(total=sum(u.weight for u in plan_units.values()), disable=not progress, mininterval=1.0,
              desc=f"study 0/{len(plan_units)} units", bar_format="{desc} {percentage:3.0f}%|{bar}| "
                                                                    "[{elapsed}<{remaining}]") as bar:
        gather(plan_units, bar)
        # an evaluation unit measures several sources, so one that cannot be measured (a sampler that cannot be
        # fitted or sampled from these labels) fails them all: measure them one by one, so that only the failing
        # source is reported as failed and the others keep their numbers (each source is seeded on its own, so
        # its numbers are those it would have had in the whole unit)
        retry = [n for n in failed if len(plan_units[n].spec.get("sources", ())) > 1]
        for name in retry:
            del failed[name]
            split.update(split_sources(plan_units[name]))
        if split:  # all at once, so that the workers share them
            total_units[0] += len(split) - len(retry)
            bar.total += len(split)
            gather(split, bar)
    return results, failed, split


# --- gathering ----------------------------------------------------------------------------------

METRICS = ("target_rate", "precision", "recall", "density", "coverage", "precision_real", "recall_real",
           "coverage_real", "fd_goal", "fd_test", "diversity", "mean_confidence")
GROUP = ("dataset", "design", "latent_dim", "goals", "method", "beta", "labels")


def summarise(rows):
    """Mean and (sample) standard deviation over seeds of every metric, per GROUP."""
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(tuple(row[k]) if isinstance(row[k], list) else row[k] for k in GROUP)].append(row)
    summary = []
    for key, members in groups.items():
        entry = dict(zip(GROUP, key))
        entry.update(goals=list(entry["goals"]), seeds=sorted({m["seed"] for m in members}),
                     draws=[m["draw"] for m in members], source=members[0]["source"])
        values = {k: [m[k] for m in members] for k in METRICS}
        values.update({f"rate_{g}": [m["goal_rates"][str(g)] for m in members] for g in entry["goals"]})
        values.update({f"share_{k}": [m["class_histogram"][k] for m in members] for k in range(constants.N_CLASSES)})
        for name, vals in values.items():
            t = torch.tensor(vals, dtype=torch.float64)
            entry[name] = {"mean": t.mean().item(), "std": t.std().item() if len(vals) > 1 else 0.0}
        summary.append(entry)
    return summary


def main(argv=None):
    started = time.perf_counter()
    parser = cli.ArgumentParser(description="The bias study, its units run on a Dask cluster.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="size", const="quick", default="full",
                      help=f"a small study (QUICK_STUDY in constants.py; a smoke test), in {OUT_DIRS['quick']}/")
    size.add_argument("--medium", action="store_const", dest="size", const="medium",
                      help=f"a medium study (MEDIUM_STUDY; what bench.py times), in {OUT_DIRS['medium']}/")
    parser.add_argument("--out-dir", default=None,
                        help=f"unit results, checkpoints and logs (default {OUT_DIRS['full']!r}, or the size's "
                             f"folder); figures to OUT_DIR/figures, but for the default full study (figures/) and "
                             f"a full --variant NAME (figures/study-NAME/)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="worker processes of the local cluster, one thread each (default: one per core, "
                             "%(default)s here)")
    parser.add_argument("--address", default=None,
                        help="run on the Dask cluster whose scheduler is here (default: $DASK_SCHEDULER_ADDRESS, "
                             "else a local cluster)")
    parser.add_argument("--dataset", default=None, choices=datasets.NAMES,
                        help="study this dataset only (default: every one in STUDY_DATASETS; the README shows the "
                             "full study of them all)")
    parser.add_argument("--data-dir", default=None, help=f"data root (default: ${constants.DATA_DIR_ENV}, else "
                                                         f"{constants.DATA_DIR!r})")
    parser.add_argument("--device", default="cpu",
                        help="where every unit computes: cpu (default), cuda or mps; on one GPU, the --workers "
                             "workers share it, each running one unit at a time")
    parser.add_argument("--designs", nargs="+", default=None, metavar="DESIGN",
                        help=f"study these designs only (default: every one in STUDY_DESIGNS: "
                             f"{', '.join(map(repr, constants.STUDY_DESIGNS))}); the samplers run on "
                             f"{DEFAULT_DESIGN!r}")
    parser.add_argument("--variant", default=None, choices=list(constants.STUDY_VARIANTS),
                        help="the default design's study with the settings STUDY_VARIANTS names changed (a candidate "
                             "default, samplers and all): units in OUT_DIR-NAME, figures in figures/study-NAME/ for "
                             "the full size, and the README's comparison with the default's study")
    config.add_setting_flags(parser, title="the study's run settings (defaults from constants.py; a design changes "
                                           "its own settings from these)", exclude=PLANNED_SETTINGS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise config.ConfigError(f"--workers must be >= 1, got {args.workers}")
    device = models.pick_device(args.device)  # here, with the one-line error, not inside a worker
    run = config.given_settings(args, exclude=PLANNED_SETTINGS)  # the study's own --dataset too
    if args.variant and (run or args.designs):
        raise config.ConfigError("--variant sets the design and the settings itself: leave out --designs and the "
                                 "setting flags, or leave out --variant")
    settings = variant_settings(args.variant, args.size) if args.variant else study_settings(args.size)
    settings = with_overrides(settings, args.dataset, args.designs, run)
    out_dir = os.path.abspath(args.out_dir or (variant_out_dir(args.variant, args.size) if args.variant
                                               else OUT_DIRS[args.size]))
    default_full = os.path.abspath(OUT_DIRS["full"]) == out_dir and settings == study_settings("full")
    variant_full = args.variant and os.path.abspath(variant_out_dir(args.variant)) == out_dir \
        and settings == variant_settings(args.variant)
    # the committed figures only from the study they hold, so that no other run writes over them
    figures_dir = "figures" if default_full else study_report.variant_folder(args.variant) if variant_full \
        else os.path.join(out_dir, "figures")
    data_dir = os.path.abspath(datasets.resolve_data_dir(args.data_dir))
    for dataset in settings["datasets"]:  # fail here, with the one-line message, not inside a worker
        datasets.read_raw(dataset, data_dir, download=constants.DOWNLOAD)
    plan_units = plan(settings, data_dir, out_dir, device)
    code = cache.code_fingerprints()  # again at the end: StaleCodeError if edited
    client, cluster, engine = connect(args.address, args.workers)
    print(f"study: {len(plan_units)} units on {engine['workers']} Dask worker(s) ({engine['address']}); "
          f"unit logs in {os.path.join(out_dir, 'logs')}/")
    try:
        results, failed, split = run_units(plan_units, client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    # a source that cannot be measured because its sampler cannot work from these labels (SamplerError) is a result
    # to report, not a crash: it is listed in the README; any other failure stops the study before the README
    failed_sources = {name: error for name, error in failed.items() if name in split and
                      error.startswith(("SamplerError", "MeasurementError"))}
    failed = {name: error for name, error in failed.items() if name not in failed_sources}
    measured = {**plan_units, **split}
    rows = [row for name in measured if measured[name].func is units.evaluation_unit and name in results
            for row in results[name]["rows"]]
    computed = sum(not result.get("cached", False) for result in results.values())
    bases = design_bases(results, settings)
    if cache.code_fingerprints() != code:
        raise cli.EngineError("the code changed while the study ran: rerun it")  # a comment-only edit is no change
    study = {"size": args.size, "settings": settings, "code": code, "engine": {**engine, "threads_per_worker": 1,
                                                               "device": str(device), "driver": machine(),
                                                               "units": len(plan_units), "computed": computed,
                                                               "split_units": len(split)},
             "classifier_test_accuracy": {d: results[f"{d}/classifier"]["accuracy"] for d in settings["datasets"]
                                          if f"{d}/classifier" in results},
             "summary": summarise(rows), "rows": rows, "design_costs": design_costs(bases),
             "wall_seconds": time.perf_counter() - started,
             "failed": failed, "failed_sources": failed_sources}
    if failed:  # what finished is written (marked by "failed"), never into the README, then the one-line error
        partial = os.path.join(out_dir, "figures")
        study_report.write_study(study, partial)
        first = sorted(failed)[0]
        raise cli.TrainingError(f"{len(failed)} of {len(plan_units)} study units failed (the first, {first}: "
                                f"{failed[first]}; see {os.path.join(out_dir, 'logs', first)}.log); the finished ones "
                                f"are in {partial}/ and kept, so a rerun does only the rest")
    study_report.write_study(study, figures_dir, update_readme=default_full)
    design_samples(bases, figures_dir)
    if default_full or variant_full:  # the comparisons of the default's study with its variants' studies
        study_report.write_variant_blocks()
    print(f"study: {computed} units computed, {len(plan_units) - computed} reused; figures and numbers in "
          f"{figures_dir}/ ({study['wall_seconds'] / 60:.1f} min)")


def design_costs(bases):
    """{dataset: {design: {"parameters", "epochs", "train_seconds", "reused", "val_kl"}}}: what each design's base
    VAE (the study's first seed) costs, read from its checkpoint's training history (seconds from the start of
    fitting.fit to the end of its last epoch, on whatever load the training ran under), and the validation KL of the
    epoch whose weights it keeps (near 0: the posterior collapsed, and the decoder ignores z). The seconds are those
    of the run that trained it: "reused" marks a unit kept from an earlier run. `bases`: design_bases; a checkpoint
    this process cannot read (on another machine of a remote cluster) is left out with a warning, so that the study's
    numbers are still written."""
    costs = {}
    for dataset, design, result, loaded in bases:
        if isinstance(loaded, CheckpointError):
            print(f"warning: no training cost for the {design} design on {dataset}: {loaded}")
            continue
        model, _, checkpoint = loaded
        history = checkpoint["history"]
        best = min(history, key=lambda entry: entry["val_loss"])  # the weights the checkpoint keeps
        costs.setdefault(dataset, {})[design] = {
            "parameters": sum(p.numel() for p in model.parameters()), "epochs": len(history),
            "train_seconds": history[-1]["seconds"], "reused": bool(result.get("cached", False)),
            "val_kl": best["val_kl"]}
    return costs


def design_samples(bases, figures_dir, n=16, seed=constants.SEED):
    """figures_dir/study_designs.png: n draws of z ~ N(0, I) through each design's base VAE (`bases`: design_bases,
    the study's first seed), one row per dataset and design, so that the default's samples sit beside every other
    design's. A checkpoint that could not be read raises its CheckpointError here."""
    rows, names = [], []
    for dataset, design, _, loaded in bases:
        if isinstance(loaded, CheckpointError):
            raise loaded
        model = loaded[0]
        torch.manual_seed(seed)
        rows.append(models.decode_prior_samples(model, models.StandardNormalPrior(model.latent_dim), n))
        names.append(f"{datasets.DATASETS[dataset][1]}, {design}")
    path = os.path.join(figures_dir, "study_designs.png")
    plots.image_grid(torch.cat(rows), path, "z ~ N(0, I) through each base VAE; rows: " + "; ".join(names), ncols=n)
    return path


if __name__ == "__main__":
    cli.run_main(main)
