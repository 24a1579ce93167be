"""Every run setting, declared once: its name (the RunConfig field; its default is the same name in capitals in
constants.py, its flag the same name with dashes), its help, its check, and which artefacts it affects.

RunConfig, the command-line flags, validation and the cache identities (cache.py) are all derived from SETTINGS,
so a new setting is one line here plus its value in constants.py.
"""
import argparse
import copy
import math
from dataclasses import dataclass
from typing import Callable

import constants
import datasets
import models

# the artefacts a setting can affect: the four trained VAEs, the evaluation classifier, what the samplers learn from
# the unlabelled images of a trained VAE, a fitted sampler, and an evaluation (decoded samples measured by the
# classifier)
VAES = ("base", "cvae", "goal", "gmm")
FINETUNED = ("goal", "gmm")
ARTEFACTS = VAES + ("classifier", "unlabelled", "sampler", "evaluation")
# the features the graph sampler's k-NN graph can be built over (samplers.fit_unlabelled; GRAPH_FEATURES)
GRAPH_FEATURE_SPACES = ("latent-means", "hidden")
SAMPLING = ("sampler", "evaluation")
TRAINING = VAES + SAMPLING  # the training loop's settings: the VAEs and the pseudo-label sampler's fine-tune


class ConfigError(ValueError):
    """A setting that cannot work (empty goals, negative beta, ...)."""


# --- checks: each returns None when the value is fine, else what it must be ---------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def int_at_least(low):
    return lambda v: None if _is_int(v) and v >= low else f"an integer >= {low}"


def count_or_all(v):
    return None if v is None or (_is_int(v) and v >= 1) else "an integer >= 1, or all"


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def finite(v):
    return None if _is_number(v) else "a finite number"


def positive(v):
    return None if _is_number(v) and v > 0 else "a finite number > 0"


def finite_at_least(low):
    return lambda v: None if _is_number(v) and v >= low else f"a finite number >= {low:g}"


def fraction(v):
    return None if _is_number(v) and 0 < v < 1 else "a number in (0, 1)"


def fraction_or_one(v):
    return None if _is_number(v) and 0 < v <= 1 else "a number in (0, 1]"


def boolean(v):
    return None if isinstance(v, bool) else "true or false"


def one_of(*choices):
    return lambda v: None if v in choices else "one of " + ", ".join(map(str, choices))


def goal_classes(v):
    ok = isinstance(v, (list, tuple)) and v and all(_is_int(g) and 0 <= g < constants.N_CLASSES for g in v) \
        and len(set(v)) == len(v)
    return None if ok else f"a non-empty list of distinct class indices 0-{constants.N_CLASSES - 1}"


def budget_name(budget):
    """How a label budget is named in tables, rows and unit names: its number, or "all" for every label (None)."""
    return "all" if budget is None else str(budget)


# --- command-line parsers for values argparse has no type for -----------------------------------------

def parse_count_or_all(text):
    if text.lower() in ("all", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Setting:
    name: str  # the RunConfig field, e.g. "latent_dim"; its default is constants.LATENT_DIM, its flag --latent-dim
    help: str
    affects: tuple  # the artefacts (ARTEFACTS) whose identity includes this setting
    check: Callable  # value -> None, or what the value must be
    parse: Callable = None  # argparse type; default: the default value's type
    nargs: str = None
    alias: str = None  # a second, shorter flag for the same setting (--labels for --expert-labels)

    @property
    def constant(self):
        return self.name.upper()

    def default(self):
        return copy.deepcopy(getattr(constants, self.constant))

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self):
        return (self.flag, self.alias) if self.alias else (self.flag,)


SETTINGS = (
    # data: which images, and how they are split (so everything depends on them)
    Setting("dataset", "dataset", ARTEFACTS, one_of(*datasets.NAMES)),
    Setting("validation_split", "share of training images held out", ARTEFACTS, fraction),
    Setting("train_images", "use only this many training images (all: every one)", ARTEFACTS,
            count_or_all, parse_count_or_all),
    Setting("seed", "seed of the split, the label draws, training and sampling", ARTEFACTS, int_at_least(0)),
    # model
    Setting("latent_dim", "latent dimensions", VAES, int_at_least(1)),
    Setting("arch", "encoder/decoder body", VAES, one_of(*models.BODIES), str),
    Setting("likelihood", "p(x|z) of the VAEs", VAES, one_of(*models.LIKELIHOODS), str),
    Setting("hidden", "width of the layer between convolutions and latent", VAES, int_at_least(1)),
    Setting("logvar_min", "lower clamp of the encoder's log-variance", VAES, finite),
    Setting("logvar_max", "upper clamp of the encoder's log-variance", VAES, finite),
    # the expert's goal
    Setting("goals", "goal classes", FINETUNED + SAMPLING, goal_classes, int, "+"),
    Setting("expert_labels", "labelled images per goal class (all: every one)", FINETUNED + SAMPLING,
            count_or_all, parse_count_or_all, alias="--labels"),
    Setting("label_draw", "which seeded draw of the expert's labels", FINETUNED + SAMPLING,
            int_at_least(0)),
    Setting("labelled_only_kl", "goal/GMM KL on the labelled goal images only, N(0, I) elsewhere",
            FINETUNED, boolean, parse_bool),
    # objectives
    Setting("beta_base", "KL weight of the base VAE and the CVAEs", ("base", "cvae") + SAMPLING,
            finite_at_least(0), float),
    Setting("beta_goal", "KL weight of the goal VAE", ("goal",), finite_at_least(0), float),
    Setting("beta_gmm", "KL weight of the GMM VAE", ("gmm",), finite_at_least(0), float),
    Setting("gmm_components", "most mixture components of the GMM prior", ("gmm",) + SAMPLING,
            int_at_least(1)),
    Setting("gmm_covariance_type", "the GMM prior's covariance type", ("gmm",) + SAMPLING,
            one_of("full", "tied", "diag", "spherical"), str),
    Setting("gmm_reg_covar", "added to each GMM covariance diagonal",
            ("gmm", "unlabelled") + SAMPLING, positive, float),
    Setting("gmm_kl_samples", "Monte Carlo samples per image of the GMM KL", ("gmm",),
            int_at_least(1)),
    # optimisation
    Setting("batch_size", "training batch size", TRAINING, int_at_least(1)),
    Setting("lr", "peak learning rate", TRAINING, positive, float),
    Setting("lr_schedule", "learning-rate schedule", TRAINING, one_of("one-cycle", "plateau"), str),
    Setting("warmup", "one-cycle: share of steps spent warming up", TRAINING, fraction),
    Setting("epochs_base", "epochs of the base VAE and the CVAE", ("base", "cvae"), int_at_least(1)),
    Setting("epochs_finetune", "epochs of the goal and GMM fine-tunes", FINETUNED,
            int_at_least(1)),
    Setting("patience", "early stopping: epochs without a better validation loss", TRAINING,
            int_at_least(1)),
    Setting("lr_patience", "plateau schedule: epochs before the learning rate is halved", TRAINING,
            int_at_least(0)),
    Setting("grad_clip", "largest global gradient norm", TRAINING, positive, float),
    Setting("channels_last", "channels-last memory layout while training", TRAINING, boolean,
            parse_bool),
    # biased samplers
    Setting("graph_features", "graph sampler: the features its k-NN graph is built over", ("unlabelled",),
            one_of(*GRAPH_FEATURE_SPACES), str),
    Setting("graph_neighbours", "graph sampler: k of the k-NN graph", ("unlabelled",),
            int_at_least(1)),
    Setting("graph_umap_components", "graph sampler: dimensions of the UMAP embedding whose own graph the "
            "discovery must agree with (0: one graph)", ("unlabelled",), int_at_least(0)),
    Setting("graph_umap_neighbours", "graph sampler: UMAP's n_neighbors for that embedding", ("unlabelled",),
            int_at_least(2)),
    Setting("graph_restart", "graph sampler: personalised PageRank restart probability", SAMPLING,
            fraction),
    Setting("graph_core", "graph sampler: share of found neighbours that keeps a found image",
            SAMPLING, fraction_or_one),
    Setting("graph_max_share", "graph sampler: largest share of the images taken as one goal",
            SAMPLING, fraction_or_one),
    Setting("graph_rounds", "graph sampler: PageRank walks, each seeded from the last one's cut", SAMPLING,
            int_at_least(1)),
    Setting("graph_cut_tolerance", "graph sampler: before the last walk, the smallest cut within this factor "
            "of the lowest conductance", SAMPLING, finite_at_least(1), float),
    Setting("graph_temperature", "graph sampler: scale of the posterior variance", SAMPLING,
            positive, float),
    Setting("pseudo_epochs", "pseudo-label sampler: fine-tuning epochs of its conditional decoder",
            SAMPLING, int_at_least(1)),
    Setting("ratio_components", "ratio sampler: GMM components of all training latents",
            ("unlabelled",), int_at_least(1)),
    Setting("ratio_rounds", "ratio sampler: self-training rounds", SAMPLING, int_at_least(0)),
    # evaluation
    Setting("classifier_epochs", "epochs of the evaluation classifier", ("classifier",),
            int_at_least(1)),
    Setting("classifier_lr", "peak learning rate of the evaluation classifier", ("classifier",),
            positive, float),
    Setting("classifier_batch_size", "batch size of the evaluation classifier",
            ("classifier",), int_at_least(1)),
    Setting("eval_samples", "decoded samples per evaluated row", ("evaluation",), int_at_least(2)),
    Setting("prdc_neighbours", "k of precision / recall / density / coverage", ("evaluation",),
            int_at_least(1)),
)
BY_NAME = {s.name: s for s in SETTINGS}


class RunConfig:
    """One value per setting of SETTINGS: RunConfig(latent_dim=8) overrides some, the rest come from constants.py."""

    def __init__(self, **overrides):
        unknown = sorted(set(overrides) - set(BY_NAME))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}: see config.SETTINGS")
        for setting in SETTINGS:
            setattr(self, setting.name, copy.deepcopy(overrides[setting.name]) if setting.name in overrides
                    else setting.default())

    def as_dict(self):
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    def replace(self, **changes):
        return RunConfig(**{**self.as_dict(), **changes})

    def for_artefact(self, kind):
        """The settings an artefact of this kind depends on: its part of a cache identity."""
        if kind not in ARTEFACTS:
            raise ValueError(f"unknown artefact kind {kind!r}")
        return {s.name: getattr(self, s.name) for s in SETTINGS if kind in s.affects}

    def validate(self):
        """Raise ConfigError with one readable line for the first setting that cannot work; returns self."""
        for s in SETTINGS:
            value = getattr(self, s.name)
            if isinstance(value, tuple):
                value = list(value)
                setattr(self, s.name, value)
            problem = s.check(value)
            if problem:
                raise ConfigError(f"{s.name} ({s.flag}) must be {problem}, got {value!r}")
        if self.eval_samples <= self.prdc_neighbours:  # a k-nearest-neighbour ball needs more than k samples
            raise ConfigError(f"eval_samples (--eval-samples) must exceed prdc_neighbours (--prdc-neighbours), got "
                              f"{self.eval_samples} and {self.prdc_neighbours}")
        self.goals = sorted(self.goals)
        return self

    def beta(self, name):
        return {"base": self.beta_base, "cvae": self.beta_base, "goal": self.beta_goal, "gmm": self.beta_gmm}[name]

    def epochs(self, name):
        return self.epochs_finetune if name in FINETUNED else self.epochs_base

    def __eq__(self, other):
        return isinstance(other, RunConfig) and self.as_dict() == other.as_dict()

    def __repr__(self):
        changed = {k: v for k, v in self.as_dict().items() if v != BY_NAME[k].default()}
        return f"RunConfig({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def add_setting_flags(parser, kinds=ARTEFACTS, title="settings (defaults from constants.py)", exclude=()):
    """One --flag per setting that affects any of `kinds`, except the settings named in `exclude` (those the script
    sets itself); an absent flag leaves no attribute (the default applies), so `--expert-labels all` (None) still
    overrides a numeric default."""
    group = parser.add_argument_group(title)
    for s in SETTINGS:
        if not set(s.affects) & set(kinds) or s.name in exclude:
            continue
        default = s.default()
        shown = "all" if default is None and s.parse is parse_count_or_all else default
        # a bare boolean --flag means true
        nargs = {"nargs": "?", "const": True} if s.parse is parse_bool else {"nargs": s.nargs}
        group.add_argument(*s.flags, dest=s.name, default=argparse.SUPPRESS, type=s.parse or type(default),
                           help=f"{s.help} ({s.constant}, default {shown})", **nargs)
    return parser


def given_settings(args, exclude=()):
    """{setting name: value} of every setting flag (add_setting_flags) the user gave, but those named in `exclude`."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if s.name not in exclude and hasattr(args, s.name)}


def config_from_args(args, preset=None):
    """Defaults from constants.py, then `preset` (e.g. constants.QUICK), then every flag the user gave."""
    return RunConfig(**{**(preset or {}), **given_settings(args)}).validate()
