"""What makes a cached artefact reusable, computed in one place, and the one atomic-write helper.

An artefact (a VAE checkpoint, the evaluation classifier, a sampler's neighbour graph, a study unit's result) is
reused only when the identity stored with it equals the one computed now:
  - the settings that affect it (config.SETTINGS declares which), the whole set, never a hand-picked subset;
  - a fingerprint of the source code that makes it (comments and docstrings do not count);
  - the fingerprint of the data it was fitted to;
  - the content hash of every artefact it was built from (the base VAE of a fine-tune or a sampler, the classifier
    of an evaluation).
"""
import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile

import numpy as np
import torch

FORMAT = 2  # bump when the layout of an identity changes

# the modules whose code decides an artefact's contents (config.py and constants.py act through the settings' values)
CODE = {
    "base": ("datasets", "models", "losses", "train"),
    "cvae": ("datasets", "models", "losses", "train"),
    "goal": ("datasets", "models", "losses", "train"),
    "gmm": ("datasets", "models", "losses", "train"),
    "classifier": ("datasets", "classifier"),
    "unlabelled": ("datasets", "models", "samplers"),
    "sampler": ("datasets", "models", "samplers"),
    "evaluation": ("datasets", "models", "train", "samplers", "classifier", "evaluate", "units"),
}


# --- atomic writes ----------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` (same extension): what is written there replaces `path` only when the block
    ends without an error, so an interrupted write never leaves a torn file over a good one; the temporary file
    is removed either way."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(name)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f"{stem}.tmp-", suffix=ext)
    os.close(handle)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; other users' Dask workers must read the cache too
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before it replaces the old file: a power cut leaves the old or the new one
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def save_torch(obj, path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_current(path, ident, what, log=print):
    """The dict torch-saved at `path` (tensors only, no pickled code) when its "identity" equals `ident`; else None,
    after a one-line notice of why (missing files are silent). A cache miss is never an error."""
    if not os.path.exists(path):
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable or foreign: recompute rather than trust it
        log(f"{what}: {path} cannot be loaded safely ({type(error).__name__}): recomputing")
        return None
    stored = saved.get("identity") if isinstance(saved, dict) else None
    if stored == ident:
        log(f"{what}: reusing {path}")
        return saved
    log(f"{what}: {path} was made from other inputs ({', '.join(differences(stored, ident))}): recomputing")
    return None


def read_json(path):
    """The JSON at `path`, or None when it is missing or unreadable (a cache miss, never an error)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --- fingerprints and hashes ------------------------------------------------------------------------

class StaleCodeError(RuntimeError):
    """A module's source changed after this process loaded it: what it computes now is not what the file says."""


_FIRST_SEEN = {}  # module name -> (the loaded module's spec, its code when this process first fingerprinted it)


def _code_of(module_name):
    """The module's syntax tree without docstrings: editing a comment or a docstring is not a change.

    The fingerprint is read from the file, but a process runs the code it imported: once a loaded module has been
    fingerprinted, a later edit of its file raises StaleCodeError instead of keying old code's results with the
    new code's fingerprint (a long-lived Dask worker, a notebook; importlib.reload starts afresh)."""
    code = _code_from_file(module_name)
    module = sys.modules.get(module_name)
    if module is not None:
        # the spec object is made anew by every import and reload (the module object survives a reload)
        seen_spec, seen_code = _FIRST_SEEN.get(module_name, (None, None))
        if seen_spec is not module.__spec__:
            _FIRST_SEEN[module_name] = (module.__spec__, code)
        elif seen_code != code:
            raise StaleCodeError(f"{module.__file__} changed after this process loaded it: restart the process "
                                 f"(or, on a Dask cluster, its workers) so that results are keyed on the code that "
                                 f"made them")
    return code


def _code_from_file(module_name):
    spec = importlib.util.find_spec(module_name)
    with open(spec.origin) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:]
    return ast.dump(tree, include_attributes=False)


def code_fingerprint(kind):
    """A short hash of the code of every module that makes an artefact of this kind (CODE)."""
    digest = hashlib.sha256()
    for module_name in CODE[kind]:
        digest.update(module_name.encode())
        digest.update(_code_of(module_name).encode())
    return digest.hexdigest()[:16]


def code_fingerprints():
    """{kind: code_fingerprint(kind)} for every kind: what results.json and study.json record of the code."""
    return {kind: code_fingerprint(kind) for kind in CODE}


def _feed(digest, obj):
    if torch.is_tensor(obj):
        obj = obj.detach().cpu().contiguous()
        digest.update(f"tensor{obj.dtype}{tuple(obj.shape)}".encode())
        digest.update(obj.view(-1).view(torch.uint8).numpy().tobytes() if obj.numel() else b"")
    elif isinstance(obj, np.ndarray):
        digest.update(f"array{obj.dtype}{obj.shape}".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=str):
            digest.update(repr(key).encode())
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[")
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(obj).encode())


def content_hash(obj):
    """A short hash of tensors, arrays, dicts, lists and plain values: equal exactly when the contents are."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()[:16]


# --- identities -------------------------------------------------------------------------------------

def identity(kind, cfg, data_fingerprint, parents=None, extra=None):
    """Everything an artefact of this kind depends on (see the module docstring). `parents`: name -> content hash
    of each artefact it was built from; `extra`: what else defines it (a sampler's name, say)."""
    return {"format": FORMAT, "kind": kind, "settings": cfg.for_artefact(kind), "code": code_fingerprint(kind),
            "data": data_fingerprint, "parents": dict(parents or {}), "extra": dict(extra or {})}


def key(ident):
    """A short, stable name for an identity (a file name in the study's cache)."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]


def differences(stored, current):
    """What changed between two identities, in words (for the one-line retrain notice)."""
    if not isinstance(stored, dict):
        return ["no identity"]
    changed = []
    for part in ("format", "kind", "code", "data"):
        if stored.get(part) != current.get(part):
            changed.append(part)
    for part in ("settings", "parents", "extra"):
        old, new = stored.get(part) or {}, current.get(part) or {}
        changed += [f"{name}" if part == "settings" else f"{part[:-1] if part == 'parents' else part} {name}"
                    for name in sorted(set(old) | set(new), key=str) if old.get(name) != new.get(name)]
    return changed
