"""Model shapes, priors' sample/log_prob agreement, GMM fitting, and a few optimisation steps."""
import pytest
import torch
from sklearn.mixture import GaussianMixture

import losses
import train
from models import ConvVAE, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior, pick_device


@pytest.mark.parametrize("latent_dim", [1, 4, 16])
def test_vae_shapes_and_pixel_range(latent_dim):
    model = ConvVAE(latent_dim)
    x = torch.rand(6, 1, 28, 28)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (6, latent_dim)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert model.decode(torch.randn(3, latent_dim)).shape == (3, 1, 28, 28)


def test_model_lives_on_cpu_until_moved():
    model = ConvVAE()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert pick_device("cpu").type == "cpu"


def moments_match(prior, mean, cov, n=200000, atol=0.05):
    torch.manual_seed(0)
    z = prior.sample(n)
    torch.testing.assert_close(z.mean(0), mean, atol=atol, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=atol * 2, rtol=0.03)


def test_priors_sample_what_log_prob_describes():
    """Sample moments match the density's; log_prob integrates to the mixture's moments."""
    moments_match(StandardNormalPrior(3), torch.zeros(3), torch.eye(3))
    mean, var = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 2.0, 0.1])
    moments_match(DiagonalGaussianPrior(mean, var), mean, torch.diag(var))
    weights = torch.tensor([0.3, 0.7])
    means = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    covs = torch.stack([torch.tensor([[0.5, 0.2], [0.2, 0.4]]), torch.eye(2) * 0.3])
    gmm = GaussianMixturePrior(weights, means, covs)
    mix_mean = (weights[:, None] * means).sum(0)
    centred = means - mix_mean
    mix_cov = (weights[:, None, None] * (covs + centred[:, :, None] * centred[:, None, :])).sum(0)
    moments_match(gmm, mix_mean, mix_cov)
    # and the density is normalised: a grid integral of exp(log_prob) is ~1
    axis = torch.linspace(-6, 6, 301)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    mass = gmm.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gmm_prior_reproduces_scikit_learn_density(covariance_type):
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(300, 3, generator=g) + 3, torch.randn(300, 3, generator=g) * 0.5])
    prior = GaussianMixturePrior.fit(points, 2, covariance_type, 1e-4, seed=0)
    reference = GaussianMixture(2, covariance_type=covariance_type, reg_covar=1e-4, n_init=3, random_state=0)
    reference.fit(points.double().numpy())
    z = torch.randn(100, 3) * 2
    expected = torch.from_numpy(reference.score_samples(z.double().numpy())).float()
    torch.testing.assert_close(prior.log_prob(z), expected, atol=1e-3, rtol=1e-4)


def test_goal_prior_holds_the_moments_of_the_latents():
    latents = torch.randn(1000, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 1
    prior = DiagonalGaussianPrior.fit(latents)
    torch.testing.assert_close(prior.mean, latents.mean(0))
    torch.testing.assert_close(prior.var, latents.var(0, unbiased=False))


@pytest.mark.parametrize("prior", [StandardNormalPrior(4), DiagonalGaussianPrior(torch.ones(4), torch.full((4,), 0.3)),
                                   GaussianMixturePrior(torch.tensor([0.5, 0.5]), torch.randn(2, 4),
                                                        torch.eye(4).expand(2, 4, 4) * 0.3)],
                         ids=["standard", "goal", "gmm"])
def test_a_few_adam_steps_lower_the_loss_on_a_small_batch(small_data, prior):
    torch.manual_seed(0)
    model = ConvVAE(4)
    x = small_data.train_x[:64]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_now():
        torch.manual_seed(123)  # same noise before and after, so only the weights differ
        with torch.no_grad():
            return losses.vae_loss(x, *model(x), prior, 1.0)[0].item()

    before = loss_now()
    for _ in range(30):
        loss = losses.vae_loss(x, *model(x), prior, 1.0)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss_now() < 0.8 * before


def test_fit_early_stops_on_its_own_objective_and_keeps_the_best_weights(small_data):
    model = ConvVAE(2)
    prior = DiagonalGaussianPrior(torch.ones(2), torch.full((2,), 0.2))
    history = train.fit(model, prior, small_data.train_x[:512], small_data.val_x[:256], beta=1.0, epochs=3,
                        batch_size=64, progress=False)
    best = min(h["val_loss"] for h in history)
    # the validation loss is the run's own objective (its prior), recomputed here with the same fixed noise
    again = train.evaluate_objective(model, prior, small_data.val_x[:256], beta=1.0)
    assert again["loss"] == pytest.approx(best, rel=1e-5)
    standard = train.evaluate_objective(model, StandardNormalPrior(2), small_data.val_x[:256], beta=1.0)
    assert standard["kl"] != pytest.approx(again["kl"], rel=1e-3)
