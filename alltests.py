"""The main job: train (or reuse) the VAEs, fit every biased sampler, measure everything, write every figure.

    python alltests.py                          # MNIST: figures/ and models/ (5-10 min on 2 CPU cores)
    python alltests.py --dataset fashion-mnist  # the same on Fashion-MNIST: figures/fashion-mnist/, models/fashion-mnist/
    python alltests.py --quick                  # small subset, 2 epochs: runs/quick/ (a smoke test)
"""
import glob
import os
import time

import torch

import cache
import cli
import config
import constants
import datasets
import evaluate
import plots
import report
import samplers
import train
import units
from classifier import classifier_path, get_classifier
from checkpoints import checkpoint_name, checkpoint_path, models_dir_for
from models import StandardNormalPrior, decode_prior_samples, encode_means, pick_device

LABELLED_ONLY = "gmm"  # the training-time method alltests.py trains: the labelled-only-KL GMM VAE


def figure_names(name, latent_dim):
    """Every figure file written for model `name` (the 2-D latent views need at least 2 dims)."""
    names = [f"{name}_samples_prior.png", f"{name}_samples_standard.png", f"{name}_reconstructions.png",
             f"{name}_interpolation.png", f"{name}_latent_hist.png", f"{name}_latent_qq.png"]
    if latent_dim >= 2:
        names += [f"{name}_latent_scatter.png", f"{name}_latent_pairs.png"]
    return names


@torch.no_grad()
def model_figures(name, model, prior, data, figures_dir, goals, seed=constants.SEED, n_grid=constants.N_SAMPLE_GRID):
    """Write figure_names(name, ...) into figures_dir for one trained model and its own prior."""
    model.eval()
    device = next(model.parameters()).device
    title = f"{name} VAE"
    out = lambda file: os.path.join(figures_dir, f"{name}_{file}.png")  # noqa: E731
    standard = StandardNormalPrior(model.latent_dim).to(device)

    torch.manual_seed(seed)
    plots.image_grid(decode_prior_samples(model, prior, n_grid), out("samples_prior"),
                     f"{title}: z ~ its own prior ({prior.kind})")
    torch.manual_seed(seed)
    plots.image_grid(decode_prior_samples(model, standard, n_grid), out("samples_standard"),
                     f"{title}: z ~ N(0, I)")

    originals = data.test_x[:16].to(device)
    mu, _ = model.encode(originals)
    plots.reconstructions(originals, model.decode(mu), out("reconstructions"),
                          f"{title}: test images (top) and reconstructions from the posterior mean (bottom)")

    goal_mask = torch.isin(data.test_y, torch.tensor(goals))
    start, end = data.test_x[goal_mask][:1], data.test_x[~goal_mask][:1]  # a goal image and another one
    z_start, z_end = model.encode(torch.cat([start, end]).to(device))[0]
    weights = torch.linspace(0, 1, 12, device=device)[:, None]
    plots.interpolation(model.decode((1 - weights) * z_start + weights * z_end), out("interpolation"),
                        f"{title}: interpolation between test images of "
                        f"{datasets.class_name(data.dataset, data.test_y[goal_mask][0].item())} and "
                        f"{datasets.class_name(data.dataset, data.test_y[~goal_mask][0].item())}")

    latents = encode_means(model, data.test_x)
    torch.manual_seed(seed)
    prior_samples = prior.sample(2000)
    plots.latent_histograms(latents, prior_samples, out("latent_hist"), f"{title}: latent marginals")
    plots.latent_qq(latents, out("latent_qq"), f"{title}: Q-Q of test latents against N(0, 1)")
    if model.latent_dim >= 2:
        plots.latent_scatter(latents, data.test_y, prior_samples, out("latent_scatter"),
                             f"{title}: test latents (dims 0-1) and its prior", goals)
        plots.latent_pairs(latents, data.test_y, out("latent_pairs"), f"{title}: test latents, every pair of dims")
    else:
        print(f"{name}: latent dim is 1, so the 2-D scatter and pairwise figures are skipped")


def reuse_tracker(models_dir, echo=print):
    """(log, reused): a log function for the caches (it echoes each line) and the set of artefacts it saw reused that
    were in models_dir, unchanged, before this run began. The run's time is from scratch only when that set is empty:
    the fine-tunes reading the base VAE this run has just trained reuse nothing."""
    before = {os.path.abspath(path): os.path.getmtime(path)
              for path in glob.glob(os.path.join(glob.escape(models_dir), "**"), recursive=True) if os.path.isfile(path)}
    reused = set()

    def log(line):
        echo(line)
        if ": reusing " in line:  # cache.load_current's line: "<what>: reusing <path>"
            path = os.path.abspath(line.split(": reusing ", 1)[1])
            if path in before and os.path.getmtime(path) == before[path]:
                reused.add(path)

    return log, reused


def parse_args(argv=None):
    parser = cli.ArgumentParser(description="Train the VAEs, fit every biased sampler, write every README figure.")
    parser.add_argument("--quick", action="store_true",
                        help=f"QUICK settings of constants.py ({constants.QUICK}); output to "
                             f"{constants.QUICK_OUT_DIR}/ (a smoke test of the whole pipeline)")
    parser.add_argument("--out-dir", default=None,
                        help=f"figures to OUT_DIR/figures, checkpoints to OUT_DIR/models, a subfolder each for a "
                             f"dataset other than {constants.DATASET} (default {constants.OUT_DIR!r}, or "
                             f"{constants.QUICK_OUT_DIR!r} with --quick)")
    parser.add_argument("--retrain", action="store_true", help="train and measure even when matching checkpoints and rows exist")
    cli.add_machine_arguments(parser)
    config.add_setting_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    cfg = config.config_from_args(args, constants.QUICK if args.quick else None)
    out_dir = args.out_dir or (constants.QUICK_OUT_DIR if args.quick else constants.OUT_DIR)
    subfolder = [] if cfg.dataset == constants.DATASET else [cfg.dataset]
    figures_dir = os.path.join(out_dir, "figures", *subfolder)
    models_dir = models_dir_for(out_dir, cfg.dataset)
    for folder, what in ((figures_dir, "the figures folder"), (models_dir, "the checkpoint folder")):
        cache.check_writable_folder(folder, f"{what} (--out-dir)")  # before the expensive work
    device = pick_device(args.device)
    # fetched here when missing (torchvision's download), then split once in the copy the evaluation units read too
    datasets.read_raw(cfg.dataset, datasets.resolve_data_dir(args.data_dir), constants.DOWNLOAD)
    data = units.splits_for(cfg, args.data_dir)
    train.check_goal_data(cfg, data)
    goal_names = datasets.class_names(cfg.dataset, cfg.goals)
    print(f"device {device}, {cfg.dataset}: {len(data.train_x)} train / {len(data.val_x)} val / {len(data.test_x)} "
          f"test images, goals {goal_names}, latent dim {cfg.latent_dim}")

    log, reused = reuse_tracker(models_dir)

    # the earlier implementation's three VAEs, then the training-time method that keeps the bias
    runs = {name: train.get_model(name, cfg, data, device, models_dir, retrain=args.retrain, log=log)
            for name in train.MODEL_NAMES}
    few = constants.REPORT_LABEL_BUDGETS[0]
    labelled_only_cfg = cfg.replace(labelled_only_kl=True, expert_labels=few).validate()
    labelled_only = train.get_model(LABELLED_ONLY, labelled_only_cfg, data, device, models_dir, retrain=args.retrain,
                                    log=log)
    for name, (model, prior, _) in runs.items():
        model_figures(name, model, prior, data, figures_dir, cfg.goals, cfg.seed)
    histories = {name: checkpoint["history"] for name, (_, _, checkpoint) in runs.items()}
    histories[f"{LABELLED_ONLY}, labelled-only KL"] = labelled_only[2]["history"]
    plots.training_curves(histories, os.path.join(figures_dir, "training_curves.png"))

    classifier, accuracy, classifier_hash = get_classifier(data, cfg, models_dir, device, retrain=args.retrain,
                                                           log=log)
    base, _, base_checkpoint = runs["base"]
    _, unlabelled_hash = samplers.get_unlabelled(base, base_checkpoint, data, cfg, models_dir, log=log)
    per_class = evaluate.per_class_ceiling(classifier, data, base)

    # every row comes from the study's evaluation unit, run here in process on this run's device and threads; each
    # unit reads its parents from their files (which must hold what this run trained or reused: the hashes) and
    # keeps its rows under their identity in models_dir/units/
    trained = {checkpoint_name(name, cfg): run for name, run in runs.items()}
    trained[checkpoint_name(LABELLED_ONLY, labelled_only_cfg)] = labelled_only

    def parent(name, run_cfg=cfg):
        file_name = checkpoint_name(name, run_cfg)
        return {"path": checkpoint_path(models_dir, file_name), "hash": trained[file_name][2]["content_hash"]}

    parents = [{"path": classifier_path(models_dir), "hash": classifier_hash}, parent("base")]
    rows = []

    def evaluate_unit(name, run_cfg, sources, decoder=None, unlabelled=False, keep_images=0):
        spec = {"name": name, "run": run_cfg.as_dict(), "data_dir": args.data_dir, "out_dir": models_dir,
                "row": {}, "sources": sources, "has_decoder": decoder is not None, "has_unlabelled": unlabelled,
                "device": str(device), "threads": None, "keep_images": keep_images, "recompute": args.retrain}
        extra = ([parent(decoder, run_cfg)] if decoder else []) + \
            ([{"path": os.path.join(models_dir, "unlabelled.pt"), "hash": unlabelled_hash}] if unlabelled else [])
        result = units.evaluation_unit(spec, *parents, *extra)
        log(f"{name}: reusing {result['path']}" if result["cached"] else f"{name}: {len(sources)} rows -> {result['path']}")
        rows.extend(result["rows"])
        return result

    evaluate_unit("references", cfg, [
        {"model": "test images", "source": "test", "labels": None},
        {"model": "test images, goal classes", "source": "real", "labels": None},
        {"model": "decoder ceiling", "source": "ceiling", "labels": None},
        {"model": "base", "source": "standard", "labels": None}])
    for name in ("goal", "gmm"):
        evaluate_unit(f"{name}-vae", cfg, [{"model": f"{name} VAE", "source": "standard", "labels": None},
                                           {"model": f"{name} VAE", "source": "own-prior", "labels": "all"}], name)
    # it early-stops on a few labelled validation images too, on top of the expert's budget: say how many
    validation_labels = int(train.labelled_kl_masks(labelled_only_cfg, data)[1].sum())
    evaluate_unit("gmm-labelled-only", labelled_only_cfg, [
        {"model": f"{LABELLED_ONLY} VAE, labelled-only KL", "source": "own-prior",
         "labels": f"{config.budget_name(few)} + {validation_labels} validation"}], LABELLED_ONLY)
    for budget in constants.REPORT_LABEL_BUDGETS:
        tag = config.budget_name(budget)
        result = evaluate_unit(f"samplers-n{tag}", cfg.replace(expert_labels=budget).validate(),
                               [{"model": "base + sampler", "source": name, "labels": tag} for name in samplers.names()],
                               unlabelled=True, keep_images=constants.N_SAMPLE_GRID)
        kept = cache.load_tensors(result["images"])
        for name in samplers.names():
            plots.image_grid(kept["images"][name], os.path.join(figures_dir, f"sampler_{name}_{tag}.png"),
                             f"{'its own conditional' if name in kept['own_decoder'] else 'base'} decoder, "
                             f"z ~ {name} sampler from {tag} labelled {goal_names} images")

    test_split = {name: evaluate.test_split_metrics(model, prior, cfg.beta(name), data, cfg.goals, cfg.seed)
                  for name, (model, prior, _) in runs.items()}
    best = {name: {k: v for k, v in min(h, key=lambda e: e["val_loss"]).items() if k != "seconds"}
            for name, h in histories.items()}
    results = {"dataset": cfg.dataset, "goals": cfg.goals, "goal_names": goal_names, "n_samples": cfg.eval_samples,
               "seed": cfg.seed, "prdc_neighbours": cfg.prdc_neighbours, "classifier_test_accuracy": accuracy,
               "label_budgets": [config.budget_name(b) for b in constants.REPORT_LABEL_BUDGETS],
               "labelled_only_validation_labels": validation_labels,
               "sampling": rows, "per_class": per_class, "test_split": test_split, "best_validation": best, "config": cfg.as_dict(),
               "data_fingerprint": data.fingerprint,
               "code": cache.code_fingerprints(), "device": str(device), "quick": args.quick,
               "seconds": time.perf_counter() - started, "cpus": os.cpu_count(), "reused": len(reused)}
    plots.class_histograms([{**row, "source": report.source_label(row)} for row in rows], cfg.goals,
                           os.path.join(figures_dir, "class_histograms.png"))
    table = report.results_markdown(results)
    cache.write_text(os.path.join(figures_dir, "results.md"), table)
    cache.write_json(os.path.join(figures_dir, "results.json"), results)
    canonical = os.path.abspath(os.path.join(constants.OUT_DIR, "figures", *subfolder))
    if os.path.abspath(figures_dir) == canonical and not args.quick:
        report.update_readme(results)
    print(table)
    print(f"figures and results in {figures_dir}/ ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    cli.run_main(main)
