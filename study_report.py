"""The study's tables, prose and figures, rendered from study.json (study.py writes it; tests/test_readme.py
regenerates every block from it and compares). Every class of each dataset is the goal in turn, from few labels, on
the default decoder, and its ceilings on every design of STUDY_DESIGNS; the criteria a row is judged by live in evaluate.py.
"""
import os
from collections import defaultdict

import cache
import config
import constants
import datasets
import evaluate
import plots
import report
from config import budget_name
from units import CEILING, CVAE, CVAE_POSTERIORS, REAL, sampler_method

DEFAULT = "default"


def sampler_name(method):
    return method.removeprefix("sampler: ")


def pct(value):
    return f"{100 * value:.1f}%"


def class_label(dataset, c):
    return datasets.class_name(dataset, c)


# --- reading the rows -------------------------------------------------------------------------------

class Rows:
    """The study's rows, indexed by (dataset, design, goals, method, labels) -> {(seed, draw): row}: the seed the
    VAEs were trained with, and the expert's label draw for a sampler, None for what needs no labels (the ceiling,
    the CVAE)."""

    def __init__(self, study):
        self.study, self.settings = study, study["settings"]
        self.index = defaultdict(dict)
        for row in study["rows"]:
            self.index[(row["dataset"], row["design"], tuple(row["goals"]), row["method"], row["labels"])][
                (row["seed"], row["draw"])] = row

    def get(self, dataset, goals, method, labels=None, design=DEFAULT):
        """{(seed, draw): row}; empty where that was not measured."""
        return self.index.get((dataset, design, tuple(goals), method, labels), {})

    def budgets(self):
        return [budget_name(b) for b in self.settings["label_curve"]]

    def few(self):
        return self.budgets()[-1]

    def samplers(self, dataset, labels):
        """The sampler methods measured on single classes of `dataset` from `labels`, in registry order."""
        found = {key[3] for key in self.index if key[0] == dataset and key[4] == labels and len(key[2]) == 1
                 and key[3].startswith("sampler: ") and key[1] == DEFAULT}
        return sorted(found, key=lambda m: [sampler_method(n) for n in self.sampler_order()].index(m))

    def sampler_order(self):
        seen = []
        for row in self.study["rows"]:
            name = sampler_name(row["method"])
            if row["method"].startswith("sampler: ") and name not in seen:
                seen.append(name)
        return seen

    def designs(self):
        return list(self.settings["designs"])


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def spread(values):
    values = list(values)
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def pm_pct(values):
    """'mean ± sd' in percent; one value (one trained seed) is shown alone, with no spread to claim; none: n/a."""
    values = list(values)
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * mean(values):.1f} ± {100 * spread(values):.1f}"


def mean_of(by_draw, key="target_rate"):
    """The mean of one metric over a class's rows {(seed, draw): row}."""
    return mean(row[key] for row in by_draw.values())


def cell(by_draw, key="target_rate"):
    """'mean (worst)' of a metric over the label draws, in percent; a single value (a ceiling, the CVAE) alone."""
    values = [row[key] for row in by_draw.values()]
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * mean(values):.1f} ({100 * min(values):.1f})" if values else "n/a"


def against_ceiling(rows, dataset, c, method, labels):
    """[((seed, draw), row, the decoder ceiling row of that seed)] for one class: every draw against the decoder it
    samples."""
    ceilings = rows.get(dataset, [c], CEILING)
    return [(key, row, ceilings[(key[0], None)]) for key, row in sorted(rows.get(dataset, [c], method, labels).items())
            if (key[0], None) in ceilings]


def best_sampler(rows, dataset, c, labels):
    """The sampler method with the best mean evaluate.quality over the draws for class c, or None."""
    scored = [(mean(evaluate.quality(r) for r in rows.get(dataset, [c], m, labels).values()), m)
              for m in rows.samplers(dataset, labels) if rows.get(dataset, [c], m, labels)]
    return max(scored)[1] if scored else None


# --- tables -------------------------------------------------------------------------------------------

def ceiling_reach(rows, dataset, c, design=DEFAULT):
    """(the worst ceiling rate over the trained seeds, the classifier's rate on real images of class c, whether the
    former reaches evaluate.CEILING_SHARE of the latter): the decoder rule of issue 21, for the table and the prose."""
    rates = [r["target_rate"] for r in rows.get(dataset, [c], CEILING, design=design).values()]
    real = mean_of(rows.get(dataset, [c], REAL))
    worst = min(rates, default=0.0)
    return worst, real, bool(rates) and worst >= evaluate.CEILING_SHARE * real


def design_ceilings(rows, dataset, design):
    """(the classes whose ceiling reaches CEILING_SHARE of real (ceiling_reach), every ceiling row of the design)."""
    classes = rows.settings["classes"]
    return (sum(ceiling_reach(rows, dataset, c, design)[2] for c in classes),
            [r for c in classes for r in rows.get(dataset, [c], CEILING, design=design).values()])


def ceiling_table(rows, dataset):
    """Per class: the classifier on real test images, each design's decoder ceiling, and the CVAE drawn both ways."""
    designs = rows.designs()
    head = ("| class | real test images | " + " | ".join(f"decoder ceiling, {d}" for d in designs)
            + " | CVAE from N(0, I), default | CVAE from its class's posteriors, default"
            + " | default ceiling ≥ 95% of real | FD to real, ceiling: "
            + " / ".join(designs) + " | recall vs real, default ceiling |")
    lines = [head, "|---" * (6 + len(designs)) + "|---|"]
    for c in rows.settings["classes"]:
        ceilings = {d: rows.get(dataset, [c], CEILING, design=d) for d in designs}
        _, real_rate, reaches = ceiling_reach(rows, dataset, c)
        ok = "yes" if reaches else "**no**"
        lines.append(
            f"| {class_label(dataset, c)} | {pct(real_rate)} | "
            + " | ".join(pm_pct(r["target_rate"] for r in ceilings[d].values()) for d in designs)
            + "".join(f" | {pm_pct(r['target_rate'] for r in rows.get(dataset, [c], m, 'every image').values())}"
                      for m in (CVAE, CVAE_POSTERIORS)) + f" | {ok} | "
            + " / ".join(f"{mean_of(ceilings[d], 'fd_goal'):.1f}" for d in designs)
            + f" | {mean_of(ceilings[DEFAULT], 'recall_real'):.3f} |")
    return lines


def class_table(rows, dataset, method_name):
    """Per class: one sampler's target rate from each label budget, mean (worst draw), with its coverage."""
    method = sampler_method(method_name)
    budgets = rows.budgets()
    lines = ["| class | decoder ceiling | CVAE from its class's posteriors (every label) | "
             + " | ".join(f"`{method_name}`, {b} label{'s' if b != '1' else ''}: target (worst), coverage"
                          for b in budgets) + " |", "|---" * (3 + len(budgets)) + "|"]
    for c in rows.settings["classes"]:
        cells = [f"{cell(rows.get(dataset, [c], method, b))}, "
                 f"{mean_of(rows.get(dataset, [c], method, b), 'coverage'):.2f}"
                 if rows.get(dataset, [c], method, b) else "n/a" for b in budgets]
        lines.append(f"| {class_label(dataset, c)} | {cell(rows.get(dataset, [c], CEILING))} "
                     f"| {cell(rows.get(dataset, [c], CVAE_POSTERIORS, 'every image'))} | " + " | ".join(cells) + " |")
    return lines


def every_sampler_table(rows, dataset):
    """Every sampler, every class, every budget: target rate mean (worst), coverage, FD, recall against real."""
    lines = ["| class | labels | sampler | target rate (worst) | precision | coverage | FD to real | recall vs real |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for c in rows.settings["classes"]:
        for b in rows.budgets():
            for m in rows.samplers(dataset, b):
                got = rows.get(dataset, [c], m, b)
                if got:
                    lines.append(f"| {class_label(dataset, c)} | {b} | `{sampler_name(m)}` | {cell(got)} "
                                 f"| {mean_of(got, 'precision'):.3f} "
                                 f"| {mean_of(got, 'coverage'):.3f} "
                                 f"| {mean_of(got, 'fd_goal'):.1f} "
                                 f"| {mean_of(got, 'recall_real'):.3f} |")
    return lines


def pairs_table(rows, dataset):
    lines = []
    for goals in rows.settings["goal_sets"].get(dataset, []):
        few = rows.few()
        methods = [m for m in (sampler_method(n) for n in rows.sampler_order()) if rows.get(dataset, goals, m, few)]
        if not methods:
            continue
        names = datasets.class_names(dataset, goals)
        lines += ["", f"Goals {names} together, {few} labels each (an even split is 50% each):", "",
                  "| sampler | goal images (worst) | "
                  + " | ".join(f"share {class_label(dataset, g)} (mean ± sd over draws)" for g in goals)
                  + " |", "|---|---:|" + "---:|" * len(goals)]
        for m in methods:
            got = rows.get(dataset, goals, m, few)
            lines.append(f"| `{sampler_name(m)}` | {cell(got)} | "
                         + " | ".join(pm_pct(r["goal_rates"][str(g)] / max(r["target_rate"], 1e-12)
                                             for r in got.values()) for g in goals) + " |")
    return lines


def study_markdown(study):
    rows = Rows(study)
    s, engine = study["settings"], study["engine"]
    lines = [f"The study: every class of {', '.join(datasets.DATASETS[d][1] for d in s['datasets'])} as the goal in "
             f"turn; VAEs trained with seed {', '.join(map(str, s['seeds']))}; {len(s['draws'])} draws of the "
             f"expert's labels per class and budget; {s['eval_samples']:,} samples per row; {engine['units']} units on "
             f"{engine['workers']} Dask worker(s) (device {engine.get('device', 'cpu')}), "
             f"{study['wall_seconds'] / 60:.0f} min wall, "
             f"{engine['computed']} computed. Sampler cells: mean over the draws, the worst draw in brackets."
             + (f" Every unit's settings changed from constants.py: {changed_settings(study)}."
                if s.get("run") else "")]
    for dataset in s["datasets"]:
        title = datasets.DATASETS[dataset][1]
        lines += ["", f"**{title}: what each decoder draws of each class** (the classifier on real test images, "
                      f"on each design's reconstructions of them, and on the fully labelled CVAE's draws, from N(0, I) "
                      f"and from its class's posteriors)", ""]
        lines += ceiling_table(rows, dataset)
        lines += ["", f"**{title}: every class as the goal, the default sampler**", ""]
        lines += class_table(rows, dataset, study_default_sampler(rows))
        lines += pairs_table(rows, dataset)
    failed = study.get("failed_sources", {})
    if failed:
        lines += ["", "**Not measured** (the method failed, not the run): "
                  + "; ".join(f"`{name}`: {error}" for name, error in sorted(failed.items())) + "."]
    return "\n".join(lines) + "\n"


def study_default_sampler(rows):
    return constants.SAMPLER


def full_tables(study):
    """figures/study.md's appendix: every sampler on every class."""
    rows = Rows(study)
    lines = []
    for dataset in study["settings"]["datasets"]:
        lines += ["", f"**{datasets.DATASETS[dataset][1]}: every sampler, every class**", ""]
        lines += every_sampler_table(rows, dataset)
    return "\n".join(lines) + "\n"


# --- prose --------------------------------------------------------------------------------------------

def targets_of_few_labels(rows, dataset, method, labels, most_labels):
    """[(class, (seed, draw), met)] for every class and draw. From the most labels: evaluate.meets_target (within
    TARGET_GAP of the ceiling, precision and coverage at least TARGET_QUALITY); from fewer: at least
    FEW_LABEL_SHARE of the ceiling's rate with coverage at least FEW_LABEL_COVERAGE."""
    out = []
    for c in rows.settings["classes"]:
        for key, row, ceiling in against_ceiling(rows, dataset, c, method, labels):
            met = evaluate.meets_target(row, ceiling) if most_labels else \
                row["target_rate"] >= evaluate.FEW_LABEL_SHARE * ceiling["target_rate"] \
                and row["coverage"] >= evaluate.FEW_LABEL_COVERAGE
            out.append((c, key, met))
    return out


def worst_phrase(rows, dataset, method, labels):
    """'mean over classes X%; worst class C Y% (ceiling Z%); worst draw: class C', draw D, W%'."""
    per_class = {c: rows.get(dataset, [c], method, labels) for c in rows.settings["classes"]}
    per_class = {c: v for c, v in per_class.items() if v}
    if not per_class:
        return "not measured"
    means = {c: mean_of(v) for c, v in per_class.items()}
    worst_class = min(means, key=means.get)
    _, rate, worst_draw = _over_classes(rows, dataset, method, labels)
    ceiling = mean_of(rows.get(dataset, [worst_class], CEILING))
    return (f"mean over classes {pct(mean(means.values()))}; worst class {class_label(dataset, worst_class)} "
            f"{pct(means[worst_class])} (its ceiling {pct(ceiling)}); worst single draw: {worst_draw}, {pct(rate)}")


def draw_name(rows, dataset, c, key):
    """'class C, draw D' for a row keyed (seed, draw), with ' of seed S' when the study trained several seeds."""
    seed, draw = key
    return f"class {class_label(dataset, c)}, draw {draw}" + (f" of seed {seed}" if len(rows.settings["seeds"]) > 1
                                                               else "")


def target_rule(most_labels):
    """The target a budget is judged by (targets_of_few_labels), in words."""
    return (f"at most {100 * evaluate.TARGET_GAP:g} point below its ceiling, precision and coverage ≥ "
            f"{evaluate.TARGET_QUALITY}" if most_labels else
            f"≥ {evaluate.FEW_LABEL_SHARE:.0%} of its ceiling, coverage ≥ {evaluate.FEW_LABEL_COVERAGE}")


def every_sampler_phrase(rows, dataset, title, labels, most_labels=True):
    """One line comparing every sampler from `labels` labels over all classes and draws: the mean target rate, the
    worst single class draw, and the class draws meeting that budget's target (targets_of_few_labels); None when
    no sampler was measured from that many labels."""
    parts = []
    for name in rows.sampler_order():
        method = sampler_method(name)
        rates = [r["target_rate"] for c in rows.settings["classes"]
                 for r in rows.get(dataset, [c], method, labels).values()]
        if not rates:
            continue
        judged = targets_of_few_labels(rows, dataset, method, labels, most_labels)
        parts.append(f"`{name}` {pct(mean(rates))} (worst {pct(min(rates))}; target met on "
                     f"{sum(ok for _, _, ok in judged)} of {len(judged)})")
    if not parts:
        return None
    return (f"- **{title}, every sampler from {labels} label{'s' if labels != '1' else ''}** (mean target rate over "
            f"every class and draw, the worst single class draw, and the class draws meeting the target: "
            f"{target_rule(most_labels)}): " + "; ".join(parts) + ".")


def discovery_phrase(rows, dataset, title, method, budgets):
    """One line on what the discovery step took as the goal images, per budget: their purity (the share of the goal
    class) and recall (the share of the class taken), mean over class draws and the worst draw of each; None when
    the rows hold no found images."""
    parts = []
    for labels in budgets[::-1]:
        found = [(r["found"][str(c)], c, key) for c in rows.settings["classes"]
                 for key, r in rows.get(dataset, [c], method, labels).items() if "found" in r]
        if not found:
            continue

        def mean_and_worst(name):  # 'purity 0.990 (worst 0.969, class 9, draw 0)'
            worst, c, key = min(found, key=lambda f: f[0][name])
            return (f"{name} {mean(f[name] for f, _, _ in found):.3f} (worst {worst[name]:.3f}, "
                    f"{draw_name(rows, dataset, c, key)})")
        parts.append(f"from {labels} label{'s' if labels != '1' else ''} {mean_and_worst('purity')}, "
                     f"{mean_and_worst('recall')}")
    if not parts:
        return None
    return (f"- **{title}, the images `{sampler_name(method)}` takes as the goal** (purity: the share of them in the "
            "goal class; recall: the share of the class taken; mean over class draws and the worst draw): "
            + "; ".join(parts) + ".")


def cvae_comparison(rows, dataset, labels):
    """{class: (the best sampler from `labels`, its rate, the fully labelled CVAE's rate drawn from its class's
    posteriors, the default decoder ceiling's rate)} for every class that has both the sampler and the reference."""
    compared = {}
    for c in rows.settings["classes"]:
        best = best_sampler(rows, dataset, c, labels)
        reference = rows.get(dataset, [c], CVAE_POSTERIORS, "every image")
        if best and reference:
            compared[c] = (best, mean_of(rows.get(dataset, [c], best, labels)), mean_of(reference),
                           mean_of(rows.get(dataset, [c], CEILING)))
    return compared


def cvae_phrase(rows, dataset, title, labels):
    """One line on the best sampler from `labels` labels against the fully labelled CVAE drawn from its class's
    posteriors (issue 20), and on that reference itself; None when no class has both."""
    compared = cvae_comparison(rows, dataset, labels)
    if not compared:
        return None
    gaps = {c: rate - reference for c, (_, rate, reference, _) in compared.items()}
    within = sum(gap >= -evaluate.CVAE_GAP for gap in gaps.values())
    worst_c = min(gaps, key=gaps.get)
    worst_m, worst_gap = compared[worst_c][0], gaps[worst_c]
    references = {c: reference for c, (_, _, reference, _) in compared.items()}
    # the reference itself: a CVAE that does not draw its label makes the comparison no test (issue 21)
    drawing = sum(reference >= evaluate.CEILING_SHARE * ceiling for _, _, reference, ceiling in compared.values())
    # it decodes with the CVAE's decoder: where it stands above the base decoder's ceiling, part of the gap is the
    # decoder, not the discovery
    above = {c: reference - ceiling for c, (_, _, reference, ceiling) in compared.items() if reference > ceiling}
    capped_within = sum(rate - min(reference, ceiling) >= -evaluate.CVAE_GAP
                        for _, rate, reference, ceiling in compared.values())
    highest = max(above, key=above.get) if above else None
    above_phrase = (f" It stands above the default decoder ceiling on {len(above)} of {len(compared)} classes (by up "
                    f"to {100 * above[highest]:.1f} points, {class_label(dataset, highest)}), points by which the base "
                    f"decoder's own reconstructions of real images fall short of it: against the lower of it and the "
                    f"ceiling, the best sampler is within {100 * evaluate.CVAE_GAP:g} points on {capped_within} of "
                    f"{len(compared)} classes.") if above else ""
    gap_phrase = (f"the largest shortfall is {class_label(dataset, worst_c)}, where `{sampler_name(worst_m)}` "
                  f"is {-100 * worst_gap:.1f} points below the CVAE") if worst_gap < 0 else \
        (f"no class falls short; the smallest lead is {class_label(dataset, worst_c)}'s, where "
         f"`{sampler_name(worst_m)}` is {100 * worst_gap:.1f} points above the CVAE")
    return (f"- **{title}, the best sampler from {labels} labels (by its weakest of target rate, precision and "
            f"coverage) against the fully labelled CVAE, drawn from its class's posteriors:** within "
            f"{100 * evaluate.CVAE_GAP:g} points (or above) on {within} of {len(compared)} classes; "
            f"{gap_phrase}. The CVAE itself draws its label at {evaluate.CEILING_SHARE:.0%} of the default "
            f"decoder ceiling's rate or more for {drawing} of {len(compared)} classes (mean "
            f"{pct(mean(references.values()))}, worst {pct(min(references.values()))})"
            + (": on the others it is a weak reference, and the comparison there is no test."
               if drawing < len(compared) else ".") + above_phrase)


def cost_phrase(cost):
    """", 426,369 parameters, 12 epochs in 340 s, KL 24.10 nats" for a design's study.json design_costs entry (the
    validation KL per image of the kept weights: near 0, a collapsed posterior), and whether an earlier run of the
    study trained it; "" without one."""
    if not cost:
        return ""
    epochs = f"{cost['epochs']} epoch" + ("s" if cost["epochs"] != 1 else "")
    return (f", {cost['parameters']:,} parameters, {epochs} in {cost['train_seconds']:.0f} s"
            # a KL is >= 0; a collapsed posterior's sum of rounding errors may fall just below, and reads as 0.00
            + (" (an earlier run)" if cost.get("reused") else "") + f", KL {max(cost['val_kl'], 0.0):.2f} nats")


def study_prose(study):
    rows = Rows(study)
    s = study["settings"]
    name = study_default_sampler(rows)
    method = sampler_method(name)
    budgets = rows.budgets()
    lines = []
    for dataset in s["datasets"]:
        title = datasets.DATASETS[dataset][1]
        n_draws = len(s["classes"]) * len(s["draws"]) * len(s["seeds"])
        # the decoder (issue 21): the default's shortfalls, then every design side by side (the default's choice)
        short = []
        for c in s["classes"]:
            worst, real, reaches = ceiling_reach(rows, dataset, c)
            if not reaches:
                short.append(f"{class_label(dataset, c)} ({pct(worst)}, against {pct(real)} on real images)")
        drawn, fd, recall = {}, {}, {}
        for d in rows.designs():
            drawn[d], ceilings = design_ceilings(rows, dataset, d)
            fd[d] = mean(r["fd_goal"] for r in ceilings)
            recall[d] = [r["recall_real"] for r in ceilings]
        costs = study.get("design_costs", {}).get(dataset, {})
        lines.append(
            f"- **{title}, the decoder.** The default decoder's ceiling reaches {evaluate.CEILING_SHARE:.0%} of the "
            f"classifier's rate on real images for {len(s['classes']) - len(short)} of {len(s['classes'])} classes on "
            f"the trained seed" + (f"; short: {', '.join(short)}" if short else "") + ". Each design (classes whose "
            f"ceiling reaches {evaluate.CEILING_SHARE:.0%} of real; mean Fréchet distance of the ceiling to real goal "
            "images; its recall against them, mean and worst class" + (
                "; its base VAE's parameters, epochs and training seconds, as its checkpoint records them from the "
                "run that trained it, and its validation KL per image" if costs else "")
            + "): " + "; ".join(
                f"{d} {drawn[d]} of {len(s['classes'])}, {fd[d]:.1f}, {mean(recall[d]):.3f} "
                f"(worst {min(recall[d], default=float('nan')):.3f})" + cost_phrase(costs.get(d))
                for d in rows.designs()) + ".")
        # the samplers (issue 20)
        for labels in dict.fromkeys([budgets[-1], budgets[0]]):  # the most labels, then the fewest (once if equal)
            most = labels == budgets[-1]
            judged = targets_of_few_labels(rows, dataset, method, labels, most)
            if not judged:
                continue
            met = sum(ok for _, _, ok in judged)
            rule = target_rule(most)
            missed = sorted({class_label(dataset, c) for c, _, ok in judged if not ok})
            lines.append(
                f"- **{title}, `{name}` from {labels} label{'s' if labels != '1' else ''}:** "
                f"{worst_phrase(rows, dataset, method, labels)}. Target ({rule}) met on {met} of {len(judged)} "
                "class draws" + (f" (of {n_draws} planned)" if len(judged) < n_draws else "")
                + (f"; missed on {', '.join(missed)}." if missed else "."))
        discovery = discovery_phrase(rows, dataset, title, method, budgets)
        lines += [discovery] if discovery else []
        few = budgets[-1]
        phrase = cvae_phrase(rows, dataset, title, few)
        lines += [phrase] if phrase else []
        for labels in budgets[::-1]:  # every budget, the most labels first
            phrase = every_sampler_phrase(rows, dataset, title, labels, labels == budgets[-1])
            lines += [phrase] if phrase else []
        for goals in s["goal_sets"].get(dataset, []):
            best, best_rate = None, -1.0
            for m in (sampler_method(n) for n in rows.sampler_order()):
                got = rows.get(dataset, goals, m, few)
                if got and mean_of(got) > best_rate:
                    best, best_rate = m, mean_of(got)
            if best:
                got = rows.get(dataset, goals, best, few)
                shares = [min(r["goal_rates"][str(g)] / max(r["target_rate"], 1e-12) for r in got.values())
                          for g in goals]
                met = min(r["target_rate"] for r in got.values()) >= evaluate.PAIR_TARGET \
                    and all(evaluate.PAIR_SPLIT[0] <= sh <= evaluate.PAIR_SPLIT[1]
                            for r in got.values() for sh in (r["goal_rates"][str(g)] / max(r["target_rate"], 1e-12)
                                                             for g in goals))
                lines.append(
                    f"- **{title}, goals {datasets.class_names(dataset, goals)} together from {few} labels each:** "
                    f"the highest goal-image rate, `{sampler_name(best)}`, draws {pct(best_rate)} goal images (worst draw "
                    f"{pct(min(r['target_rate'] for r in got.values()))}); the smallest share of one goal on any draw "
                    f"is {pct(min(shares))}. Target (≥ {evaluate.PAIR_TARGET:.0%} goal images, each "
                    f"{evaluate.PAIR_SPLIT[0]:.0%}-{evaluate.PAIR_SPLIT[1]:.0%}) {'met' if met else 'missed'}.")
    return "\n".join(lines) + "\n"


# --- figures ------------------------------------------------------------------------------------------

def study_figures(study, figures_dir):
    """study_classes.png: per dataset, the real rate, each design's ceiling and the default sampler per budget."""
    rows = Rows(study)
    s = study["settings"]
    method = sampler_method(study_default_sampler(rows))
    panels = {}
    for dataset in s["datasets"]:
        bars = {"real test images": [mean_of(rows.get(dataset, [c], REAL))
                                     for c in s["classes"]]}
        for d in rows.designs():
            bars[f"ceiling, {d}"] = [mean_of(rows.get(dataset, [c], CEILING, design=d))
                                     for c in s["classes"]]
        for b in rows.budgets():
            bars[f"{sampler_name(method)}, {b} label{'s' if b != '1' else ''} (worst draw)"] = [
                min((r["target_rate"] for r in rows.get(dataset, [c], method, b).values()), default=float("nan"))
                for c in s["classes"]]
        panels[datasets.DATASETS[dataset][1]] = ([class_label(dataset, c) for c in s["classes"]], bars)
    return [plots.study_classes(panels, os.path.join(figures_dir, "study_classes.png"))]


def study_blocks(study):
    return {"study": study_markdown(study), "study-prose": study_prose(study)}


def write_study(study, figures_dir, update_readme=False, readme="README.md"):
    """study.json, study.md and the study figure in figures_dir; the README's study blocks when asked."""
    os.makedirs(figures_dir, exist_ok=True)
    study_figures(study, figures_dir)
    blocks = study_blocks(study)
    cache.write_text(os.path.join(figures_dir, "study.md"),
                     blocks["study"] + "\n" + blocks["study-prose"] + full_tables(study))
    cache.write_json(os.path.join(figures_dir, "study.json"), study)
    if update_readme:
        for name, text in blocks.items():
            report.update_block(name, text, readme)


# --- a variant of the default, against the default -----------------------------------------------------

def changed_settings(study):
    """The run settings a study changed for every unit, from constants.py: 'latent_dim 16' for a --variant, the
    size's settings for a quick or medium study; '' for none."""
    return ", ".join(f"{name} {value}" for name, value in study["settings"]["run"].items())


def default_name(variant):
    """The default's values of the settings a variant changes: 'latent_dim 32 (the default)'."""
    return ", ".join(f"{name} {config.BY_NAME[name].default()}" for name in variant["settings"]["run"]) \
        + " (the default)"


def _over_classes(rows, dataset, method, labels):
    """(mean target rate over class draws, the worst class draw's, its name); None where not measured."""
    values = [(r["target_rate"], c, k) for c in rows.settings["classes"]
              for k, r in rows.get(dataset, [c], method, labels).items()]
    if not values:
        return None
    worst = min(values)
    return mean(v for v, _, _ in values), worst[0], draw_name(rows, dataset, worst[1], worst[2])


def best_sampler_per_class(rows, dataset, labels, key):
    """{class: the best sampler's (best_sampler) metric, its mean over the label draws}, for the classes measured."""
    per_class = {}
    for c in rows.settings["classes"]:
        best = best_sampler(rows, dataset, c, labels)
        if best:
            per_class[c] = mean_of(rows.get(dataset, [c], best, labels), key)
    return per_class


def _best_sampler_metric(rows, dataset, labels, key):
    """(mean over classes, worst class value, worst class) of the best sampler's metric, per class."""
    per_class = best_sampler_per_class(rows, dataset, labels, key)
    if not per_class:
        return None
    worst = (max if key == "fd_goal" else min)(per_class, key=per_class.get)
    return mean(per_class.values()), per_class[worst], f"class {class_label(dataset, worst)}"


def _within_cvae(rows, dataset, labels):
    """'W of N': the classes where the best sampler from `labels` is within CVAE_GAP of the CVAE drawn from its class's
    posteriors (cvae_comparison, as cvae_phrase counts them)."""
    compared = cvae_comparison(rows, dataset, labels)
    within = sum(rate - reference >= -evaluate.CVAE_GAP for _, rate, reference, _ in compared.values())
    return f"{within} of {len(compared)}" if compared else "n/a"


def ceiling_summary(rows, dataset, design=DEFAULT):
    """{criterion: cell} of one design's decoder ceilings: classes reaching CEILING_SHARE of real, the Fréchet
    distance and recall against real images (mean, worst class)."""
    reached, ceilings = design_ceilings(rows, dataset, design)
    if not ceilings:
        return {}
    return {f"classes whose decoder ceiling reaches {evaluate.CEILING_SHARE:.0%} of real":
            f"{reached} of {len(rows.settings['classes'])}",
            f"ceiling: Fréchet distance to real goal images, mean (worst class)":
            f"{mean(r['fd_goal'] for r in ceilings):.1f} ({max(r['fd_goal'] for r in ceilings):.1f})",
            f"ceiling: recall against real images, mean (worst class)":
            f"{mean(r['recall_real'] for r in ceilings):.3f} ({min(r['recall_real'] for r in ceilings):.3f})"}


def variant_summary(rows, dataset, cost):
    """{criterion: cell} for one study of one dataset: what issue 21 asks a default to hold (ceiling, sharpness, the
    samplers' targets), each a mean with the worst class or draw, and the base VAE's parameters (from `cost`, its
    design_costs entry; not its seconds, which depend on the machine)."""
    s = rows.settings
    method = sampler_method(study_default_sampler(rows))
    out = ceiling_summary(rows, dataset)
    budgets = rows.budgets()
    for labels in budgets[::-1]:
        got = _over_classes(rows, dataset, method, labels)
        if got is None:
            continue
        judged = targets_of_few_labels(rows, dataset, method, labels, labels == budgets[-1])
        out[f"`{sampler_name(method)}` from {labels} label{'s' if labels != '1' else ''}: target rate, mean (worst "
            f"class draw); class draws meeting the target ({target_rule(labels == budgets[-1])})"] = \
            f"{pct(got[0])} ({pct(got[1])}, {got[2]}); {sum(ok for _, _, ok in judged)} of {len(judged)}"
    fewest = budgets[0]
    found = [(r["found"][str(c)]["purity"], c, k) for c in s["classes"]
             for k, r in rows.get(dataset, [c], method, fewest).items() if "found" in r]
    if found:
        worst = min(found)
        out[f"the images `{sampler_name(method)}` takes as the goal from {fewest} label"
            f"{'s' if fewest != '1' else ''}: purity, mean (worst class draw)"] = \
            f"{mean(p for p, _, _ in found):.3f} ({worst[0]:.3f}, {draw_name(rows, dataset, worst[1], worst[2])})"
    few = budgets[-1]
    for key, name in (("fd_goal", "Fréchet distance to real goal images"), ("recall_real", "recall against real")):
        got = _best_sampler_metric(rows, dataset, few, key)
        if got:
            out[f"the best sampler from {few} labels, per class: {name}, mean (worst class)"] = \
                f"{got[0]:.{1 if key == 'fd_goal' else 3}f} ({got[1]:.{1 if key == 'fd_goal' else 3}f}, {got[2]})"
    out[f"classes where the best sampler from {few} labels is within {100 * evaluate.CVAE_GAP:g} points of the CVAE "
        f"drawn from its class's posteriors"] = _within_cvae(rows, dataset, few)
    for goals in s["goal_sets"].get(dataset, []):
        got = rows.get(dataset, goals, method, few)
        if got:
            shares = [r["goal_rates"][str(g)] / max(r["target_rate"], 1e-12) for r in got.values() for g in goals]
            out[f"goals {datasets.class_names(dataset, goals)} from {few} labels each, `{sampler_name(method)}`: goal "
                f"images, mean (worst draw); the smallest share of one goal"] = \
                f"{pct(mean_of(got))} ({pct(min(r['target_rate'] for r in got.values()))}); {pct(min(shares))}"
    if cost:
        out["its base VAE's parameters"] = f"{cost['parameters']:,}"
    return out


def target_changes(a, b, dataset, method, labels, most_labels):
    """'met on the default only: class 2, draw 0; class 7, draw 0. Met on the variant only: none': the class draws
    whose verdict (targets_of_few_labels) differs between two studies' rows, the same draws of the labels in both."""
    verdicts = [{(c, key): ok for c, key, ok in targets_of_few_labels(rows, dataset, method, labels, most_labels)}
                for rows in (a, b)]
    shared = sorted(set(verdicts[0]) & set(verdicts[1]))

    def only(first, second):
        names = [draw_name(a, dataset, c, key) for c, key in shared if first[(c, key)] and not second[(c, key)]]
        return "; ".join(names) or "none"
    return f"met on the default only: {only(*verdicts)}. Met on the variant only: {only(*verdicts[::-1])}"


STALE_VARIANT = "The variant was measured with different code from the default's study"


def variant_block(study, variant, name):
    """The README block comparing the default's study with a variant's (study.py --variant NAME, its study.json in
    variant_folder(NAME)), dataset by dataset, on what issue 21 asks a new default to hold; beside them, where the
    default's study has a design with the variant's settings, that design's ceilings under the default's judge; then
    per class."""
    a, b = Rows(study), Rows(variant)
    path = variant_study_path(name)
    seeds = len(variant["settings"]["seeds"])
    lines = [f"The default's study against the same study with {changed_settings(variant)} "
             f"(`{path}`, {variant['engine']['units']} units, "
             f"{variant['wall_seconds'] / 60:.0f} min wall on {variant['engine']['workers']} Dask worker(s), "
             f"{variant['engine']['computed']} computed): {seeds} trained seed{'s' if seeds != 1 else ''}, every "
             f"class, {len(variant['settings']['draws'])} label draws per class and budget."]
    # each study trains its own judge: the same seed and settings give other weights on another CPU (its floating
    # point), so the two judges' rates on the same real test images show how far the columns differ from that alone
    # the same machine and code train the same judge: then the real images' rows agree to the last digit, and the
    # Fréchet distances and recalls of the two studies are measured in the same features
    def measured(by_draw):
        return [(r.get("target_rate"), r.get("fd_goal"), r.get("recall_real")) for r in by_draw.values()]
    judges, alike = [], True
    for dataset in variant["settings"]["datasets"]:
        real = [(a.get(dataset, [c], REAL), b.get(dataset, [c], REAL)) for c in variant["settings"]["classes"]]
        gaps = [abs(mean_of(in_a) - mean_of(in_b)) for in_a, in_b in real if in_a and in_b]
        alike = alike and all(in_a and measured(in_a) == measured(in_b) for in_a, in_b in real)
        accuracy = (study.get("classifier_test_accuracy", {}).get(dataset),
                    variant.get("classifier_test_accuracy", {}).get(dataset))
        if gaps and None not in accuracy:
            judges.append(f"{datasets.DATASETS[dataset][1]} {100 * accuracy[0]:.2f}% and {100 * accuracy[1]:.2f}%, "
                          f"their rates on the real test images of a class up to {100 * max(gaps):.1f} points apart")
    if judges:
        yardstick = ("the two judges measure every real goal class alike, so the two studies' columns share one "
                     "yardstick" if alike else "for which the two have no common yardstick")
        lines[0] += (" Each study trains its own evaluation classifier, with the same seed and settings, and judges "
                     f"its rates, Fréchet distances and recall with it (the last two in its features; {yardstick}); "
                     "test accuracy of the default's and the variant's: " + "; ".join(judges) + ".")
    # a variant measured before a change of code stays committed, and is named as such, until it is rerun
    if "code" in study and "code" in variant:
        codes = (study["code"], variant["code"])
        other_code = sorted(kind for kind in set(codes[0]) | set(codes[1]) if codes[0].get(kind) != codes[1].get(kind))
        if other_code:
            lines[0] += (f" **{STALE_VARIANT}**: the code fingerprints of {', '.join(other_code)} differ, so its "
                         "columns may also differ from the default's because of that change, until "
                         f"`python study.py --variant {name}` measures it again.")
    same = [d for d, changes in study["settings"]["designs"].items() if changes == variant["settings"]["run"]]
    if same:
        lines[0] += (f" The third column is the default's study's own design \"{same[0]}\", with the variant's "
                     "settings: its ceilings only, judged by the default's classifier, so the like-for-like "
                     "comparison of the ceilings.")
    for dataset in variant["settings"]["datasets"]:
        title = datasets.DATASETS[dataset][1]
        costs = study.get("design_costs", {}).get(dataset, {})
        left = variant_summary(a, dataset, costs.get(DEFAULT))
        right = variant_summary(b, dataset, variant.get("design_costs", {}).get(dataset, {}).get(DEFAULT))
        third = ceiling_summary(a, dataset, same[0]) if same else {}
        cost = costs.get(same[0]) if same else None
        third.update({"its base VAE's parameters": f"{cost['parameters']:,}"} if cost else {})
        head = f"| | {default_name(variant)} | {changed_settings(variant)} |" + (
            f" {same[0]}, in the default's study |" if same else "")
        lines += ["", f"**{title}**", "", head, "|---|---|---|" + ("---|" if same else "")]
        lines += [f"| {criterion} | {left.get(criterion, 'n/a')} | {right.get(criterion, 'n/a')} |"
                  + (f" {third.get(criterion, 'not measured')} |" if same else "")
                  for criterion in dict.fromkeys([*left, *right])]
        method = sampler_method(study_default_sampler(b))
        budgets = b.budgets()
        lines += ["", f"{title}, the class draws whose `{sampler_name(method)}` target is met by one of the two only:",
                  ""] + [f"- from {n} label{'s' if n != '1' else ''}: "
                         f"{target_changes(a, b, dataset, method, n, n == budgets[-1])}." for n in budgets[::-1]]
        lines += ["", f"{title} per class: the decoder ceiling, and `{sampler_name(method)}`'s target rate, mean "
                      f"(worst draw), {default_name(variant)} → {changed_settings(variant)}:", "",
                  "| class | real test images, the variant's judge | ceiling | "
                  + " | ".join(f"`{sampler_name(method)}`, {n} label{'s' if n != '1' else ''}" for n in budgets[::-1])
                  + " |", "|---" * (3 + len(budgets)) + "|"]
        for c in variant["settings"]["classes"]:
            lines.append(f"| {class_label(dataset, c)} | {100 * mean_of(b.get(dataset, [c], REAL)):.1f} | "
                         f"{cell(a.get(dataset, [c], CEILING))} → {cell(b.get(dataset, [c], CEILING))} | "
                         + " | ".join(f"{cell(a.get(dataset, [c], method, n))} → "
                                      f"{cell(b.get(dataset, [c], method, n))}" for n in budgets[::-1]) + " |")
    return "\n".join(lines) + "\n"


def variant_folder(name):
    """Where a full variant study (study.py --variant NAME) writes its study.json, study.md and figures."""
    return os.path.join("figures", f"study-{name}")


def variant_study_path(name):
    """The study.json of a full variant study, relative to the repository."""
    return os.path.join(variant_folder(name), "study.json")


def variant_blocks(root="."):
    """{README block "study-NAME": variant_block} for every variant of STUDY_VARIANTS whose full study is committed
    beside the default's (figures/study.json under `root`, the repository)."""
    blocks, study_path = {}, os.path.join(root, "figures", "study.json")
    for name in constants.STUDY_VARIANTS:
        path = variant_study_path(name)
        if os.path.exists(study_path) and os.path.exists(os.path.join(root, path)):
            blocks[f"study-{name}"] = variant_block(cache.read_json(study_path),
                                                    cache.read_json(os.path.join(root, path)), name)
    return blocks


def write_variant_blocks(readme="README.md"):
    for name, text in variant_blocks().items():
        report.update_block(name, text, readme)
