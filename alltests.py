"""The main job: train (or reuse) the base, goal and GMM VAEs and regenerate every README figure.

    python alltests.py            # full run: figures/ and models/
    python alltests.py --quick    # small subset, 2 epochs: runs/quick/figures and runs/quick/models
"""
import json
import os
import time

import torch

import constants
import evaluate
import mnist
import plots
import train
from models import StandardNormalPrior, decode_prior_samples, encode_means, pick_device


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
    start, end = data.test_x[goal_mask][:1], data.test_x[~goal_mask][:1]  # a goal digit and another digit
    z_start, z_end = model.encode(torch.cat([start, end]).to(device))[0]
    weights = torch.linspace(0, 1, 12, device=device)[:, None]
    plots.interpolation(model.decode((1 - weights) * z_start + weights * z_end), out("interpolation"),
                        f"{title}: interpolation between test digits {data.test_y[goal_mask][0].item()} "
                        f"and {data.test_y[~goal_mask][0].item()}")

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


def parse_args(argv=None):
    parser = train.ArgumentParser(description="Train base, goal and GMM VAEs and write every README figure.")
    parser.add_argument("--quick", action="store_true",
                        help=f"{constants.QUICK_TRAIN_IMAGES} training images, {constants.QUICK_EPOCHS} epochs, "
                             f"output to {constants.QUICK_OUT_DIR}/ (a smoke test of the whole pipeline)")
    parser.add_argument("--out-dir", default=None,
                        help=f"figures to OUT_DIR/figures, checkpoints to OUT_DIR/models "
                             f"(default {constants.OUT_DIR!r}, or {constants.QUICK_OUT_DIR!r} with --quick)")
    train.add_config_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    quick = {"train_images": constants.QUICK_TRAIN_IMAGES} if args.quick else {}
    if args.quick and args.epochs is None:
        args.epochs = constants.QUICK_EPOCHS
    cfg = train.config_from_args(args, **quick)
    out_dir = args.out_dir or (constants.QUICK_OUT_DIR if args.quick else constants.OUT_DIR)
    figures_dir, models_dir = os.path.join(out_dir, "figures"), os.path.join(out_dir, "models")
    device = pick_device(args.device)
    data = mnist.load_mnist(args.data_dir, validation_split=cfg.validation_split, seed=cfg.seed,
                            train_images=cfg.train_images)
    print(f"device {device}, {len(data.train_x)} train / {len(data.val_x)} val / {len(data.test_x)} test images, "
          f"goals {cfg.goals}, latent dim {cfg.latent_dim}")

    runs = {}
    for name in train.MODEL_NAMES:
        runs[name] = train.get_model(name, cfg, data, device, models_dir, retrain=args.retrain)
    for name, (model, prior, _) in runs.items():
        model_figures(name, model, prior, data, figures_dir, cfg.goals, cfg.seed)
    histories = {name: checkpoint["history"] for name, (_, _, checkpoint) in runs.items()}
    plots.training_curves(histories, os.path.join(figures_dir, "training_curves.png"))

    classifier, accuracy = evaluate.get_classifier(
        data, models_dir, epochs=constants.QUICK_CLASSIFIER_EPOCHS if args.quick else constants.CLASSIFIER_EPOCHS,
        seed=cfg.seed, device=device, retrain=args.retrain)
    results = evaluate.evaluate(runs, classifier, data, cfg,
                                n_samples=constants.QUICK_EVAL_SAMPLES if args.quick else constants.EVAL_SAMPLES)
    summary = {name: min(history, key=lambda h: h["val_loss"]) for name, history in histories.items()}
    results.update(classifier_test_accuracy=accuracy, config=vars(cfg), best_validation=summary,
                   data_fingerprint=data.fingerprint, device=str(device), quick=args.quick)
    plots.class_histograms(results["sampling"], cfg.goals, os.path.join(figures_dir, "class_histograms.png"))
    table = evaluate.results_markdown(results)
    write_text(os.path.join(figures_dir, "results.md"), table)
    write_text(os.path.join(figures_dir, "results.json"), json.dumps(results, indent=2) + "\n")
    if os.path.abspath(figures_dir) == os.path.abspath(os.path.join(constants.OUT_DIR, "figures")) and not args.quick:
        update_readme_block("results", table)

    print(table)
    for name, best in summary.items():
        print(f"{name}: best validation loss {best['val_loss']:.3f} (recon {best['val_recon']:.3f}, "
              f"kl {best['val_kl']:.3f}) at epoch {best['epoch']}")
    print(f"figures and results in {figures_dir}/ ({time.perf_counter() - started:.0f} s)")


def write_text(path, text):
    """Atomic: a crash mid-write never leaves a torn results file over a good one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def update_readme_block(name, text, readme="README.md"):
    """Replace the README's block between <!-- name:start --> and <!-- name:end --> with `text`,
    so the README always shows the numbers just computed."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if not os.path.exists(readme):
        return
    content = open(readme).read()
    if start not in content or end not in content:
        return
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    write_text(readme, f"{head}{start}\n{text}{end}{tail}")


if __name__ == "__main__":
    train.run_main(main)
