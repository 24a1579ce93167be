"""The convolutional VAE and the three priors it can be trained against.

Nothing here picks a device: build on the CPU and move with `.to(device)` (priors too: their
parameters are buffers).
"""

import numpy as np
import torch
import torch.nn as nn
from sklearn.mixture import GaussianMixture
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

import cache
import constants
import losses
from errors import CheckpointError


class DeviceError(ValueError):
    """A device that does not exist or is not available on this machine."""


def pick_device(name=None):
    """An explicit name wins; otherwise CUDA, then Apple's MPS, then the CPU."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"unknown device {name!r}: use cpu, cuda or mps") from None
        available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
        if not available.get(device.type, False):
            raise DeviceError(f"device {name!r} is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# SUBPIXEL_TAPS[a][p]: the kernel row (or column) that links output phase a to input offset p - 1; 4: none
SUBPIXEL_TAPS = ((3, 1, 4), (4, 2, 0))


class _SubPixelForward(torch.autograd.Function):
    """Forward of a stride-2 transposed convolution as a stride-1 convolution and a pixel shuffle; the backward
    is PyTorch's own transposed-convolution backward, so the gradients are the ones nn.ConvTranspose2d gives."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        # output pixel (2m + a, 2n + b) sums the inputs around (m, n) with kernel tap SUBPIXEL_TAPS[a][.], [b][.]
        # (Shi et al. 2016, "Is the deconvolution layer the same as a convolutional layer?"): one 3x3 conv makes
        # the four phases as channels, pixel_shuffle interleaves them. Tap index 4 is the zero padding.
        taps = torch.tensor(SUBPIXEL_TAPS, device=weight.device)
        padded = nn.functional.pad(weight, (0, 1, 0, 1))  # [C_in, C_out, 5, 5]
        kernel = padded[:, :, taps[:, :, None, None], taps[None, None, :, :]]  # [C_in, C_out, a, p, b, q]
        c_in, c_out = weight.shape[:2]
        kernel = kernel.permute(1, 2, 4, 0, 3, 5).reshape(c_out * 4, c_in, 3, 3)
        phases = nn.functional.conv2d(x, kernel, bias.repeat_interleave(4), padding=1)
        return nn.functional.pixel_shuffle(phases, 2)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        # the op autograd itself runs for nn.ConvTranspose2d(kernel 4, stride 2, padding 1)
        return torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[1]], [2, 2], [1, 1], [1, 1], True,
                                                   [0, 0], 1, list(ctx.needs_input_grad))


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1): same parameters, same function (to float
    rounding), same gradients, but a faster forward on CPU where c_out is small. Measured on 2 cores for the
    decoder's last layer (16 -> 1): oneDNN's transposed convolution 2.4 ms, this 0.95 ms per batch of 128."""

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1)

    def forward(self, x):
        return _SubPixelForward.apply(x, self.weight, self.bias)


NORM_GROUPS = 8  # GroupNorm's groups in the residual body: 4 or 8 channels each at its 32 and 64 channels


def group_norm(channels):
    # normalise over groups of channels per image (Wu & He 2018, "Group normalization"): batch-size independent
    return nn.GroupNorm(NORM_GROUPS, channels)


class ResidualBlock(nn.Module):
    """x + conv(relu(norm(conv(relu(norm(x)))))), 3x3, same channels: the pre-activation residual block (He et al.
    2016, "Identity mappings in deep residual networks"), GroupNorm in place of their BatchNorm.

    Why the normalisation: without it the residual stream grows unchecked, and on MNIST the decoder's logits fell
    to about -2000 within the first epoch (on 6,000 images): a sigmoid saturated at black for every z, no gradient,
    and the same validation loss in every later epoch (the study's resnet ceiling was 0% on 9 of 10 classes).
    Neither zero-initialising each block's last convolution, a KL warm-up nor a lower learning rate prevented it; the
    normalisation did, on both datasets."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(group_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  group_norm(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


FEATURE_SIZE = constants.IMAGE_SIZE // 4  # both bodies halve the image twice: 28 -> 14 -> 7


def conv_features():
    """28x28 image -> 32 x 7 x 7 features, flattened: the seed design's two stride-2 convolutions."""
    # in-place ReLU: the conv or linear layer before it (here also through Flatten) does not need its own
    # output for backward, so ReLU may overwrite it: one activation buffer less to allocate and fill per layer.
    # The second ReLU comes after Flatten (same values: ReLU is elementwise). Before it, with channels-last conv
    # outputs, its backward met a gradient in NCHW order (Flatten's) and a saved output in NHWC order: that
    # mixed-layout ReLU backward took 0.55 ms per batch of 128, against 0.09 ms on two flat tensors
    return [nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(inplace=True),   # 28 -> 14
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.Flatten(), nn.ReLU(inplace=True)]  # 14 -> 7


def residual_features():
    """28x28 image -> 64 x 7 x 7 features, flattened: stride-2 convolutions with a residual block at 14 and 7."""
    # the pre-activation design adds a norm and ReLU after its last block's addition (He et al. 2016)
    return [nn.Conv2d(1, 32, 4, stride=2, padding=1), ResidualBlock(32),   # 28 -> 14
            nn.Conv2d(32, 64, 4, stride=2, padding=1), ResidualBlock(64),  # 14 -> 7
            group_norm(64), nn.Flatten(), nn.ReLU(inplace=True)]


def conv_decoder(in_features, hidden):
    """in_features -> 28x28 logits: the seed design's decoder, two stride-2 transposed convolutions."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, 32 * FEATURE_SIZE ** 2), nn.ReLU(inplace=True),
        nn.Unflatten(1, (32, FEATURE_SIZE, FEATURE_SIZE)),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(inplace=True),  # 7 -> 14
        SubPixelConvTranspose2d(16, 1),  # 14 -> 28: logits (the image is their sigmoid)
    )


def residual_decoder(in_features, hidden):
    """in_features -> 28x28 logits: the residual encoder's layers in reverse order, with a norm and ReLU after each
    residual block (the pre-activation is per block: a block's shortcut carries the layer before it raw)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, 64 * FEATURE_SIZE ** 2), nn.Unflatten(1, (64, FEATURE_SIZE, FEATURE_SIZE)),
        ResidualBlock(64), group_norm(64), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # 7 -> 14
        ResidualBlock(32), group_norm(32), nn.ReLU(inplace=True),
        SubPixelConvTranspose2d(32, 1),  # 14 -> 28: logits
    )


# name -> (encoder features, their flattened size, decoder): `--arch`. "conv" is the seed design.
BODIES = {"conv": (conv_features, 32 * FEATURE_SIZE ** 2, conv_decoder),
          "resnet": (residual_features, 64 * FEATURE_SIZE ** 2, residual_decoder)}
LIKELIHOODS = ("gaussian", "bernoulli", "calibrated-gaussian")  # losses.reconstruction_loss


class GaussianLatentVAE(nn.Module):
    """What both VAEs share: q(z|x) = N(mu, diag sigma^2) with a bounded log-variance, its reparameterisation, and
    a decoder that outputs logits, whose sigmoid is the image (the Bernoulli mean, or the Gaussian mean)."""

    def __init__(self, latent_dim, arch, likelihood, hidden, logvar_min, logvar_max):
        super().__init__()
        if arch not in BODIES:
            raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(BODIES)}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}: choose one of {', '.join(LIKELIHOODS)}")
        self.latent_dim, self.arch, self.likelihood, self.hidden_size = latent_dim, arch, likelihood, hidden
        self.logvar_min, self.logvar_max = logvar_min, logvar_max

    def posterior(self, encoder_output):
        """[B, 2 * latent_dim] -> (mu, logvar)."""
        mu, logvar = encoder_output.chunk(2, dim=1)
        # bounded log-variance: exp() stays finite for large beta; wide enough to be inactive in practice
        return mu, logvar.clamp(self.logvar_min, self.logvar_max)

    def reparameterize(self, mu, logvar):
        # z = mu + sigma * eps, eps ~ N(0, I): Kingma & Welling 2014, Sec. 2.4
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def architecture(self):
        """What rebuilds this model from a checkpoint (load_checkpoint)."""
        return {"class": type(self).__name__, "latent_dim": self.latent_dim, "arch": self.arch,
                "likelihood": self.likelihood, "hidden": self.hidden_size,
                "logvar_min": self.logvar_min, "logvar_max": self.logvar_max}


class ConvVAE(GaussianLatentVAE):
    """28x28 image -> q(z|x) = N(mu, diag sigma^2) -> 28x28 logits; `arch` picks the body (BODIES)."""

    def __init__(self, latent_dim=constants.LATENT_DIM, arch=constants.ARCH, likelihood=constants.LIKELIHOOD,
                 hidden=constants.HIDDEN, logvar_min=constants.LOGVAR_MIN, logvar_max=constants.LOGVAR_MAX):
        super().__init__(latent_dim, arch, likelihood, hidden, logvar_min, logvar_max)
        features, size, decoder = BODIES[arch]
        self.encoder = nn.Sequential(*features(), nn.Linear(size, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, 2 * latent_dim))
        self.decoder = decoder(latent_dim, hidden)

    def encode(self, x):
        return self.posterior(self.encoder(x))

    def hidden(self, x):
        """The encoder's last hidden layer (before the mu / log-variance head): the features the graph sampler
        links images by."""
        return self.encoder[:-1](x)

    def decode_logits(self, z):
        return self.decoder(z)

    def decode(self, z):
        """The decoded image in [0, 1]: the mean of p(x|z)."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x):
        """(logits of p(x|z) for one reparameterised z, mu, logvar): losses.vae_loss takes these."""
        mu, logvar = self.encode(x)
        return self.decode_logits(self.reparameterize(mu, logvar)), mu, logvar


class ConditionalVAE(GaussianLatentVAE):
    """The reference that needs every image labelled: q(z|x, y) and p(x|z, y), the label fed to both sides
    as a one-hot vector (conditional VAE, Sohn et al. 2015); otherwise the same layers as ConvVAE."""

    def __init__(self, latent_dim=constants.LATENT_DIM, arch=constants.ARCH, likelihood=constants.LIKELIHOOD,
                 hidden=constants.HIDDEN, logvar_min=constants.LOGVAR_MIN, logvar_max=constants.LOGVAR_MAX,
                 n_classes=constants.N_CLASSES):
        super().__init__(latent_dim, arch, likelihood, hidden, logvar_min, logvar_max)
        self.n_classes = n_classes
        features, size, decoder = BODIES[arch]
        self.features = nn.Sequential(*features())
        self.encoder_head = nn.Sequential(nn.Linear(size + n_classes, hidden), nn.ReLU(inplace=True),
                                          nn.Linear(hidden, 2 * latent_dim))
        self.decoder = decoder(latent_dim + n_classes, hidden)

    @classmethod
    def from_unconditional(cls, base, n_classes):
        """A ConditionalVAE that starts as the trained ConvVAE `base`: the same weights, with zero weights on the
        label's inputs of the first layer on each side, so the label is ignored until fine-tuning teaches it."""
        cvae = cls(base.latent_dim, base.arch, base.likelihood, base.hidden_size, base.logvar_min, base.logvar_max,
                   n_classes).to(next(base.parameters()).device)
        target, n_features, state = cvae.state_dict(), len(cvae.features), {}
        for key, value in base.state_dict().items():
            part, index, rest = key.split(".", 2)
            if part == "encoder":  # ConvVAE's encoder is the features and then the head, in one Sequential
                key = f"features.{index}.{rest}" if int(index) < n_features else \
                    f"encoder_head.{int(index) - n_features}.{rest}"
            if value.shape != target[key].shape:  # the first Linear on each side: widen with zero label columns
                value = torch.cat([value, value.new_zeros(value.shape[0], n_classes)], 1)
            state[key] = value
        cvae.load_state_dict(state)
        return cvae

    def one_hot(self, labels, like):
        return nn.functional.one_hot(labels.long(), self.n_classes).to(like.dtype)

    def encode(self, x, labels):
        h = self.features(x)
        return self.posterior(self.encoder_head(torch.cat([h, self.one_hot(labels, h)], 1)))

    def decode_logits(self, z, labels):
        return self.decoder(torch.cat([z, self.one_hot(labels, z)], 1))

    def decode(self, z, labels):
        return torch.sigmoid(self.decode_logits(z, labels))

    def forward(self, x, labels):
        mu, logvar = self.encode(x, labels)
        return self.decode_logits(self.reparameterize(mu, logvar), labels), mu, logvar


ARCHITECTURES = {cls.__name__: cls for cls in (ConvVAE, ConditionalVAE)}


class Prior(nn.Module):
    """The interface every prior shares: log_prob(z), sample(n), kl(mu, logvar) per image.

    Subclasses give `distribution()` (a torch.distributions object over z), `kl` and `init_args()`
    (the tensors that rebuild them from a checkpoint); parameters are buffers, so `.to(device)` moves them.
    """
    kind = None

    def distribution(self):
        raise NotImplementedError

    def log_prob(self, z):
        return self.distribution().log_prob(z)

    def sample(self, n):
        """n draws from torch's global RNG: seed it for repeatable samples."""
        return self.distribution().sample((n,))


class StandardNormalPrior(Prior):
    """p(z) = N(0, I): the base VAE's prior."""
    kind = "standard"

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("zero", torch.zeros(latent_dim))

    def init_args(self):
        return {"latent_dim": self.latent_dim}

    def distribution(self):
        return Independent(Normal(self.zero, torch.ones_like(self.zero)), 1)

    def kl(self, mu, logvar):
        return losses.kl_standard_normal(mu, logvar)


class DiagonalGaussianPrior(Prior):
    """p(z) = N(mu_p, diag sigma_p^2), the moments of the base encoder's means over the goal images."""
    kind = "goal"

    def __init__(self, mean, var):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("var", torch.as_tensor(var, dtype=torch.float32).clone())

    @classmethod
    def fit(cls, latents, var_floor=1e-4):
        """Per-dimension mean and (population) variance; the floor keeps 1/sigma_p^2 finite."""
        return cls(latents.mean(0), latents.var(0, unbiased=False).clamp_min(var_floor))

    def init_args(self):
        return {"mean": self.mean, "var": self.var}

    def distribution(self):
        return Independent(Normal(self.mean, self.var.sqrt()), 1)

    def kl(self, mu, logvar):
        return losses.kl_diagonal_gaussian(mu, logvar, self.mean, self.var)


class GaussianMixturePrior(Prior):
    """p(z) = sum_k pi_k N(z | mu_k, Sigma_k), fitted by scikit-learn to the goal latents.

    Its KL has no closed form: `kl` is the Monte Carlo estimate E_q[log q - log p] over
    `kl_samples` reparameterised draws, with log p evaluated for all components at once.
    """
    kind = "gmm"

    def __init__(self, weights, means, covariances, kl_samples=constants.GMM_KL_SAMPLES):
        super().__init__()
        self.kl_samples = int(kl_samples)
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32).clone())
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32).clone())
        self.register_buffer("covariances", torch.as_tensor(covariances, dtype=torch.float32).clone())
        # Cholesky once here, not at every training step
        self.register_buffer("scale_tril", torch.linalg.cholesky(self.covariances.double()).float())

    @classmethod
    def fit(cls, latents, max_components=constants.GMM_COMPONENTS,
            covariance_type=constants.GMM_COVARIANCE_TYPE, reg_covar=constants.GMM_REG_COVAR,
            seed=constants.SEED, kl_samples=constants.GMM_KL_SAMPLES, n_init=3):
        """scikit-learn's EM fit to `latents` [n, d], with as many components and as rich a covariance as n
        supports (gmm_shape); the best of n_init starts. One point (one expert label) gives one component centred
        on it with covariance reg_covar * I: scikit-learn's EM needs at least two."""
        points = latents.detach().cpu().double().numpy()
        if len(points) < 2:
            return cls(np.ones(1), points[:1], reg_covar * np.eye(points.shape[1])[None], kl_samples=kl_samples)
        n_components, covariance_type = gmm_shape(len(points), points.shape[1], max_components, covariance_type)
        gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type,
                              reg_covar=reg_covar, n_init=n_init, random_state=seed).fit(points)
        dim = points.shape[1]
        cov = gmm.covariances_  # shape depends on the covariance type: make every one [K, d, d]
        if covariance_type == "tied":
            cov = np.broadcast_to(cov, (n_components, dim, dim))
        elif covariance_type == "diag":
            cov = np.stack([np.diag(c) for c in cov])
        elif covariance_type == "spherical":
            cov = cov[:, None, None] * np.eye(dim)
        return cls(gmm.weights_, gmm.means_, np.ascontiguousarray(cov), kl_samples=kl_samples)

    def init_args(self):
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances,
                "kl_samples": self.kl_samples}

    def distribution(self):
        components = MultivariateNormal(self.means, scale_tril=self.scale_tril, validate_args=False)
        return MixtureSameFamily(Categorical(probs=self.weights, validate_args=False), components,
                                 validate_args=False)

    def sample(self, n):
        """n draws from torch's global RNG by ancestral sampling (Bishop 2006, PRML sec. 8.1.2): a component by its
        weight, then only that component's Gaussian, mu_k + L_k eps. MixtureSameFamily.sample draws from every
        component for every sample: K times the work (30 components: 6 s for 200,000 draws)."""
        component = torch.multinomial(self.weights, n, replacement=True)
        z = torch.randn(n, self.means.shape[1], dtype=self.means.dtype, device=self.means.device)
        for k in range(len(self.weights)):  # one matrix per component, not an [n, d, d] copy of them
            chosen = component == k
            z[chosen] = self.means[k] + z[chosen] @ self.scale_tril[k].T
        return z

    def kl(self, mu, logvar):
        return losses.kl_monte_carlo(mu, logvar, self.log_prob, self.kl_samples)


PRIORS = {cls.kind: cls for cls in (StandardNormalPrior, DiagonalGaussianPrior, GaussianMixturePrior)}


def gmm_shape(n_points, dim, max_components, covariance_type):
    """(components, covariance type) that n_points latents in `dim` dimensions can support: at most one component
    per dim + 1 points, and a full (or tied) covariance only with at least 2 (dim + 1) points per component; below
    that a diagonal one, whose dim variances need far fewer points than a full covariance's dim (dim + 1) / 2."""
    components = max(1, min(max_components, n_points // (dim + 1)))
    if covariance_type in ("full", "tied") and n_points < 2 * (dim + 1) * components:
        covariance_type = "diag"
    return components, covariance_type


def is_conditional(model):
    return isinstance(model, ConditionalVAE)


@torch.no_grad()
def encode_posteriors(model, images, batch_size=1000, labels=None):
    """(mu, logvar) of q(z|x) for a stack of images, in batches, on the model's device (labels: for a
    ConditionalVAE)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    for i in range(0, len(images), batch_size):
        extra = () if labels is None else (labels[i:i + batch_size].to(device),)
        parts.append(model.encode(images[i:i + batch_size].to(device), *extra))
    model.train(was_training)
    return torch.cat([mu for mu, _ in parts]), torch.cat([logvar for _, logvar in parts])


def encode_means(model, images, batch_size=1000, labels=None):
    """Posterior means mu(x) for a stack of images (see encode_posteriors)."""
    return encode_posteriors(model, images, batch_size, labels)[0]


@torch.no_grad()
def hidden_features(model, images, batch_size=1000):
    """ConvVAE.hidden for a stack of images, in batches, on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    features = torch.cat([model.hidden(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return features


def cycled_labels(digits, n):
    """n labels cycling through `digits`: equal shares when a ConditionalVAE is asked for several digits."""
    return torch.tensor(list(digits)).repeat(n // len(digits) + 1)[:n]


@torch.no_grad()
def decode_prior_samples(model, prior, n, batch_size=1000, labels=None):
    """n images decoded from z ~ prior (draws from torch's global RNG: seed it for repeatable samples).

    A ConditionalVAE also takes the n labels to decode with (see cycled_labels). A prior with a `generator` (a
    conditional decoder of its own) is decoded by that generator, with the labels it draws beside z."""
    device = next(model.parameters()).device
    prior = prior.to(device)
    if getattr(prior, "generator", None) is not None:
        # a sampler that brings its own conditional decoder (samplers.PseudoLabelSampler) draws z and the label
        model, (z, labels) = prior.generator, prior.sample_labelled(n)
    else:
        z = prior.sample(n)
    was_training = model.training
    model.eval()
    images = []
    for i in range(0, n, batch_size):
        extra = () if labels is None else (labels[i:i + batch_size].to(device),)
        images.append(model.decode(z[i:i + batch_size], *extra))
    model.train(was_training)
    return torch.cat(images)


# --- checkpoints: what sample.py and a notebook need to rebuild a trained model, without the training code ---------

CHECKPOINT_FORMAT = 3  # 3: the architecture records arch, likelihood and hidden size


def checkpoint_content(model, prior):
    """What a checkpoint computes: its weights and its prior. Its hash is what children record as their parent."""
    return {"architecture": model.architecture(), "state_dict": model.state_dict(),
            "prior": {"kind": prior.kind, "args": prior.init_args()}}


def save_checkpoint(path, model, prior, identity, history):
    """Write the checkpoint atomically and return what was written."""
    content = checkpoint_content(model, prior)
    checkpoint = {"format": CHECKPOINT_FORMAT, **content, "identity": identity, "history": history,
                  "content_hash": cache.content_hash(content)}
    cache.save_torch(checkpoint, path)
    return checkpoint


def load_checkpoint(path, device="cpu"):
    """(model, prior, checkpoint dict) from a file written by save_checkpoint; tensors only, no pickled code."""
    # the exact train.py command is checkpoints.training_command's (sample.py names it): that module sits above this one
    checkpoint = cache.load_tensors(path, CheckpointError, f"no checkpoint at {path}: `python alltests.py` or "
                                                          f"`python train.py` trains one")
    return model_from_checkpoint(checkpoint, path, device)


def model_from_checkpoint(checkpoint, path, device="cpu"):
    """(model, prior, checkpoint) from a loaded checkpoint dict; CheckpointError when it is not one of ours."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a Biased VAE checkpoint of this version (format {CHECKPOINT_FORMAT}): "
                              f"retrain it")
    arch = dict(checkpoint.get("architecture", {}))
    if arch.get("class") not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a {arch.get('class')!r} model, not one of {', '.join(ARCHITECTURES)}")
    try:
        model = ARCHITECTURES[arch.pop("class")](**arch)
        model.load_state_dict(checkpoint["state_dict"])
        prior = PRIORS[checkpoint["prior"]["kind"]](**checkpoint["prior"]["args"])
    except Exception as error:
        raise CheckpointError(f"{path} does not match this code's architecture "
                              f"({str(error).strip().splitlines()[0][:200]})") from None
    # the hash is recomputed from what was loaded, so a file edited by hand cannot pass for its parent's child
    checkpoint["content_hash"] = cache.content_hash(checkpoint_content(model, prior))
    return model.to(device), prior.to(device), checkpoint


# what a sample is of: a checkpoint trained for another request must not silently serve this one
REQUEST = ("goals", "expert_labels", "label_draw", "labelled_only_kl")


def check_checkpoint_serves(checkpoint, kind, cfg, path, asked=()):
    """Refuse, with one CheckpointError line, a checkpoint that was trained with other settings than the request:
    the settings of `kind` (config.SETTINGS) among REQUEST and those the user gave (`asked`), except the seed, which
    sets the draw. Without this, `--latent-dim 8` against a 4-d checkpoint would silently sample the 4-d model."""
    stored = checkpoint.get("identity", {}).get("settings", {})
    wanted = cfg.for_artefact(kind)
    checked = (set(REQUEST) | set(asked)) - {"seed"}
    changed = [name for name in wanted if name in checked and stored.get(name) != wanted[name]]
    if changed:
        found = ", ".join(f"{name} {stored.get(name)!r} there, {wanted[name]!r} asked" for name in changed)
        raise CheckpointError(f"{path} was trained for another request ({found}): train it with `python train.py "
                              f"--model {kind}` and the same flags")
