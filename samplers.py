"""Biased samplers: latent distributions, fitted from a trained VAE and the expert's labelled goal images, that
make the VAE's decoder produce goal classes. Each has the priors' interface (log_prob(z), sample(n)), so anything
that takes a prior takes a sampler (models.decode_prior_samples, say).

    goal-gaussian  the earlier implementation's goal prior N(mu_p, diag sigma_p^2), applied post hoc
    goal-gmm       the earlier implementation's Gaussian-mixture prior, applied post hoc
    exemplar       the labelled images' own posteriors, mixed (VampPrior, labelled images as pseudo-inputs)
    ratio          density ratio: min(p_all, p_goal / r*) by rejection, from p_all or p_goal, whichever accepts more
    graph          positive-unlabelled: the goal images found among the unlabelled ones by graph clustering
    pseudo-label   graph's found images as pseudo-labels for a conditional decoder grown from the base VAE

`ratio`, `graph` and `pseudo-label` also learn from the unlabelled training images (never their labels):
`fit_unlabelled` does that label-free part once per trained VAE.
"""
import importlib.metadata
import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn as nn

import cache
import config
import constants
import datasets
import fitting
import losses
from errors import SamplerError
from models import (ConditionalVAE, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior,
                    check_checkpoint_serves, decode_prior_samples, encode_means, encode_posteriors, hidden_features,
                    load_checkpoint)


class DiagonalMixture(nn.Module):
    """sum_k w_k N(z | m_k, diag v_k): the mixtures of posteriors the exemplar and graph samplers draw from."""
    kind = "mixture"

    def __init__(self, means, variances, weights=None):
        super().__init__()
        weights = torch.full((len(means),), 1.0 / len(means)) if weights is None else torch.as_tensor(weights)
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32).clone())
        self.register_buffer("log_variances", torch.as_tensor(variances, dtype=torch.float32).log())
        self.register_buffer("log_weights", (weights / weights.sum()).float().log())

    def log_prob(self, z, chunk=256):
        # a mixture's density (VampPrior, Tomczak & Welling 2018, eq. 9, with fixed pseudo-inputs):
        # log sum_k exp(log w_k + log N(z | m_k, v_k)), in chunks of z: [chunk, K, d] stays small for K in thousands
        out = [torch.logsumexp(self.log_weights + losses.gaussian_log_prob(part[:, None, :], self.means,
                                                                            self.log_variances), dim=1)
               for part in z.split(chunk)]
        return torch.cat(out)

    def sample(self, n):
        """n draws from torch's global RNG: a component by its weight, then its Gaussian."""
        component = torch.multinomial(self.log_weights.exp(), n, replacement=True)
        noise = torch.randn(n, self.means.shape[1], device=self.means.device)
        return self.means[component] + noise * (0.5 * self.log_variances[component]).exp()


class RatioSampler(nn.Module):
    """Rejection sampling of p_all(z) min(1, r(z) / r*) / A, r = p_goal / p_all, where A is p_all's proposals' mean
    acceptance min(1, r / r*) (Sugiyama, Suzuki & Kanamori 2012, Density Ratio Estimation in Machine Learning,
    ch. 1: a density ratio reweights one density into another).
    The same density is min(p_all(z), p_goal(z) / r*) / A, so it is also p_goal's proposals accepted with
    min(1, r* / r(z)); those accept r* A of the time against p_all's A, and sample() proposes from p_goal when
    r* > 1. In a large latent a goal density covers little of p_all and r* is large: p_all's proposals were then
    almost all rejected (on 1,500 Fashion-MNIST images at the latent of 32, fewer than n of 5,000,000 kept)."""
    kind = "ratio"

    def __init__(self, p_all, p_goal, log_threshold, log_acceptance):
        super().__init__()
        self.p_all, self.p_goal = p_all, p_goal
        self.register_buffer("log_threshold", torch.as_tensor(float(log_threshold)))
        self.register_buffer("log_acceptance", torch.as_tensor(float(log_acceptance)))

    def log_ratio_over_threshold(self, z):
        return self.p_goal.log_prob(z) - self.p_all.log_prob(z) - self.log_threshold  # log(r(z) / r*)

    def log_accept(self, z):
        """log min(1, r(z) / r*): the acceptance of a proposal from p_all."""
        return self.log_ratio_over_threshold(z).clamp(max=0.0)

    def log_prob(self, z):
        return self.p_all.log_prob(z) + self.log_accept(z) - self.log_acceptance

    def proposes_from_goal(self):
        return bool(self.log_threshold > 0)  # r* > 1: p_goal's acceptance r* A is the higher

    def propose(self, n):
        """(n proposals, their log acceptance) from the proposal that accepts more often."""
        if self.proposes_from_goal():
            z = self.p_goal.sample(n)
            # log min(1, r* / r(z)): accept-reject (Robert & Casella 2004, Monte Carlo Statistical Methods, sec. 2.3)
            # with the envelope p_goal >= min(p_goal, r* p_all), the target up to its constant
            return z, (-self.log_ratio_over_threshold(z)).clamp(max=0.0)
        z = self.p_all.sample(n)
        return z, self.log_accept(z)

    def normalise(self, n, seed):
        """Sets log A, the normaliser of the accepted density, by Monte Carlo over n proposals of the one sample()
        uses: A = E_{p_all}[min(1, r / r*)] = E_{p_goal}[min(1, r* / r)] / r* (the class docstring), the second
        estimable where A is too small for p_all's draws to see; a fixed seed, leaving torch's global RNG as it was."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            _, log_accept = self.propose(n)
        log_acceptance = log_accept.logsumexp(0) - math.log(n)
        if self.proposes_from_goal():
            log_acceptance = log_acceptance - self.log_threshold
        self.log_acceptance.fill_(log_acceptance.item())

    def sample(self, n, max_proposals=5_000_000):
        kept, proposed = [], 0
        while sum(len(k) for k in kept) < n:
            if proposed >= max_proposals:
                raise SamplerError(f"ratio sampler: fewer than {n} of {proposed:,} proposals accepted")
            batch = max(4 * n, 20000)
            z, log_accept = self.propose(batch)
            kept.append(z[torch.rand(batch, device=z.device).log() < log_accept])
            proposed += batch
        return torch.cat(kept)[:n]


class EqualMixture(nn.Module):
    """One sampler per goal class, each producing an equal share: (1/G) sum_g p_g(z)."""
    kind = "per-goal mixture"

    def __init__(self, parts):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def log_prob(self, z):
        return torch.logsumexp(torch.stack([p.log_prob(z) for p in self.parts]), 0) - math.log(len(self.parts))

    def sample_parts(self, n):
        """(z [n, d], the index of the part each came from): each draw picks a part uniformly, shuffled; torch's
        global RNG."""
        counts = torch.bincount(torch.randint(len(self.parts), (n,)), minlength=len(self.parts)).tolist()
        z = torch.cat([part.sample(c) for part, c in zip(self.parts, counts) if c > 0])
        part = torch.repeat_interleave(torch.arange(len(self.parts)), torch.tensor(counts)).to(z.device)
        order = torch.randperm(n, device=z.device)
        return z[order], part[order]

    def sample(self, n):
        return self.sample_parts(n)[0]


class PseudoLabelSampler(EqualMixture):
    """An EqualMixture of per-goal latent mixtures that brings its own decoder: a ConditionalVAE (`generator`),
    which decodes each goal's z with that goal's label (models.decode_prior_samples does that). log_prob and sample
    describe z alone, as for the other samplers."""
    kind = "conditional"

    def __init__(self, generator, parts, labels):
        super().__init__(parts)
        self.generator = generator
        self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.long))

    def sample_labelled(self, n):
        """(z [n, d], the generator's label of each): each draw picks a goal uniformly at random; torch's global
        RNG."""
        z, part = self.sample_parts(n)
        return z, self.labels.to(z.device)[part]


# --- what the samplers learn from the unlabelled training images (no labels) -------------------------

def neighbour_graph(features, k=constants.GRAPH_NEIGHBOURS, chunk=2048):
    """[N, k] indices of each row's k nearest other rows (Euclidean), by chunked exact search."""
    features = features.float()
    squares = (features * features).sum(1)
    rows = []
    for start in range(0, len(features), chunk):
        block = features[start:start + chunk]
        distance = squares[start:start + chunk, None] - 2 * block @ features.T + squares[None]
        distance[torch.arange(len(block)), torch.arange(start, start + len(block))] = math.inf  # not itself
        rows.append(distance.topk(k, largest=False).indices)
    return torch.cat(rows)


def nearest_neighbours(features, k, chunk=2048):
    """([N, k] distances, [N, k] indices) of each row's k nearest other rows (Euclidean), nearest first: those of
    neighbour_graph over the centred features, with their distances computed as |a - b| itself. Both because the
    expanded square that ranks them, |a|^2 - 2 a.b + |b|^2, loses the digits of the gaps between neighbours where the
    features are far from the origin."""
    features = features.float()
    indices = neighbour_graph(features - features.mean(0), k, chunk)
    distances = torch.cat([(features[start:start + chunk, None] - features[indices[start:start + chunk]]).norm(dim=-1)
                           for start in range(0, len(features), chunk)])
    distances, order = distances.sort(1)  # nearest first by the exact distance, as UMAP reads its lists
    return distances, indices.gather(1, order)


def fit_unlabelled(model, train_x, cfg):
    """The label-free part of the ratio and graph samplers, for one trained VAE and its training images: every
    image's posterior (mu, logvar), the k-NN graph over the features `cfg.graph_features` names that the graph
    sampler walks, a second k-NN graph over those features' UMAP embedding (None when cfg.graph_umap_components is
    0) that its discovery must agree with, and p_all, a GMM of the posterior means."""
    mu, logvar = (t.cpu() for t in encode_posteriors(model, train_x))
    problem = config.BY_NAME["graph_features"].check(cfg.graph_features)  # a RunConfig built without validate()
    if problem:
        raise SamplerError(f"graph_features must be {problem}, got {cfg.graph_features!r}")
    # the posterior means, or the encoder's layer before the latent (the graph's features until 2026-12-02)
    features = (mu if cfg.graph_features == "latent-means" else hidden_features(model, train_x)).float()
    graph = neighbour_graph(features, cfg.graph_neighbours).cpu()
    second = None
    if cfg.graph_umap_components > 0:
        second = neighbour_graph(umap_embedding(features, cfg.graph_umap_components, cfg.graph_umap_neighbours,
                                                cfg.seed), cfg.graph_neighbours).cpu()
    p_all = GaussianMixturePrior.fit(mu, cfg.ratio_components, "full", cfg.gmm_reg_covar, cfg.seed, n_init=1)
    return {"mu": mu, "logvar": logvar, "neighbours": graph, "umap_neighbours": second,
            "p_all": {"kind": p_all.kind, "args": p_all.init_args()}}


def umap_embedding(features, components, neighbours, seed):
    """The features' UMAP embedding (McInnes, Healy & Melville 2018) as N2D builds it for clustering (McConville et
    al. 2020, "N2D: (Not Too) Deep Clustering via Clustering the Local Manifold of an Autoencoded Embedding": as
    many dimensions as classes, 20 neighbours, min_dist 0, which packs each cluster tight). A fixed random_state
    on one thread: the same seed gives the same embedding, with the same library versions (the fit's identity holds
    them) on the same kind of CPU. 200 epochs: UMAP's own choice
    above 10,000 images, as both training sets are; fixed, so that a quick run's few images do not take 500."""
    import umap  # imported here: umap-learn loads numba, seconds that only this fit needs
    features = features.float().cpu()  # umap-learn computes on the CPU; the hidden features come on the model's device
    if len(features) <= neighbours:
        raise SamplerError(f"a UMAP embedding with {neighbours} neighbours needs more than {neighbours} images, "
                           f"got {len(features)}: set graph_umap_components to 0 for one graph")
    # the exact k-NN, by the search the first graph uses, given to UMAP as its own list would be (each point its
    # own nearest, at 0): UMAP otherwise searches approximately (NN-descent) or, under 4,096 points, calls a
    # compiled metric once per pair, most of a small fit's time
    distances, indices = nearest_neighbours(features, neighbours - 1)
    itself = torch.arange(len(features))[:, None]
    knn = (torch.cat([itself, indices], 1).numpy(), torch.cat([torch.zeros_like(itself, dtype=distances.dtype),
                                                               distances], 1).numpy(), None)
    learner = umap.UMAP(n_neighbors=neighbours, n_components=components, min_dist=0.0, n_epochs=200,
                        random_state=seed, n_jobs=1,  # a random_state forces one thread: said, so it does not warn
                        precomputed_knn=knn)
    with warnings.catch_warnings():  # without a search index umap-learn warns that transform() cannot map new
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")  # points: this fit never calls it
        embedding = torch.from_numpy(learner.fit_transform(features.numpy()).astype(np.float32))
    if not torch.isfinite(embedding).all():  # umap-learn leaves the rows of points it could not place as NaN
        raise SamplerError(f"the UMAP embedding of {len(features)} images has points it could not place: "
                           "set graph_umap_components to 0 for one graph")
    return embedding


def unlabelled_identity(cfg, data_fingerprint, base_hash):
    """The cache identity of fit_unlabelled's result: cache.identity's, plus the versions of umap-learn and of the
    compiler its layout runs on (numba, llvmlite), when the fit makes a UMAP embedding (kept out of every other
    identity: they do not depend on them)."""
    extra = {name: importlib.metadata.version(name) for name in ("umap-learn", "numba", "llvmlite")} \
        if cfg.graph_umap_components > 0 else {}
    return cache.identity("unlabelled", cfg, data_fingerprint, {"base": base_hash}, extra)


def get_unlabelled(model, checkpoint, data, cfg, models_dir, log=print):
    """fit_unlabelled for a trained base VAE (model and its models.load_checkpoint dict), cached as
    models_dir/unlabelled.pt under its identity: the base's content hash, the data, the graph and density settings,
    the code. Returns (the fit, its content hash)."""
    path = os.path.join(models_dir, "unlabelled.pt")
    identity = unlabelled_identity(cfg, data.fingerprint, checkpoint["content_hash"])
    with cache.locked(path):
        saved = cache.load_current(path, identity, "unlabelled", log)
        if saved is None:
            saved = {"identity": identity, "fit": fit_unlabelled(model, data.train_x, cfg)}
            if cache.save_cache(saved, path, "unlabelled", log):
                log(f"unlabelled: k-NN graph and latent density of {len(data.train_x)} training images -> {path}")
    return saved["fit"], cache.content_hash(saved["fit"])


def _adjacency(neighbours):
    """The symmetric 0/1 adjacency matrix of the mutual k-NN graph: an edge where each is among the other's k.
    Mutual k-NN graphs keep clusters apart where the symmetric (either-way) graph bridges them through hubs
    (Maier, Hein & von Luxburg 2009, "Optimal construction of k-nearest-neighbor graphs for identifying noisy
    clusters"). Measured against the either-way graph on the found images' purity over every class, with the base
    VAE of `python alltests.py`: from 10 labels (two draws) MNIST 0.935 -> 0.955 on average, Fashion-MNIST
    0.655 -> 0.656; from 1 label (three draws) MNIST 0.782 -> 0.835 and Fashion-MNIST 0.509 -> 0.517 on average,
    but MNIST's worst draw (an 8) falls from 0.149 to 0.061 (the study's own base VAE: 0.374 for that draw). A node
    with no mutual neighbour keeps its own k edges, so every node has a degree."""
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    directed = scipy.sparse.csr_matrix((np.ones(n * k), (rows, neighbours.numpy().ravel())), shape=(n, n))
    mutual = directed.multiply(directed.T)
    alone = np.asarray(mutual.sum(1)).ravel() == 0
    kept = scipy.sparse.diags(alone.astype(np.float64)) @ directed  # the out-edges of nodes with no mutual edge
    return ((mutual + kept + kept.T) > 0).astype(np.float64).tocsr()


def personalised_pagerank(adjacency, seeds, restart=constants.GRAPH_RESTART, tol=1e-10):
    """Stationary distribution of a random walk on the graph that jumps back to a uniformly chosen seed with
    probability `restart` at each step (Zhou et al. 2004, "Learning with local and global consistency";
    Andersen, Chung & Lang 2006, "Local graph partitioning using PageRank vectors", pr(alpha, s)). Theirs uses the
    lazy walk; the plain walk with restart r gives the same vector as the lazy walk with alpha = r / (2 - r), so the
    sweep order is the same.

    The vector solves (I - (1 - r) A D^-1) pi = r s. With pi = D^(1/2) y that is the symmetric positive definite
    system (I - (1 - r) D^(-1/2) A D^(-1/2)) y = r D^(-1/2) s, solved by conjugate gradients (Hestenes & Stiefel
    1952) in tens of iterations where the power iteration needs thousands at a small restart probability."""
    degree = np.asarray(adjacency.sum(1)).ravel()
    scale = 1.0 / np.sqrt(degree)
    normalised = scipy.sparse.diags(scale) @ adjacency @ scipy.sparse.diags(scale)
    system = scipy.sparse.identity(adjacency.shape[0], format="csr") - (1 - restart) * normalised
    start = np.zeros(adjacency.shape[0])
    start[seeds] = 1.0 / len(seeds)
    y, info = scipy.sparse.linalg.cg(system, restart * scale * start, rtol=tol, maxiter=10_000)
    if info != 0:
        raise SamplerError(f"personalised PageRank did not converge ({info} iterations)")
    return y / scale


def sweep_cut(adjacency, rank, min_size, max_size, tolerance=1.0):
    """A prefix of the nodes ordered by rank / degree, by its conductance cut(S) / min(vol S, vol rest)
    (Andersen, Chung & Lang 2006, the sweep over a PageRank vector): the cluster the seeds sit in. Prefixes run
    from min_size to max_size nodes (at most half the graph). tolerance 1: the prefix of lowest conductance;
    above 1: the smallest prefix whose conductance is within that factor of the lowest."""
    degree = np.asarray(adjacency.sum(1)).ravel()
    order = np.argsort(-rank / degree, kind="stable")
    last = min(max_size, len(order) // 2)
    inside = np.zeros(len(order), bool)
    conductance = np.full(last, math.inf)
    total, volume, cut = degree.sum(), 0.0, 0.0
    indptr, indices = adjacency.indptr, adjacency.indices
    for size, node in enumerate(order[:last], start=1):
        linked = inside[indices[indptr[node]:indptr[node + 1]]].sum()
        cut += degree[node] - 2 * linked  # its edges leave the set, except those to nodes already in it
        volume += degree[node]
        inside[node] = True
        if size >= min_size:
            conductance[size - 1] = cut / min(volume, total - volume)
    if not np.isfinite(conductance).any():
        return order[:min_size]
    size = 1 + int(np.nonzero(conductance <= tolerance * conductance.min())[0][0])
    return order[:size]


def found_goal_images(neighbours, seeds, restart=constants.GRAPH_RESTART, core=constants.GRAPH_CORE,
                      max_share=constants.GRAPH_MAX_SHARE, rounds=constants.GRAPH_ROUNDS,
                      tolerance=constants.GRAPH_CUT_TOLERANCE, agree_with=None):
    """Indices of the training images the graph assigns to the seeds' class: the sweep cut of a personalised
    PageRank from the seeds (positive-unlabelled learning by graph clustering), kept where at least `core` of an
    image's k neighbours were found too (the cluster's boundary is where other classes mix in).

    The cut holds at least five neighbourhoods (5 k images) and at most max_share of all images: where a goal
    class is entangled with others in the features, the lowest-conductance set is a community of several classes
    (measured: 3, 5 and 8 of MNIST), which the cap excludes.

    `rounds` walks, each seeded from the set the one before it cut (seed-set expansion, Kloumann & Kleinberg
    2014, "Community membership identification from small seed sets": the more of the community seeds the walk,
    the better its ranking). From a few seeds the ranking mixes in a neighbouring class, and as the walk takes in
    that class's cluster the conductance falls on slowly toward the merged community: the lowest cut under the cap
    then stops part-way into it (MNIST: 9 into 4 and 7, 3 into 5 and 8). So every round but the last takes the
    smallest cut within `tolerance` of the lowest, a purer core, and the last takes the lowest cut of a walk
    seeded from that whole core and the expert's images (re-seeding from a cut is this project's step; Kloumann &
    Kleinberg's is that more seeds rank better). The size bounds stay the first walk's, so a later cut may be
    smaller than the set that seeded it.

    `agree_with`, a second k-NN graph over the same images (fit_unlabelled's, over a UMAP embedding): the walks
    run on each graph alone, and the images both found, with the expert's, seed one last walk on the first graph,
    whose cut takes them all in. From one label the two graphs often go wrong on the same draws, but where each
    takes other images in with the goal it mostly takes in different ones (MNIST, the study's base VAE at a latent
    of 16, while UMAP searched its own neighbours; given the exact ones, both took the 4s in on two 9 draws there,
    and on none at 32), so what both found is mostly purer than either set, and the last walk wins back the images
    either missed (the measurements: constants.py); its size bounds are those of its own seeds, so its cut holds
    at least every agreed image, and those skip the core filter. Where the images both found are not even half of
    the smaller set, the graphs put the label in different clusters and their overlap is neither's (held out, an
    MNIST 8 whose overlap was the fringe of another digit): the first graph's set stands alone."""
    adjacency = _adjacency(neighbours)
    first = _walks(neighbours, adjacency, seeds, restart, core, max_share, rounds, tolerance)
    if agree_with is None:
        return first
    if agree_with.shape[0] != neighbours.shape[0]:
        raise SamplerError(f"the two graphs must join the same images, got {neighbours.shape[0]} and "
                           f"{agree_with.shape[0]}")
    second = _walks(agree_with, _adjacency(agree_with), seeds, restart, core, max_share, rounds, tolerance)
    agreed = np.intersect1d(first.numpy(), second.numpy())
    # the graphs disagree where the overlap is under half of the smaller set (this project's rule; constants.py)
    if len(agreed) < 0.5 * min(len(first), len(second)):
        return first
    # every agreed image seeds the last walk, so it stays, core filter or not, and the cut holds at least as many
    return _walks(neighbours, adjacency, np.union1d(agreed, seeds), restart, core, max_share, 1, tolerance)


def _walks(neighbours, adjacency, seeds, restart, core, max_share, rounds, tolerance):
    """found_goal_images on one graph (its k-NN lists and their _adjacency): `rounds` walks from `seeds`, the last
    one's cut, every seed, the core filter; the seeds always stay."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    n = len(neighbours)
    min_size, max_size = max(len(seeds), 5 * neighbours.shape[1]), max(len(seeds), int(max_share * n))
    members = seeds
    for round_ in range(rounds):
        members = sweep_cut(adjacency, personalised_pagerank(adjacency, np.union1d(members, seeds), restart),
                            min_size, max_size, 1.0 if round_ == rounds - 1 else tolerance)
    found = np.zeros(len(neighbours), bool)
    found[members] = True
    found[seeds] = True
    kept = found & (found[neighbours.numpy()].mean(1) >= core)
    kept[seeds] = True  # the seeds always stay: the expert's own labels (and, in an agreed walk, the agreed set)
    return torch.from_numpy(np.nonzero(kept)[0])


def discover(unlabelled, seeds, cfg):
    """found_goal_images with the graph settings of cfg, on fit_unlabelled's graphs: the graph and pseudo-label
    samplers' discovery step."""
    return found_goal_images(unlabelled["neighbours"], np.asarray(seeds), cfg.graph_restart, cfg.graph_core,
                             cfg.graph_max_share, cfg.graph_rounds, cfg.graph_cut_tolerance,
                             unlabelled["umap_neighbours"])


# --- the samplers -------------------------------------------------------------------------------

def _shrunk_gaussian(latents, background_cov):
    """A one-component GaussianMixturePrior: the latents' mean, and their covariance shrunk toward the covariance of
    all latents, (scatter + (d + 2) Sigma_all) / (n + d + 2): the posterior mean of the covariance under an
    inverse-Wishart prior with nu_0 = 2d + 3 and S_0 = (d + 2) Sigma_all, the sample mean plugged in for the mean
    (Murphy 2012, Machine Learning: a Probabilistic Perspective, sec. 4.6.3), so one or ten labels still give a
    proper Gaussian."""
    n, d = latents.shape
    scatter = (latents - latents.mean(0)).T @ (latents - latents.mean(0))
    cov = (scatter + (d + 2) * background_cov) / (n + d + 2)
    return GaussianMixturePrior(torch.ones(1), latents.mean(0, keepdim=True), cov[None])


def fit_ratio(z_all, seeds, p_all, rounds=constants.RATIO_ROUNDS, max_components=constants.GMM_COMPONENTS,
              reg_covar=constants.GMM_REG_COVAR, seed=constants.SEED, n_estimate=50_000):
    """RatioSampler for one goal: p_goal starts as a shrunk Gaussian of the labelled latents; each self-training
    round refits it (a GMM) to every training latent whose ratio reaches the labelled ones' 10% quantile.
    The acceptance threshold r* is the labelled latents' median ratio. A, the accepted density's normaliser, from
    n_estimate proposals: its relative standard error is at most sqrt((1 - a) / (a n)) at the acceptance a of the
    proposal used, max(1, r*) A (each acceptance lies in [0, 1], so its variance is at most a (1 - a): Bhatia &
    Davis 2000, "A better bound on the variance"), under 1% from 50,000 wherever a is above 0.2; a is at least the
    share of p_goal where r <= r*, about a half when the labelled latents are typical of p_goal."""
    log_p_all = p_all.log_prob(z_all)
    p_goal = _shrunk_gaussian(z_all[seeds], torch.cov(z_all.T).reshape(z_all.shape[1], -1))
    for _ in range(rounds):
        log_ratio = p_goal.log_prob(z_all) - log_p_all
        pseudo = log_ratio >= log_ratio[seeds].quantile(0.1)
        pseudo[seeds] = True
        p_goal = GaussianMixturePrior.fit(z_all[pseudo], max_components, "full", reg_covar, seed)
    log_threshold = (p_goal.log_prob(z_all[seeds]) - log_p_all[seeds]).median()
    sampler = RatioSampler(p_all, p_goal, log_threshold, 0.0)
    # the threshold (the labelled latents' median ratio) and the 10% quantile of self-training are heuristics, not
    # Elkan & Noto's estimate of c = p(labelled | goal): the accepted density is p_all wherever r >= r*.
    sampler.normalise(n_estimate, seed)
    return sampler


# --- the registry: a sampler is one function and one @register line -----------------------------------------

@dataclass(frozen=True)
class SamplerSpec:
    fit: Callable  # (model, data, cfg, labelled {goal: indices}, unlabelled fit or None) -> (sampler, info)
    needs_unlabelled: bool  # learns from the unlabelled training images too (fit_unlabelled)
    summary: str


REGISTRY = {}


def register(name, summary, needs_unlabelled=False):
    """Add the decorated fitting function to REGISTRY under `name`: sample.py, alltests.py, the study and
    load_sampler reach it from then on."""
    def add(fit):
        REGISTRY[name] = SamplerSpec(fit, needs_unlabelled, summary)
        return fit
    return add


def per_goal(fit_one):
    """A sampler fitted for each goal on its own (fit_one(model, data, cfg, seeds, unlabelled) -> (sampler, info)),
    then mixed in equal shares (EqualMixture); infos merged per goal."""
    def fit(model, data, cfg, labelled, unlabelled):
        parts, info = [], {}
        for goal, seeds in labelled.items():
            part, part_info = fit_one(model, data, cfg, seeds, unlabelled)
            parts.append(part)
            for key, value in part_info.items():
                info.setdefault(key, {})[goal] = value
        return (parts[0] if len(parts) == 1 else EqualMixture(parts)), info
    return fit


@register("graph", "the goal class found among the unlabelled images by graph clustering", needs_unlabelled=True)
@per_goal
def fit_graph(model, data, cfg, seeds, unlabelled):
    found = discover(unlabelled, seeds.numpy(), cfg)
    # the aggregate posterior of the found images, each posterior's variance scaled by the temperature
    mu, logvar = unlabelled["mu"][found], unlabelled["logvar"][found]
    return DiagonalMixture(mu, cfg.graph_temperature * logvar.exp()), {"found": found}


@register("pseudo-label", "graph's found images train a conditional decoder, fine-tuned from the base VAE",
          needs_unlabelled=True)
def fit_pseudo_label(model, data, cfg, labelled, unlabelled):
    # pseudo-labelling (Lee 2013) of the unlabelled images by the graph's discovery step, then a conditional VAE
    # (Sohn et al. 2015) trained on them: the route DPT takes (You et al. 2023), here fine-tuned from the base VAE
    # so that a few epochs on the found images and as many others suffice. Label 0: not a goal; g + 1: goal g.
    n = len(data.train_x)
    pseudo, found = torch.zeros(n, dtype=torch.long), {}
    for index, (goal, seeds) in enumerate(labelled.items(), start=1):
        found[goal] = discover(unlabelled, seeds.numpy(), cfg)
        claimed = pseudo[found[goal]] != 0
        pseudo[found[goal]] = torch.where(claimed, -1, index)  # an image two goals claim is left out
    for index, (goal, seeds) in enumerate(labelled.items(), start=1):
        pseudo[seeds] = index  # except the expert's own: each goal keeps at least its labelled images
        found[goal] = torch.nonzero(pseudo == index).squeeze(1)  # what it learns as this goal
    goal_images = torch.nonzero(pseudo > 0).squeeze(1)
    generator = torch.Generator().manual_seed(cfg.seed)
    others = torch.nonzero(pseudo == 0).squeeze(1)
    others = others[torch.randperm(len(others), generator=generator)[:len(goal_images)]]
    chosen = torch.cat([goal_images, others])
    chosen = chosen[torch.randperm(len(chosen), generator=generator)]
    n_val = max(1, len(chosen) // 10)  # early stopping on a tenth of them
    device = next(model.parameters()).device
    images, labels = data.train_x[chosen.to(data.train_x.device)], pseudo[chosen]
    with losses.forked_rng(device):  # layer init and fit draw from the global RNG: the caller's stay as they were
        cvae = ConditionalVAE.from_unconditional(model, len(labelled) + 1)
        fitting.fit(cvae, StandardNormalPrior(model.latent_dim), images[n_val:], images[:n_val], cfg,
                    beta=cfg.beta("cvae"), epochs=cfg.pseudo_epochs, desc="pseudo-label", progress=False,
                    train_labels=labels[n_val:], val_labels=labels[:n_val])
    cvae.eval()
    parts = []
    for index, goal in enumerate(labelled, start=1):
        # z from the posteriors of the images it learnt as this goal, under the fine-tuned encoder
        goal_x = data.train_x[found[goal].to(data.train_x.device)]
        with torch.no_grad():
            mu, logvar = encode_posteriors(cvae, goal_x, labels=torch.full((len(goal_x),), index, device=device))
        parts.append(DiagonalMixture(mu.cpu(), cfg.graph_temperature * logvar.exp().cpu()))
    return PseudoLabelSampler(cvae, parts, list(range(1, len(labelled) + 1))), {"found": found}


@register("exemplar", "the labelled images' own posteriors, mixed (a VampPrior)")
def fit_exemplar(model, data, cfg, labelled, unlabelled):
    # VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior", eq. 9) with the labelled images as its fixed
    # pseudo-inputs: p(z) = (1/n) sum_i q(z | x_i)
    mu, logvar = encode_posteriors(model, data.train_x[torch.cat(list(labelled.values()))])
    return DiagonalMixture(mu.cpu(), logvar.exp().cpu()), {}


@register("ratio", "density ratio of a goal density to that of all latents, by rejection", needs_unlabelled=True)
@per_goal
def fit_ratio_sampler(model, data, cfg, seeds, unlabelled):
    # Elkan & Noto's (2008) positive-unlabelled setting: labelled goal images versus all images
    p_all = GaussianMixturePrior(**unlabelled["p_all"]["args"])
    return fit_ratio(unlabelled["mu"], seeds, p_all, cfg.ratio_rounds, cfg.gmm_components, cfg.gmm_reg_covar,
                     cfg.seed), {}


@register("goal-gmm", "the earlier implementation's Gaussian-mixture prior, on the untouched decoder")
def fit_goal_gmm(model, data, cfg, labelled, unlabelled):
    latents = encode_means(model, data.train_x[torch.cat(list(labelled.values()))]).cpu()
    return GaussianMixturePrior.fit(latents, cfg.gmm_components, cfg.gmm_covariance_type, cfg.gmm_reg_covar,
                                    cfg.seed), {}


@register("goal-gaussian", "the earlier implementation's goal prior N(mu_p, diag sigma_p^2), likewise")
def fit_goal_gaussian(model, data, cfg, labelled, unlabelled):
    # pooled over the goals, as the earlier implementation fitted it
    return DiagonalGaussianPrior.fit(encode_means(model, data.train_x[torch.cat(list(labelled.values()))]).cpu()), {}


def names():
    """Every registered sampler's name, in the order they were registered."""
    return tuple(REGISTRY)


def spec(name):
    """The registered sampler `name`; SamplerError naming the choices for an unknown one."""
    if name not in REGISTRY:
        raise SamplerError(f"unknown sampler {name!r}: choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def labelled_indices(data, cfg):
    """{goal: indices of its labelled training images}; raises SamplerError for a budget the data cannot meet."""
    problem = datasets.budget_problem(data.dataset, data.train_y, cfg.goals, cfg.expert_labels)
    if problem:
        raise SamplerError(problem)
    return {goal: datasets.goal_indices(data.train_y, [goal], cfg.expert_labels, cfg.label_draw)
            for goal in cfg.goals}


def fit_sampler(name, model, data, cfg, unlabelled=None):
    """Sampler `name` for the goals of `cfg` (goals, expert_labels, seed, sampler settings) on a trained ConvVAE.

    Uses the expert-labelled training images (datasets.goal_indices) and, for samplers that need it, `unlabelled`
    from fit_unlabelled (the training images' graph and latent density, no labels). Returns (sampler, info), info
    holding what was found (for graph: the indices of the images it took as goal images, per goal)."""
    chosen = spec(name)
    if chosen.needs_unlabelled and unlabelled is None:
        raise SamplerError(f"the {name} sampler needs fit_unlabelled's graph and density")
    sampler, info = chosen.fit(model, data, cfg, labelled_indices(data, cfg), unlabelled)
    info["pixel_spread"] = pixel_spread(model, sampler, cfg.seed)
    if info["pixel_spread"] < SPREAD_FLOOR:
        info["warning"] = (f"the {name} sampler from {cfg.expert_labels} label(s) draws near-copies of one image "
                           f"(per-pixel spread {info['pixel_spread']:.3f}, below {SPREAD_FLOOR}): expect no variety")
    return sampler, info


SPREAD_FLOOR = 0.02  # measured: goal-gaussian from 1 label 0.002, graph from 10 labels 0.09 (issue 22)


def pixel_spread(model, sampler, seed, n=256):
    """The mean over pixels of the standard deviation across n decoded samples: near 0 when a sampler has collapsed
    onto one image. Its own random stream, so the caller's draws stay as they were."""
    with losses.forked_rng(next(model.parameters()).device):
        torch.manual_seed(seed)
        return decode_prior_samples(model, sampler, n).std(0).mean().item()


def load_sampler(name, checkpoint_path, cfg, data_dir=None, log=print, asked=()):
    """(model, sampler): the trained base VAE at checkpoint_path, and sampler `name` fitted from the labels `cfg`
    asks for (goals, expert_labels, seed, sampler settings), drawn from the training split that model was trained
    on (its identity records it). `asked`: settings the user gave, which the checkpoint must have been trained with
    (models.check_checkpoint_serves). The label-free part is cached beside the checkpoint (get_unlabelled).

        model, sampler = samplers.load_sampler("graph", "models/base.pt", config.RunConfig(expert_labels=10))
        images = models.decode_prior_samples(model, sampler, 16)
    """
    chosen = spec(name)
    model, _, checkpoint = load_checkpoint(checkpoint_path)
    check_checkpoint_serves(checkpoint, "base", cfg, checkpoint_path, asked)
    split = {k: checkpoint["identity"]["settings"][k] for k in ("dataset", "validation_split", "train_images", "seed")}
    model_cfg = cfg.replace(**split).validate()
    data = datasets.load_for(model_cfg, data_dir)
    if checkpoint["identity"]["data"] != data.fingerprint:
        raise SamplerError(f"{checkpoint_path} was trained on other images than the data folder holds now: "
                           f"retrain it with `python alltests.py`")
    unlabelled = None
    if chosen.needs_unlabelled:
        unlabelled, _ = get_unlabelled(model, checkpoint, data, model_cfg, os.path.dirname(checkpoint_path), log)
    sampler, info = fit_sampler(name, model, data, cfg.validate(), unlabelled)
    if "warning" in info:
        log(f"warning: {info['warning']}")
    return model, sampler
