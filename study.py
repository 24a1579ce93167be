"""How strong can the bias get, at what cost, and from how few labels: the study behind the README's Study section.

    python study.py           # every seed in STUDY_SEEDS: figures/study_*.png, figures/study.json, figures/study.md
    python study.py --quick   # CI smoke test: small subset, one epoch, output in runs/study-quick/

    # more cores than one process uses: one seed per process, then the plain command gathers them
    OMP_NUM_THREADS=1 python study.py --only-seed 1 &

Each seed trains its own base VAE and conditional VAE (the reference that needs every label), fine-tunes
the goal and GMM VAEs over the beta grid, the label budgets and the goal sets, and measures every sampling
source with evaluate.py's classifier. Checkpoints go to <out>/models/seed<S>/, one seed's numbers to
<out>/seed<S>.json; a rerun with the same settings reuses both.
"""
import json
import os
import time
from collections import defaultdict

import torch

import alltests
import constants
import evaluate
import mnist
import plots
import train
from models import cycled_labels, decode_prior_samples, pick_device

METRICS = ("target_rate", "mean_confidence", "fd_goal", "fd_test", "diversity", "recon_goal", "recon_other")
# method names, as the tables and plots show them
BASE, CVAE, POST_GOAL, POST_GMM = "base, N(0, I)", "CVAE", "post-hoc: base + goal prior", "post-hoc: base + GMM prior"
GOAL, GMM = "goal VAE", "GMM VAE"
GOAL_LO, GMM_LO = "goal VAE, labelled-only KL", "GMM VAE, labelled-only KL"


def study_settings(quick=False):
    """Everything that decides the study's numbers (a change means the per-seed results are recomputed)."""
    settings = {
        "seeds": list(constants.STUDY_SEEDS),
        "betas": list(constants.STUDY_BETAS),
        "label_budgets": list(constants.STUDY_LABEL_BUDGETS),
        "goal_sets": [list(g) for g in constants.STUDY_GOAL_SETS],
        "eval_samples": constants.STUDY_EVAL_SAMPLES,
        "train_images": None,  # None: all 54,000
        "epochs": None,  # None: EPOCHS_BASE and EPOCHS_FINETUNE
        "classifier_epochs": constants.QUICK_CLASSIFIER_EPOCHS if quick else constants.CLASSIFIER_EPOCHS,
        "gmm_components": constants.GMM_N_COMPONENTS,
        "latent_dim": constants.LATENT_DIM,
    }
    if quick:
        settings.update(constants.QUICK_STUDY)
    return settings


def gmm_components_for(n_labels, max_components, latent_dim):
    """Few labels, fewer components: a full covariance in d dimensions needs at least d + 1 points."""
    return max(1, min(max_components, n_labels // (latent_dim + 1)))


class SeedStudy:
    """Train and measure every run of one seed."""

    def __init__(self, seed, settings, data, classifier, device, models_dir, log=print):
        self.seed, self.settings, self.data, self.classifier = seed, settings, data, classifier
        self.device, self.models_dir, self.log = device, models_dir, log
        self.test_features = evaluate.classify(classifier, data.test_x)[1]
        self.test_recon = {}  # per decoder model: its test-split reconstruction errors, for every goal set
        self.rows = []

    def config(self, goals, budget=None, **changes):
        n_labels = len(train.labelled_goal_indices(self.data.train_y, goals, budget, self.seed))
        cfg = train.RunConfig(seed=self.seed, goals=list(goals), expert_labels=budget, latent_dim=self.settings["latent_dim"],
                              train_images=self.settings["train_images"],
                              gmm_components=gmm_components_for(n_labels, self.settings["gmm_components"],
                                                                self.settings["latent_dim"]), **changes)
        if self.settings["epochs"] is not None:
            cfg.epochs_base = cfg.epochs_finetune = self.settings["epochs"]
        return cfg.validate(), n_labels

    def model(self, name, cfg, tag):
        return train.get_model(name, cfg, self.data, self.device, self.models_dir, log=self.log, progress=False,
                               checkpoint_name=tag)

    def measure(self, method, goals, model, prior, *, beta, budget, n_labels, labels=None):
        """One row: the metrics of samples decoded by `model` from `prior` (with `labels` for the CVAE), and the
        model's own test-split reconstruction error on the goal and the other digits."""
        torch.manual_seed(self.seed)
        n = self.settings["eval_samples"]
        images = decode_prior_samples(model, prior, n, labels=None if labels is None else cycled_labels(labels, n))
        probs, features = evaluate.classify(self.classifier, images)
        goal_mask = torch.isin(self.data.test_y, torch.tensor(goals))
        row = {"seed": self.seed, "goals": list(goals), "method": method, "beta": beta, "label_budget": budget,
               "n_labels": n_labels,
               **evaluate.sample_metrics(probs, features, goals, self.test_features[goal_mask], self.test_features)}
        row["goal_rates"] = {str(g): row["class_histogram"][g] for g in goals}
        key = (id(model), tuple(goals))
        if key not in self.test_recon:  # reconstruction does not depend on the prior: once per model and goal set
            test = evaluate.test_split_metrics(model, prior, 1.0, self.data, goals, self.seed)
            self.test_recon[key] = {"recon_goal": test["recon_goal"], "recon_other": test["recon_other"]}
        row.update(self.test_recon[key])
        self.rows.append(row)
        return row

    def run(self):
        s, main_goals = self.settings, self.settings["goal_sets"][0]
        base_cfg, _ = self.config(main_goals)
        base, base_prior, _ = self.model("base", base_cfg, "base")
        cvae, cvae_prior, _ = self.model("cvae", base_cfg, "cvae")
        n_train = len(self.data.train_x)
        for goals in s["goal_sets"]:
            tag_goals = "".join(map(str, goals))
            self.measure(BASE, goals, base, base_prior, beta=base_cfg.beta_base, budget=None, n_labels=0)
            # the conditional VAE is told the goal digit(s): it needs every training image labelled
            self.measure(CVAE, goals, cvae, cvae_prior, beta=base_cfg.beta_base, budget=None, n_labels=n_train,
                         labels=goals)
            # label budgets for the main goal; the goal pairs use every label
            for budget in s["label_budgets"] if goals == main_goals else [None]:
                cfg, n_labels = self.config(goals, budget, labelled_only_kl=True)
                budget_tag = "all" if budget is None else budget
                goal_prior = train.fit_prior("goal", base, self.data, cfg).to(self.device)
                gmm_prior = train.fit_prior("gmm", base, self.data, cfg).to(self.device)
                common = dict(budget=budget, n_labels=n_labels)
                self.measure(POST_GOAL, goals, base, goal_prior, beta=None, **common)
                self.measure(POST_GMM, goals, base, gmm_prior, beta=None, **common)
                for name, method in (("goal", GOAL_LO), ("gmm", GMM_LO)):
                    model, prior, _ = self.model(name, cfg, f"{name}-labelled-only-g{tag_goals}-n{budget_tag}")
                    self.measure(method, goals, model, prior, beta=cfg.beta(name), **common)
            if goals != main_goals:
                continue
            # the plain fine-tuned goal and GMM VAEs over the beta grid (all labels)
            for beta in s["betas"]:
                cfg, n_labels = self.config(goals, None, beta_goal=beta, beta_gmm=beta)
                for name, method in (("goal", GOAL), ("gmm", GMM)):
                    model, prior, _ = self.model(name, cfg, f"{name}-g{tag_goals}-beta{beta:g}")
                    self.measure(method, goals, model, prior, beta=beta, budget=None, n_labels=n_labels)
        return self.rows


def summarise(rows):
    """Mean and (sample) standard deviation over seeds of every metric, per (goals, method, beta, budget)."""
    groups = defaultdict(list)
    for row in rows:
        groups[(tuple(row["goals"]), row["method"], row["beta"], row["label_budget"])].append(row)
    summary = []
    for (goals, method, beta, budget), members in groups.items():
        entry = {"goals": list(goals), "method": method, "beta": beta, "label_budget": budget,
                 "n_labels": members[0]["n_labels"], "seeds": [m["seed"] for m in members]}
        values = {k: [m[k] for m in members] for k in METRICS}
        values.update({f"rate_{g}": [m["goal_rates"][str(g)] for m in members] for g in goals})
        for key, vals in values.items():
            t = torch.tensor(vals, dtype=torch.float64)
            entry[key] = {"mean": t.mean().item(), "std": t.std().item() if len(vals) > 1 else 0.0}
        summary.append(entry)
    return summary


def find(summary, goals, method, beta="any", budget=None):
    for entry in summary:
        if entry["goals"] == list(goals) and entry["method"] == method and entry["label_budget"] == budget \
                and (beta == "any" or entry["beta"] == beta):
            return entry
    return None


def pm(entry, key, fmt="{:.1%}"):
    value = entry[key]
    return f"{fmt.format(value['mean'])} ± {fmt.format(value['std'])}"


def study_markdown(report):
    """The README's study tables, from a study report."""
    summary, s = report["summary"], report["settings"]
    main = s["goal_sets"][0]
    n_seeds = len(report["seeds"])
    lines = [f"Mean ± standard deviation over {n_seeds} seeds ({', '.join(map(str, report['seeds']))}); "
             f"{s['eval_samples']:,} samples per model, source and seed; goal digit {digits(main)}; β = 1.", "",
             "| method | expert labels | target rate | FD to goal digits | FD to test set | diversity "
             "| test recon, other digits |", "|---|---:|---:|---:|---:|---:|---:|"]
    picks = [(BASE, "any"), (CVAE, "any"), (POST_GOAL, None), (POST_GMM, None), (GOAL, 1.0), (GMM, 1.0),
             (GOAL_LO, "any"), (GMM_LO, "any")]
    for method, beta in picks:
        e = find(summary, main, method, beta)
        if e is None:
            continue
        labels = "every image (all digits)" if method == CVAE else f"{e['n_labels']:,}"
        lines.append(f"| {method} | {labels} | {pm(e, 'target_rate')} | {pm(e, 'fd_goal', '{:.1f}')} "
                     f"| {pm(e, 'fd_test', '{:.1f}')} | {pm(e, 'diversity', '{:.2f}')} "
                     f"| {pm(e, 'recon_other', '{:.2f}')} |")
    for goals in s["goal_sets"][1:]:
        lines += ["", f"Goal digits {digits(goals)}: share of samples the classifier assigns to each goal digit.", "",
                  "| method | " + " | ".join(f"digit {g}" for g in goals) + " | both | FD to goal digits |",
                  "|---|" + "---:|" * (len(goals) + 2)]
        for method in (BASE, CVAE, POST_GOAL, POST_GMM, GOAL_LO, GMM_LO):
            e = find(summary, goals, method)
            if e is None:
                continue
            lines.append(f"| {method} | " + " | ".join(pm(e, f"rate_{g}") for g in goals)
                         + f" | {pm(e, 'target_rate')} | {pm(e, 'fd_goal', '{:.1f}')} |")
    return "\n".join(lines) + "\n"


def digits(goals):
    return ", ".join(map(str, goals))


def write_figures(report, figures_dir):
    summary, s = report["summary"], report["settings"]
    main = s["goal_sets"][0]
    references = {m: find(summary, main, m, "any") for m in (POST_GOAL, POST_GMM, CVAE)}
    paths = []
    for name, method, variant, post in (("goal", GOAL, GOAL_LO, POST_GOAL), ("gmm", GMM, GMM_LO, POST_GMM)):
        grid = [find(summary, main, method, beta) for beta in s["betas"]]
        paths.append(plots.study_tradeoff(
            [e for e in grid if e], {post: references[post], f"{variant} (β = 1)": find(summary, main, variant),
                                     CVAE: references[CVAE]},
            os.path.join(figures_dir, f"study_beta_{name}.png"), f"{method}: bias against fidelity over β (goal digit {digits(main)})"))
    budgets = {m: [find(summary, main, m, "any", b) for b in s["label_budgets"]] for m in (POST_GOAL, POST_GMM, GOAL_LO, GMM_LO)}
    paths.append(plots.study_budget(budgets, references[CVAE], os.path.join(figures_dir, "study_budget.png"),
                                    f"how many labelled goal images does the bias need? (goal digit {digits(main)})"))
    goal_sets = s["goal_sets"][1:]
    if goal_sets:
        per_set = {tuple(g): [e for e in (find(summary, g, m) for m in (BASE, CVAE, POST_GOAL, POST_GMM, GOAL_LO, GMM_LO)) if e]
                   for g in goal_sets}
        paths.append(plots.study_goal_sets(per_set, os.path.join(figures_dir, "study_goals.png")))
    return paths


def load_seed_results(path, identity):
    try:
        saved = json.load(open(path))
    except (OSError, ValueError):
        return None
    return saved if saved.get("identity") == identity else None


def run_seed(seed, settings, data_dir, classifier_info, device, out_dir, retrain=False, log=print):
    """One seed's {"rows", "seconds"}, from <out>/seed<S>.json when it was computed with the same settings."""
    data = mnist.load_mnist(data_dir, seed=seed, train_images=settings["train_images"])
    identity = {"settings": settings, "seed": seed, "data": data.fingerprint, "classifier": classifier_info[1]}
    path = os.path.join(out_dir, f"seed{seed}.json")
    saved = None if retrain else load_seed_results(path, identity)
    if saved is not None:
        log(f"seed {seed}: reusing {path}")
        return saved
    started = time.perf_counter()
    rows = SeedStudy(seed, settings, data, classifier_info[0], device, os.path.join(out_dir, "models", f"seed{seed}"),
                     log).run()
    saved = {"identity": identity, "rows": rows, "seconds": time.perf_counter() - started}
    alltests.write_text(path, json.dumps(saved, indent=1) + "\n")
    log(f"seed {seed}: {len(rows)} rows in {saved['seconds']:.0f} s -> {path}")
    return saved


def main(argv=None):
    started = time.perf_counter()
    parser = train.ArgumentParser(description="The bias study: beta grid, label budgets, goal pairs, CVAE reference.")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller study (QUICK_STUDY in constants.py), output to "
                             f"{constants.QUICK_STUDY_OUT_DIR}/ (a smoke test)")
    parser.add_argument("--out-dir", default=None,
                        help=f"checkpoints and per-seed results (default {constants.STUDY_OUT_DIR!r}, or "
                             f"{constants.QUICK_STUDY_OUT_DIR!r} with --quick); figures to OUT_DIR/figures unless "
                             f"this is the default full run, whose figures go to figures/")
    parser.add_argument("--only-seed", type=int, default=None,
                        help="compute one seed's results and stop (to run seeds in parallel processes)")
    train.add_machine_arguments(parser)
    parser.add_argument("--retrain", action="store_true", help="recompute every seed (checkpoints are still reused "
                                                                "when their settings match)")
    args = parser.parse_args(argv)
    settings = study_settings(args.quick)
    default_out = constants.QUICK_STUDY_OUT_DIR if args.quick else constants.STUDY_OUT_DIR
    out_dir = args.out_dir or default_out
    figures_dir = "figures" if out_dir == constants.STUDY_OUT_DIR else os.path.join(out_dir, "figures")
    device = pick_device(args.device)
    data_dir = mnist.resolve_data_dir(args.data_dir)

    # one classifier measures every seed: trained once with the default seed's split
    reference = mnist.load_mnist(data_dir, seed=constants.SEED, train_images=settings["train_images"])
    classifier, accuracy = evaluate.get_classifier(reference, os.path.join(out_dir, "models"),
                                                   epochs=settings["classifier_epochs"], device=device)
    classifier_info = (classifier, evaluate.classifier_identity(reference, settings["classifier_epochs"], constants.SEED))
    seeds = settings["seeds"] if args.only_seed is None else [args.only_seed]
    per_seed = {seed: run_seed(seed, settings, data_dir, classifier_info, device, out_dir, args.retrain) for seed in seeds}
    rows = [row for saved in per_seed.values() for row in saved["rows"]]
    if args.only_seed is not None:
        print(f"seed {args.only_seed} done; `python study.py{' --quick' if args.quick else ''}` gathers every seed")
        return
    report = {"settings": settings, "seeds": seeds, "classifier_test_accuracy": accuracy, "device": str(device),
              "seed_seconds": {seed: saved["seconds"] for seed, saved in per_seed.items()},
              "summary": summarise(rows), "rows": rows, "wall_seconds": time.perf_counter() - started}
    os.makedirs(figures_dir, exist_ok=True)
    write_figures(report, figures_dir)
    table = study_markdown(report)
    alltests.write_text(os.path.join(figures_dir, "study.md"), table)
    alltests.write_text(os.path.join(figures_dir, "study.json"), json.dumps(report, indent=1) + "\n")
    if figures_dir == "figures":
        alltests.update_readme_block("study", table)
    print(table)
    print(f"study figures and numbers in {figures_dir}/ ({report['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    train.run_main(main)
