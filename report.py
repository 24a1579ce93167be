"""The README's numbers: every table and every sentence that quotes a result is generated here from a committed
JSON (figures/results.json, figures/<dataset>/results.json, figures/study.json, figures/bench.json), and written
between <!-- name:start --> and <!-- name:end --> markers. tests/test_readme.py regenerates each block from the
JSON and compares, so the README cannot quote a number its JSON does not hold.
"""
import os

import cache
import constants
import datasets
from evaluate import TARGET_GAP, TARGET_QUALITY, meets_target, quality

README = "README.md"
EARLIER = "the earlier implementation ([jmjaaseth/biasedvae](https://github.com/jmjaaseth/biasedvae))"


def pct(value, digits=1):
    return f"{100 * value:.{digits}f}%"


def bias_kept(rate, reference, unbiased):
    """How much of a reference target rate (the same prior on the untouched base decoder) a method keeps; where the
    reference is itself no better than the unbiased model's rate, there was no bias to keep."""
    if reference < unbiased + 5 * TARGET_GAP:
        return "has no bias to keep"
    if rate >= reference - 5 * TARGET_GAP:
        return "keeps the bias"
    return "loses part of the bias" if rate >= 0.5 * reference else "loses most of the bias"


def finetunes_kept(goal, gmm, goal_reference, gmm_reference, unbiased):
    """'goal VAE ... and the GMM VAE ...': bias_kept for the fine-tuned goal and GMM VAEs, in one phrase."""
    kept_goal, kept_gmm = bias_kept(goal, goal_reference, unbiased), bias_kept(gmm, gmm_reference, unbiased)
    return (f"goal VAE {kept_goal}, and the GMM VAE likewise" if kept_goal == kept_gmm
            else f"goal VAE {kept_goal} and the GMM VAE {kept_gmm}")


def points(gap):
    return f"{100 * gap:g} point{'s' if gap != 0.01 else ''}"


def misses(row, dataset, goals, top=2):
    """Where the samples that are not goal classes go: the largest non-goal shares of the class histogram."""
    others = sorted(((share, k) for k, share in enumerate(row["class_histogram"]) if k not in goals), reverse=True)
    return ", ".join(f"{datasets.class_name(dataset, k)} ({pct(share)})" for share, k in others[:top] if share > 0) \
        or "none"


# --- results.json (alltests.py) ---------------------------------------------------------------------

# how the tables name the evaluation units' sources (units.evaluation_unit); a sampler by its own name
SOURCE_LABELS = {"test": "real", "real": "real", "ceiling": "base reconstructions of goal test images",
                 "standard": "N(0, I)", "own-prior": "own prior"}


def source_label(row):
    return SOURCE_LABELS.get(row["source"], row["source"])


def find_row(results, model, source, labels="any"):
    for row in results["sampling"]:
        if row["model"] == model and row["source"] == source and (labels == "any" or row.get("labels") == labels):
            return row
    raise KeyError(f"no row {model!r} / {source!r} / {labels!r} in results")


def sampler_rows(results, labels):
    rows = [r for r in results["sampling"] if r["model"] == "base + sampler" and r["labels"] == labels]
    return sorted(rows, key=quality, reverse=True)


def results_markdown(results):
    """The results tables of one alltests.py run."""
    dataset, goals = results["dataset"], results["goals"]
    timing = (f" This run took {results['seconds'] / 60:.1f} min on {results['device']}, {results['cpus']} CPU cores, "
              + ("from scratch." if not results["reused"] else f"reusing {results['reused']} cached artefacts.")
              if "cpus" in results else "")
    lines = [f"{datasets.DATASETS[dataset][1]}, goal {results['goal_names']}; {results['n_samples']:,} samples per "
             f"row, seed {results['seed']}; classifier test accuracy {pct(results['classifier_test_accuracy'], 2)}; "
             f"precision, recall, density and coverage against the decoder ceiling "
             f"(k = {results['prdc_neighbours']}): the base decoder's reconstructions of real goal images, the set a "
             f"sampler on that decoder should match (a sampler on it can beat the ceiling's target rate by favouring "
             f"the goal images this decoder draws most clearly; `pseudo-label` decodes with a decoder of its own), and "
             f"a reference for the fine-tuned VAEs, whose decoders differ.{timing}", "",
             "| model | z drawn from | labels per goal | target rate | precision | recall | density | coverage "
             "| recall vs real | FD to goal images | diversity | misses go to |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in results["sampling"]:
        lines.append(f"| {row['model']} | {source_label(row)} | {row.get('labels') or ''} | {pct(row['target_rate'])} "
                     f"| {row['precision']:.3f} | {row['recall']:.3f} | {row['density']:.3f} | {row['coverage']:.3f} "
                     f"| {row['recall_real']:.3f} | {row['fd_goal']:.1f} | {row['diversity']:.2f} "
                     f"| {misses(row, dataset, goals)} |")
    per_class = results["per_class"]
    lines += ["", "| class | classifier on real test images | decoder ceiling (its reconstructions of them) |",
              "|---|---:|---:|"]
    lines += [f"| {datasets.class_name(dataset, c)} | {pct(real)} | {pct(ceiling)} |"
              for c, (real, ceiling) in enumerate(zip(per_class["real"], per_class["ceiling"]))]
    lines += ["", "| model (test split; recon: -log p(x\\|z) per image) | recon, all | recon, goal classes | recon, other classes "
                  "| KL to own prior | β | negative ELBO (own objective) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in results["test_split"].items():
        lines.append(f"| {name} | {m['recon']:.2f} | {m['recon_goal']:.2f} | {m['recon_other']:.2f} | {m['kl']:.2f} "
                     f"| {m['beta']:g} | {m['neg_elbo']:.2f} |")
    return "\n".join(lines) + "\n"


def results_prose(results):
    """What the results table shows, sentence by sentence, each number read from `results`."""
    few, everything = results["label_budgets"][0], results["label_budgets"][-1]
    ceiling = find_row(results, "decoder ceiling", "ceiling")
    base = find_row(results, "base", "standard")
    goal_own, gmm_own = find_row(results, "goal VAE", "own-prior"), find_row(results, "gmm VAE", "own-prior")
    goal_std, gmm_std = find_row(results, "goal VAE", "standard"), find_row(results, "gmm VAE", "standard")
    post_goal = find_row(results, "base + sampler", "goal-gaussian", everything)
    post_gmm = find_row(results, "base + sampler", "goal-gmm", everything)
    ranked = sampler_rows(results, few)
    best = ranked[0]
    labelled_only = find_row(results, "gmm VAE, labelled-only KL", "own-prior")
    name = results["goal_names"]
    verdict = "meets" if meets_target(best, ceiling) else "misses"
    lines = [
        f"- **The decoder ceiling.** The base decoder's reconstructions of the held-out {name} test images are "
        f"classified as {name} {pct(ceiling['target_rate'])} of the time, at a Fréchet distance of "
        f"{ceiling['fd_goal']:.1f} to the real ones: what this decoder makes of real goal images, the reference a sampler should match (a "
        f"sampler on it can beat that rate by favouring the goal images this decoder draws most clearly). Unbiased, "
        f"the base VAE gives {pct(base['target_rate'])} goal images from N(0, I).",
        f"- **From {few} labels, the best sampler is `{best['source']}`**: {pct(best['target_rate'])} goal images, "
        f"precision {best['precision']:.3f} and coverage {best['coverage']:.3f} against the ceiling, FD "
        f"{best['fd_goal']:.1f}. It {verdict} this repo's target (a target rate at most {points(TARGET_GAP)} below "
        f"the ceiling's, precision and coverage at least {TARGET_QUALITY}). The others, best first: "
        + "; ".join(f"`{r['source']}` {pct(r['target_rate'])}, precision {r['precision']:.3f}, coverage "
                    f"{r['coverage']:.3f}" for r in ranked[1:]) + ".",
    ]
    collapsed = [r for r in ranked if r["target_rate"] >= max(ceiling["target_rate"] - TARGET_GAP, TARGET_QUALITY)
                 and r["coverage"] < TARGET_QUALITY]
    if collapsed:
        lines.append("- **Purity is not enough.** " + "; ".join(
            f"`{r['source']}` reaches {pct(r['target_rate'])} goal images but covers only {r['coverage']:.3f} of the "
            f"ceiling set (diversity {r['diversity']:.2f} against the ceiling's {ceiling['diversity']:.2f})"
            for r in collapsed) + ": it draws a few prototypes, which the target rate alone cannot see.")
    lines.append(f"- **Where the misses go:** the decoder ceiling's {misses(ceiling, results['dataset'], results['goals'])}; "
                 f"`{best['source']}`'s from {few} labels {misses(best, results['dataset'], results['goals'])}.")
    both = finetunes_kept(goal_own['target_rate'], gmm_own['target_rate'], post_goal['target_rate'],
                          post_gmm['target_rate'], base['target_rate'])
    lines += [
        f"- **{EARLIER[0].upper() + EARLIER[1:]}, reproduced: the fine-tuned {both}.** Sampled from their own "
        f"priors, the fine-tuned goal and GMM VAEs give {pct(goal_own['target_rate'])} and "
        f"{pct(gmm_own['target_rate'])} goal images, against {pct(post_goal['target_rate'])} and "
        f"{pct(post_gmm['target_rate'])} when the same two priors (fitted to every label) feed the "
        f"untouched base decoder; the fine-tunes' KL term acts on every image, not only the goal class. Sampled "
        f"from N(0, I), as the earlier implementation showed them, they give {pct(goal_std['target_rate'])} and "
        f"{pct(gmm_std['target_rate'])}.",
        f"- **The training-time method:** the GMM VAE fine-tuned with the KL on the {few} labelled images only "
        f"(N(0, I) on the rest; it early-stops on {results['labelled_only_validation_labels']} labelled validation "
        f"images as well) gives {pct(labelled_only['target_rate'])} goal images from its own prior, precision "
        f"{labelled_only['precision']:.3f}, coverage {labelled_only['coverage']:.3f} (the same GMM prior fitted from "
        f"{few} labels on the untouched base decoder: "
        f"{pct(find_row(results, 'base + sampler', 'goal-gmm', few)['target_rate'])}).",
    ]
    split = results["test_split"]
    lines.append(f"- **Reconstruction is not what changes:** the test reconstruction term (-log p(x|z) per image, "
                 f"the likelihood's own) is "
                 + ", ".join(f"{split[n]['recon']:.2f} ({n})" for n in split) + ".")
    return "\n".join(lines) + "\n"


def howto_markdown(results):
    """The README's opening: how to get samples of the goal class, best sampler first."""
    few = results["label_budgets"][0]
    ceiling = find_row(results, "decoder ceiling", "ceiling")
    ranked = sampler_rows(results, few)
    best = ranked[0]["source"]
    lines = ["```bash",
             f"python sample.py --model base --sampler {best} --labels {few} --n 1000 --out samples.npy",
             "```", "",
             f"draws from the base VAE's decoder through the `{best}` sampler, fitted from {few} labelled images per "
             f"goal class (`--goals`, default {results['goal_names']}). Measured on {datasets.DATASETS[results['dataset']][1]} "
             f"with {results['n_samples']:,} samples each, against the decoder ceiling:", "",
             "| sampler (best first) | target rate | precision | coverage | FD to goal images |",
             "|---|---:|---:|---:|---:|",
             f"| decoder ceiling (the decoder's reconstructions of real goal images) | {pct(ceiling['target_rate'])} "
             f"| {ceiling['precision']:.3f} | {ceiling['coverage']:.3f} | {ceiling['fd_goal']:.1f} |"]
    for row in ranked:
        lines.append(f"| `{row['source']}`, {few} labels | {pct(row['target_rate'])} | {row['precision']:.3f} "
                     f"| {row['coverage']:.3f} | {row['fd_goal']:.1f} |")
    return "\n".join(lines) + "\n"


# --- README blocks --------------------------------------------------------------------------------------

def read_block(name, readme=README):
    text = open(readme).read()
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def update_block(name, text, readme=README):
    """Replace the README's block between <!-- name:start --> and <!-- name:end --> with `text`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if not os.path.exists(readme):
        return
    content = open(readme).read()
    if start not in content or end not in content:
        return
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    cache.write_text(readme, f"{head}{start}\n{text}{end}{tail}")


def suffix(dataset):
    return "" if dataset == constants.DATASET else f"-{dataset}"


def results_blocks(results):
    """{README block name: text} for one alltests.py results dict: its prose (and for the default dataset the how-to);
    the full tables live in figures/<dataset>/results.md (results_markdown), linked from the README."""
    tag = suffix(results["dataset"])
    blocks = {f"results-prose{tag}": results_prose(results)}
    if not tag:
        blocks["howto"] = howto_markdown(results)
    return blocks


def update_readme(results, readme=README):
    for name, text in results_blocks(results).items():
        update_block(name, text, readme)


# --- bench.json (bench.py) -----------------------------------------------------------------------------

TTQ_SPEEDUP_TARGET = 3.0  # issue 15: the default reaches the target loss at least this much sooner
SCALING_TARGET = 1.8  # issue 15: speed-up from 1 to 2 workers on the medium study


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def ttq_summary(ttq):
    """(median seconds of the default, of the DataLoader pipeline, their ratio, per-round ratios); None where a
    run never reached the target."""
    ours = [r["ttq-default"]["seconds"] for r in ttq["rounds"]]
    theirs = [r["ttq-dataloader"]["seconds"] for r in ttq["rounds"]]
    if None in ours or None in theirs:
        return None
    return median(ours), median(theirs), median(theirs) / median(ours), [b / a for a, b in zip(ours, theirs)]


def gpu_markdown(g):
    """The bench's gpu section (bench.gpu_section) against issue 19's targets, in a few lines."""
    fmt = lambda v, spec=".1f", unit="": "n/a" if v is None else f"{v:{spec}}{unit}"  # noqa: E731
    gap = g.get("against_committed_cpu_run") or {}
    return [f"**On {g['device']}** (torch {g['torch']}, measured {g['date']}; `python bench.py --only gpu --device "
            "cuda`):", "",
            "| what | measured | issue 19's target |", "|---|---:|---:|",
            f"| base VAE training, images/s (a whole epoch, validation pass included) | "
            f"{fmt(g['train_images_per_second'], ',.0f')} | ≥ 250,000 |",
            f"| one step (ms) | {fmt(g['step_ms'], '.2f')} | |",
            f"| GPU utilisation while training (median over the timed epoch) | {fmt(g['utilisation'], '.0%')} | ≥ 70% |",
            f"| peak GPU memory (MiB) | {fmt(g['peak_gpu_mib'], ',.0f')} | |",
            f"| time to val {g['ttq_target']:g}: training seconds | {fmt(g['ttq_train_seconds'])} | ≤ 2 |",
            f"| time to val {g['ttq_target']:g}: whole process (start-up {fmt(g['ttq_startup_seconds'])} s) | "
            f"{fmt(g['ttq_process_seconds'])} | |",
            f"| `python alltests.py --device cuda` from scratch, seconds of work | {fmt(g['alltests_seconds'], '.0f')} "
            "| ≤ 30 |",
            f"| its largest target-rate gap to the committed CPU run ({gap.get('rows', 0)} rows) | "
            f"{fmt(None if gap.get('max_abs_target_rate_diff') is None else 100 * gap['max_abs_target_rate_diff'])} "
            "points | within the seed spread |",
            f"| the medium study, {g['study_units']} units on {g['study_workers']} workers ({g['study_device']}) | "
            f"{fmt(g['study_seconds'], '.0f')} s | < 60 s |"]


def bench_markdown(bench):
    """The README's Performance block, from bench.json (each section as last measured)."""
    lines = []
    if "ttq" in bench:
        t, m = bench["ttq"], bench["ttq"]["machine"]
        lines += [f"**Time to quality**: seconds of the whole process (interpreter start, imports and data loading "
                  f"included) until the validation loss first reaches {t['target']:g}; one round per seed; "
                  f"{m['cpu_cores']} CPU cores, torch {m['torch']}, measured {m['date']}.", "",
                  "| seed | project default: epoch | seconds | plain PyTorch (ToTensor, DataLoader, batch 64, Adam 1e-3): "
                  "epoch | seconds | ratio |", "|---:|---:|---:|---:|---:|---:|"]
        seconds = lambda run: "" if run["seconds"] is None else f"{run['seconds']:.1f}"  # noqa: E731
        for r in t["rounds"]:
            a, b = r["ttq-default"], r["ttq-dataloader"]
            ratio = f"{b['seconds'] / a['seconds']:.2f}x" if a["seconds"] and b["seconds"] else "n/a"
            lines.append(f"| {r['seed']} | {a['reached_epoch'] or 'not reached'} | {seconds(a)} "
                         f"| {b['reached_epoch'] or 'not reached'} | {seconds(b)} | {ratio} |")
        summary = ttq_summary(t)
        if summary:
            ours, theirs, ratio, _ = summary
            verdict = "meets" if ratio >= TTQ_SPEEDUP_TARGET else "misses"
            lines += ["", f"Medians: {ours:.1f} s against {theirs:.1f} s, **{ratio:.2f}x** sooner; this {verdict} the "
                          f"target of {TTQ_SPEEDUP_TARGET:g}x."]
    if "epochs" in bench:
        e = bench["epochs"]
        base = median(e["rows"]["baseline"]["seconds"])
        lines += ["", f"**One epoch** (54,000 training images and the validation pass; median of {e['rounds']} "
                      f"interleaved rounds; measured {e['machine']['date']}):", "",
                  "| pipeline | s / epoch | peak memory (MiB) | speed-up vs the first row | val loss after 1 epoch |",
                  "|---|---:|---:|---:|---:|"]
        for row in e["rows"].values():
            sec = median(row["seconds"])
            val = "n/a (normalised pixels)" if row["val_loss_after_one_epoch"] is None \
                else f"{row['val_loss_after_one_epoch']:.2f}"
            lines.append(f"| {row['description']} | {sec:.1f} | {row['peak_rss_mib']:.0f} | {base / sec:.2f}x | {val} |")
        compiled, default = median(e["rows"]["compile"]["seconds"]), median(e["rows"]["default"]["seconds"])
        lines += ["", f"`torch.compile` {'pays' if compiled < default else 'does not pay'} here: "
                      f"{compiled:.1f} s against {default:.1f} s per epoch (after its compiling epoch)."]
    if "final" in bench:
        f = bench["final"]
        ours, previous = f["final-default"], f["final-previous"]
        lines += ["", f"**Trained to the end** (the base VAE, seed 0): the project default reaches a best validation "
                      f"loss of {ours['best_val_loss']:.2f} in {ours['seconds']:.0f} s ({ours['epochs']} epochs), the "
                      f"previous default (batch {f['previous']['batch_size']}, Adam {f['previous']['lr']:g} halved on "
                      f"plateaus) {previous['best_val_loss']:.2f} in {previous['seconds']:.0f} s: "
                      f"{'no worse' if ours['best_val_loss'] <= previous['best_val_loss'] else 'worse'}."]
    if "step" in bench:
        s = bench["step"]
        lines += ["", f"**One training step** (batch {constants.BATCH_SIZE}): standard-normal KL "
                      f"{s['standard'] * 1e3:.1f} ms, GMM Monte Carlo KL ({constants.GMM_COMPONENTS} components, "
                      f"{constants.GMM_KL_SAMPLES} sample) {s['gmm'] * 1e3:.1f} ms: ratio {s['gmm'] / s['standard']:.2f}."]
    if "engines" in bench:
        g = bench["engines"]
        lines += ["", f"**The study's engine**: a local cluster of 2 single-threaded workers, started, running 20 tiny "
                      f"tasks, and the memory of every process it started (median of 3; measured "
                      f"{g['machine']['date']}):", "",
                  "| engine | version | start (s) | 20 tasks (s) | memory (MiB) | processes |", "|---|---|---:|---:|---:|---:|"]
        for engine in ("dask", "ray"):
            r = g.get(engine)
            lines.append(f"| {engine} | {r['version']} | {r['start_seconds']:.2f} | {r['tasks_seconds']:.2f} | "
                         f"{r['rss_mib']:.0f} | {r['processes']:.0f} |" if r else f"| {engine} | not installed | | | | |")
        if g.get("dask") and g.get("ray"):
            d, r = g["dask"], g["ray"]
            faster, slower = ("Dask", "Ray") if d["start_seconds"] <= r["start_seconds"] else ("Ray", "Dask")
            speed = max(d["start_seconds"], r["start_seconds"]) / min(d["start_seconds"], r["start_seconds"])
            lines += ["", f"{faster} starts {speed:.1f}x sooner than {slower} here; Dask uses "
                          f"{d['rss_mib'] / r['rss_mib']:.0%} of Ray's memory, with {d['processes']:.0f} processes "
                          f"against {r['processes']:.0f}."]
    if "scaling" in bench:
        c = bench["scaling"]
        lines += ["", f"**Study scaling** (`study.py --quick` and `--medium` from scratch, 1 against 2 Dask workers; "
                      f"measured {c['machine']['date']}):", "",
                  "| study | units | 1 worker (s) | 2 workers (s) | speed-up | same numbers |", "|---|---:|---:|---:|---:|---|"]
        for size in ("quick", "medium"):
            r = c[size]
            lines.append(f"| {size} | {r['units']} | {r['seconds']['1']:.0f} | {r['seconds']['2']:.0f} | "
                         f"{r['speedup']:.2f}x | {'yes' if r['identical'] else 'no'} |")
        verdict = "meets" if c["medium"]["speedup"] >= SCALING_TARGET else "misses"
        lines += ["", f"The medium study's speed-up {verdict} the target of {SCALING_TARGET:g}x."]
    if "gpu" in bench:
        lines += [""] + gpu_markdown(bench["gpu"])
    if "full" in bench:
        f = bench["full"]
        lines += ["", f"`python alltests.py` from scratch: {f['seconds'] / 60:.1f} min (measured "
                      f"{f['machine']['date']}); best validation losses "
                  + ", ".join(f"{k} {v:.2f}" for k, v in f["best_validation"].items()) + "."]
    return "\n".join(lines) + "\n"
