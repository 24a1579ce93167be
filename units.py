"""The study's units of work, each one training or one evaluation, run by study.py on a Dask cluster.

A unit is a plain function of a plain spec (a dict: the run's settings, where the data and outputs live) and of
the results of the units it depends on (small dicts naming a file and its content hash). It computes its identity
(cache.identity: settings, code, data, parents' content hashes), returns the stored result when one with that
identity exists under <out>/units/, and otherwise computes it and writes it atomically. A study that is killed
therefore loses only the units in flight, and a rerun recomputes exactly those.

Every unit runs on one thread (spec "threads" says otherwise), so its numbers do not depend on how many workers
share the machine, and on spec "device" (study.py --device; default the CPU). alltests.py runs the same evaluation units in process,
on its own device and threads, so every row of either is built here.
"""
import contextlib
import functools
import os
import time

import torch
from threadpoolctl import threadpool_limits

import cache
import config
import datasets
import evaluate
import models
import samplers
import train
from classifier import ImageClassifier, get_classifier
from errors import CheckpointError
from models import StandardNormalPrior, cycled_labels, encode_posteriors

REAL, CEILING, CVAE = "real goal images", "decoder ceiling", "CVAE"  # the study's method names
CVAE_POSTERIORS = "CVAE, its class's posteriors"  # the fully labelled reference the samplers are compared with
REFERENCE_SOURCES = ("test", "real", "ceiling")  # evaluate.reference_rows, in its order: all test images, goal ones


def sampler_method(name):
    return f"sampler: {name}"


@functools.lru_cache(maxsize=2)
def _splits(dataset, data_dir, validation_split, seed, train_images):
    return datasets.load(dataset, data_dir, False, validation_split, seed, train_images)


def splits_for(cfg, data_dir):
    """The run's data, read once per worker process and kept for the next units of the same split."""
    return _splits(cfg.dataset, data_dir, cfg.validation_split, cfg.seed, cfg.train_images)


@contextlib.contextmanager
def unit_log(spec):
    """spec["threads"] threads (default 1: torch's and the BLAS libraries' scikit-learn uses, whoever started the
    worker; None leaves the process's own), and a log file per unit: <out>/logs/<unit name>.log."""
    threads = spec.get("threads", 1)
    if threads:
        torch.set_num_threads(threads)
    path = os.path.join(spec["out_dir"], "logs", f"{spec['name']}.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with threadpool_limits(threads) if threads else contextlib.nullcontext(), open(path, "a") as f:
        def log(message):
            print(f"{time.strftime('%H:%M:%S')} {message}", file=f, flush=True)
        yield log


def unit_path(spec, kind, ident, ext):
    return os.path.join(spec["out_dir"], "units", kind, f"{cache.key(ident)}{ext}")


def config_of(spec):
    return config.RunConfig(**spec["run"]).validate()


def device_of(spec):
    """Where a unit computes: spec["device"] (study.py --device, alltests.py's device), else the CPU."""
    return torch.device(spec.get("device", "cpu"))


def classifier_unit(spec):
    """The evaluation classifier of one dataset. Returns {"path", "hash", "accuracy"}."""
    with unit_log(spec) as log:
        cfg = config_of(spec)
        data = splits_for(cfg, spec["data_dir"])
        ident = cache.identity("classifier", cfg, data.fingerprint)
        folder = unit_path(spec, "classifier", ident, "")  # a folder per identity: get_classifier names the file
        path = os.path.join(folder, "classifier.pt")
        cached = cache.load_current(path, ident, spec["name"], log) is not None
        _, accuracy, digest = get_classifier(data, cfg, folder, device_of(spec), log=log, progress=False)
        return {"path": path, "hash": digest, "accuracy": accuracy, "cached": cached}


def vae_unit(spec, base=None):
    """Train (or reuse) one VAE: spec["model"] in base, cvae, goal, gmm; fine-tunes start from `base` (a vae_unit
    result). Returns {"path", "hash", "best_val_loss", "epochs"}."""
    with unit_log(spec) as log:
        cfg, name = config_of(spec), spec["model"]
        data = splits_for(cfg, spec["data_dir"])
        device = device_of(spec)
        parent = models.load_checkpoint(base["path"], device) if base else None
        ident = train.run_identity(name, cfg, data, parent[2] if parent else None)
        path = unit_path(spec, "vae", ident, ".pt")
        found = train.reuse_checkpoint(path, ident, device, log, spec["name"])
        cached = found is not None
        if found is None:
            started = time.perf_counter()
            model, prior, history = train.train_run(name, cfg, data, device, parent, progress=False)
            found = (model, prior, models.save_checkpoint(path, model, prior, ident, history))
            log(f"trained in {time.perf_counter() - started:.0f} s -> {path}")
        history = found[2]["history"]
        return {"path": path, "hash": found[2]["content_hash"], "epochs": len(history),
                "best_val_loss": min(h["val_loss"] for h in history), "cached": cached}


def unlabelled_unit(spec, base):
    """samplers.fit_unlabelled for a base VAE. Returns {"path", "hash"}."""
    with unit_log(spec) as log:
        cfg = config_of(spec)
        data = splits_for(cfg, spec["data_dir"])
        model, _, checkpoint = models.load_checkpoint(base["path"], device_of(spec))
        ident = samplers.unlabelled_identity(cfg, data.fingerprint, checkpoint["content_hash"])
        folder = unit_path(spec, "unlabelled", ident, "")  # a folder per identity: get_unlabelled names the file
        path = os.path.join(folder, "unlabelled.pt")
        cached = cache.load_current(path, ident, spec["name"], log) is not None
        _, digest = samplers.get_unlabelled(model, checkpoint, data, cfg, folder, log)
        return {"path": path, "hash": digest, "cached": cached}


def _load_classifier(result, device):
    """(classifier, the content hash of what was read): rehashed from the file, not taken from the result."""
    state = cache.load_tensors(result["path"])["state_dict"]
    classifier = ImageClassifier()
    classifier.load_state_dict(state)
    return classifier.to(device).eval(), cache.content_hash(state)


_REFERENCES = {}  # the last few evaluate.References, keyed by what they are computed from


def references_for(judge, judge_hash, data, goals, base_model, base_hash):
    """evaluate.References, computed once per (classifier, data, goals, base decoder) in this process: the units of
    one base and goal (references, CVAE, every budget and draw) share them."""
    key = (judge_hash, data.fingerprint, tuple(goals), base_hash, str(next(base_model.parameters()).device))
    if key not in _REFERENCES:
        while len(_REFERENCES) >= 4:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = evaluate.References(judge, data, goals, base_model)
    return _REFERENCES[key]


@torch.no_grad()
def class_posteriors(cvae, data, goals):
    """The fully labelled reference for a conditional decoder: per goal, the CVAE's aggregate posterior over that
    class, (1/N_y) sum_n q(z | x_n, y) over every training image x_n of class y (the optimal prior of Hoffman & Johnson
    2016 and Tomczak & Welling 2018, here sampled ex post as Ghosh et al. 2020 sample a density fitted to the codes),
    decoded with the label y; with several goals, each draw picks a goal uniformly at random
    (samplers.PseudoLabelSampler). Drawn from N(0, I), the calibrated CVAE draws its label far less often (the study's
    CVAE rows). Being the exact mixture of the training images' posteriors, it is built to stay near those images,
    and it decodes with the CVAE's decoder, not the base's: it can stand above the base decoder's ceiling."""
    device = next(cvae.parameters()).device
    parts = []
    for goal in goals:
        images = data.train_x[(data.train_y == goal).to(data.train_x.device)]
        mu, logvar = encode_posteriors(cvae, images, labels=torch.full((len(images),), goal, device=device))
        parts.append(samplers.DiagonalMixture(mu.cpu(), logvar.exp().cpu()))
    return samplers.PseudoLabelSampler(cvae, parts, list(goals))


def evaluation_unit(spec, classifier, base, *optional):
    """Rows of metrics for one decoder and one goal set: spec["sources"] lists what to measure, each a dict
    {"source": test | real | ceiling | standard | own-prior | cvae | cvae-posteriors | <sampler name>, ...} whose
    other keys (the study's "method", "beta", "labels"; alltests.py's "model") go into its row as they are, after
    spec["row"]. The
    decoder is the decoder vae_unit result when spec["has_decoder"], else the base; the sampler fits use the
    unlabelled_unit result when spec["has_unlabelled"] (in that order after `base`); the references are the base's
    (evaluate.References). Every parent is read and rehashed here, so its identity names what was read, not what
    another unit said it wrote, and a parent result that names a "hash" must match it. spec["device"] (default cpu) is
    where it computes; spec["keep_images"] keeps that many of each sampled source's images in a file beside the rows,
    for figures, with the names of the sources that drew through a decoder of their own ("own_decoder");
    spec["recompute"] measures again even when rows of this identity are stored (alltests.py --retrain).
    Returns {"rows", "cached", "path": the rows' file, "images": that file or None}."""
    optional = list(optional)
    decoder = optional.pop(0) if spec["has_decoder"] else None
    unlabelled = optional.pop(0) if spec["has_unlabelled"] else None
    keep, device = spec.get("keep_images", 0), device_of(spec)
    with unit_log(spec) as log:
        cfg = config_of(spec)
        data = splits_for(cfg, spec["data_dir"])
        judge, judge_hash = _load_classifier(classifier, device)
        base_model, _, base_checkpoint = models.load_checkpoint(base["path"], device)
        model, own_prior, decoder_checkpoint = models.load_checkpoint(decoder["path"], device) if decoder \
            else (base_model, None, None)
        fit = cache.load_tensors(unlabelled["path"])["fit"] if unlabelled else None
        parents = {"classifier": judge_hash, "base": base_checkpoint["content_hash"]}
        parents.update({"decoder": decoder_checkpoint["content_hash"]} if decoder else {})
        parents.update({"unlabelled": cache.content_hash(fit)} if unlabelled else {})
        given = {"classifier": classifier, "base": base, "decoder": decoder, "unlabelled": unlabelled}
        for role, read in parents.items():
            if given[role].get("hash", read) != read:  # the file is not what its maker returned: never measure it
                raise CheckpointError(f"{given[role]['path']} is not the {role} its unit made (content hash {read}, "
                                      f"made {given[role]['hash']}): it was replaced after it was written")
        # the row's labels too (design, draw, ...): a cached result is never shown under another row's name; the
        # device, whose kernels decide the last digits
        ident = cache.identity("evaluation", cfg, data.fingerprint, parents,
                               {"sources": spec["sources"], "row": spec["row"], "device": device.type})
        path = unit_path(spec, "evaluation", ident, ".json")
        images_path = path[:-len(".json")] + "-images.pt" if keep else None
        saved = None if spec.get("recompute") else cache.read_json(path)
        if saved is not None and saved.get("identity") == ident \
                and (not keep or cache.load_current(images_path, {**ident, "keep_images": keep}, spec["name"],
                                                   lambda line: None)):
            log(f"{spec['name']}: reusing {path}")
            return {"rows": saved["rows"], "cached": True, "path": path, "images": images_path}
        started = time.perf_counter()
        refs = references_for(judge, judge_hash, data, cfg.goals, base_model, base_checkpoint["content_hash"])
        # the reference rows cost a full set of metrics each: only for the units that report them
        wanted = {source["source"] for source in spec["sources"]} & set(REFERENCE_SOURCES)
        references = dict(zip(REFERENCE_SOURCES, evaluate.reference_rows(refs, cfg.prdc_neighbours))) \
            if wanted else {}
        rows, kept, own_decoder = [], {}, []
        for source in spec["sources"]:
            info, labels = {}, None
            if source["source"] in REFERENCE_SOURCES:
                metrics = references[source["source"]]
            else:
                if source["source"] == "standard":
                    prior = StandardNormalPrior(model.latent_dim).to(device)
                elif source["source"] == "cvae":
                    prior = StandardNormalPrior(model.latent_dim).to(device)
                    labels = cycled_labels(cfg.goals, cfg.eval_samples)
                elif source["source"] == "cvae-posteriors":
                    prior = class_posteriors(model, data, cfg.goals)
                elif source["source"] == "own-prior":
                    prior = own_prior
                else:
                    prior, info = samplers.fit_sampler(source["source"], model, data, cfg, fit)
                metrics, images = evaluate.measure_source(model, prior, judge, refs, cfg.eval_samples, cfg.seed,
                                                          cfg.prdc_neighbours, labels)
                if keep:
                    kept[source["source"]] = images[:keep].cpu()
                    if hasattr(prior, "generator"):  # a sampler with a conditional decoder of its own
                        own_decoder.append(source["source"])
            found = evaluate.discovery(info, data.train_y)
            rows.append({**spec["row"], **source, **metrics, **({"found": found} if found else {})})
        if keep:
            cache.save_torch({"identity": {**ident, "keep_images": keep}, "images": kept, "own_decoder": own_decoder},
                            images_path)
        cache.write_json(path, {"identity": ident, "rows": rows, "seconds": time.perf_counter() - started})
        log(f"{len(rows)} rows in {time.perf_counter() - started:.0f} s -> {path}")
        return {"rows": rows, "cached": False, "path": path, "images": images_path}
