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
import errno
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

FORMAT = 3  # bump when the layout of an identity changes

# the module that makes each kind of artefact; the code in its identity is that module's and every project module it
# imports, directly or not (code_modules), so no module it runs can be missing from its fingerprint
MAKERS = {"base": "train", "cvae": "train", "goal": "train", "gmm": "train", "classifier": "classifier",
          "unlabelled": "samplers", "sampler": "samplers", "evaluation": "units"}
# project modules that decide no artefact's contents: identities (this one), where checkpoint files live
# (checkpoints), settings, whose values are in the identity (config, constants), error types and the command line
NOT_CODE = ("cache", "checkpoints", "config", "constants", "errors", "cli")
ROOT = os.path.dirname(os.path.abspath(__file__))
LIBRARIES = ("torch", "numpy", "scipy", "sklearn")  # their versions are part of every identity


# --- atomic writes ----------------------------------------------------------------------------------

STALE_TEMPORARY_SECONDS = 600  # a temporary file this old is an interrupted write's leftover: no write takes that long


def remove_stale_temporaries(folder, stem, ext):
    """Delete <stem>.tmp-*<ext> files in `folder` that a killed write left behind (older than
    STALE_TEMPORARY_SECONDS, so that a write in progress in another process is left alone)."""
    now = time.time()
    for path in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(stem)}.tmp-*{glob.escape(ext)}")):
        with contextlib.suppress(OSError):
            if now - os.path.getmtime(path) > STALE_TEMPORARY_SECONDS:
                os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` (same extension): what is written there replaces `path` only when the block
    ends without an error, so an interrupted write never leaves a torn file over a good one; the temporary file
    is removed either way, and those that killed writes left behind are removed by the next write. An OSError
    names `path`, the file the caller asked for, not the temporary one."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        remove_stale_temporaries(folder, stem, ext)
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=f"{stem}.tmp-", suffix=ext)
        os.close(handle)
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; other users' Dask workers must read the cache too
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before it replaces the old file: a power cut leaves the old or the new one
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as error:
        if error.errno is None or error.filename == path:
            raise
        raise type(error)(error.errno, error.strerror, path) from None  # the user's path, not the temporary one
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def nearest_existing_folder(path):
    """The closest folder above `path` that exists now (where a write would have to create the rest)."""
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


def check_writable(path, what="output"):
    """Raise an OSError naming `path` now, before any expensive work, when a file cannot be written there: it is a
    folder, a file stands where a folder should, or the nearest existing folder above it cannot be written to.
    Nothing is created (a refused run leaves no folder behind)."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{what} is a folder, not a file", path)
    existing = nearest_existing_folder(path)
    if not os.path.isdir(existing):
        raise NotADirectoryError(errno.ENOTDIR, f"{what} needs a folder where the file {existing} is", path)
    probe = None
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".write-check-")
        os.close(handle)
    except OSError as error:
        raise type(error)(error.errno, f"{what} cannot be written ({error.strerror})", path) from None
    finally:
        if probe is not None:
            os.remove(probe)


def check_writable_folder(folder, what="output folder"):
    """check_writable for a folder that files will be written into."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(errno.ENOTDIR, f"{what} needs a folder where the file {folder} is", folder)
    check_writable(os.path.join(folder, ".probe"), what)


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on <path>.lock for the block: a second process about to compute the same artefact waits,
    then finds it made and reuses it, instead of computing it again beside the first (fcntl.flock, released when
    the process dies). Where the folder cannot be written, or on a system without fcntl, the block runs unlocked."""
    handle = None
    try:
        import fcntl
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(f"{path}.lock", "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
    except (ImportError, OSError):
        if handle is not None:
            handle.close()
        handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases the lock


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def save_torch(obj, path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class UnsafeFileError(RuntimeError):
    """A file that torch would load only by running pickled code (cache.load_tensors refuses it)."""


def load_tensors(path, error=UnsafeFileError, missing=None):
    """torch.load(path) with weights_only=True: tensors and plain values, never pickled code. A file that needs
    more is refused with `error` and one plain line (torch's own message ends in advice to switch the safety off);
    a missing file raises `error(missing)`, or FileNotFoundError when `missing` is None."""
    try:
        with warnings.catch_warnings():  # torch warns on some foreign files before refusing them: one line is enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        if missing is None:
            raise
        raise error(missing) from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a file") from None
    except Exception:  # noqa: BLE001 - whatever torch says, the answer is the same
        raise error(f"{path} is not a safe file of this project: it is unreadable or holds more than tensors and "
                    f"plain values, so it was not loaded") from None


def load_current(path, ident, what, log=print):
    """The dict torch-saved at `path` (tensors only, no pickled code) when its "identity" equals `ident`; else None,
    after a one-line notice of why (missing files are silent). A cache miss is never an error."""
    if not os.path.exists(path):
        return None
    try:
        saved = load_tensors(path)
    except UnsafeFileError:  # unreadable or foreign: recompute rather than trust it
        log(f"{what}: {path} cannot be loaded safely: recomputing")
        return None
    stored = saved.get("identity") if isinstance(saved, dict) else None
    if stored == ident:
        log(f"{what}: reusing {path}")
        return saved
    log(f"{what}: {path} was made from other inputs ({', '.join(differences(stored, ident))}): recomputing")
    return None


def save_cache(obj, path, what, log=print):
    """save_torch for a cache that only saves time: a folder that cannot be written (read-only models/, a full
    disk) costs a one-line notice, not the result that was just computed."""
    try:
        save_torch(obj, path)
        return True
    except OSError as error:
        log(f"{what}: not cached ({error.strerror or error}: {path}); it will be computed again next time")
        return False


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


def _project_imports(module_name):
    """The project modules (files beside this one) that `module_name` imports anywhere in its source."""
    with open(os.path.join(ROOT, f"{module_name}.py")) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if os.path.exists(os.path.join(ROOT, f"{name}.py"))}


def code_modules(kind):
    """The modules whose code is in an artefact's identity: its maker (MAKERS) and every project module reachable
    from it through imports, less NOT_CODE, and datasets, which turns the files into the images every artefact is
    fitted to; sorted."""
    seen, todo = set(), [MAKERS[kind], "datasets"]
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_CODE:
            continue
        seen.add(name)
        todo.extend(_project_imports(name))
    return tuple(sorted(seen))


def code_fingerprint(kind):
    """A short hash of the code of every module that makes an artefact of this kind (code_modules)."""
    digest = hashlib.sha256()
    for module_name in code_modules(kind):
        digest.update(module_name.encode())
        digest.update(_code_of(module_name).encode())
    return digest.hexdigest()[:16]


def code_fingerprints():
    """{kind: code_fingerprint(kind)} for every kind: what results.json and study.json record of the code."""
    return {kind: code_fingerprint(kind) for kind in MAKERS}


def library_versions():
    """{library: version} of the numerical libraries every artefact is computed with."""
    return {name: str(importlib.import_module(name).__version__) for name in LIBRARIES}  # plain str: torch's is a subclass


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
            "libraries": library_versions(), "data": data_fingerprint, "parents": dict(parents or {}),
            "extra": dict(extra or {})}


KEY_LENGTH = 20  # hex digits of key(): 80 bits, no collision among any number of runs one machine makes


def key(ident):
    """A short, stable name for an identity (a file name in the study's cache)."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:KEY_LENGTH]


def differences(stored, current):
    """What changed between two identities, in words (for the one-line retrain notice)."""
    if not isinstance(stored, dict):
        return ["no identity"]
    changed = []
    for part in ("format", "kind", "code", "libraries", "data"):
        if stored.get(part) != current.get(part):
            changed.append(part)
    for part in ("settings", "parents", "extra"):
        old, new = stored.get(part) or {}, current.get(part) or {}
        changed += [f"{name}" if part == "settings" else f"{part[:-1] if part == 'parents' else part} {name}"
                    for name in sorted(set(old) | set(new), key=str) if old.get(name) != new.get(name)]
    return changed
