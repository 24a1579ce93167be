"""Checkpoint files: where each run's latest checkpoint lives, and how an older one is kept by its identity.

train.py writes them; sample.py, notebooks and models.load_checkpoint's hint read these paths. Nothing here decides
what a checkpoint holds (models.py writes and reads the contents), so no artefact's code fingerprint includes it
(cache.NOT_CODE).
"""
import os
import re
import shutil

import cache
import config
import constants

LABELLED_ONLY_SUFFIX = "-labelled-only"  # the labelled-only-KL goal and GMM VAEs get files of their own


def checkpoint_name(name, cfg):
    """The file name (without .pt) of run `name` in a models folder: the labelled-only variants get their own."""
    return f"{name}{LABELLED_ONLY_SUFFIX}" if name in config.FINETUNED and cfg.labelled_only_kl else name


def checkpoint_path(models_dir, name):
    """models_dir/<name>.pt: the latest checkpoint of run `name`, the one notebooks and sample.py open."""
    return os.path.join(models_dir, f"{name}.pt")


def models_dir_for(out_dir, dataset):
    """Where a dataset's checkpoints live: OUT_DIR/models for the default dataset, OUT_DIR/models/<dataset> else."""
    return os.path.join(out_dir, "models", *([] if dataset == constants.DATASET else [dataset]))


def training_command(path, cfg=None, out_dir=None):
    """The train.py command that writes the checkpoint file `path`, latest or kept (for error messages); with the
    run's `cfg` and `out_dir`, the flags of the request that differ from the defaults too."""
    name = os.path.splitext(os.path.basename(path))[0]
    if os.path.basename(os.path.dirname(path)) == "kept":  # <name>-<identity key>
        name = name[:-cache.KEY_LENGTH - 1]
    flags = []
    if name.endswith(LABELLED_ONLY_SUFFIX):
        name = name[:-len(LABELLED_ONLY_SUFFIX)]
        flags.append("--labelled-only-kl")
    if cfg is not None:
        default = config.RunConfig()
        wanted = ("dataset",) + (("goals", "expert_labels", "label_draw") if name in config.FINETUNED else ())
        for setting in (config.BY_NAME[n] for n in wanted):
            value = getattr(cfg, setting.name)
            if value != getattr(default, setting.name):
                shown = " ".join(map(str, value)) if isinstance(value, list) else config.budget_name(value) \
                    if setting.name == "expert_labels" else value
                flags.append(f"{setting.flag} {shown}")
    if out_dir is not None and os.path.abspath(out_dir) != os.path.abspath(constants.OUT_DIR):
        flags.append(f"--out-dir {out_dir}")
    return " ".join([f"python train.py --model {name}", *flags])


def kept_path(models_dir, name, identity):
    """models_dir/kept/<name>-<identity key>.pt: where a checkpoint is kept once a run with other settings
    replaces it, so that switching back reuses it (as Lightning keeps versioned runs apart)."""
    return os.path.join(models_dir, "kept", f"{name}-{cache.key(identity)}.pt")


def kept_checkpoints(models_dir, name):
    """The checkpoints of run file `name` that kept_path wrote in models_dir/kept, newest first."""
    kept = os.path.join(models_dir, "kept")
    pattern = re.compile(re.escape(name) + rf"-[0-9a-f]{{{cache.KEY_LENGTH}}}\.pt")
    paths = [os.path.join(kept, f) for f in os.listdir(kept) if pattern.fullmatch(f)] if os.path.isdir(kept) else []
    return sorted(paths, key=os.path.getmtime, reverse=True)


def _stored_identity(path):
    try:
        saved = cache.load_tensors(path)
    except (OSError, cache.UnsafeFileError):
        return None
    return saved.get("identity") if isinstance(saved, dict) else None


def link_or_copy(source, target):
    """target becomes a copy of source, replacing it in one step: a hard link where the file system allows (no
    second copy on disk, the file's mode untouched), else a copy (cache.atomic_path)."""
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(target))
    # named as cache.atomic_path's temporaries, and those a killed call left here are swept first
    cache.remove_stale_temporaries(folder, stem, ext)
    link = os.path.join(folder, f"{stem}.tmp-link-{os.getpid()}{ext}")
    made = False
    try:
        os.link(source, link)
        made = True
        os.replace(link, target)
    except OSError:
        if made and os.path.lexists(link):
            os.remove(link)
        with cache.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    finally:
        if made and os.path.lexists(link):  # rename onto the same file is a no-op that leaves the link's name
            os.remove(link)


def keep_before_replacing(path, models_dir, name, new_identity, log):
    """Before `path` is replaced by a checkpoint of `new_identity`: keep it under its own identity (kept_path).
    Not kept: a checkpoint of the same identity (a retraining replaces it), or one made by other code, library
    versions or format, which no run can reuse. A folder that cannot be written costs a notice."""
    stored = _stored_identity(path) if os.path.exists(path) else None
    if stored is None or stored == new_identity or any(stored.get(part) != new_identity.get(part)
                                                        for part in ("format", "code", "libraries")):
        return
    target = kept_path(models_dir, name, stored)
    if os.path.exists(target) and os.path.samefile(path, target):
        return
    try:
        link_or_copy(path, target)
        log(f"{name}: the checkpoint it replaces is kept as {target}")
    except OSError as error:
        log(f"{name}: could not keep the checkpoint it replaces ({error.strerror or error}: {target})")
